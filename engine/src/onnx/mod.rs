//! ONNX import: a bounds-checked protobuf reader ([`wire`]), the schema subset we decode
//! ([`proto`]), and the conversion into the engine's [`Graph`].

mod attrs;
mod ctx;
mod import;
mod ops;
mod ops_nn;
pub mod proto;
pub mod tensor;
pub mod wire;

use std::path::Path;

pub use import::{OPSETS, import_bytes};

use crate::error::{Error, Result};
use crate::graph::Graph;

/// Largest model file accepted: protobuf itself cannot describe messages past 2 GiB.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Reads and imports an ONNX file, without any optimisation pass (see [`crate::load`]).
pub fn import_file(path: &Path) -> Result<Graph> {
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MODEL_BYTES {
        return Err(Error::TooLarge(format!(
            "{} is {len} bytes, more than {MAX_MODEL_BYTES}",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    import_bytes(&bytes)
}
