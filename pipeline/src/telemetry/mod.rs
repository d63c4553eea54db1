//! Prometheus metrics, and the station's HTTP endpoints beside them (`http`: `/metrics`,
//! `/healthz`, `/readyz`; `view`: the live lane view at `/`). Names and labels are listed in `docs/metrics.md`; every metric is
//! described here (Prometheus `# HELP`) and the per-lane series exist from the start.

mod http;
pub mod view;

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use protocol::{DoorMode, DoorState, Flap};

pub use http::{HealthBoard, readiness};

/// Latency buckets in seconds: from sub-millisecond GPU stages to multi-second door round trips.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Every metric's name, the one place they are spelled, with its type and `# HELP` text: the
/// recorder describes each at start, `ALL` lists them (the deploy files' test checks every name a
/// dashboard or alert asks for against it), and the table in docs/metrics.md says more.
pub mod names {
    pub use protocol::metrics::{Kind, Metric};

    /// The `kind`s of a door disagreement: another epoch obeyed, an acknowledgement gated never
    /// asked for, a mode gated did not set.
    pub const DISAGREEMENT_KINDS: [&str; 3] = ["epoch", "ack", "mode"];

    protocol::metric_table! {
        FRAMES_IN = "gate_frames_in_total", Counter, "Frames handed over by the lane's camera";
        FRAMES_PROCESSED = "gate_frames_processed_total", Counter,
            "Frames normalised (and recognised) by the station";
        FRAMES_DROPPED = "gate_frames_dropped_total", Counter,
            "Frames replaced by a newer one before processing, or deferred";
        /// Frames of a lane where nobody is in view, left out of a tick so that lanes with a walker
        /// get the station's time (`recognise::priority`); also counted as dropped.
        FRAMES_DEFERRED = "gate_frames_deferred_total", Counter,
            "Frames of a lane with nobody to decide in view left out of a busy tick";
        LANE_DEGRADED = "gate_lane_degraded", Gauge,
            "1 while the lane's source is failed or ended unexpectedly";
        /// Wall time per stage, label `stage`: `capture_to_normalised`, `normalise_batch`.
        STAGE_SECONDS = "gate_stage_seconds", Seconds, "Wall time per stage of the gate loop";
        /// GPU time per stage from timestamp queries, label `stage`.
        /// The drivers' watchdog fires when heartbeats stop; this is how far behind its schedule
        /// each one left the station loop (a loop stuck in a handler delays them all).
        HEARTBEAT_LATE = "gate_heartbeat_late_seconds", Seconds,
            "How late each heartbeat to the drivers left the station loop";
        GPU_STAGE_SECONDS = "gate_gpu_stage_seconds", Seconds,
            "GPU time per stage, from timestamp queries";
        /// Command publish → acknowledged state, label `driver`.
        DRIVER_RTT_SECONDS = "gate_driver_rtt_seconds", Seconds,
            "Door command published to the driver's state acknowledging it";
        DRIVER_TIMEOUTS = "gate_driver_ack_timeouts_total", Counter,
            "Door commands not acknowledged in time";
        /// Commands a driver lane rejected (its state's `rejected`), labels `driver`, `lane`,
        /// `reason` (`stale`, `future`, `replay`, `epoch`).
        DRIVER_REJECTED = "gate_driver_rejected_total", Counter,
            "Commands a driver did not admit, by reason (stale, future, replay, epoch)";
        /// 1 while the lane's door state disagrees with what gated told it (`drive::agreement`).
        DOOR_DISAGREEMENT = "gate_door_disagreement", Gauge,
            "1 while the lane's door state disagrees with what gated told the door";
        /// Disagreements begun, labels `lane`, `kind` (one of [`DISAGREEMENT_KINDS`]).
        DOOR_DISAGREEMENTS = "gate_door_disagreements_total", Counter,
            "Door disagreements begun, by kind (epoch, ack, mode)";
        /// Mode commands sent again because the door's mode disagreed (`DoorWatch::reassert`),
        /// label `lane`.
        DOOR_REASSERTED = "gate_door_modes_reasserted_total", Counter,
            "Door mode commands sent again because the door's mode disagreed with gated's";
        /// Label `mode` (`protocol::DoorMode` in snake_case): 1 for the mode the lane's door driver
        /// last reported, 0 for the others (all 0 before its first state).
        DOOR_MODE = "gate_door_mode", Gauge,
            "1 for the mode the lane's door driver last reported, 0 for the other modes";
        /// Label `flap` (`protocol::Flap` in snake_case), as `DOOR_MODE`.
        DOOR_FLAP = "gate_door_flap", Gauge,
            "1 for the flap state the lane's door driver last reported, 0 for the others";
        /// Drivers publish at least every 200 ms, so a few seconds means the driver or the link
        /// is gone while gated still shows its last state.
        DOOR_STATE_AGE = "gate_door_state_age_seconds", Gauge,
            "Seconds since the lane's door driver last reported (since gated started, before that)";
        LIGHTING_COMMANDS = "gate_lighting_commands_total", Counter,
            "Illumination set-point changes sent";
        ILLUMINATION = "gate_illumination_percent", Gauge, "Current illumination set-point, percent";
        LUMA_MEAN = "gate_luma_mean", Gauge, "Mean scene luma (0-1) of the lane's last frame";
        /// Raw luma (0–1) inside the largest face's box, when a face is in view.
        FACE_LUMA = "gate_face_luma", Gauge, "Raw luma (0-1) inside the largest face's box";
        GPU_LOST = "gate_gpu_lost", Gauge, "1 after the GPU device was lost";
        /// Kept in the station's store (`meta.gpu_losses`) across runs: gated exits on a loss,
        /// so `GPU_LOST` may never be scraped, and the next run exports the count.
        GPU_LOSSES = "gate_gpu_losses_total", Counter,
            "GPU devices this station lost, over every run of gated";
        RECOGNISER_STALLED = "gate_recogniser_stalled", Gauge,
            "1 while a frame has waited stall_ms with no result from the recogniser (doors safe)";
        /// Label `lane`. Each is a walker's grant that would have been lost to the driver's outage.
        OPENS_RESENT = "gate_door_opens_resent_total", Counter,
            "Door opens re-sent to a restarted door driver that had not acknowledged them";
        RECOGNISER_STALLS = "gate_recogniser_stalls_total", Counter,
            "Recogniser stalls (doors to safe mode until results came back)";
        /// Label `certificate`: `gated` (its own bus certificate) or `ca` (the first CA it
        /// trusts). An expired one takes gated off the bus, and its doors to fail-safe.
        BUS_CERT_EXPIRY = "gate_bus_certificate_expiry_timestamp_seconds", Gauge,
            "When gated's bus certificate and its CA expire (Unix seconds), label certificate";
        MALFORMED = "gate_malformed_messages_total", Counter, "zenoh payloads refused as malformed";
        /// Template distribution: changes refused, label `reason` (`signature`, `version`, `station`,
        /// `malformed`, `replay`, `gap`, `open`).
        SYNC_REFUSED = "gate_sync_refused_total", Counter,
            "Centre template changes refused, by reason";
        SYNC_APPLIED = "gate_sync_applied_total", Counter, "Centre template changes applied";
        SYNC_LAST_SEQ = "gate_sync_last_seq", Gauge,
            "Sequence number of the last centre change applied";
        /// The newest sequence number heard of: a catch-up answer's `head` or a verified live
        /// change. Minus `SYNC_LAST_SEQ`, how far the station's gallery is behind the centre.
        SYNC_CENTRE_HEAD = "gate_sync_centre_head_seq", Gauge,
            "Newest centre change for this station heard of (catch-up head or live change)";
        /// The head is only as fresh as the last word from the centre, so its absence is its own
        /// signal.
        SYNC_CENTRE_REACHABLE = "gate_sync_centre_reachable", Gauge,
            "1 while the enrolment centre's liveliness token is seen";
        /// The station's passage head minus the last passage the centre's ledger said it booked
        /// (its queries' `after`; the centre asks at least every 5 s while it is up).
        UPLINK_UNBOOKED = "gate_uplink_unbooked_passages", Gauge,
            "Passages recorded here that the centre's ledger has not booked, as of its last query";
        GALLERY_SUBJECTS = "gate_gallery_subjects", Gauge, "Subjects in the station's gallery";
        /// Faces detected / embedded per tick (all lanes).
        TICK_FACES = "gate_tick_faces", Summary, "Faces detected per recognition tick, all lanes";
        TICK_EMBEDDED = "gate_tick_embedded", Summary,
            "Faces embedded per recognition tick, all lanes";
        /// Per lane, from the capture of the frame that decided: label `to` = `detected`,
        /// `identified`, `door_command`, `door_open` (the driver's acknowledged open state).
        DECISION_LATENCY = "gate_decision_latency_seconds", Seconds,
            "From the capture of a frame to its detection, identification, door command, door open";
        /// Decisions, labels `lane`, `outcome` (`open`, `closed`, `tailgating`, `not_decided`),
        /// `reason`.
        DECISIONS = "gate_decisions_total", Counter, "Walkers decided, by outcome and reason";
        /// The durable write of a grant's fare state, which the door command waits for.
        FARE_COMMIT = "gate_fare_commit_seconds", Seconds,
            "Writing a grant's trip change, passage record and journal line before its door opens";
        /// Grants withdrawn because the store refused their fare state (the door stayed shut).
        FARE_COMMIT_FAILURES = "gate_fare_commit_failures_total", Counter,
            "Grants withdrawn because their fare state could not be written";
    }
}

/// `[metrics]` in the station file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Loopback by default: the exporter has no authentication.
    pub listen: SocketAddr,
    /// The lane view's operator token (first line, 32+ characters, mode 600). Without it the view
    /// only shows; with it, whoever sends the token may hold and release doors.
    pub operator_token_file: Option<std::path::PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            operator_token_file: None,
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
    #[error("operator token")]
    OperatorToken(#[from] protocol::private_file::PrivateFileError),
    #[error("operator token {}: shorter than 32 characters", .0.display())]
    ShortToken(std::path::PathBuf),
}

/// The exporter as the station configures it (buckets for every `_seconds` histogram).
fn builder() -> Result<PrometheusBuilder, TelemetryError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(TelemetryError::Recorder)
}

/// Installs the process-wide recorder, describes every metric, creates the per-lane series and
/// serves `/metrics`, `/healthz`, `/readyz` and the lane view on `cfg.listen`. The station
/// publishes its health and view on the returned board and answers the view's operator requests.
pub async fn install(cfg: &MetricsConfig, lanes: &[String]) -> Result<HealthBoard, TelemetryError> {
    let token = match &cfg.operator_token_file {
        Some(p) => Some(view::read_token(p)?),
        None => None,
    };
    let addr = cfg.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let handle: PrometheusHandle = builder()?
        .install_recorder()
        .map_err(TelemetryError::Recorder)?;
    describe();
    create_series(lanes);
    Ok(http::serve(listener, handle, token))
}

/// The series alerts and dashboards need before their first event, at 0: an alert on
/// `increase()` misses the first event of a series that is born with it.
fn create_series(lanes: &[String]) {
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
        for driver in ["door", "light"] {
            counter!(names::DRIVER_TIMEOUTS, "driver" => driver, "lane" => lane.clone())
                .increment(0);
        }
        gauge!(names::LANE_DEGRADED, "lane" => lane.clone()).set(0.0);
        counter!(names::OPENS_RESENT, "lane" => lane.clone()).increment(0);
        counter!(names::DOOR_REASSERTED, "lane" => lane.clone()).increment(0);
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
        door_state(lane, None);
        // The presentation-attack alert's series (`GatePresentationAttack`).
        counter!(names::DECISIONS, "lane" => lane.clone(), "outcome" => "attack", "reason" => crate::decide::gate::ATTACK)
            .increment(0);
    }
    gauge!(names::GPU_LOST).set(0.0);
    gauge!(names::RECOGNISER_STALLED).set(0.0);
    counter!(names::RECOGNISER_STALLS).increment(0);
    counter!(names::FARE_COMMIT_FAILURES).increment(0);
}

/// When the bus certificates of a TLS station expire (`BUS_CERT_EXPIRY`); a file that cannot be read
/// here was already refused by the session's own check.
pub fn bus_certificates(files: &protocol::TlsFiles) {
    for (label, path) in [("gated", &files.cert), ("ca", &files.ca)] {
        if let Ok(t) = protocol::certs::expiry_unix_s(path) {
            gauge!(names::BUS_CERT_EXPIRY, "certificate" => label).set(t as f64);
        }
    }
}

/// The lane's door state as the two state sets `gate_door_mode` and `gate_door_flap` (1 for the
/// reported value, 0 for the others, so a dashboard or alert selects on the label alone).
pub fn door_state(lane: &str, state: Option<&DoorState>) {
    for m in DOOR_MODES {
        let on = state.is_some_and(|s| s.mode == m);
        gauge!(names::DOOR_MODE, "lane" => lane.to_owned(), "mode" => door_mode_label(m))
            .set(f64::from(u8::from(on)));
    }
    for f in FLAPS {
        let on = state.is_some_and(|s| s.flap == f);
        gauge!(names::DOOR_FLAP, "lane" => lane.to_owned(), "flap" => flap_label(f))
            .set(f64::from(u8::from(on)));
    }
}

/// How long the lane's door driver has been silent.
pub fn door_state_age(lane: &str, silent: Duration) {
    gauge!(names::DOOR_STATE_AGE, "lane" => lane.to_owned()).set(silent.as_secs_f64());
}

const DOOR_MODES: [DoorMode; 6] = [
    DoorMode::Normal,
    DoorMode::HeldOpen,
    DoorMode::HeldClosed,
    DoorMode::FailsafeOpen,
    DoorMode::FailsafeClosed,
    DoorMode::Emergency,
];

const FLAPS: [Flap; 5] = [
    Flap::Closed,
    Flap::Opening,
    Flap::Open,
    Flap::Closing,
    Flap::Fault,
];

/// The wire spelling (docs/protocol.md), also the run report's. Exhaustive on purpose: a new mode
/// fails to compile here until it has a label (and a place in `DOOR_MODES`).
pub(crate) fn door_mode_label(m: DoorMode) -> &'static str {
    match m {
        DoorMode::Normal => "normal",
        DoorMode::HeldOpen => "held_open",
        DoorMode::HeldClosed => "held_closed",
        DoorMode::FailsafeOpen => "failsafe_open",
        DoorMode::FailsafeClosed => "failsafe_closed",
        DoorMode::Emergency => "emergency",
    }
}

fn flap_label(f: Flap) -> &'static str {
    match f {
        Flap::Closed => "closed",
        Flap::Opening => "opening",
        Flap::Open => "open",
        Flap::Closing => "closing",
        Flap::Fault => "fault",
    }
}

/// `# HELP` for every metric.
fn describe() {
    protocol::metrics::describe(names::ALL);
}

#[cfg(test)]
mod tests {
    use metrics::histogram;
    use names::Kind;

    use super::*;

    /// What the exporter really renders for every metric in `names::ALL`: the `# TYPE` and
    /// `# HELP` lines and the series names that `Metric::series` promises (the deploy files' test
    /// relies on them), and no metric outside the table.
    #[test]
    fn every_metric_renders_as_the_table_says() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            create_series(&["L1".to_owned()]);
            for m in names::ALL {
                match m.kind {
                    Kind::Counter => counter!(m.name).increment(1),
                    Kind::Gauge => gauge!(m.name).set(1.0),
                    Kind::Seconds | Kind::Summary => histogram!(m.name).record(0.01),
                }
            }
        });
        let text = handle.render();
        for m in names::ALL {
            let kind = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Seconds => "histogram",
                Kind::Summary => "summary",
            };
            assert!(
                text.contains(&format!("# TYPE {} {kind}\n", m.name)),
                "{}: no TYPE {kind} in\n{text}",
                m.name
            );
            assert!(
                text.contains(&format!("# HELP {} {}\n", m.name, m.help)),
                "{}: HELP missing",
                m.name
            );
            for series in m.series() {
                let rendered = text.lines().any(|l| {
                    l.strip_prefix(series.as_str())
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                });
                assert!(rendered, "{series} not rendered in\n{text}");
            }
        }
        for typed in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = typed.split(' ').next().unwrap_or_default();
            assert!(
                names::ALL.iter().any(|m| m.name == name),
                "{name} exported but not in names::ALL"
            );
        }
    }

    #[test]
    fn door_state_sets_one_mode_and_one_flap() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        let state = DoorState {
            v: protocol::CONTROL_VERSION,
            lane: "L1".into(),
            flap: Flap::Closed,
            mode: DoorMode::FailsafeClosed,
            position: 0.0,
            obstructed: false,
            epoch: None,
            ack_seq: 0,
            clock_ms: 0,
            rejected: protocol::Rejected::default(),
            reason: String::new(),
            t_unix_ms: 0,
        };
        metrics::with_local_recorder(&recorder, || door_state("L1", Some(&state)));
        let text = handle.render();
        let mut on: Vec<&str> = text.lines().filter(|l| l.ends_with(" 1")).collect();
        on.sort_unstable();
        assert_eq!(
            on,
            [
                "gate_door_flap{lane=\"L1\",flap=\"closed\"} 1",
                "gate_door_mode{lane=\"L1\",mode=\"failsafe_closed\"} 1",
            ]
        );
        assert_eq!(
            text.lines().filter(|l| l.ends_with(" 0")).count(),
            6 + 5 - 2
        );
    }
}
