//! What every node converter shares (`ops` for the data and arithmetic ops, `ops_nn` for the
//! network layers): the context of constants and shapes, the converted result, the conversion
//! error, and the input and axis helpers.

use std::collections::HashMap;

use super::proto::NodeProto;
use crate::graph::{ConstData, Constant, Op};

pub(super) enum ConvError {
    /// The op type itself is not supported.
    Unsupported,
    /// Supported op, unsupported or invalid use; the text says what.
    Detail(String),
    /// One of the engine's own checks refused what the node builds (a constant over the size
    /// limit, say); kept typed so the importer can chain it under the node.
    Engine(crate::Error),
}

impl From<crate::Error> for ConvError {
    fn from(e: crate::Error) -> Self {
        ConvError::Engine(e)
    }
}

impl From<String> for ConvError {
    fn from(s: String) -> Self {
        ConvError::Detail(s)
    }
}

impl From<&str> for ConvError {
    fn from(s: &str) -> Self {
        ConvError::Detail(s.to_owned())
    }
}

pub(super) type R<T> = Result<T, ConvError>;

pub(super) enum Converted {
    Node { op: Op, inputs: Vec<String> },
    Constant(Constant),
}

/// What the converters may look at: constants and the shapes known so far (at the
/// declared batch), keyed by tensor name.
pub(super) struct Ctx<'a> {
    pub opset: i64,
    pub constants: &'a HashMap<String, Constant>,
    pub shapes: &'a HashMap<String, Vec<usize>>,
}

impl Ctx<'_> {
    pub fn shape(&self, name: &str) -> R<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice).ok_or_else(|| {
            ConvError::Detail(format!("input {name:?} is not defined before this node"))
        })
    }

    pub fn constant(&self, name: &str, what: &str) -> R<&Constant> {
        self.constants.get(name).ok_or_else(|| {
            ConvError::Detail(format!(
                "{what} ({name:?}) must be a constant known at load time"
            ))
        })
    }

    pub fn ints(&self, name: &str, what: &str) -> R<Vec<i64>> {
        match &self.constant(name, what)?.data {
            ConstData::I64(v) => Ok(v.clone()),
            ConstData::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            other => Err(format!("{what} must be int64, is {}", other.type_name()).into()),
        }
    }

    pub fn floats(&self, name: &str, what: &str) -> R<Vec<f32>> {
        self.constant(name, what)?
            .f32_data()
            .map(<[f32]>::to_vec)
            .ok_or_else(|| ConvError::Detail(format!("{what} must be float")))
    }

    pub fn scalar(&self, name: &str, what: &str) -> R<f32> {
        match self.floats(name, what)?.as_slice() {
            [v] => Ok(*v),
            v => Err(format!("{what} must hold one value, has {}", v.len()).into()),
        }
    }
}

/// Input `k` of the node, `None` when absent or given as "" (ONNX's "optional, omitted").
pub(super) fn input(node: &NodeProto, k: usize) -> Option<&str> {
    node.inputs
        .get(k)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

pub(super) fn required(node: &NodeProto, k: usize) -> R<&str> {
    input(node, k).ok_or_else(|| ConvError::Detail(format!("input {k} is required")))
}

/// Resolves a possibly negative axis against `rank` (`extra` = 1 where `axis == rank` is legal).
pub(super) fn axis(a: i64, rank: usize, extra: usize) -> R<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v > r - 1 + extra as i64 {
        return Err(format!("axis {a} out of range for rank {rank}").into());
    }
    Ok(v as usize)
}

pub(super) fn node(op: Op, inputs: &[&str]) -> R<Converted> {
    Ok(Converted::Node {
        op,
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
    })
}
