//! Makes a graph exported at batch 1 run at any batch N.
//!
//! Exporters bake the batch into two places our models use: Reshape targets (`[1, 384, 16]`)
//! and constants concatenated onto activations (BlazeFace pads channels by concatenating a
//! `ConstantOfShape` of zeros shaped `[1, k, H, W]`). The first becomes `0` ("copy the input
//! dim"); the second becomes a channel Pad, which has no batch in it at all.

use crate::error::{Error, Result};
use crate::graph::{ConstData, Graph, Op, Pad, PadMode};

pub fn make_batch_generic(g: &mut Graph) -> Result<()> {
    let declared = g
        .input_shape(0)
        .and_then(|s| s.first().copied())
        .ok_or_else(|| Error::Model("graph has no input".into()))?;
    let shapes = g.infer_shapes(declared)?;
    // A tensor carries the batch if it is computed from a graph input.
    let mut batched = vec![false; g.tensors.len()];
    for &i in &g.inputs {
        batched[i.0] = true;
    }
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let b = n.inputs.iter().any(|x| batched[x.0]);
        batched[n.output.0] = b;
        if !b {
            continue;
        }
        let in0 = shapes.get(n.inputs[0])?.to_vec();
        match &n.op {
            Op::Reshape { shape }
                if shape
                    .first()
                    .is_some_and(|&d| d > 0 && d as usize == declared)
                    && in0.first() == Some(&declared) =>
            {
                let mut s = shape.clone();
                s[0] = 0;
                g.nodes[i].op = Op::Reshape { shape: s };
            }
            Op::Concat { axis } if *axis > 0 => {
                if let Some(p) = zero_concat_as_pad(g, i, *axis, &shapes)? {
                    let keep = g.nodes[i]
                        .inputs
                        .iter()
                        .copied()
                        .find(|&x| g.constant(x).is_none());
                    if let Some(k) = keep {
                        g.nodes[i].op = Op::Pad(p);
                        g.nodes[i].inputs = vec![k];
                    }
                }
            }
            _ => {}
        }
    }
    g.remove_dead();
    Ok(())
}

/// If node `i` concatenates exactly one computed tensor with all-zero constants along
/// `axis`, the equivalent Pad.
fn zero_concat_as_pad(
    g: &Graph,
    i: usize,
    axis: usize,
    shapes: &crate::graph::Shapes,
) -> Result<Option<Pad>> {
    let n = &g.nodes[i];
    let mut before = 0;
    let mut after = 0;
    let mut seen_value = false;
    for &x in &n.inputs {
        match g.constant(x) {
            None if seen_value => return Ok(None),
            None => seen_value = true,
            Some(c) => {
                let zero = matches!(&c.data, ConstData::F32(v) if v.iter().all(|&z| z == 0.0));
                if !zero {
                    return Ok(None);
                }
                let k = c.shape.get(axis).copied().unwrap_or(0);
                if seen_value {
                    after += k;
                } else {
                    before += k;
                }
            }
        }
    }
    if !seen_value {
        return Ok(None);
    }
    let rank = shapes.get(n.output)?.len();
    let mut pads = vec![0; 2 * rank];
    pads[axis] = before;
    pads[axis + rank] = after;
    Ok(Some(Pad {
        pads,
        mode: PadMode::Constant(0.0),
    }))
}
