//! Typed access to a node's attributes, with errors that name the attribute.

use super::proto::{AttrValue, NodeProto, TensorProto};

pub(super) struct Attrs<'a> {
    node: &'a NodeProto,
}

fn type_name(v: &AttrValue) -> &'static str {
    match v {
        AttrValue::Float(_) => "FLOAT",
        AttrValue::Int(_) => "INT",
        AttrValue::String(_) => "STRING",
        AttrValue::Tensor(_) => "TENSOR",
        AttrValue::Floats(_) => "FLOATS",
        AttrValue::Ints(_) => "INTS",
        AttrValue::Other(_) => "an unsupported attribute type",
    }
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttrValue> {
        self.node
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    fn wrong(name: &str, want: &str, got: &AttrValue) -> String {
        format!("attribute {name:?} should be {want}, is {}", type_name(got))
    }

    /// Refuses attributes this converter does not understand: ignoring one could silently
    /// change the maths.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self
            .node
            .attributes
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            Some(a) => Err(format!("attribute {:?} is not supported", a.name)),
            None => Ok(()),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(v) => Err(Self::wrong(name, "INT", v)),
        }
    }

    pub fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v)),
            Some(v) => Err(Self::wrong(name, "INTS", v)),
        }
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32, String> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(v) => Err(Self::wrong(name, "FLOAT", v)),
        }
    }

    pub fn floats(&self, name: &str) -> Result<Option<&'a [f32]>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v)),
            Some(v) => Err(Self::wrong(name, "FLOATS", v)),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String, String> {
        match self.get(name) {
            None => Ok(default.to_owned()),
            Some(AttrValue::String(s)) => {
                String::from_utf8(s.clone()).map_err(|_| format!("attribute {name:?} is not UTF-8"))
            }
            Some(v) => Err(Self::wrong(name, "STRING", v)),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Tensor(t)) => Ok(Some(t)),
            Some(v) => Err(Self::wrong(name, "TENSOR", v)),
        }
    }

    /// An INTS attribute converted to non-negative sizes.
    pub fn sizes(&self, name: &str) -> Result<Option<Vec<usize>>, String> {
        self.ints(name)?
            .map(|v| {
                v.iter()
                    .map(|&x| {
                        usize::try_from(x)
                            .map_err(|_| format!("attribute {name:?} has negative value {x}"))
                    })
                    .collect()
            })
            .transpose()
    }

    /// Which attribute names were given (for "X or Y" style checks).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
