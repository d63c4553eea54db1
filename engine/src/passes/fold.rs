//! Constant folding: any node whose inputs are all constants is evaluated once with the CPU
//! reference and becomes a constant. Dequantising weights is the same step restricted to
//! DequantizeLinear, kept separate so it can run (and be tested) on its own.

use crate::cpu;
use crate::error::Result;
use crate::graph::{Constant, Graph, Op, TensorKind};
use crate::tensor::View;

fn fold_where(g: &mut Graph, pick: impl Fn(&Op) -> bool) -> Result<()> {
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        let all_const = n.inputs.iter().all(|&id| g.constant(id).is_some());
        if !all_const || !pick(&n.op) {
            i += 1;
            continue;
        }
        let views: Vec<View<'_>> = n
            .inputs
            .iter()
            .filter_map(|&id| g.constant(id))
            .map(|c| {
                c.view().unwrap_or(View {
                    shape: &c.shape,
                    data: &[],
                })
            })
            .collect();
        let out = cpu::eval_node(g, n, &views)?;
        let c = Constant::f32(out.shape, out.data)?;
        let id = n.output;
        g.tensors[id.0].kind = TensorKind::Constant(c);
        g.nodes.remove(i);
    }
    g.remove_dead();
    Ok(())
}

/// Replaces DequantizeLinear of constant weights by the f32 weights.
pub fn dequantize_weights(g: &mut Graph) -> Result<()> {
    fold_where(g, |op| matches!(op, Op::DequantizeLinear { .. }))
}

/// Evaluates every node whose inputs are all constants.
pub fn fold_constants(g: &mut Graph) -> Result<()> {
    fold_where(g, |_| true)
}
