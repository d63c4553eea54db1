//! The fast executor's graph walk: the contract of `cpu::run_with` (input checks, node order,
//! release of each activation after its last reader, the same errors), with the activation
//! buffers recycled.
//!
//! Why not `cpu::run_with` itself: every node's output there is a fresh allocation, and
//! activations of a few hundred kB to 1.5 MB come from `mmap` and go back to the kernel when
//! freed, so every layer paid page faults and zeroing on first touch — about a quarter of the
//! front-128 frame's time in the kernel (perf). Here a released activation's buffer goes to a
//! spare list that the next nodes (and the next run) write into. Inputs are read in place, not
//! copied, and the batch-1 shapes are inferred once.

use std::time::{Duration, Instant};

use super::{FastModel, Step};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, TensorKind};
use crate::tensor::{Tensor, View};

/// Spare buffers kept between runs: BlazeFace holds at most about four activations at once.
const MAX_SPARE: usize = 12;

/// For each tensor of `graph`, the index of the last of `nodes` reading it; graph outputs (and
/// tensors nothing reads) `usize::MAX`, never released.
pub(super) fn last_uses(graph: &Graph, nodes: &[Node]) -> Vec<usize> {
    let mut last = vec![usize::MAX; graph.tensors.len()];
    for (i, n) in nodes.iter().enumerate() {
        for id in &n.inputs {
            if let Some(l) = last.get_mut(id.0) {
                *l = i;
            }
        }
    }
    for o in &graph.outputs {
        if let Some(l) = last.get_mut(o.0) {
            *l = usize::MAX;
        }
    }
    last
}

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
    /// Runs every node here, kernels spreading over `threads` workers of the pool.
    pub(super) fn run_here(
        &self,
        inputs: &[Tensor],
        threads: usize,
        timing: &mut (dyn FnMut(usize, Duration) + Send),
    ) -> Result<Vec<Tensor>> {
        let graph = &self.graph;
        if inputs.len() != graph.inputs.len() {
            return Err(Error::Input(format!(
                "graph has {} inputs, {} given",
                graph.inputs.len(),
                inputs.len()
            )));
        }
        let batch = inputs
            .first()
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(1);
        let other;
        let shapes = if batch == 1 {
            &self.shapes
        } else {
            other = graph.infer_shapes(batch)?;
            &other
        };
        let mut values: Vec<Option<Value<'_>>> = (0..graph.tensors.len()).map(|_| None).collect();
        for (t, &id) in inputs.iter().zip(&graph.inputs) {
            let want = shapes.get(id)?;
            if t.shape != want || t.data.len() != t.shape.iter().product::<usize>() {
                return Err(Error::Input(format!(
                    "input {:?} should have shape {want:?}, got {:?} with {} values",
                    graph.name(id),
                    t.shape,
                    t.data.len()
                )));
            }
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
                let views: Vec<View<'_>> = node
                    .inputs
                    .iter()
                    .map(|&id| match graph.tensor(id).map(|t| &t.kind) {
                        Some(TensorKind::Constant(c)) => Ok(c.view().unwrap_or(View {
                            shape: &c.shape,
                            data: &[],
                        })),
                        _ => values
                            .get(id.0)
                            .and_then(|v| v.as_ref())
                            .map(Value::view)
                            .ok_or_else(|| Error::Node {
                                node: node.name.clone(),
                                op_type: node.op.name().to_owned(),
                                detail: format!("input {:?} not computed", graph.name(id)),
                            }),
                    })
                    .collect::<Result<_>>()?;
                let t0 = Instant::now();
                let out = self.eval(i, node, &views, out_shape, threads, buf)?;
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
                if let Some(v) = values.get(id.0).and_then(Option::as_ref) {
                    let v = v.view();
                    return Ok(Tensor {
                        shape: v.shape.to_vec(),
                        data: v.data.to_vec(),
                    });
                }
                match graph.constant(id).and_then(|c| c.view()) {
                    Some(v) => Ok(Tensor {
                        shape: v.shape.to_vec(),
                        data: v.data.to_vec(),
                    }),
                    None => Err(Error::Model(format!(
                        "output {:?} was not computed",
                        graph.name(id)
                    ))),
                }
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
