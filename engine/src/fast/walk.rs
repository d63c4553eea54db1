//! The fast executor's graph walk: the reference walk's contract (input checks, node order,
//! release of each activation after its last reader, the same errors, through the same pieces
//! in `cpu`), with the activation buffers recycled.
//!
//! Why not the reference's walk itself: every node's output there is a fresh allocation, and
//! activations of a few hundred kB to 1.5 MB come from `mmap` and go back to the kernel when
//! freed, so every layer paid page faults and zeroing on first touch — about a quarter of the
//! front-128 frame's time in the kernel (perf). Here a released activation's buffer goes to a
//! spare list that the next nodes (and the next run) write into. Inputs are read in place, not
//! copied, and the batch-1 shapes are inferred once.

use std::time::{Duration, Instant};

use super::{FastModel, Step};
use crate::cpu;
use crate::error::Result;
use crate::tensor::{Tensor, View};

/// Spare buffers kept between runs: BlazeFace holds at most about four activations at once.
const MAX_SPARE: usize = 12;

/// A value of the walk: an input read where the caller keeps it, or a tensor computed here.
enum Value<'a> {
    Input(&'a Tensor),
    Computed(Tensor),
}

impl Value<'_> {
    fn view(&self) -> View<'_> {
        match self {
            Value::Input(t) => t.view(),
            Value::Computed(t) => t.view(),
        }
    }
}

impl FastModel {
    /// Runs every node here, kernels spreading over `workers`.
    pub(super) fn run_here(
        &self,
        inputs: &[Tensor],
        workers: super::Workers<'_>,
        timing: &mut (dyn FnMut(usize, Duration) + Send),
    ) -> Result<Vec<Tensor>> {
        let graph = &self.graph;
        cpu::check_input_count(graph, inputs)?;
        let batch = cpu::input_batch(inputs);
        let other;
        let shapes = if batch == 1 {
            &self.shapes
        } else {
            other = graph.infer_shapes(batch)?;
            &other
        };
        let mut values: Vec<Option<Value<'_>>> = (0..graph.tensors.len()).map(|_| None).collect();
        for (t, &id) in inputs.iter().zip(&graph.inputs) {
            cpu::check_input(graph, shapes, id, t)?;
            if let Some(v) = values.get_mut(id.0) {
                *v = Some(Value::Input(t));
            }
        }
        // This run's spare buffers: all the model has (a concurrent run starts with none).
        let mut spare = self
            .spare
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for (i, node) in self.nodes.iter().enumerate() {
            let out_shape = shapes.get(node.output)?;
            // The reference's ops allocate their own outputs.
            let buf = match self.steps.get(i) {
                Some(Step::Reference) | None => Vec::new(),
                Some(_) => take_spare(&mut spare, out_shape.iter().product()),
            };
            let out = {
                let views = cpu::input_views(graph, node, |id| {
                    values.get(id.0).and_then(|v| v.as_ref()).map(Value::view)
                })?;
                let t0 = Instant::now();
                let out = self.eval(i, node, &views, out_shape, workers, buf)?;
                timing(i, t0.elapsed());
                out
            };
            for id in &node.inputs {
                if self.last_use.get(id.0) == Some(&i)
                    && let Some(Some(Value::Computed(t))) = values.get_mut(id.0).map(Option::take)
                {
                    spare.push(t.data);
                }
            }
            if let Some(v) = values.get_mut(node.output.0) {
                *v = Some(Value::Computed(out));
            }
        }
        let outputs = graph
            .outputs
            .iter()
            .map(|&id| {
                let computed = values.get(id.0).and_then(|v| v.as_ref()).map(Value::view);
                cpu::output(graph, id, computed)
            })
            .collect();
        // The outputs were copied (they are small: the detector heads), so their buffers are
        // spare too, like every other activation still held.
        spare.extend(values.into_iter().filter_map(|v| match v {
            Some(Value::Computed(t)) => Some(t.data),
            _ => None,
        }));
        if let Ok(mut s) = self.spare.lock() {
            s.append(&mut spare);
            // Keep the largest: a small buffer serves only small nodes, a large one any.
            s.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
            s.truncate(MAX_SPARE);
        }
        outputs
    }
}

/// The smallest spare buffer that holds `n` floats without growing, or a new one (growing a
/// too-small buffer would copy its old contents for nothing).
fn take_spare(spare: &mut Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let best = spare
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= n)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i);
    match best {
        Some(i) => spare.swap_remove(i),
        None => Vec::with_capacity(n),
    }
}
