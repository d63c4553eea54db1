//! Face model engine: ONNX importer, graph description, load-time passes and the CPU
//! reference executor that the GPU kernels are checked against, and the fast CPU executor
//! (`fast`) that CPU-only stations run.
//!
//! Typical use:
//! ```no_run
//! let graph = engine::load(std::path::Path::new("models/face_recognition_sface_2021dec_int8bq.onnx"))?;
//! let shapes = graph.infer_shapes(4)?; // 4 chips in one batch
//! let input = engine::Tensor::zeros(shapes.get(graph.inputs[0])?.to_vec())?;
//! let outputs = engine::cpu::run(&graph, &[input])?;
//! # Ok::<(), engine::Error>(())
//! ```
//!
//! No GStreamer dependency lives here, so the GPU benchmark binary and tools can link it alone.
//! The WGSL kernels (`gpu`) run on a wgpu device the caller passes in.

pub mod cpu;
pub mod error;
pub mod face;
pub mod fast;
pub mod gpu;
pub mod graph;
pub mod onnx;
pub mod passes;
pub mod tensor;

use std::path::Path;

pub use error::{Error, Result};
pub use graph::{Graph, Node, Op, TensorId};
pub use tensor::{Tensor, View};

/// Imports an ONNX file and runs every load-time pass: the graph an executor should run.
pub fn load(path: &Path) -> Result<Graph> {
    let mut g = onnx::import_file(path)?;
    passes::optimize(&mut g)?;
    Ok(g)
}

/// [`load`] for a model already in memory.
pub fn load_bytes(bytes: &[u8]) -> Result<Graph> {
    let mut g = onnx::import_bytes(bytes)?;
    passes::optimize(&mut g)?;
    Ok(g)
}
