//! Load-time rewrites of the node list: chains that run as one kernel become one node, which
//! runs where the chain's last node ran and reads the chain's outside inputs. Only where the
//! intermediate values have no other reader, so nothing else sees them vanish.

use super::Step;
use super::block::Block;
use crate::graph::{Activation, BinaryOp, Graph, Node, Op, Shapes, TensorId};

/// Collapses `Conv → Add(·, r) [→ Relu]` into one node, as BlazeFace's residual blocks are built:
/// the GEMM then accumulates onto `r + bias` and the ReLU runs on the result while it is hot,
/// instead of three passes over activations too large for the cache. Only where the
/// intermediate values have no other reader; the fused node runs where the chain's last node
/// ran, with inputs `[x, r]` and the chain's output.
pub(super) fn residuals(
    graph: &Graph,
    shapes: &Shapes,
    mut steps: Vec<Step>,
) -> (Vec<Node>, Vec<Step>) {
    let uses = graph.use_counts();
    let single = |id: crate::graph::TensorId| uses.get(id.0) == Some(&1);
    let consumer =
        |id: crate::graph::TensorId| graph.nodes.iter().position(|n| n.inputs.contains(&id));
    let mut nodes: Vec<Option<Node>> = graph.nodes.iter().cloned().map(Some).collect();
    for i in 0..graph.nodes.len() {
        let conv = &graph.nodes[i];
        let Some(Step::Conv(k)) = steps.get(i) else {
            continue;
        };
        if !k.can_take_residual() || !single(conv.output) {
            continue;
        }
        let Some(j) = consumer(conv.output) else {
            continue;
        };
        let add = &graph.nodes[j];
        if add.op != Op::Binary(BinaryOp::Add) || add.inputs.len() != 2 {
            continue;
        }
        let Some(&r) = add.inputs.iter().find(|&&t| t != conv.output) else {
            continue; // conv output added to itself
        };
        if shapes.get(r).ok() != shapes.get(conv.output).ok() {
            continue; // broadcasting add: leave it to the reference
        }
        let relu = consumer(add.output).filter(|&k| {
            single(add.output) && graph.nodes[k].op == Op::Activation(Activation::Relu)
        });
        let (last, output, act) = match relu {
            Some(k) => (k, graph.nodes[k].output, Activation::Relu),
            None => (j, add.output, Activation::None),
        };
        let Step::Conv(k) = std::mem::replace(&mut steps[i], Step::Reference) else {
            continue;
        };
        nodes[last] = Some(Node {
            name: format!("{}+{}", conv.name, graph.nodes[last].name),
            op: conv.op.clone(),
            inputs: vec![conv.inputs[0], r],
            output,
        });
        steps[last] = Step::Conv(k.with_residual(act));
        nodes[i] = None;
        if last != j {
            nodes[j] = None;
        }
    }
    compact(nodes, steps)
}

/// Collapses a depthwise convolution and the 1×1 convolution that alone reads its output (with
/// the residual and activation already fused into it) into one [`Block`], which never writes
/// the depthwise output out. The block runs where the 1×1 ran, with inputs `[x]` or `[x, r]`.
pub(super) fn blocks(
    graph: &Graph,
    nodes: Vec<Node>,
    mut steps: Vec<Step>,
) -> (Vec<Node>, Vec<Step>) {
    let uses = graph.use_counts();
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for j in 0..nodes.len() {
        let Some(pw_node) = nodes[j].as_ref() else {
            continue;
        };
        let Some(&t) = pw_node.inputs.first() else {
            continue;
        };
        if uses.get(t.0) != Some(&1) {
            continue;
        }
        let Some(i) = producer(&nodes[..j], t) else {
            continue;
        };
        let (Some(Step::Conv(dw)), Some(Step::Conv(pw))) = (steps.get(i), steps.get(j)) else {
            continue;
        };
        let Some(block) = Block::new(dw, pw) else {
            continue;
        };
        let (Some(dw_node), Some(pw_node)) = (nodes[i].take(), nodes[j].take()) else {
            continue;
        };
        let mut inputs = vec![dw_node.inputs[0]];
        if block.has_residual() {
            inputs.extend(pw_node.inputs.get(1));
        }
        nodes[j] = Some(Node {
            name: format!("{}+{}", dw_node.name, pw_node.name),
            op: pw_node.op,
            inputs,
            output: pw_node.output,
        });
        steps[j] = Step::Block(block);
        steps[i] = Step::Reference;
    }
    compact(nodes, steps)
}

/// Feeds a block the residual from before a constant-zero Pad that only appends channels
/// (BlazeFace widens its shortcut `[C', H, W]` → `[M, H, W]` with zeros between stages): the
/// block adds nothing to the channels past `C'`, so the padded copy is never written.
pub(super) fn padded_residuals(
    graph: &Graph,
    shapes: &Shapes,
    nodes: Vec<Node>,
    mut steps: Vec<Step>,
) -> (Vec<Node>, Vec<Step>) {
    let uses = graph.use_counts();
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for j in 0..nodes.len() {
        let Some(Step::Block(block)) = steps.get(j) else {
            continue;
        };
        let Some(&r) = nodes[j].as_ref().and_then(|n| n.inputs.get(1)) else {
            continue;
        };
        if !block.has_residual() || uses.get(r.0) != Some(&1) {
            continue;
        }
        let Some(i) = producer(&nodes[..j], r) else {
            continue;
        };
        let Some(pad) = nodes[i].as_ref() else {
            continue;
        };
        let (Op::Pad(p), Some(Step::PadConstant(v))) = (&pad.op, steps.get(i)) else {
            continue;
        };
        let (Some(&src), Ok(from), Ok(to)) = (
            pad.inputs.first(),
            pad.inputs
                .first()
                .map_or(Err(()), |&s| shapes.get(s).map_err(drop)),
            shapes.get(r),
        ) else {
            continue;
        };
        let &[n, c, h, w] = from else { continue };
        // Zeros appended on the channel axis only: pads [0, 0, 0, 0, 0, M − C, 0, 0].
        let appends_channels = *v == 0.0
            && to == [n, to[1], h, w]
            && p.pads.len() == 8
            && p.pads.iter().enumerate().all(|(k, &q)| q == 0 || k == 5);
        if !appends_channels {
            continue;
        }
        let Some(Step::Block(block)) = steps.get_mut(j) else {
            continue;
        };
        if !block.narrow_residual(c) {
            continue;
        }
        if let Some(node) = nodes[j].as_mut() {
            node.inputs[1] = src;
        }
        nodes[i] = None;
        steps[i] = Step::Reference;
    }
    compact(nodes, steps)
}

/// Lets a block compute its residual when it is the 2×2 max pool of the block's own input
/// (BlazeFace's strided blocks: the shortcut pools what the depthwise reads), read only by
/// the block: the pooled copy is never written, and the pool reads input rows the block's
/// depthwise has just brought into cache.
pub(super) fn pooled_residuals(
    graph: &Graph,
    shapes: &Shapes,
    nodes: Vec<Node>,
    mut steps: Vec<Step>,
) -> (Vec<Node>, Vec<Step>) {
    let uses = graph.use_counts();
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for j in 0..nodes.len() {
        let Some(Step::Block(block)) = steps.get(j) else {
            continue;
        };
        let Some((x, r, out)) = nodes[j]
            .as_ref()
            .and_then(|n| Some((*n.inputs.first()?, *n.inputs.get(1)?, n.output)))
        else {
            continue;
        };
        if !block.has_residual() || uses.get(r.0) != Some(&1) {
            continue;
        }
        let Some(i) = producer(&nodes[..j], r) else {
            continue;
        };
        let pools_x = nodes[i].as_ref().is_some_and(|n| n.inputs == [x]);
        let (Ok(pooled), Ok(y)) = (shapes.get(r), shapes.get(out)) else {
            continue;
        };
        // Pooled to the block's own output size (the block checks the rows exist at run time).
        let same_size = pooled.len() == 4 && y.len() == 4 && pooled[2..] == y[2..];
        if !pools_x || !same_size || !matches!(steps.get(i), Some(Step::MaxPool2x2)) {
            continue;
        }
        let Some(Step::Block(block)) = steps.get_mut(j) else {
            continue;
        };
        if !block.pool_residual() {
            continue;
        }
        if let Some(node) = nodes[j].as_mut() {
            node.inputs.truncate(1);
        }
        nodes[i] = None;
        steps[i] = Step::Reference;
    }
    compact(nodes, steps)
}

/// The index of the node among `nodes` (those before the reader) that writes `t`.
fn producer(nodes: &[Option<Node>], t: TensorId) -> Option<usize> {
    nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.output == t))
}

/// The nodes a pass kept, each with its step; fused-away nodes (`None`) drop out with theirs.
fn compact(nodes: Vec<Option<Node>>, steps: Vec<Step>) -> (Vec<Node>, Vec<Step>) {
    nodes
        .into_iter()
        .zip(steps)
        .filter_map(|(n, s)| n.map(|n| (n, s)))
        .unzip()
}
