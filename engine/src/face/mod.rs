//! The face chain, from pixels to embeddings, and the geometry around the networks.
//!
//! - `chain`: one photo or frame → faces → aligned chips → L2-normalised SFace embeddings on the
//!   engine's CPU reference ([`FaceChain`]), with the [`Chip`] type the quality measures read;
//!   enrolment (`enrold`), calibration (`gate-calibrate`), the demo centre and the benchmarks use it.
//!   The station runs the same steps batched on its own executors (`pipeline::recognise`), with the
//!   same decoding ([`blazeface::frame_detections`]), alignment, [`embedding`] check and [`quality`].
//! - `blazeface`: SSD anchors, box/keypoint decoding, weighted non-maximum suppression, letterbox.
//! - `align`: the similarity that maps landmarks onto SFace's 112×112 template, and the warp.
//! - `prepare`: the detector's letterboxed input, packing, cosine and L2 normalisation.
//! - `refine`: where the short-range model looks again at a large face, and which of its finds
//!   replaces the face (issue 19's sharper alignment; the chain and the station share it).
//! - `quality`: cheap, explainable measures of one face (size, pose, exposure, sharpness, occlusion).
//! - `pad`: the presentation-attack networks' crops and verdict.
//! - `models`: the model file names and [`models_dir`], the one models-folder lookup.

// Gate and enrolment code must fail with an error, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod align;
pub mod blazeface;
mod chain;
mod models;
pub mod pad;
pub mod prepare;
pub mod quality;
pub mod refine;

pub use blazeface::iou;
pub use chain::{
    Chip, EMBEDDING_DIM, Embedding, FaceChain, FaceError, Found, Rgb, embedding, flip_average,
    subject, weighted_mean,
};
pub use models::{ALL, BACK, FRONT, SFACE, models_dir, models_present};
