//! Builds a [`Graph`] from a decoded ModelProto: resolves names to tensor ids, turns
//! initializers and Constant nodes into constants, converts each node, and infers shapes at
//! the declared batch as it goes so that errors point at the first node that does not fit.

use std::collections::{HashMap, HashSet};

use super::ctx::{ConvError, Converted, Ctx};
use super::ops::convert;
use super::proto::{Dim, GraphProto, ModelProto, NodeProto, decode_model};
use super::tensor::{FLOAT, dtype_name, to_constant};
use crate::error::{Error, Result};
use crate::graph::{Constant, Graph, TensorId, TensorKind};

/// ai.onnx opset versions whose semantics the converters implement.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=23;

fn model_err(s: impl Into<String>) -> Error {
    Error::Model(s.into())
}

fn default_opset(m: &ModelProto) -> Result<i64> {
    let v = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| model_err("no ai.onnx opset_import"))?;
    if !OPSETS.contains(&v) {
        return Err(model_err(format!(
            "ai.onnx opset {v} is outside the supported range {}..={}",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    Ok(v)
}

/// Decodes and imports an ONNX model held in memory.
pub fn import_bytes(bytes: &[u8]) -> Result<Graph> {
    let model = decode_model(bytes)?;
    let opset = default_opset(&model)?;
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| model_err("model has no graph"))?;
    Builder::new(g, opset)?.build(g)
}

struct Builder {
    opset: i64,
    graph: Graph,
    constants: HashMap<String, Constant>,
    /// Initializers we could not convert, with the reason; only an error if used.
    bad_constants: HashMap<String, String>,
    shapes: HashMap<String, Vec<usize>>,
    ids: HashMap<String, TensorId>,
    /// Secondary outputs (Dropout mask, MaxPool indices...) that we do not compute.
    dropped_outputs: HashMap<String, String>,
}

impl Builder {
    fn new(g: &GraphProto, opset: i64) -> Result<Self> {
        if g.has_sparse_initializers {
            return Err(model_err("sparse initializers are not supported"));
        }
        let mut b = Builder {
            opset,
            graph: Graph::default(),
            constants: HashMap::new(),
            bad_constants: HashMap::new(),
            shapes: HashMap::new(),
            ids: HashMap::new(),
            dropped_outputs: HashMap::new(),
        };
        for t in &g.initializers {
            if b.constants.contains_key(&t.name) || b.bad_constants.contains_key(&t.name) {
                return Err(model_err(format!("initializer {:?} appears twice", t.name)));
            }
            match to_constant(t) {
                Ok(c) => {
                    b.shapes.insert(t.name.clone(), c.shape.clone());
                    b.constants.insert(t.name.clone(), c);
                }
                Err(e) => {
                    b.bad_constants.insert(t.name.clone(), e);
                }
            }
        }
        Ok(b)
    }

    fn build(mut self, g: &GraphProto) -> Result<Graph> {
        let consumed: HashSet<&str> = g
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter())
            .chain(g.outputs.iter().map(|o| &o.name))
            .map(String::as_str)
            .collect();
        for vi in &g.inputs {
            // Exporters list weights as inputs too; one with an initializer is a constant.
            // An input nothing reads (SFace ships some) cannot affect the outputs.
            let is_const =
                self.constants.contains_key(&vi.name) || self.bad_constants.contains_key(&vi.name);
            if is_const || !consumed.contains(vi.name.as_str()) {
                continue;
            }
            let shape = input_shape(vi)?;
            if self.ids.contains_key(&vi.name) {
                return Err(model_err(format!(
                    "graph input {:?} appears twice",
                    vi.name
                )));
            }
            let id = self.graph.add_tensor(
                vi.name.clone(),
                TensorKind::Input {
                    shape: shape.clone(),
                },
            );
            self.graph.inputs.push(id);
            self.ids.insert(vi.name.clone(), id);
            self.shapes.insert(vi.name.clone(), shape);
        }
        for (i, n) in g.nodes.iter().enumerate() {
            self.node(i, n)?;
        }
        if self.graph.inputs.is_empty() {
            return Err(model_err("graph has no (used) input"));
        }
        for o in &g.outputs {
            let id = self.resolve(&o.name).map_err(|e| match e {
                Some(e) => e,
                None => model_err(self.undefined_msg(&o.name, "graph output")),
            })?;
            self.graph.outputs.push(id);
        }
        if self.graph.outputs.is_empty() {
            return Err(model_err("graph has no outputs"));
        }
        self.graph.validate()?;
        Ok(self.graph)
    }

    fn undefined_msg(&self, name: &str, what: &str) -> String {
        match self.dropped_outputs.get(name) {
            Some(node) => format!(
                "{what} {name:?} is a secondary output of node {node:?}, which the engine does not compute"
            ),
            None => format!(
                "{what} {name:?} is not defined (not a graph input, initializer, or output of an earlier node)"
            ),
        }
    }

    /// Tensor id for `name`, adding a used constant to the graph on first reference.
    /// `Err(None)` means the name is undefined.
    fn resolve(&mut self, name: &str) -> std::result::Result<TensorId, Option<Error>> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        if let Some(e) = self.bad_constants.get(name) {
            return Err(Some(model_err(format!("initializer {name:?}: {e}"))));
        }
        let c = self.constants.get(name).ok_or(None)?.clone();
        let id = self.graph.add_constant(name.to_owned(), c);
        self.ids.insert(name.to_owned(), id);
        Ok(id)
    }

    fn node(&mut self, index: usize, n: &NodeProto) -> Result<()> {
        let name = if n.name.is_empty() {
            format!("{}_{index}", n.op_type)
        } else {
            n.name.clone()
        };
        let node_err = |detail: String| Error::Node {
            node: name.clone(),
            op_type: n.op_type.clone(),
            detail,
        };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(Error::UnsupportedOp {
                op_type: n.op_type.clone(),
                domain: n.domain.clone(),
                node: name,
                supported: crate::graph::SUPPORTED_ONNX_OPS,
            });
        }
        let out = n
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| node_err("has no output".into()))?
            .clone();
        if self.shapes.contains_key(&out) || self.ids.contains_key(&out) {
            return Err(node_err(format!("output {out:?} is already defined")));
        }
        for extra in n.outputs.iter().skip(1).filter(|o| !o.is_empty()) {
            self.dropped_outputs.insert(extra.clone(), name.clone());
        }
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            if let Some(e) = self.bad_constants.get(i) {
                return Err(node_err(format!("initializer {i:?}: {e}")));
            }
            if !self.shapes.contains_key(i) {
                return Err(node_err(self.undefined_msg(i, "input")));
            }
        }
        let ctx = Ctx {
            opset: self.opset,
            constants: &self.constants,
            shapes: &self.shapes,
        };
        let converted = match convert(n, &ctx) {
            Ok(c) => c,
            Err(ConvError::Unsupported) => {
                return Err(Error::UnsupportedOp {
                    op_type: n.op_type.clone(),
                    domain: n.domain.clone(),
                    node: name,
                    supported: crate::graph::SUPPORTED_ONNX_OPS,
                });
            }
            Err(ConvError::Detail(d)) => return Err(node_err(d)),
            Err(ConvError::Engine(e)) => {
                return Err(Error::InNode {
                    node: name,
                    op_type: n.op_type.clone(),
                    source: Box::new(e),
                });
            }
        };
        match converted {
            Converted::Constant(c) => {
                self.shapes.insert(out.clone(), c.shape.clone());
                self.constants.insert(out, c);
            }
            Converted::Node { op, inputs } => {
                let mut ids = Vec::with_capacity(inputs.len());
                let mut in_shapes = Vec::with_capacity(inputs.len());
                for i in &inputs {
                    let id = self.resolve(i).map_err(|e| {
                        e.unwrap_or_else(|| node_err(self.undefined_msg(i, "input")))
                    })?;
                    ids.push(id);
                    in_shapes.push(self.shapes.get(i).cloned().unwrap_or_default());
                }
                let refs: Vec<&[usize]> = in_shapes.iter().map(Vec::as_slice).collect();
                let shape = op.output_shape(&refs).map_err(node_err)?;
                let oid = self.graph.add_tensor(out.clone(), TensorKind::Value);
                self.graph.nodes.push(crate::graph::Node {
                    name,
                    op,
                    inputs: ids,
                    output: oid,
                });
                self.ids.insert(out.clone(), oid);
                self.shapes.insert(out, shape);
            }
        }
        Ok(())
    }
}

/// Declared shape of a real graph input. Axis 0 is the batch and may be symbolic (taken as
/// 1 at import); every other axis must be a fixed size.
fn input_shape(vi: &super::proto::ValueInfo) -> Result<Vec<usize>> {
    let name = &vi.name;
    let t = vi
        .tensor
        .as_ref()
        .ok_or_else(|| model_err(format!("graph input {name:?} is not a tensor")))?;
    if t.elem_type != FLOAT {
        return Err(model_err(format!(
            "graph input {name:?} is {}; only float inputs are supported",
            dtype_name(t.elem_type)
        )));
    }
    let dims = t
        .shape
        .as_ref()
        .ok_or_else(|| model_err(format!("graph input {name:?} has no shape")))?;
    if dims.is_empty() || dims.len() > crate::tensor::MAX_RANK {
        return Err(model_err(format!(
            "graph input {name:?} has rank {}; expected a batch axis plus data axes",
            dims.len()
        )));
    }
    let mut shape = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        let v = match d {
            Dim::Value(v) if *v > 0 => usize::try_from(*v).ok(),
            _ => None,
        };
        match (i, v) {
            (_, Some(v)) => shape.push(v),
            (0, None) => shape.push(1),
            _ => {
                return Err(model_err(format!(
                    "graph input {name:?} axis {i} is {d:?}; only the batch axis (0) may be symbolic"
                )));
            }
        }
    }
    crate::tensor::element_count(&shape)?;
    Ok(shape)
}
