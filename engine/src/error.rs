//! The engine's error type. Every failure names what it was looking at (file, node, tensor)
//! because the usual reader is an operator who brought their own model.

use std::path::PathBuf;

use crate::onnx::proto::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read model {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("malformed ONNX file ({0})")]
    Decode(DecodeError),
    /// The file decodes but does not describe a graph the engine can build.
    #[error("invalid model: {0}")]
    Model(String),
    #[error(
        "unsupported operator {op_type:?}{} in node {node:?}; supported operators: {}",
        domain_suffix(domain),
        crate::graph::SUPPORTED_ONNX_OPS.join(", ")
    )]
    UnsupportedOp {
        op_type: String,
        domain: String,
        node: String,
    },
    /// A supported operator used with an attribute value, input or shape the engine does
    /// not implement or that is inconsistent.
    #[error("node {node:?} ({op_type}): {detail}")]
    Node {
        node: String,
        op_type: String,
        detail: String,
    },
    #[error("input: {0}")]
    Input(String),
    #[error("size limit: {0}")]
    TooLarge(String),
}

fn domain_suffix(domain: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" {
        String::new()
    } else {
        format!(" (domain {domain:?})")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

// By hand rather than `#[from]`, which would also make it the error's source and print its text a
// second time in an anyhow chain.
impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}
