//! Prometheus metrics. Names and labels are listed in `docs/metrics.md`.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Latency buckets in seconds: from sub-millisecond GPU stages to multi-second door round trips.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

pub mod names {
    pub const FRAMES_IN: &str = "gate_frames_in_total";
    pub const FRAMES_PROCESSED: &str = "gate_frames_processed_total";
    pub const FRAMES_DROPPED: &str = "gate_frames_dropped_total";
    /// Frames of a lane where nobody is in view, left out of a tick so that lanes with a walker
    /// get the station's time (`recognise::priority`); also counted as dropped.
    pub const FRAMES_DEFERRED: &str = "gate_frames_deferred_total";
    pub const LANE_DEGRADED: &str = "gate_lane_degraded";
    /// Wall time per stage, label `stage`: `capture_to_normalised`, `normalise_batch`.
    pub const STAGE_SECONDS: &str = "gate_stage_seconds";
    /// GPU time per stage from timestamp queries, label `stage`.
    pub const GPU_STAGE_SECONDS: &str = "gate_gpu_stage_seconds";
    /// Command publish → acknowledged state, label `driver`.
    pub const DRIVER_RTT_SECONDS: &str = "gate_driver_rtt_seconds";
    pub const DRIVER_TIMEOUTS: &str = "gate_driver_ack_timeouts_total";
    pub const LIGHTING_COMMANDS: &str = "gate_lighting_commands_total";
    pub const ILLUMINATION: &str = "gate_illumination_percent";
    pub const LUMA_MEAN: &str = "gate_luma_mean";
    /// Raw luma (0–1) inside the largest face's box, when a face is in view.
    pub const FACE_LUMA: &str = "gate_face_luma";
    pub const GPU_LOST: &str = "gate_gpu_lost";
    pub const MALFORMED: &str = "gate_malformed_messages_total";
    /// Template distribution: changes refused, label `reason` (`signature`, `version`, `station`,
    /// `malformed`, `replay`, `gap`, `open`).
    pub const SYNC_REFUSED: &str = "gate_sync_refused_total";
    pub const SYNC_APPLIED: &str = "gate_sync_applied_total";
    pub const SYNC_LAST_SEQ: &str = "gate_sync_last_seq";
    pub const GALLERY_SUBJECTS: &str = "gate_gallery_subjects";
    /// Faces detected / embedded per tick (all lanes).
    pub const TICK_FACES: &str = "gate_tick_faces";
    pub const TICK_EMBEDDED: &str = "gate_tick_embedded";
    /// Per lane, from the capture of the frame that decided: label `to` = `detected`, `identified`,
    /// `door_command`, `door_open` (the driver's acknowledged open state).
    pub const DECISION_LATENCY: &str = "gate_decision_latency_seconds";
    /// Decisions, labels `lane`, `outcome` (`open`, `closed`, `tailgating`, `not_decided`),
    /// `reason`.
    pub const DECISIONS: &str = "gate_decisions_total";
}

/// `[metrics]` in the station file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Loopback by default: the exporter has no authentication.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("metrics exporter on {addr}")]
pub struct TelemetryError {
    addr: SocketAddr,
    #[source]
    source: BuildError,
}

/// Installs the process-wide recorder and the HTTP exporter (`GET /metrics`).
pub fn install(addr: SocketAddr) -> Result<(), TelemetryError> {
    let e = |source| TelemetryError { addr, source };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(e)?
        .install()
        .map_err(e)
}
