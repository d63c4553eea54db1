//! The face models' file names and where the models folder is: the one lookup every binary
//! (gated, enrold, gate-calibrate, the benchmarks) and test starts from.

use std::path::{Path, PathBuf};

/// SFace (recognition): 112×112 chips → 128-d embeddings.
pub const SFACE: &str = "face_recognition_sface_2021dec_int8bq.onnx";
/// BlazeFace front 128×128 (short range).
pub const FRONT: &str = "face_detection_front_128x128_barracuda.onnx";
/// BlazeFace back 256×256 (full range).
pub const BACK: &str = "face_detection_back_256x256_barracuda.onnx";
/// Every model file the face chain needs.
pub const ALL: [&str; 3] = [SFACE, FRONT, BACK];

/// Where the models are: `$GATE_MODELS`, else the workspace's `models/` (scripts/setup fills it).
/// Binaries with their own setting (`[recognise] models`, enrold's `models`, `--models`) fall back
/// to this, so every tool finds the same folder whatever its working directory.
pub fn models_dir() -> PathBuf {
    std::env::var_os("GATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// Whether every model file of the chain is in `dir` (tests skip with a reason otherwise).
pub fn models_present(dir: &Path) -> bool {
    ALL.iter().all(|f| dir.join(f).is_file())
}
