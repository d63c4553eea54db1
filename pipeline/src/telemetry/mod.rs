//! Prometheus metrics, and the station's HTTP endpoints beside them (`http`: `/metrics`,
//! `/healthz`, `/readyz`). Names and labels are listed in `docs/metrics.md`; every metric is
//! described here (Prometheus `# HELP`) and the per-lane series exist from the start.

mod http;

use std::net::SocketAddr;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub use http::{HealthBoard, readiness};

/// Latency buckets in seconds: from sub-millisecond GPU stages to multi-second door round trips.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Every metric's name, the one place they are spelled.
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
    /// Commands a driver lane rejected (its state's `rejected`), labels `driver`, `lane`, `reason`
    /// (`stale`, `future`, `replay`, `epoch`).
    pub const DRIVER_REJECTED: &str = "gate_driver_rejected_total";
    /// 1 while the lane's door state disagrees with what gated told it (`drive::agreement`).
    pub const DOOR_DISAGREEMENT: &str = "gate_door_disagreement";
    /// Disagreements begun, labels `lane`, `kind` (one of [`DISAGREEMENT_KINDS`]).
    pub const DOOR_DISAGREEMENTS: &str = "gate_door_disagreements_total";
    /// The `kind`s of a door disagreement: another epoch obeyed, an acknowledgement gated never
    /// asked for, a mode gated did not set.
    pub const DISAGREEMENT_KINDS: [&str; 3] = ["epoch", "ack", "mode"];
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
pub enum TelemetryError {
    #[error("metrics recorder")]
    Recorder(#[source] BuildError),
    #[error("metrics and health endpoint on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the process-wide recorder, describes every metric, creates the per-lane series and
/// serves `/metrics`, `/healthz` and `/readyz` on `addr`. The station publishes its health on the
/// returned board.
pub async fn install(addr: SocketAddr, lanes: &[String]) -> Result<HealthBoard, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let handle: PrometheusHandle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(TelemetryError::Recorder)?
        .install_recorder()
        .map_err(TelemetryError::Recorder)?;
    describe();
    for lane in lanes {
        for name in [
            names::FRAMES_IN,
            names::FRAMES_PROCESSED,
            names::FRAMES_DROPPED,
            names::FRAMES_DEFERRED,
            names::LIGHTING_COMMANDS,
        ] {
            counter!(name, "lane" => lane.clone()).increment(0);
        }
        gauge!(names::LANE_DEGRADED, "lane" => lane.clone()).set(0.0);
        gauge!(names::DOOR_DISAGREEMENT, "lane" => lane.clone()).set(0.0);
        for kind in names::DISAGREEMENT_KINDS {
            counter!(names::DOOR_DISAGREEMENTS, "lane" => lane.clone(), "kind" => kind)
                .increment(0);
        }
        for driver in ["door", "light"] {
            for why in protocol::Rejection::ALL {
                counter!(names::DRIVER_REJECTED, "driver" => driver, "lane" => lane.clone(), "reason" => why.name())
                    .increment(0);
            }
        }
    }
    gauge!(names::GPU_LOST).set(0.0);
    Ok(http::serve(listener, handle))
}

/// `# HELP` for every metric (the table in docs/metrics.md says more).
fn describe() {
    use names::*;
    let s = Unit::Seconds;
    describe_counter!(FRAMES_IN, "Frames handed over by the lane's camera");
    describe_counter!(
        FRAMES_PROCESSED,
        "Frames normalised (and recognised) by the station"
    );
    describe_counter!(
        FRAMES_DROPPED,
        "Frames replaced by a newer one before processing, or deferred"
    );
    describe_counter!(
        FRAMES_DEFERRED,
        "Frames of a lane with nobody in view left out of a busy tick"
    );
    describe_gauge!(
        LANE_DEGRADED,
        "1 while the lane's source is failed or ended unexpectedly"
    );
    describe_histogram!(STAGE_SECONDS, s, "Wall time per stage of the gate loop");
    describe_histogram!(
        GPU_STAGE_SECONDS,
        s,
        "GPU time per stage, from timestamp queries"
    );
    describe_histogram!(
        DRIVER_RTT_SECONDS,
        s,
        "Door command published to the driver's state acknowledging it"
    );
    describe_counter!(DRIVER_TIMEOUTS, "Door commands not acknowledged in time");
    describe_counter!(
        DRIVER_REJECTED,
        "Commands a driver rejected (stale, future, replay, epoch), as its state counts them"
    );
    describe_gauge!(
        DOOR_DISAGREEMENT,
        "1 while the lane's door state disagrees with what gated told it (alarm)"
    );
    describe_counter!(
        DOOR_DISAGREEMENTS,
        "Door disagreements with gated begun, by kind (epoch, ack, mode)"
    );
    describe_counter!(LIGHTING_COMMANDS, "Illumination set-point changes sent");
    describe_gauge!(ILLUMINATION, "Current illumination set-point, percent");
    describe_gauge!(LUMA_MEAN, "Mean scene luma (0-1) of the lane's last frame");
    describe_gauge!(FACE_LUMA, "Raw luma (0-1) inside the largest face's box");
    describe_gauge!(GPU_LOST, "1 after the GPU device was lost");
    describe_counter!(MALFORMED, "zenoh payloads refused as malformed");
    describe_counter!(SYNC_REFUSED, "Centre template changes refused, by reason");
    describe_counter!(SYNC_APPLIED, "Centre template changes applied");
    describe_gauge!(
        SYNC_LAST_SEQ,
        "Sequence number of the last centre change applied"
    );
    describe_gauge!(GALLERY_SUBJECTS, "Subjects in the station's gallery");
    describe_histogram!(TICK_FACES, "Faces detected per recognition tick, all lanes");
    describe_histogram!(
        TICK_EMBEDDED,
        "Faces embedded per recognition tick, all lanes"
    );
    describe_histogram!(
        DECISION_LATENCY,
        s,
        "From the capture of a frame to its detection, identification, door command, door open"
    );
    describe_counter!(DECISIONS, "Walkers decided, by outcome and reason");
}
