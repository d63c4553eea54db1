//! The router: auth and rate limiting, body limits, and every handler except enrolment.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use domain::SubjectId;
use domain::tickets::{OpenTrip, Ticket, TicketId, TicketKind, TripRecord};
use enrolment::store::SubjectRecord;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{Client, Key};
use crate::enrol;
use crate::error::ApiError;

pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(app: Arc<App>) -> Router {
    let max_body = app.cfg.limits.max_body_bytes;
    let authed = Router::new()
        .route("/subjects", post(enrol::enrol))
        .route("/subjects/{id}", get(subject).delete(erase))
        .route("/subjects/{id}/tickets", get(tickets).post(link))
        .route("/subjects/{id}/tickets/{ticket}", delete(unlink))
        .route("/subjects/{id}/trips", get(trips))
        .route("/changes", get(changes))
        .route("/audit", get(audit))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(max_body));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .merge(authed)
        // Inside the routing, where the route template is known; around the guard, so its
        // refusals are counted too.
        .route_layer(middleware::from_fn(crate::telemetry::track))
        .fallback(not_found)
        .with_state(app)
}

/// Body size (from Content-Length, before reading anything), bearer token, rate limit.
async fn guard(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let limit = app.cfg.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::TooLarge(
            "body_too_large",
            format!("request body larger than {limit} bytes"),
        )
        .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .and_then(|t| app.tokens.check(t));
    let Some(client) = presented else {
        metrics::counter!(enrolment::metrics::AUTH_FAILURES).increment(1);
        if let Err(s) = app.rate.take(Key::FailedAuth(peer.ip())) {
            metrics::counter!(enrolment::metrics::RATE_LIMITED).increment(1);
            return ApiError::RateLimited(s).into_response();
        }
        tracing::warn!(%peer, path = %req.uri().path(), "authentication failed");
        return ApiError::Unauthorized.into_response();
    };
    if let Err(s) = app.rate.take(Key::Client(client.0.clone())) {
        metrics::counter!(enrolment::metrics::RATE_LIMITED).increment(1);
        tracing::info!(client = %client.0, "rate limited");
        return ApiError::RateLimited(s).into_response();
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn healthz(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let n = app.gallery.read().map(|g| g.len()).unwrap_or(0);
    Json(serde_json::json!({"ok": true, "subjects": n}))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no_route", "no such endpoint".into())
}

fn parse_id(s: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(s).map_err(|e| ApiError::BadRequest("bad_subject_id", e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, enrolment::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn no_subject(id: &SubjectId) -> ApiError {
    ApiError::NotFound("no_subject", format!("subject {id} is not enrolled"))
}

#[derive(Serialize)]
struct SubjectView {
    subject: SubjectId,
    #[serde(flatten)]
    record: SubjectRecord,
}

async fn subject(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<SubjectView>, ApiError> {
    let id = parse_id(&id)?;
    let store = app.store.clone();
    let record = blocking(move || store.subject(&id))
        .await?
        .ok_or_else(|| no_subject(&id))?;
    Ok(Json(SubjectView {
        subject: id,
        record,
    }))
}

async fn erase(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let _serial = app.enrol_lock.lock().await;
    let store = app.store.clone();
    let actor = client.0.clone();
    let seq = blocking(move || store.erase(&id, &actor))
        .await?
        .ok_or_else(|| no_subject(&id))?;
    app.gallery
        .write()
        .map_err(|_| ApiError::Internal("gallery lock poisoned".into()))?
        .remove(&id);
    app.changed();
    tracing::info!(client = %client.0, subject = %id, seq, "erased");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    kind: TicketKind,
}

async fn link(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    Path(id): Path<String>,
    body: Result<Json<LinkBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let id = parse_id(&id)?;
    let Json(body) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("body_too_large", e.body_text()),
        _ => ApiError::BadRequest("bad_ticket", e.body_text()),
    })?;
    let store = app.store.clone();
    let actor = client.0.clone();
    let (ticket, seq) = blocking(move || store.link_ticket(&id, &body.kind, &actor)).await?;
    app.changed();
    tracing::info!(client = %client.0, subject = %id, ticket = ticket.id.0, seq, "ticket linked");
    Ok((StatusCode::CREATED, Json(ticket)))
}

async fn unlink(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    Path((id, ticket)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let store = app.store.clone();
    let actor = client.0.clone();
    if blocking(move || store.unlink_ticket(&id, TicketId(ticket), &actor)).await? {
        app.changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            "no_ticket",
            format!("subject {id} has no ticket {ticket}"),
        ))
    }
}

async fn tickets(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Ticket>>, ApiError> {
    let id = parse_id(&id)?;
    let store = app.store.clone();
    Ok(Json(
        blocking(move || store.tickets(&id))
            .await?
            .ok_or_else(|| no_subject(&id))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

#[derive(Serialize)]
struct Trips {
    open_trip: Option<OpenTrip>,
    trips: Vec<TripLine>,
}

#[derive(Serialize)]
struct TripLine {
    seq: u64,
    #[serde(flatten)]
    record: TripRecord,
}

async fn trips(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> Result<Json<Trips>, ApiError> {
    let id = parse_id(&id)?;
    let store = app.store.clone();
    let limit = p.limit.min(1000);
    let (open_trip, lines) = blocking(move || store.trips(&id, p.from, limit))
        .await?
        .ok_or_else(|| no_subject(&id))?;
    Ok(Json(Trips {
        open_trip,
        trips: lines
            .into_iter()
            .map(|(seq, record)| TripLine { seq, record })
            .collect(),
    }))
}

async fn changes(
    State(app): State<Arc<App>>,
    Query(p): Query<Page>,
) -> Result<impl IntoResponse, ApiError> {
    let store = app.store.clone();
    let limit = p.limit.min(10_000);
    Ok(Json(blocking(move || store.changes(p.from, limit)).await?))
}

#[derive(Serialize)]
struct AuditLine {
    seq: u64,
    #[serde(flatten)]
    event: enrolment::store::AuditEvent,
}

async fn audit(
    State(app): State<Arc<App>>,
    Query(p): Query<Page>,
) -> Result<impl IntoResponse, ApiError> {
    let store = app.store.clone();
    let limit = p.limit.min(10_000);
    let lines = blocking(move || store.audit(p.from, limit)).await?;
    Ok(Json(
        lines
            .into_iter()
            .map(|(seq, event)| AuditLine { seq, event })
            .collect::<Vec<_>>(),
    ))
}
