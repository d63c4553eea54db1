//! The fast CPU executor: the station's inference path where there is no GPU (CPU-only stations,
//! CI, the demo on a laptop).
//!
//! It runs the same loaded [`Graph`] as the reference executor ([`crate::cpu`]) with the same
//! node order and memory release, but compiles it once: every convolution's constants are packed
//! for a GEMM (the `gemm` crate, which carries AVX-512/AVX2 micro-kernels and its own cache
//! blocking) or for a direct depthwise kernel, and Gemm/MatMul nodes with constant weights go to
//! the same GEMM. The remaining ops (pads, pools, adds, reshapes) are a small share of these
//! networks' time and run on the reference's own code, so they cannot drift from it.
//!
//! The reference stays the oracle: `tests` hold this executor to it on every op it replaces and
//! on the real models. Work is spread over a team of threads of a fixed size ([`team`], one per
//! size in the process, shared by the models), so a station decides how many cores inference may
//! take (`threads = 1` runs on the calling thread).

mod block;
mod blocked;
mod conv;
mod direct;
mod fuse;
mod linear;
mod pool;
mod team;
#[cfg(test)]
mod tests;
mod walk;

use crate::cpu;
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Op, Shapes};
use crate::tensor::{Tensor, View};

use block::Block;
use conv::ConvKernel;
use linear::GemmKernel;
use team::{Team, Workers};

/// How one node runs.
enum Step {
    Conv(ConvKernel),
    /// A depthwise → 1×1 pair (see [`fuse::blocks`]).
    Block(Block),
    Gemm(GemmKernel),
    MaxPool2x2,
    /// Constant Pad: rows copied whole into a filled output.
    PadConstant(f32),
    Transpose,
    Reference,
}

/// Wall time per kind of step (`Conv (3x3 depthwise)`, …), largest first.
pub type Profile = Vec<(String, std::time::Duration)>;

/// A graph compiled for the fast CPU path.
pub struct FastModel {
    graph: Graph,
    /// What runs: the graph's nodes with fused chains collapsed (see [`fuse`]), one
    /// step each.
    nodes: Vec<Node>,
    steps: Vec<Step>,
    threads: usize,
    team: Option<std::sync::Arc<Team>>,
    /// Shapes at batch 1 (the station's case), inferred once.
    shapes: Shapes,
    /// For each tensor, the index of the last node reading it (`usize::MAX`: never released).
    last_use: Vec<usize>,
    /// Activation buffers of earlier runs, reused (see [`walk`]).
    spare: std::sync::Mutex<Vec<Vec<f32>>>,
}

impl FastModel {
    /// Compiles `graph` (as returned by [`crate::load`]) for `threads` worker threads (at least 1).
    pub fn new(graph: Graph, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        let shapes = graph.infer_shapes(1)?;
        let steps: Vec<Step> = graph
            .nodes
            .iter()
            .map(|node| {
                let constant = |k: usize| constant_input(&graph, node, k);
                match &node.op {
                    Op::Conv(c) => {
                        let (Some(w), channels) = (constant(1), input_channels(&shapes, node))
                        else {
                            return Step::Reference;
                        };
                        let bias = if node.inputs.len() > 2 {
                            match constant(2) {
                                Some(b) => Some(b.data),
                                None => return Step::Reference,
                            }
                        } else {
                            None
                        };
                        let slope = constant(3).map(|s| s.data);
                        channels
                            .and_then(|ch| ConvKernel::new(c, ch, (w.shape, w.data), bias, slope))
                            .map_or(Step::Reference, Step::Conv)
                    }
                    Op::Gemm(g) => {
                        GemmKernel::for_gemm(g, node, &graph).map_or(Step::Reference, Step::Gemm)
                    }
                    Op::MaxPool(p) if pool::is_2x2_stride_2(p) => Step::MaxPool2x2,
                    Op::Pad(crate::graph::Pad {
                        mode: crate::graph::PadMode::Constant(v),
                        ..
                    }) => Step::PadConstant(*v),
                    Op::Transpose { .. } => Step::Transpose,
                    Op::MatMul => {
                        GemmKernel::for_matmul(node, &graph).map_or(Step::Reference, Step::Gemm)
                    }
                    _ => Step::Reference,
                }
            })
            .collect();
        let (nodes, steps) = fuse::residuals(&graph, &shapes, steps);
        let (nodes, steps) = fuse::blocks(&graph, nodes, steps);
        let (nodes, steps) = fuse::padded_residuals(&graph, &shapes, nodes, steps);
        let (nodes, steps) = fuse::pooled_residuals(&graph, &shapes, nodes, steps);
        let team = if threads > 1 {
            Some(
                Team::shared(threads)
                    .map_err(|e| Error::Model(format!("cannot start {threads} threads: {e}")))?,
            )
        } else {
            None
        };
        let last_use = cpu::last_uses(&graph, &nodes);
        Ok(Self {
            graph,
            nodes,
            steps,
            threads,
            team,
            shapes,
            last_use,
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many nodes run (fused chains count once).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// How many of them run on packed kernels (the rest on the reference's ops).
    pub fn packed_nodes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s, Step::Reference))
            .count()
    }

    /// Runs the graph; the contract of [`crate::cpu::run`].
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_timed(inputs, &mut |_, _| {})
    }

    /// [`FastModel::run`], returning the wall time spent per op type (for benchmarks), largest
    /// first.
    pub fn run_profiled(&self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Profile)> {
        let mut per: Profile = Vec::new();
        let out = self.run_timed(inputs, &mut |node, t| {
            let kind = self.kind_name(node);
            match per.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, d)) => *d += t,
                None => per.push((kind, t)),
            }
        })?;
        per.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        Ok((out, per))
    }

    fn kind_name(&self, i: usize) -> String {
        let op = self.nodes.get(i).map_or("?", |n| n.op.name());
        match self.steps.get(i) {
            Some(Step::Conv(k)) => format!("{op} ({})", k.kind_name()),
            Some(Step::Block(k)) => format!("{op} ({})", k.kind_name()),
            Some(Step::Gemm(_)) => format!("{op} (gemm)"),
            Some(Step::MaxPool2x2) => format!("{op} (2x2)"),
            Some(Step::PadConstant(_)) => format!("{op} (rows)"),
            Some(Step::Transpose) => format!("{op} (runs)"),
            _ => format!("{op} (reference)"),
        }
    }

    fn run_timed(
        &self,
        inputs: &[Tensor],
        timing: &mut (dyn FnMut(usize, std::time::Duration) + Send),
    ) -> Result<Vec<Tensor>> {
        let Some(team) = &self.team else {
            return self.run_here(inputs, Workers::ONE, timing);
        };
        let batch = inputs
            .first()
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(1);
        if batch < 2 {
            return self.run_here(inputs, Workers::of(Some(&**team)), timing);
        }
        // Several images (lanes, chips): each worker runs its share of the batch on one thread,
        // which scales far better than splitting every small kernel between the workers.
        let parts = team.workers().min(batch);
        let results: Vec<std::sync::Mutex<Option<Result<Vec<Tensor>>>>> =
            (0..parts).map(|_| std::sync::Mutex::new(None)).collect();
        team.run(parts, &|p| {
            let (from, to) = (p * batch / parts, (p + 1) * batch / parts);
            let part = inputs
                .iter()
                .map(|t| slice_batch(t, from, to))
                .collect::<Result<Vec<Tensor>>>()
                .and_then(|part| self.run_here(&part, Workers::ONE, &mut |_, _| {}));
            if let Some(Ok(mut slot)) = results.get(p).map(|r| r.lock()) {
                *slot = Some(part);
            }
        });
        let mut merged: Vec<Tensor> = Vec::new();
        for r in results {
            let part = r
                .into_inner()
                .ok()
                .flatten()
                .ok_or_else(|| Error::Model("a batch part did not run".into()))??;
            if merged.is_empty() {
                merged = part;
                continue;
            }
            for (m, p) in merged.iter_mut().zip(part) {
                if m.shape.len() != p.shape.len() || m.shape.get(1..) != p.shape.get(1..) {
                    return Err(Error::Model(
                        "an output does not keep the batch on axis 0".into(),
                    ));
                }
                m.shape[0] += p.shape[0];
                m.data.extend_from_slice(&p.data);
            }
        }
        Ok(merged)
    }

    fn eval(
        &self,
        i: usize,
        node: &crate::graph::Node,
        views: &[crate::tensor::View<'_>],
        out_shape: &[usize],
        workers: Workers<'_>,
        buf: Vec<f32>,
    ) -> Result<Tensor> {
        let fail = |detail: String| cpu::node_error(node, detail);
        let data = match self.steps.get(i) {
            Some(Step::Conv(k)) => {
                let (x, residual) = x_and_residual(views, k.has_residual()).map_err(fail)?;
                k.run(x.data, x.shape, residual, out_shape, workers, buf)
                    .map_err(fail)?
            }
            Some(Step::Block(k)) => {
                let (x, residual) = x_and_residual(views, k.has_residual()).map_err(fail)?;
                k.run(x.data, x.shape, residual, out_shape, workers, buf)
                    .map_err(fail)?
            }
            Some(Step::Gemm(k)) => {
                let x = views.first().ok_or_else(|| fail("no input".into()))?;
                k.run(x.data, x.shape, out_shape, workers, buf)
                    .map_err(fail)?
            }
            Some(Step::MaxPool2x2) => {
                let x = views.first().ok_or_else(|| fail("no input".into()))?;
                pool::max_pool_2x2(x.data, x.shape, out_shape, buf).map_err(fail)?
            }
            Some(Step::PadConstant(v)) => {
                let Op::Pad(p) = &node.op else {
                    return Err(fail("not a Pad".into()));
                };
                let x = views.first().ok_or_else(|| fail("no input".into()))?;
                pool::pad_constant(x.data, x.shape, &p.pads, *v, out_shape, buf).map_err(fail)?
            }
            Some(Step::Transpose) => {
                let Op::Transpose { perm } = &node.op else {
                    return Err(fail("not a Transpose".into()));
                };
                let x = views.first().ok_or_else(|| fail("no input".into()))?;
                pool::transpose(x.data, x.shape, perm, buf).map_err(fail)?
            }
            _ => return cpu::eval_node(&self.graph, node, views),
        };
        Ok(Tensor {
            shape: out_shape.to_vec(),
            data,
        })
    }
}

/// Input `k` of `node` when it is an f32 constant of the graph (packed weights, bias, slope).
fn constant_input<'g>(graph: &'g Graph, node: &Node, k: usize) -> Option<crate::tensor::View<'g>> {
    node.inputs
        .get(k)
        .and_then(|&id| graph.constant(id))
        .and_then(|c| c.view())
}

/// Items `from..to` of a batch (axis 0).
fn slice_batch(t: &Tensor, from: usize, to: usize) -> Result<Tensor> {
    let n = t.shape.first().copied().unwrap_or(1);
    let per = t.data.len().checked_div(n).unwrap_or(0);
    let mut shape = t.shape.clone();
    if let Some(s) = shape.first_mut() {
        *s = to - from;
    }
    Tensor::new(shape, t.data[from * per..to * per].to_vec())
}

/// The channel count of a Conv's input (shape inference at batch 1).
fn input_channels(shapes: &Shapes, node: &crate::graph::Node) -> Option<usize> {
    let &id = node.inputs.first()?;
    shapes.get(id).ok().and_then(|s| s.get(1).copied())
}

/// `v` emptied and refilled with `n` copies of `value`, keeping its allocation.
fn filled(mut v: Vec<f32>, n: usize, value: f32) -> Vec<f32> {
    v.clear();
    v.resize(n, value);
    v
}

/// `v` holding `n` floats, keeping its allocation, for kernels that write every output: what a
/// recycled buffer held stays until overwritten, saving a zeroing pass over the activation
/// (4% of the front-128 frame). Tests run every model twice, so that a kernel leaving a gap
/// would show the previous activation's values.
fn sized(mut v: Vec<f32>, n: usize) -> Vec<f32> {
    v.truncate(n);
    v.resize(n, 0.0);
    v
}

/// A fused node's input and, when it adds one, its residual (the node's second input).
fn x_and_residual<'v, 'a>(
    views: &'v [View<'a>],
    residual: bool,
) -> std::result::Result<(&'v View<'a>, Option<&'a [f32]>), String> {
    let x = views.first().ok_or("no input")?;
    let r = match residual {
        true => Some(views.get(1).ok_or("no residual")?.data),
        false => None,
    };
    Ok((x, r))
}
