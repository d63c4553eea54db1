//! The subset of the ONNX protobuf schema (onnx.proto3) that the importer reads.
//!
//! Field numbers follow onnx/onnx.proto. Fields the engine has no use for (doc strings,
//! metadata, training info, subgraphs, sparse tensors) are skipped rather than rejected, so
//! models from newer exporters still load as long as the graph itself is supported.

use super::wire::{Field, Reader, WireError};

pub use crate::error::DecodeError;

type Result<T> = std::result::Result<T, DecodeError>;

fn ctx<T>(context: &'static str, r: std::result::Result<T, WireError>) -> Result<T> {
    r.map_err(|error| DecodeError { context, error })
}

/// Walks every field of a message; `f` sees each one in file order.
fn for_each_field<'a>(
    context: &'static str,
    buf: &'a [u8],
    mut f: impl FnMut(Field<'a>) -> std::result::Result<(), WireError>,
) -> Result<()> {
    let mut r = Reader::new(buf);
    while let Some(field) = ctx(context, r.next_field())? {
        ctx(context, f(field))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct ModelProto {
    pub ir_version: i64,
    pub opset_import: Vec<OpsetId>,
    pub producer_name: String,
    pub graph: Option<GraphProto>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsetId {
    pub domain: String,
    pub version: i64,
}

#[derive(Debug, Clone, Default)]
pub struct GraphProto {
    pub name: String,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// Set when the graph has sparse initializers, which the engine does not support.
    pub has_sparse_initializers: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NodeProto {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<AttributeProto>,
}

#[derive(Debug, Clone)]
pub struct AttributeProto {
    pub name: String,
    pub value: AttrValue,
}

#[derive(Debug, Clone)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(Vec<u8>),
    Tensor(TensorProto),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    /// A type the engine does not read (graphs, sparse tensors, lists of strings...);
    /// the number is AttributeProto.AttributeType. Kept so that an op that needs it can
    /// say so by name instead of claiming the attribute is missing.
    Other(i32),
}

#[derive(Debug, Clone, Default)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw_data: Option<Vec<u8>>,
    pub float_data: Vec<f32>,
    /// Also carries int8/uint8/int16/uint16/bool/float16 values, one per element.
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    /// Any double/uint64/string payload; the engine does not read these types.
    pub has_other_data: bool,
    /// TensorProto.data_location == EXTERNAL: weights in a side file, which we refuse.
    pub external: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ValueInfo {
    pub name: String,
    /// `None` when the value has no tensor type (sequence, map, ...) or no type at all.
    pub tensor: Option<TensorType>,
}

#[derive(Debug, Clone, Default)]
pub struct TensorType {
    pub elem_type: i32,
    /// `None` when the shape is unknown altogether.
    pub shape: Option<Vec<Dim>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

pub fn decode_model(buf: &[u8]) -> Result<ModelProto> {
    let mut m = ModelProto::default();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("ModelProto", r.next_field())? {
        match f.number {
            1 => m.ir_version = ctx("ModelProto.ir_version", f.as_i64())?,
            2 => m.producer_name = ctx("ModelProto.producer_name", f.as_str())?.to_owned(),
            7 => m.graph = Some(decode_graph(ctx("ModelProto.graph", f.as_bytes())?)?),
            8 => m
                .opset_import
                .push(decode_opset(ctx("ModelProto.opset_import", f.as_bytes())?)?),
            _ => {}
        }
    }
    Ok(m)
}

fn decode_opset(buf: &[u8]) -> Result<OpsetId> {
    let mut o = OpsetId::default();
    for_each_field("OperatorSetIdProto", buf, |f| {
        match f.number {
            1 => o.domain = f.as_str()?.to_owned(),
            2 => o.version = f.as_i64()?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(o)
}

pub fn decode_graph(buf: &[u8]) -> Result<GraphProto> {
    let mut g = GraphProto::default();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("GraphProto", r.next_field())? {
        match f.number {
            1 => g
                .nodes
                .push(decode_node(ctx("GraphProto.node", f.as_bytes())?)?),
            2 => g.name = ctx("GraphProto.name", f.as_str())?.to_owned(),
            5 => g
                .initializers
                .push(decode_tensor(ctx("GraphProto.initializer", f.as_bytes())?)?),
            11 => g
                .inputs
                .push(decode_value_info(ctx("GraphProto.input", f.as_bytes())?)?),
            12 => g
                .outputs
                .push(decode_value_info(ctx("GraphProto.output", f.as_bytes())?)?),
            15 => g.has_sparse_initializers = true,
            _ => {}
        }
    }
    Ok(g)
}

fn decode_node(buf: &[u8]) -> Result<NodeProto> {
    let mut n = NodeProto::default();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("NodeProto", r.next_field())? {
        match f.number {
            1 => n
                .inputs
                .push(ctx("NodeProto.input", f.as_str())?.to_owned()),
            2 => n
                .outputs
                .push(ctx("NodeProto.output", f.as_str())?.to_owned()),
            3 => n.name = ctx("NodeProto.name", f.as_str())?.to_owned(),
            4 => n.op_type = ctx("NodeProto.op_type", f.as_str())?.to_owned(),
            5 => n
                .attributes
                .push(decode_attribute(ctx("NodeProto.attribute", f.as_bytes())?)?),
            7 => n.domain = ctx("NodeProto.domain", f.as_str())?.to_owned(),
            _ => {}
        }
    }
    Ok(n)
}

fn decode_attribute(buf: &[u8]) -> Result<AttributeProto> {
    let mut name = String::new();
    let mut ty: i32 = 0;
    let mut f_val = None;
    let mut i_val = None;
    let mut s_val = None;
    let mut t_val = None;
    let mut floats = Vec::new();
    let mut ints = Vec::new();
    let mut saw_floats = false;
    let mut saw_ints = false;
    let mut other = None;
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("AttributeProto", r.next_field())? {
        let c = "AttributeProto";
        match f.number {
            1 => name = ctx(c, f.as_str())?.to_owned(),
            2 => f_val = Some(ctx(c, f.as_f32())?),
            3 => i_val = Some(ctx(c, f.as_i64())?),
            4 => s_val = Some(ctx(c, f.as_bytes())?.to_vec()),
            5 => t_val = Some(decode_tensor(ctx(c, f.as_bytes())?)?),
            7 => {
                saw_floats = true;
                ctx(c, f.push_f32s(&mut floats))?;
            }
            8 => {
                saw_ints = true;
                ctx(c, f.push_varints(&mut ints))?;
            }
            20 => ty = ctx(c, f.as_i32())?,
            // graph(s), sparse tensor(s), strings, tensors, type protos: recognised, not read.
            6 => other = Some(5),
            9 => other = Some(8),
            10 => other = Some(9),
            11 => other = Some(10),
            22 => other = Some(11),
            23 => other = Some(12),
            14 => other = Some(13),
            15 => other = Some(14),
            _ => {}
        }
    }
    // Very old exporters leave `type` unset; the populated field then says what it is.
    let value = match ty {
        1 => AttrValue::Float(f_val.unwrap_or(0.0)),
        2 => AttrValue::Int(i_val.unwrap_or(0)),
        3 => AttrValue::String(s_val.unwrap_or_default()),
        4 => match t_val {
            Some(t) => AttrValue::Tensor(t),
            None => AttrValue::Other(4),
        },
        6 => AttrValue::Floats(floats),
        7 => AttrValue::Ints(ints),
        0 => {
            if let Some(v) = f_val {
                AttrValue::Float(v)
            } else if let Some(v) = i_val {
                AttrValue::Int(v)
            } else if let Some(v) = s_val {
                AttrValue::String(v)
            } else if let Some(t) = t_val {
                AttrValue::Tensor(t)
            } else if saw_floats {
                AttrValue::Floats(floats)
            } else if saw_ints {
                AttrValue::Ints(ints)
            } else {
                AttrValue::Other(other.unwrap_or(0))
            }
        }
        t => AttrValue::Other(t),
    };
    Ok(AttributeProto { name, value })
}

pub fn decode_tensor(buf: &[u8]) -> Result<TensorProto> {
    let mut t = TensorProto::default();
    for_each_field("TensorProto", buf, |f| {
        match f.number {
            1 => f.push_varints(&mut t.dims)?,
            2 => t.data_type = f.as_i32()?,
            4 => f.push_f32s(&mut t.float_data)?,
            5 => f.push_varints(&mut t.int32_data)?,
            7 => f.push_varints(&mut t.int64_data)?,
            8 => t.name = f.as_str()?.to_owned(),
            9 => t.raw_data = Some(f.as_bytes()?.to_vec()),
            6 | 10 | 11 => t.has_other_data = true,
            13 => t.external = true,
            14 => t.external |= f.as_i64()? == 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok(t)
}

fn decode_value_info(buf: &[u8]) -> Result<ValueInfo> {
    let mut v = ValueInfo::default();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("ValueInfoProto", r.next_field())? {
        match f.number {
            1 => v.name = ctx("ValueInfoProto.name", f.as_str())?.to_owned(),
            2 => v.tensor = decode_type(ctx("TypeProto", f.as_bytes())?)?,
            _ => {}
        }
    }
    Ok(v)
}

fn decode_type(buf: &[u8]) -> Result<Option<TensorType>> {
    let mut out = None;
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("TypeProto", r.next_field())? {
        if f.number == 1 {
            out = Some(decode_tensor_type(ctx("TypeProto", f.as_bytes())?)?);
        }
    }
    Ok(out)
}

fn decode_tensor_type(buf: &[u8]) -> Result<TensorType> {
    let mut t = TensorType::default();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("TypeProto.Tensor", r.next_field())? {
        match f.number {
            1 => t.elem_type = ctx("TypeProto.Tensor.elem_type", f.as_i32())?,
            2 => t.shape = Some(decode_shape(ctx("TensorShapeProto", f.as_bytes())?)?),
            _ => {}
        }
    }
    Ok(t)
}

fn decode_shape(buf: &[u8]) -> Result<Vec<Dim>> {
    let mut dims = Vec::new();
    let mut r = Reader::new(buf);
    while let Some(f) = ctx("TensorShapeProto", r.next_field())? {
        if f.number != 1 {
            continue;
        }
        let mut d = Dim::Unknown;
        let body = ctx("TensorShapeProto.dim", f.as_bytes())?;
        for_each_field("TensorShapeProto.Dimension", body, |g| {
            match g.number {
                1 => d = Dim::Value(g.as_i64()?),
                2 => d = Dim::Param(g.as_str()?.to_owned()),
                _ => {}
            }
            Ok(())
        })?;
        dims.push(d);
    }
    Ok(dims)
}
