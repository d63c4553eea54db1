//! The engine's graph description: named tensors (graph inputs, constants, computed values)
//! and a topologically ordered list of nodes, each one typed [`Op`] with one output.
//!
//! Shapes are not stored per tensor: a graph input's declared shape has the batch at axis 0,
//! and [`Graph::infer_shapes`] produces concrete shapes for any batch size N, which is how
//! several lanes share one GPU dispatch.

pub mod op;
pub mod quant;
pub mod shape;
pub mod window;

pub use op::*;

use crate::error::{Error, Result};
use crate::tensor::{View, element_count};

/// ONNX operator types the importer accepts (standard domain only).
pub const SUPPORTED_ONNX_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "PRelu",
    "Pad",
    "Relu",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Sub",
    "Transpose",
];

/// Index into [`Graph::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Constant payload. Only f32 is used at run time; the integer types exist for quantised
/// weights (consumed by DequantizeLinear at load) and shape tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl ConstData {
    pub fn len(&self) -> usize {
        match self {
            ConstData::F32(v) => v.len(),
            ConstData::I8(v) => v.len(),
            ConstData::U8(v) => v.len(),
            ConstData::I32(v) => v.len(),
            ConstData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ConstData::F32(_) => "float",
            ConstData::I8(_) => "int8",
            ConstData::U8(_) => "uint8",
            ConstData::I32(_) => "int32",
            ConstData::I64(_) => "int64",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub shape: Vec<usize>,
    pub data: ConstData,
}

impl Constant {
    pub fn new(shape: Vec<usize>, data: ConstData) -> Result<Self> {
        let n = element_count(&shape)?;
        if n != data.len() {
            return Err(Error::Model(format!(
                "constant of shape {shape:?} carries {} values",
                data.len()
            )));
        }
        Ok(Constant { shape, data })
    }

    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::new(shape, ConstData::F32(data))
    }

    /// The f32 view, if this constant is f32.
    pub fn view(&self) -> Option<View<'_>> {
        match &self.data {
            ConstData::F32(d) => Some(View {
                shape: &self.shape,
                data: d,
            }),
            _ => None,
        }
    }

    pub fn f32_data(&self) -> Option<&[f32]> {
        match &self.data {
            ConstData::F32(d) => Some(d),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorKind {
    /// A graph input; `shape` as declared, axis 0 being the batch.
    Input {
        shape: Vec<usize>,
    },
    Constant(Constant),
    /// Computed by exactly one node.
    Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub kind: TensorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The ONNX node name (or a generated one); used in every error about the node.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

/// Per-tensor concrete shapes for one batch size, indexed by [`TensorId`].
#[derive(Debug, Clone, PartialEq)]
pub struct Shapes(pub Vec<Option<Vec<usize>>>);

impl Shapes {
    pub fn get(&self, id: TensorId) -> Result<&[usize]> {
        self.0
            .get(id.0)
            .and_then(|s| s.as_deref())
            .ok_or_else(|| Error::Model(format!("tensor #{} has no inferred shape", id.0)))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    /// Topological order: every input of a node is a graph input, a constant, or the
    /// output of an earlier node.
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn tensor(&self, id: TensorId) -> Option<&TensorInfo> {
        self.tensors.get(id.0)
    }

    pub fn name(&self, id: TensorId) -> &str {
        self.tensor(id)
            .map_or("<invalid tensor id>", |t| t.name.as_str())
    }

    pub fn constant(&self, id: TensorId) -> Option<&Constant> {
        match self.tensor(id).map(|t| &t.kind) {
            Some(TensorKind::Constant(c)) => Some(c),
            _ => None,
        }
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors
            .iter()
            .position(|t| t.name == name)
            .map(TensorId)
    }

    /// Declared shape of graph input `i` (batch at axis 0).
    pub fn input_shape(&self, i: usize) -> Option<&[usize]> {
        match self
            .inputs
            .get(i)
            .and_then(|&id| self.tensor(id))
            .map(|t| &t.kind)
        {
            Some(TensorKind::Input { shape }) => Some(shape),
            _ => None,
        }
    }

    pub fn add_tensor(&mut self, name: String, kind: TensorKind) -> TensorId {
        self.tensors.push(TensorInfo { name, kind });
        TensorId(self.tensors.len() - 1)
    }

    pub fn add_constant(&mut self, name: String, c: Constant) -> TensorId {
        self.add_tensor(name, TensorKind::Constant(c))
    }

    /// Node index producing each tensor.
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(slot) = p.get_mut(n.output.0) {
                *slot = Some(i);
            }
        }
        p
    }

    /// How many times each tensor is read (node inputs plus graph outputs).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.tensors.len()];
        for id in self
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .chain(&self.outputs)
        {
            if let Some(slot) = c.get_mut(id.0) {
                *slot += 1;
            }
        }
        c
    }

    /// Structural checks: ids in range, single assignment, topological order, constants
    /// used as operands are f32 (except the data inputs of DequantizeLinear).
    pub fn validate(&self) -> Result<()> {
        let mut defined: Vec<bool> = self
            .tensors
            .iter()
            .map(|t| !matches!(t.kind, TensorKind::Value))
            .collect();
        for &i in &self.inputs {
            if !matches!(
                self.tensor(i).map(|t| &t.kind),
                Some(TensorKind::Input { .. })
            ) {
                return Err(Error::Model(format!(
                    "graph input {:?} is not an input tensor",
                    self.name(i)
                )));
            }
        }
        for n in &self.nodes {
            let err = |detail: String| Error::Node {
                node: n.name.clone(),
                op_type: n.op.name().to_owned(),
                detail,
            };
            for (k, &i) in n.inputs.iter().enumerate() {
                if !defined.get(i.0).copied().unwrap_or(false) {
                    return Err(err(format!(
                        "input {:?} is not defined before this node",
                        self.name(i)
                    )));
                }
                if let Some(c) = self.constant(i) {
                    let dq_data = matches!(n.op, Op::DequantizeLinear { .. }) && k != 1;
                    if !dq_data && c.view().is_none() {
                        return Err(err(format!(
                            "input {:?} is a {} constant; only float operands are supported here",
                            self.name(i),
                            c.data.type_name()
                        )));
                    }
                }
            }
            match self.tensor(n.output).map(|t| &t.kind) {
                Some(TensorKind::Value) if !defined[n.output.0] => defined[n.output.0] = true,
                _ => {
                    return Err(err(format!(
                        "output {:?} is assigned more than once or is not a computed tensor",
                        self.name(n.output)
                    )));
                }
            }
        }
        for &o in &self.outputs {
            if !defined.get(o.0).copied().unwrap_or(false) {
                return Err(Error::Model(format!(
                    "graph output {:?} is never computed",
                    self.name(o)
                )));
            }
        }
        Ok(())
    }

    /// Concrete shapes of every tensor reachable from the inputs, with the batch (axis 0 of
    /// each graph input) set to `batch`.
    pub fn infer_shapes(&self, batch: usize) -> Result<Shapes> {
        if batch == 0 {
            return Err(Error::Input("batch must be at least 1".into()));
        }
        let mut shapes: Vec<Option<Vec<usize>>> = vec![None; self.tensors.len()];
        for (slot, t) in shapes.iter_mut().zip(&self.tensors) {
            match &t.kind {
                TensorKind::Input { shape } => {
                    let mut s = shape.clone();
                    if let Some(b) = s.first_mut() {
                        *b = batch;
                    }
                    element_count(&s)?;
                    *slot = Some(s);
                }
                TensorKind::Constant(c) => *slot = Some(c.shape.clone()),
                TensorKind::Value => {}
            }
        }
        for n in &self.nodes {
            let ins: Vec<&[usize]> = n
                .inputs
                .iter()
                .map(|i| shapes.get(i.0).and_then(|s| s.as_deref()))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Node {
                    node: n.name.clone(),
                    op_type: n.op.name().to_owned(),
                    detail: "an input has no shape (graph not validated?)".into(),
                })?;
            let out = n.op.output_shape(&ins).map_err(|detail| Error::Node {
                node: n.name.clone(),
                op_type: n.op.name().to_owned(),
                detail,
            })?;
            if let Some(slot) = shapes.get_mut(n.output.0) {
                *slot = Some(out);
            }
        }
        Ok(Shapes(shapes))
    }

    /// Removes nodes whose output nobody reads, then tensors nothing refers to, renumbering
    /// the survivors. Passes call this after rewiring.
    pub fn remove_dead(&mut self) {
        loop {
            let uses = self.use_counts();
            let before = self.nodes.len();
            self.nodes
                .retain(|n| uses.get(n.output.0).copied().unwrap_or(0) > 0);
            if self.nodes.len() == before {
                break;
            }
        }
        let mut keep = vec![false; self.tensors.len()];
        let refs = self
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().chain(std::iter::once(&n.output)))
            .chain(&self.inputs)
            .chain(&self.outputs);
        for id in refs {
            if let Some(k) = keep.get_mut(id.0) {
                *k = true;
            }
        }
        let mut remap = vec![None; self.tensors.len()];
        let old = std::mem::take(&mut self.tensors);
        for (i, t) in old.into_iter().enumerate() {
            if keep[i] {
                remap[i] = Some(TensorId(self.tensors.len()));
                self.tensors.push(t);
            }
        }
        let map = |id: &mut TensorId| {
            if let Some(Some(new)) = remap.get(id.0) {
                *id = *new;
            }
        };
        for n in &mut self.nodes {
            n.inputs.iter_mut().for_each(map);
            map(&mut n.output);
        }
        self.inputs.iter_mut().for_each(map);
        self.outputs.iter_mut().for_each(map);
    }

    /// Replaces every read of `from` (node inputs and graph outputs) with `to`.
    pub fn replace_uses(&mut self, from: TensorId, to: TensorId) {
        for n in &mut self.nodes {
            for i in &mut n.inputs {
                if *i == from {
                    *i = to;
                }
            }
        }
        for o in &mut self.outputs {
            if *o == from {
                *o = to;
            }
        }
    }

    /// A tensor name not yet used, derived from `base`.
    pub fn fresh_name(&self, base: &str) -> String {
        let taken = |n: &str| self.tensors.iter().any(|t| t.name == n);
        if !taken(base) {
            return base.to_owned();
        }
        (1..)
            .map(|i| format!("{base}#{i}"))
            .find(|n| !taken(n))
            .unwrap_or_else(|| base.to_owned())
    }

    /// Op counts, for logs and docs ("Conv x27, ...").
    pub fn op_summary(&self) -> Vec<(&'static str, usize)> {
        let mut v: Vec<(&'static str, usize)> = Vec::new();
        for n in &self.nodes {
            match v.iter_mut().find(|(k, _)| *k == n.op.name()) {
                Some((_, c)) => *c += 1,
                None => v.push((n.op.name(), 1)),
            }
        }
        v
    }
}
