//! The station's HTTP endpoints (loopback by default; only the lane view's operator actions act,
//! and they need the operator token):
//! - `GET /metrics`: Prometheus text;
//! - `GET /healthz`: liveness, 200 while the station loop publishes its health (every second),
//!   503 once it has been silent for [`SILENT_AFTER_MS`];
//! - `GET /readyz`: readiness, 200 when the station can decide walkers on every lane ([`readiness`]),
//!   else 503 with the reasons, as JSON;
//! - `GET /`, `GET /events`, `POST /lanes/{lane}/door`: the live lane view ([`super::view`]);
//! - anything else: 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use protocol::{DoorMode, Health, LaneStatus, unix_ms};
use tokio::sync::{mpsc, watch};

use super::view::{self, OperatorRequest, ViewFeed};
use tracing::warn;

/// The station loop is called stuck after this long without a health update.
pub const SILENT_AFTER_MS: u64 = 5_000;

/// Where the station loop publishes its health and view for the HTTP endpoints, and hears the
/// view's operator requests.
pub struct HealthBoard {
    health: watch::Sender<Option<Health>>,
    pub view: Arc<ViewFeed>,
    /// Taken by the station loop, which answers them.
    pub operator: Option<mpsc::Receiver<OperatorRequest>>,
}

impl HealthBoard {
    pub fn publish(&self, health: Health) {
        self.health.send_replace(Some(health));
    }
}

struct Shared {
    metrics: PrometheusHandle,
    health: watch::Receiver<Option<Health>>,
}

pub(super) fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    token: Option<Vec<u8>>,
) -> HealthBoard {
    let (tx, rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        metrics,
        health: rx,
    });
    let (feed, view_state, operator) = view::channels(token);
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
        .merge(view::routes().with_state(view_state))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: /, /events, /metrics, /healthz, /readyz\n",
            )
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "metrics and health endpoint stopped");
        }
    });
    HealthBoard {
        health: tx,
        view: feed,
        operator: Some(operator),
    }
}

async fn metrics_text(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let silent = s
        .health
        .borrow()
        .as_ref()
        .map(|h| unix_ms().saturating_sub(h.t_unix_ms) > SILENT_AFTER_MS);
    match silent {
        Some(true) => (StatusCode::SERVICE_UNAVAILABLE, "station loop silent\n").into_response(),
        Some(false) => (StatusCode::OK, "ok\n").into_response(),
        None => (StatusCode::OK, "starting\n").into_response(),
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let problems = readiness(s.health.borrow().as_ref(), unix_ms());
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": problems.is_empty(), "problems": problems });
    (code, axum::Json(body)).into_response()
}

/// A door driver publishes its state at least every 200 ms: one silent for this long is gone (or
/// its link is), whatever its last state said.
pub const DOOR_SILENT_AFTER_MS: u64 = 2_000;

/// Why the station cannot decide walkers on every lane now (empty: ready). Ready means: the loop
/// published its health lately, the GPU is there, every lane's camera delivers, and every lane's
/// door driver reports, lately, a mode in which it obeys gated (normal, or an operator's hold).
pub fn readiness(health: Option<&Health>, now_ms: u64) -> Vec<String> {
    let Some(h) = health else {
        return vec!["starting: no health published yet".into()];
    };
    let mut p = Vec::new();
    if now_ms.saturating_sub(h.t_unix_ms) > SILENT_AFTER_MS {
        p.push(format!(
            "station loop silent for {} ms",
            now_ms.saturating_sub(h.t_unix_ms)
        ));
    }
    if h.gpu_lost {
        p.push("GPU device lost".into());
    }
    for l in &h.lanes {
        match l.status {
            LaneStatus::Running => {}
            LaneStatus::Starting => p.push(format!("lane {}: camera starting", l.lane)),
            LaneStatus::Degraded => p.push(format!(
                "lane {}: camera degraded{}",
                l.lane,
                l.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
            LaneStatus::Finished => p.push(format!("lane {}: recording ended", l.lane)),
        }
        match (l.door_mode, l.door_age_ms) {
            (None, _) => p.push(format!("lane {}: no state from its door driver", l.lane)),
            (Some(m), Some(age)) if age > DOOR_SILENT_AFTER_MS => p.push(format!(
                "lane {}: door driver silent for {age} ms (last said {m:?})",
                l.lane
            )),
            (Some(DoorMode::Normal | DoorMode::HeldOpen | DoorMode::HeldClosed), _) => {}
            (Some(m), _) => p.push(format!("lane {}: door in {m:?}", l.lane)),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{LaneHealth, VERSION};

    fn lane(id: &str, status: LaneStatus, door: Option<DoorMode>) -> LaneHealth {
        LaneHealth {
            lane: id.into(),
            status,
            frames_in: 0,
            frames_processed: 0,
            frames_dropped: 0,
            luma_mean: 0.0,
            illumination: 0,
            door: None,
            door_mode: door,
            door_age_ms: door.map(|_| 100),
            reason: None,
        }
    }

    fn health(lanes: Vec<LaneHealth>, t: u64) -> Health {
        Health {
            v: VERSION,
            station: "s".into(),
            gpu_adapter: "a".into(),
            gpu_lost: false,
            lanes,
            t_unix_ms: t,
        }
    }

    #[test]
    fn ready_only_when_every_lane_can_decide() {
        let ok = health(
            vec![
                lane("L1", LaneStatus::Running, Some(DoorMode::Normal)),
                lane("L2", LaneStatus::Running, Some(DoorMode::HeldClosed)),
            ],
            1_000,
        );
        assert!(readiness(Some(&ok), 1_500).is_empty());
        assert_eq!(readiness(None, 0).len(), 1);
        assert_eq!(
            readiness(Some(&ok), 1_000 + SILENT_AFTER_MS + 1),
            vec![format!(
                "station loop silent for {} ms",
                SILENT_AFTER_MS + 1
            )]
        );
        let bad = Health {
            gpu_lost: true,
            ..health(
                vec![
                    lane("L1", LaneStatus::Degraded, Some(DoorMode::FailsafeClosed)),
                    lane("L2", LaneStatus::Starting, None),
                ],
                1_000,
            )
        };
        assert_eq!(
            readiness(Some(&bad), 1_000),
            vec![
                "GPU device lost",
                "lane L1: camera degraded",
                "lane L1: door in FailsafeClosed",
                "lane L2: camera starting",
                "lane L2: no state from its door driver",
            ]
        );
        // A door whose last word was "normal" but which has been silent since is not ready.
        let mut stale = lane("L1", LaneStatus::Running, Some(DoorMode::Normal));
        stale.door_age_ms = Some(DOOR_SILENT_AFTER_MS + 500);
        assert_eq!(
            readiness(Some(&health(vec![stale], 1_000)), 1_000),
            vec![format!(
                "lane L1: door driver silent for {} ms (last said Normal)",
                DOOR_SILENT_AFTER_MS + 500
            )]
        );
    }
}
