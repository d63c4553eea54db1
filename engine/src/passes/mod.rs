//! Load-time graph passes. Each one keeps the graph's outputs numerically the same (up to
//! f32 rounding); `tests/passes.rs` checks that on the real models with the CPU reference.
//!
//! [`optimize`] runs them in the order that lets each expose work for the next:
//! dequantise weights, fold constants, drop identities, make the batch generic, fold
//! BatchNorm, turn scalar/per-channel arithmetic into `Affine` and fold it into a following
//! Gemm, and finally fuse activations into the producing Conv/Gemm.

mod affine;
mod batch;
mod bn;
mod fold;
mod fuse;

pub use affine::{fold_affine_into_gemm, fuse_affine};
pub use batch::make_batch_generic;
pub use bn::fold_batch_norm;
pub use fold::{dequantize_weights, fold_constants};
pub use fuse::{fuse_activations, remove_identities};

use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// Runs every pass, then re-validates the graph and its shapes at the declared batch.
pub fn optimize(g: &mut Graph) -> Result<()> {
    dequantize_weights(g)?;
    fold_constants(g)?;
    remove_identities(g);
    make_batch_generic(g)?;
    fold_batch_norm(g)?;
    fuse_affine(g)?;
    fold_affine_into_gemm(g)?;
    fuse_activations(g)?;
    g.remove_dead();
    g.validate()?;
    g.infer_shapes(declared_batch(g))?;
    Ok(())
}

/// Axis 0 of the first graph input as declared (symbolic batches import as 1): the batch
/// at which the imported graph is known to be consistent.
pub fn declared_batch(g: &Graph) -> usize {
    g.input_shape(0)
        .and_then(|s| s.first().copied())
        .unwrap_or(1)
}

/// The index of the only node reading `t`, if exactly one node reads it once and it is not
/// a graph output: the condition for merging that node into `t`'s producer.
pub(crate) fn sole_consumer(g: &Graph, t: TensorId) -> Option<usize> {
    if g.outputs.contains(&t) {
        return None;
    }
    let mut found = None;
    for (i, n) in g.nodes.iter().enumerate() {
        let uses = n.inputs.iter().filter(|&&x| x == t).count();
        match (uses, found) {
            (0, _) => {}
            (1, None) => found = Some(i),
            _ => return None,
        }
    }
    found
}

/// Makes node `producer` write `consumer`'s output and deletes `consumer`: the merge step
/// of every fusion. Output names (which callers look up) are preserved this way.
pub(crate) fn absorb(g: &mut Graph, producer: usize, consumer: usize) {
    let out = g.nodes[consumer].output;
    g.nodes[producer].output = out;
    g.nodes.remove(consumer);
}

/// Per-channel vector of a constant that broadcasts along axis 1 of a rank-`rank` tensor
/// with `c` channels: shapes like `[C,1,1]`, `[1,C,1,1]`, or a scalar (`[]`, `[1]`, all
/// ones), which yields one value.
pub(crate) fn channel_vector(
    shape: &[usize],
    data: &[f32],
    rank: usize,
    c: usize,
) -> Option<Vec<f32>> {
    if data.len() == 1 {
        return Some(data.to_vec());
    }
    if shape.len() > rank || rank < 2 || data.len() != c {
        return None;
    }
    // Align right: the channel axis of the constant is at position 1 - (rank - len).
    let lead = rank - shape.len();
    let ok = shape.iter().enumerate().all(|(i, &d)| {
        let axis = i + lead;
        if axis == 1 { d == c } else { d == 1 }
    });
    (ok && lead <= 1).then(|| data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::channel_vector;

    #[test]
    fn channel_vectors() {
        let d = [1.0, 2.0, 3.0];
        assert!(channel_vector(&[3, 1, 1], &d, 4, 3).is_some());
        assert!(channel_vector(&[1, 3, 1, 1], &d, 4, 3).is_some());
        assert!(channel_vector(&[3], &d, 4, 3).is_none());
        assert!(channel_vector(&[3], &d, 2, 3).is_some());
        assert_eq!(channel_vector(&[], &[5.0], 4, 3).unwrap(), vec![5.0]);
        assert!(channel_vector(&[1, 1, 3], &d, 4, 3).is_none());
    }
}
