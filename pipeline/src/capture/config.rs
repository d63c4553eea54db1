//! The capture stage's settings: `[capture]` in the station file, and the camera of each `[[lane]]`.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Live operation: each lane keeps only its newest frame; files play at their own pace.
    Realtime,
    /// Recorded footage: every frame is delivered, as fast as the GPU stage takes them.
    Benchmark,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub mode: CaptureMode,
    /// First retry delay of a failed live source; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// A live lane that delivers no frame for this long is marked degraded; so is a recording
    /// without a first frame by then (started again, up to three times in all, while it has
    /// delivered nothing).
    pub stall_ms: u64,
    /// Recordings (`file://`) play this many times in a row, their times running on (5 s apart,
    /// as if the lane stood empty), as one long recording: soak tests on footage
    /// (`benches/faults.rs --soak`). Live sources ignore it.
    pub repeat: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            mode: CaptureMode::Realtime,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            stall_ms: 3_000,
            repeat: 1,
        }
    }
}

impl CaptureConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.retry_initial_ms == 0 || self.retry_initial_ms > self.retry_max_ms {
            return Err("capture: need 0 < retry_initial_ms <= retry_max_ms".into());
        }
        if self.repeat == 0 {
            return Err("capture: repeat must be at least 1 (play each recording once)".into());
        }
        Ok(())
    }
}

/// One lane's camera, as capture needs it (the station file's `[[lane]]` gives it).
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub id: String,
    /// `file:///path.mp4`, `rtsp://host/stream`, `v4l2:///dev/video0` or `test:…` ([`super::Source`]).
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}
