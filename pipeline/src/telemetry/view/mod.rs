//! The live lane view (`GET /`): one tile per lane with its camera, door, arch and last decisions,
//! fed by server-sent events (`GET /events`), and the operator's door actions
//! (`POST /lanes/{lane}/door`), which answer only once the lane's door driver has acknowledged
//! them. The page shows no image: decisions carry reason, similarity and latency, never a face.
//!
//! Reading is as open as `/metrics` (the listener is loopback by default). Acting needs the operator
//! token (`[metrics] operator_token_file`, sent as `Authorization: Bearer …`); without one
//! configured, actions are refused. The event stream's format is in docs/lane-view.md.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use protocol::{ArchColour, CtlReply, Decision, DoorAction, DoorState, Health};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// How long an operator's action waits for the station loop, then for the driver's acknowledgement.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// Decisions kept for a page that connects later (per station, newest last).
const RECENT: usize = 64;

/// What the page draws each second: the station's health plus what only the view needs.
#[derive(Debug, Clone, Serialize)]
pub struct StationView {
    #[serde(flatten)]
    pub health: Health,
    /// Each lane's arch colour as its light driver last reported it (same order as the lanes).
    pub arches: Vec<Option<ArchColour>>,
    /// Mean stage times of the ticks since the previous view, milliseconds.
    pub stages: StageTimes,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    pub ticks: usize,
    /// Capture → normalised frame, per frame.
    pub normalise_ms: f64,
    pub detect_ms: f64,
    pub embed_ms: f64,
    pub matching_ms: f64,
    pub pad_ms: f64,
}

/// An operator's door action on its way to the station loop, and where its reply goes.
pub struct OperatorRequest {
    pub lane: String,
    pub action: DoorAction,
    pub reply: oneshot::Sender<CtlReply>,
}

/// The station loop's side: what it publishes for the view.
pub struct ViewFeed {
    view: watch::Sender<Option<StationView>>,
    decisions: broadcast::Sender<Decision>,
    recent: std::sync::Mutex<std::collections::VecDeque<Decision>>,
    doors: watch::Sender<HashMap<String, DoorState>>,
}

impl ViewFeed {
    pub fn view(&self, v: StationView) {
        self.view.send_replace(Some(v));
    }

    pub fn decision(&self, d: &Decision) {
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(d.clone());
        }
        // No page connected is not an error.
        let _ = self.decisions.send(d.clone());
    }

    /// The recent decisions, oldest first.
    fn recent(&self) -> Vec<Decision> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn door(&self, s: &DoorState) {
        self.doors.send_modify(|m| {
            m.insert(s.lane.clone(), s.clone());
        });
    }
}

/// The HTTP side.
#[derive(Clone)]
pub(crate) struct ViewState {
    feed: Arc<ViewFeed>,
    operator: mpsc::Sender<OperatorRequest>,
    /// The operator token's bytes; `None`: actions are off.
    token: Option<Arc<Vec<u8>>>,
}

/// The feed for the station loop, the state for the routes, and the receiver of operator
/// requests the loop answers.
pub(crate) fn channels(
    token: Option<Vec<u8>>,
) -> (Arc<ViewFeed>, ViewState, mpsc::Receiver<OperatorRequest>) {
    let feed = Arc::new(ViewFeed {
        view: watch::channel(None).0,
        decisions: broadcast::channel(256).0,
        recent: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(RECENT)),
        doors: watch::channel(HashMap::new()).0,
    });
    // A few requests in flight at most: an operator clicks, the loop answers within a tick.
    let (tx, rx) = mpsc::channel(8);
    let state = ViewState {
        feed: feed.clone(),
        operator: tx,
        token: token.map(Arc::new),
    };
    (feed, state, rx)
}

pub(crate) fn routes() -> axum::Router<ViewState> {
    axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/events", axum::routing::get(events))
        .route("/lanes/{lane}/door", axum::routing::post(door))
}

/// Where the page takes the snapshot it is served with.
const INITIAL: &str = "{\"station\":null,\"decisions\":[]}";

/// The page (one file beside this host, so it can be edited and checked as HTML), served with the
/// latest station view and recent decisions inside it, so it shows the lanes at once, before its
/// event stream delivers anything (and a browser that only loads the page sees them too).
async fn page(State(s): State<ViewState>) -> Response {
    let initial = serde_json::json!({
        "station": *s.feed.view.borrow(),
        "decisions": s.feed.recent(),
    });
    // Inside a <script> element: no "</script>" may appear, so every '<' is escaped (JSON allows
    // \u003c in strings, and JSON has no '<' outside them).
    let initial = initial.to_string().replace('<', "\\u003c");
    let html = include_str!("view.html").replacen(INITIAL, &initial, 1);
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// `station` every second, `decision` as each walker is decided (after the recent ones, on
/// connecting), as JSON.
async fn events(State(s): State<ViewState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut view = s.feed.view.subscribe();
    // The latest view goes out at once, not a second later.
    view.mark_changed();
    let start = Feed {
        view,
        decisions: s.feed.decisions.subscribe(),
        backlog: s.feed.recent().into(),
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok(ev), f))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct Feed {
    view: watch::Receiver<Option<StationView>>,
    decisions: broadcast::Receiver<Decision>,
    backlog: std::collections::VecDeque<Decision>,
}

impl Feed {
    /// The next event; `None` ends the stream (the station is stopping).
    async fn next(&mut self) -> Option<Event> {
        if let Some(d) = self.backlog.pop_front() {
            return Some(json_event("decision", &d));
        }
        loop {
            tokio::select! {
                r = self.view.changed() => {
                    r.ok()?;
                    let v = self.view.borrow_and_update().clone();
                    if let Some(v) = v {
                        return Some(json_event("station", &v));
                    }
                }
                r = self.decisions.recv() => match r {
                    Ok(d) => return Some(json_event("decision", &d)),
                    // A page too slow to keep up misses decisions, and is told how many.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some(Event::default().event("lagged").data(n.to_string()));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn json_event<T: Serialize>(name: &str, v: &T) -> Event {
    match Event::default().event(name).json_data(v) {
        Ok(e) => e,
        // Our own types always serialise; should one not, the page is told rather than the stream
        // ending.
        Err(e) => Event::default().event("error").data(e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoorBody {
    action: DoorAction,
}

/// What an operator's action answers: the driver's acknowledgement, or why there is none.
#[derive(Debug, Serialize)]
struct ActionReply {
    ok: bool,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    door: Option<DoorState>,
}

fn reply(code: StatusCode, message: String, door: Option<DoorState>) -> Response {
    (
        code,
        Json(ActionReply {
            ok: code == StatusCode::OK,
            message,
            door,
        }),
    )
        .into_response()
}

/// `POST /lanes/{lane}/door` with `{"action":"hold_open"}` (or `hold_closed`, `release`, `open`,
/// `close`) and the operator's bearer token: sent like `gated ctl door`, answered once the lane's
/// driver acknowledges it.
async fn door(
    State(s): State<ViewState>,
    Path(lane): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &s.token else {
        return reply(
            StatusCode::FORBIDDEN,
            "operator actions are off: set [metrics] operator_token_file".into(),
            None,
        );
    };
    if !authorised(&headers, token) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "operator token missing or wrong".into(),
            None,
        );
    }
    let action = match serde_json::from_slice::<DoorBody>(&body) {
        Ok(b) => b.action,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"action\": \"hold_open\"}} or the like: {e}"),
                None,
            );
        }
    };
    let mut doors = s.feed.doors.subscribe();
    let (tx, rx) = oneshot::channel();
    let req = OperatorRequest {
        lane: lane.clone(),
        action,
        reply: tx,
    };
    if s.operator.send(req).await.is_err() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the station is stopping".into(),
            None,
        );
    }
    let sent = match tokio::time::timeout(ACK_WAIT, rx).await {
        Ok(Ok(r)) => r,
        _ => {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the station loop did not answer".into(),
                None,
            );
        }
    };
    let (Some(seq), Some(epoch), true) = (sent.seq, sent.epoch, sent.ok) else {
        return reply(StatusCode::CONFLICT, sent.message, None);
    };
    let acked = tokio::time::timeout(ACK_WAIT, async {
        loop {
            if let Some(st) = doors.borrow_and_update().get(&lane)
                && st.acknowledges(epoch, seq)
            {
                return Some(st.clone());
            }
            doors.changed().await.ok()?;
        }
    })
    .await;
    match acked {
        Ok(Some(st)) => reply(
            StatusCode::OK,
            format!("{action:?} acknowledged by {lane}'s door: {:?}", st.mode),
            Some(st),
        ),
        _ => reply(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{action:?} sent to {lane} (seq {seq}) but its door driver did not acknowledge it within {} s",
                ACK_WAIT.as_secs()
            ),
            None,
        ),
    }
}

fn authorised(headers: &HeaderMap, token: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.trim().as_bytes().ct_eq(token).into()
}

/// Reads the operator token: its first line, at least 32 characters, from a file only its owner
/// reads (it is a password).
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>, super::TelemetryError> {
    let text = protocol::private_file::read(path)?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.len() < 32 {
        return Err(super::TelemetryError::ShortToken(path.to_path_buf()));
    }
    Ok(token.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorised() {
        let token = b"0123456789abcdef0123456789abcdef";
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(authorised(
            &with("Bearer 0123456789abcdef0123456789abcdef"),
            token
        ));
        assert!(!authorised(&with("Bearer 0123456789abcdef"), token));
        assert!(!authorised(
            &with("Basic 0123456789abcdef0123456789abcdef"),
            token
        ));
        assert!(!authorised(&HeaderMap::new(), token));
    }

    #[test]
    fn a_token_file_must_be_private_and_long() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("op.token");
        std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&p).unwrap_err();
        let why = std::error::Error::source(&e).unwrap().to_string();
        assert!(why.contains("chmod 600"), "{why}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap().len(), 32);
        std::fs::write(&p, "short\n").unwrap();
        assert!(
            read_token(&p)
                .unwrap_err()
                .to_string()
                .contains("shorter than 32")
        );
        assert!(read_token(&dir.path().join("none")).is_err());
    }
}
