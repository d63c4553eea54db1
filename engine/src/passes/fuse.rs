//! Activation fusion and identity removal.
//!
//! Conv (or Gemm) followed by Relu/PRelu/LeakyRelu/Clip/Sigmoid becomes one node with the
//! activation recorded in its `activation` field: on a GPU that saves a full read and write
//! of the activation tensor per layer, which is most of the memory traffic in SFace.

use super::{absorb, channel_vector, sole_consumer};
use crate::error::Result;
use crate::graph::{Activation, Constant, Graph, Op, TensorId};

/// The slope of a PRelu as one value per channel of a `rank`-D tensor with `c` channels
/// (or one value overall).
fn prelu_slope(g: &Graph, slope: TensorId, rank: usize, c: usize) -> Option<Vec<f32>> {
    let k = g.constant(slope)?;
    channel_vector(&k.shape, k.f32_data()?, rank, c)
}

pub fn fuse_activations(g: &mut Graph) -> Result<()> {
    let declared = super::declared_batch(g);
    let shapes = g.infer_shapes(declared)?;
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::Activation(act) = g.nodes[i].op else {
            i += 1;
            continue;
        };
        let x = g.nodes[i].inputs[0];
        let producer = g.producers().get(x.0).copied().flatten();
        let Some(p) = producer.filter(|_| sole_consumer(g, x) == Some(i)) else {
            i += 1;
            continue;
        };
        let fusable = match g.nodes[p].op {
            Op::Conv(c) => c.activation == Activation::None,
            Op::Gemm(gm) => gm.activation == Activation::None,
            _ => false,
        };
        if !fusable {
            i += 1;
            continue;
        }
        let xs = shapes.get(x)?;
        let channels = xs.get(1).copied().unwrap_or(1);
        if act == Activation::PRelu {
            let Some(slope) = prelu_slope(g, g.nodes[i].inputs[1], xs.len(), channels) else {
                i += 1;
                continue;
            };
            // Fused layout is [x, w, bias, slope]: materialise a zero bias if there is none.
            if g.nodes[p].inputs.len() < 3 {
                let name = g.fresh_name(&format!("{}.bias", g.name(x)));
                let b = g.add_constant(name, Constant::f32(vec![channels], vec![0.0; channels])?);
                g.nodes[p].inputs.push(b);
            }
            let name = g.fresh_name(&format!("{}.slope", g.name(x)));
            let len = slope.len();
            let s = g.add_constant(name, Constant::f32(vec![len], slope)?);
            g.nodes[p].inputs.push(s);
        }
        match &mut g.nodes[p].op {
            Op::Conv(c) => c.activation = act,
            Op::Gemm(gm) => gm.activation = act,
            _ => {}
        }
        absorb(g, p, i);
    }
    g.remove_dead();
    Ok(())
}

/// Drops Identity nodes (Dropout imports as one), rewiring readers to the source. An
/// Identity that produces a graph output is kept when removing it would rename the output.
pub fn remove_identities(g: &mut Graph) {
    let mut i = 0;
    while i < g.nodes.len() {
        if g.nodes[i].op != Op::Identity {
            i += 1;
            continue;
        }
        let (src, out) = (g.nodes[i].inputs[0], g.nodes[i].output);
        if g.outputs.contains(&out) {
            i += 1;
            continue;
        }
        g.replace_uses(out, src);
        g.nodes.remove(i);
    }
    g.remove_dead();
}
