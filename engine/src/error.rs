//! The engine's error type. Every failure names what it was looking at (file, node, tensor)
//! because the usual reader is an operator who brought their own model.
//!
//! This module sits below every other one (tensor, graph, onnx all return its [`Error`]), so it
//! names none of them: the protobuf decoder's errors are defined here (`onnx::wire` and
//! `onnx::proto` re-export them) and the importer passes the list of supported operators in.

use std::path::PathBuf;

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
        supported.join(", ")
    )]
    UnsupportedOp {
        op_type: String,
        domain: String,
        node: String,
        /// Every operator the importer takes (`graph::SUPPORTED_ONNX_OPS`).
        supported: &'static [&'static str],
    },
    /// A supported operator used with an attribute value, input or shape the engine does
    /// not implement or that is inconsistent.
    #[error("node {node:?} ({op_type}): {detail}")]
    Node {
        node: String,
        op_type: String,
        detail: String,
    },
    /// One of the checks above refused what a node builds (a constant over the size limit, say).
    #[error("node {node:?} ({op_type}): {source}")]
    InNode {
        node: String,
        op_type: String,
        #[source]
        source: Box<Error>,
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

/// Why a protobuf buffer could not be decoded. Offsets are relative to the message being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated at byte {at}: needed {needed} more bytes")]
    Truncated { at: usize, needed: usize },
    #[error("varint longer than 10 bytes at byte {at}")]
    VarintTooLong { at: usize },
    #[error("length prefix {len} at byte {at} runs past the end ({remaining} bytes left)")]
    LengthOverrun {
        at: usize,
        len: u64,
        remaining: usize,
    },
    #[error("unsupported wire type {wire_type} (field {field}) at byte {at}")]
    BadWireType {
        at: usize,
        field: u32,
        wire_type: u8,
    },
    #[error("invalid field number 0 at byte {at}")]
    ZeroField { at: usize },
    #[error("field {field}: expected {expected}, found wire type {found}")]
    UnexpectedWireType {
        field: u32,
        expected: &'static str,
        found: u8,
    },
    #[error("field {field}: packed payload of {len} bytes is not a multiple of {width}")]
    PackedLength {
        field: u32,
        len: usize,
        width: usize,
    },
    #[error("field {field}: value {value} does not fit the declared type")]
    OutOfRange { field: u32, value: i64 },
    #[error("field {field}: string is not valid UTF-8")]
    Utf8 { field: u32 },
}

/// Where in the model a decode error happened, plus what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {error}")]
pub struct DecodeError {
    pub context: &'static str,
    pub error: WireError,
}
