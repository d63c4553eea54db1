//! CPU reference executor: plain loops over batched NCHW f32, one node at a time.
//!
//! It is the yardstick the GPU kernels are checked against, so clarity wins over speed; the
//! loop orders keep the innermost loop contiguous so release builds vectorise them anyway.

mod conv;
pub(crate) use conv::valid_range;
mod elementwise;
mod layout;
mod linear;
mod pool;
pub(crate) mod resize;

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Op, Shapes, TensorId, TensorKind, quant};
use crate::tensor::{Tensor, View};

type R<T> = std::result::Result<T, String>;

/// Evaluates one op on f32 inputs (constants included, in `Node::inputs` order).
/// DequantizeLinear needs typed integer constants and goes through [`eval_node`] instead.
pub fn eval_op(op: &Op, inputs: &[View<'_>]) -> R<Tensor> {
    for v in inputs {
        if v.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(v.data.len()) {
            return Err(format!(
                "input of shape {:?} carries {} values (a non-float constant?)",
                v.shape,
                v.data.len()
            ));
        }
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape).collect();
    let out_shape = op.output_shape(&shapes)?;
    let data = match op {
        Op::Conv(c) => conv::conv2d(c, inputs, &out_shape),
        Op::BatchNorm { epsilon } => elementwise::batch_norm(*epsilon, inputs),
        Op::Affine { scale, shift } => Ok(elementwise::affine(scale, shift, inputs[0])),
        Op::Activation(a) => elementwise::activation(*a, inputs, &out_shape),
        Op::Binary(b) => Ok(elementwise::binary(*b, inputs[0], inputs[1], &out_shape)),
        Op::MaxPool(p) => Ok(pool::max_pool(p, inputs[0], &out_shape)),
        Op::AveragePool(p) => Ok(pool::average_pool(p, inputs[0], &out_shape)),
        Op::GlobalAveragePool => Ok(pool::global_average_pool(inputs[0])),
        Op::Gemm(g) => Ok(linear::gemm(g, inputs, &out_shape)),
        Op::MatMul => Ok(linear::matmul(inputs[0], inputs[1], &out_shape)),
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => Ok(inputs[0].data.to_vec()),
        Op::Transpose { perm } => Ok(layout::transpose(inputs[0], perm, &out_shape)),
        Op::Concat { axis } => Ok(layout::concat(inputs, *axis, &out_shape)),
        Op::Pad(p) => Ok(layout::pad(p, inputs[0], &out_shape)),
        Op::Resize(r) => Ok(resize::resize(r, inputs[0], &out_shape)),
        Op::ConstantOfShape { value, .. } => {
            let n = out_shape.iter().product();
            Ok(vec![*value; n])
        }
        Op::DequantizeLinear { .. } => {
            Err("DequantizeLinear only runs on constant weights (see eval_node)".into())
        }
    }?;
    Ok(Tensor {
        shape: out_shape,
        data,
    })
}

pub(crate) fn node_error(node: &Node, detail: String) -> Error {
    Error::Node {
        node: node.name.clone(),
        op_type: node.op.name().to_owned(),
        detail,
    }
}

/// Evaluates one node of `graph`. `inputs` are the f32 views of `node.inputs` (ignored for
/// DequantizeLinear, whose integer constants are read from the graph).
pub fn eval_node(graph: &Graph, node: &Node, inputs: &[View<'_>]) -> Result<Tensor> {
    if let Op::DequantizeLinear { axis, block_size } = node.op {
        let c = |k: usize| node.inputs.get(k).and_then(|&id| graph.constant(id));
        let (Some(x), Some(s)) = (c(0), c(1)) else {
            return Err(node_error(node, "inputs must be constants".into()));
        };
        let zp = match node.inputs.get(2) {
            Some(_) => {
                Some(c(2).ok_or_else(|| node_error(node, "zero point must be a constant".into()))?)
            }
            None => None,
        };
        let y = quant::dequantize(x, s, zp, axis, block_size).map_err(|e| node_error(node, e))?;
        return match y.data {
            crate::graph::ConstData::F32(data) => Ok(Tensor {
                shape: y.shape,
                data,
            }),
            _ => Err(node_error(
                node,
                "dequantisation did not produce f32".into(),
            )),
        };
    }
    eval_op(&node.op, inputs).map_err(|e| node_error(node, e))
}

/// Runs the whole graph. `inputs` follow `graph.inputs`; all must share the batch size
/// (axis 0). Returns the graph outputs in order.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    run_observed(graph, inputs, |_, _| {})
}

/// [`run`], calling `observe(node_index, output)` after each node: how a GPU executor
/// compares its intermediate buffers op by op.
pub fn run_observed(
    graph: &Graph,
    inputs: &[Tensor],
    observe: impl FnMut(usize, &Tensor),
) -> Result<Vec<Tensor>> {
    run_with(graph, inputs, observe, |_, node, views, _| {
        eval_node(graph, node, views)
    })
}

/// The reference's graph walk: input checks, shape inference, node order, and release of each
/// activation after its last reader (so peak memory stays near two layers).
/// `eval(node_index, node, input_views, output_shape)` computes one node. The fast executor walks
/// its own fused nodes with recycled buffers (`fast::walk`) through the same pieces below.
fn run_with(
    graph: &Graph,
    inputs: &[Tensor],
    mut observe: impl FnMut(usize, &Tensor),
    mut eval: impl FnMut(usize, &Node, &[View<'_>], &[usize]) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    check_input_count(graph, inputs)?;
    let shapes = graph.infer_shapes(input_batch(inputs))?;
    let mut values: Vec<Option<Tensor>> = vec![None; graph.tensors.len()];
    for (t, &id) in inputs.iter().zip(&graph.inputs) {
        check_input(graph, &shapes, id, t)?;
        values[id.0] = Some(t.clone());
    }
    let last_use = last_uses(graph, &graph.nodes);
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = {
            let views = input_views(graph, node, |id| {
                values.get(id.0).and_then(|v| v.as_ref()).map(Tensor::view)
            })?;
            eval(i, node, &views, shapes.get(node.output)?)?
        };
        observe(i, &out);
        for id in &node.inputs {
            if last_use[id.0] == i {
                values[id.0] = None;
            }
        }
        values[node.output.0] = Some(out);
    }
    graph
        .outputs
        .iter()
        .map(|&id| {
            output(
                graph,
                id,
                values.get(id.0).and_then(|v| v.as_ref()).map(Tensor::view),
            )
        })
        .collect()
}

/// The walk's checks of the caller's inputs: as many as the graph has ...
pub(crate) fn check_input_count(graph: &Graph, inputs: &[Tensor]) -> Result<()> {
    if inputs.len() != graph.inputs.len() {
        return Err(Error::Input(format!(
            "graph has {} inputs, {} given",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    Ok(())
}

/// ... their batch size (axis 0 of the first) ...
pub(crate) fn input_batch(inputs: &[Tensor]) -> usize {
    inputs
        .first()
        .and_then(|t| t.shape.first().copied())
        .unwrap_or(1)
}

/// ... and each one's shape as inferred for that batch, with all its values.
pub(crate) fn check_input(graph: &Graph, shapes: &Shapes, id: TensorId, t: &Tensor) -> Result<()> {
    let want = shapes.get(id)?;
    if t.shape != want || t.data.len() != t.shape.iter().product::<usize>() {
        return Err(Error::Input(format!(
            "input {:?} should have shape {want:?}, got {:?} with {} values",
            graph.name(id),
            t.shape,
            t.data.len()
        )));
    }
    Ok(())
}

/// For each tensor of `graph`, the index of the last of `nodes` reading it; graph outputs (and
/// tensors nothing reads) `usize::MAX`, never released.
pub(crate) fn last_uses(graph: &Graph, nodes: &[Node]) -> Vec<usize> {
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

/// The views of `node`'s inputs: constants from the graph, the rest from `value` (a computed
/// activation or an input); one that is neither is an error naming the node.
pub(crate) fn input_views<'a>(
    graph: &'a Graph,
    node: &Node,
    value: impl Fn(TensorId) -> Option<View<'a>>,
) -> Result<Vec<View<'a>>> {
    node.inputs
        .iter()
        .map(|&id| match graph.tensor(id).map(|t| &t.kind) {
            Some(TensorKind::Constant(c)) => Ok(c.view().unwrap_or(View {
                shape: &c.shape,
                data: &[],
            })),
            _ => value(id).ok_or_else(|| {
                node_error(node, format!("input {:?} not computed", graph.name(id)))
            }),
        })
        .collect()
}

/// Graph output `id`: its computed value, else the constant it names.
pub(crate) fn output(graph: &Graph, id: TensorId, computed: Option<View<'_>>) -> Result<Tensor> {
    match computed.or_else(|| graph.constant(id).and_then(|c| c.view())) {
        Some(v) => Ok(Tensor {
            shape: v.shape.to_vec(),
            data: v.data.to_vec(),
        }),
        None => Err(Error::Model(format!(
            "output {:?} was not computed",
            graph.name(id)
        ))),
    }
}
