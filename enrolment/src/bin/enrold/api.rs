//! The router: auth and rate limiting, body limits, and every handler except enrolment.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use domain::SubjectId;
use domain::tickets::{OpenTrip, Ticket, TicketId, TicketKind, TripRecord};
use enrolment::store::SubjectRecord;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response as DocResponse};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::account;
use crate::app::App;
use crate::auth::{Client, Key};
use crate::enrol;
use crate::error::ApiError;

/// What the generated document says beyond the handlers' own annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "enrold: central enrolment service",
        version = "1",
        description = "Enrolment of passengers' faces, tickets and erasure for the walk-through face gate. \
            Every endpoint except /openapi.json and /healthz needs `Authorization: Bearer <token>`. \
            Errors are `{code, message}` JSON (docs/enrolment.md)."
    ),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Every operation of `doc` answers the two refusals [`guard`] gives itself, 401 and 429.
fn guarded(doc: &mut Document) {
    let error = |what: &str| -> RefOr<DocResponse> {
        utoipa::openapi::ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Error")))
                    .build(),
            )
            .into()
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let r = &mut op.responses.responses;
            r.insert(
                "401".into(),
                error("missing or wrong bearer token (WWW-Authenticate: Bearer)"),
            );
            r.insert("429".into(), error("rate limited (Retry-After: seconds)"));
        }
    }
}

/// The routes behind [`guard`], each with its OpenAPI description: the document is made from the
/// handlers themselves, so it cannot list a path, parameter or type the service does not have.
fn authed() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(enrol::enrol))
        .routes(routes!(subject, erase))
        .routes(routes!(tickets, link))
        .routes(routes!(unlink))
        .routes(routes!(account::link_account, account::unlink_account))
        .routes(routes!(account::charges))
        .routes(routes!(account::ledger))
        .routes(routes!(trips))
        .routes(routes!(changes))
        .routes(routes!(audit))
}

/// The routes served without a token.
fn public() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(openapi))
        .routes(routes!(healthz))
}

/// Both sets of routes, and the service's OpenAPI document made from them.
fn routes() -> (Router<Arc<App>>, Router<Arc<App>>, Document) {
    let (public, public_doc) = public().split_for_parts();
    let (authed, mut authed_doc) = authed().split_for_parts();
    guarded(&mut authed_doc);
    let mut doc = ApiDoc::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    doc.merge(public_doc);
    doc.merge(authed_doc);
    open_flattened(&mut doc);
    (public, authed, doc)
}

/// The OpenAPI document of the service, as `/openapi.json` serves it and `enrold openapi` prints it.
pub fn document() -> Document {
    routes().2
}

/// The views that add a field to a stored record (`#[serde(flatten)]`, e.g. `subject` beside a
/// `SubjectRecord`) become `allOf` [record, extra fields]. The records refuse unknown fields when
/// read (`deny_unknown_fields`), which the derive writes as `additionalProperties: false`; inside an
/// `allOf` that would forbid the very fields added beside them, so those parts are left open.
fn open_flattened(doc: &mut Document) {
    use utoipa::openapi::schema::Schema;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::AllOf(all)) = schema {
            for part in &mut all.items {
                if let RefOr::T(Schema::Object(o)) = part {
                    o.additional_properties = None;
                }
            }
        }
    }
}

/// The document served at `/openapi.json`, serialised once.
#[derive(Clone)]
struct DocJson(Bytes);

pub fn router(app: Arc<App>) -> Result<Router, serde_json::Error> {
    let (public, authed, doc) = routes();
    let doc = DocJson(Bytes::from(doc.to_pretty_json()?));
    let authed = authed
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(app.cfg.limits.max_body_bytes));
    Ok(public
        .merge(authed)
        // Inside the routing, where the route template is known; around the guard, so its
        // refusals are counted too.
        .route_layer(middleware::from_fn(crate::telemetry::track))
        .layer(axum::Extension(doc))
        .fallback(not_found)
        .with_state(app))
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

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", security(()),
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
async fn openapi(axum::Extension(doc): axum::Extension<DocJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}

#[derive(Serialize, ToSchema)]
struct Health {
    ok: bool,
    /// Subjects in the in-memory gallery.
    subjects: usize,
}

/// Liveness and gallery size.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", security(()),
    responses((status = 200, description = "serving", body = Health)))]
async fn healthz(State(app): State<Arc<App>>) -> Json<Health> {
    let subjects = app.gallery.read().map(|g| g.len()).unwrap_or(0);
    Json(Health { ok: true, subjects })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no_route", "no such endpoint".into())
}

pub(crate) fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest("bad_path", e.body_text())
}

/// The `{id}` of a subject path, parsed; refusals are JSON errors like every other.
pub(crate) struct SubjectArg(pub(crate) SubjectId);

impl<S: Send + Sync> FromRequestParts<S> for SubjectArg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(bad_path)?;
        parse_id(&id).map(Self)
    }
}

/// The `from`/`limit` query of the listing routes; refusals are JSON errors like every other.
pub(crate) struct Paged(pub(crate) Page);

impl<S: Send + Sync> FromRequestParts<S> for Paged {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::BadRequest("bad_query", m);
        let Query(p) = Query::<Page>::from_request_parts(parts, state)
            .await
            .map_err(|e| bad(e.body_text()))?;
        // The bounds the document states (an OpenAPI int64 and a page size), enforced rather than
        // silently clamped, so a client learns its request was not what it meant.
        if p.from > i64::MAX as u64 {
            return Err(bad(format!("from must be at most {}", i64::MAX)));
        }
        if p.limit > MAX_PAGE {
            return Err(bad(format!("limit must be at most {MAX_PAGE}")));
        }
        Ok(Self(p))
    }
}

fn parse_id(s: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(s).map_err(|e| ApiError::BadRequest("bad_subject_id", e.to_string()))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, enrolment::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

pub(crate) fn no_subject(id: &SubjectId) -> ApiError {
    ApiError::NotFound("no_subject", format!("subject {id} is not enrolled"))
}

#[derive(Serialize, ToSchema)]
#[schema(as = Subject)]
struct SubjectView {
    subject: SubjectId,
    #[serde(flatten)]
    #[schema(inline)]
    record: SubjectRecord,
}

/// A subject's record (consent, enrolment time).
#[utoipa::path(get, path = "/subjects/{id}", operation_id = "getSubject", params(SubjectPath),
    responses(
        (status = 200, description = "the subject", body = SubjectView),
        (status = 400, description = "not a subject id", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
    ))]
async fn subject(
    State(app): State<Arc<App>>,
    SubjectArg(id): SubjectArg,
) -> Result<Json<SubjectView>, ApiError> {
    let store = app.store.clone();
    let record = blocking(move || store.subject(&id))
        .await?
        .ok_or_else(|| no_subject(&id))?;
    Ok(Json(SubjectView {
        subject: id,
        record,
    }))
}

/// Erase a subject (withdrawal of consent): data key destroyed, rows deleted, store compacted.
#[utoipa::path(delete, path = "/subjects/{id}", operation_id = "erase", params(SubjectPath),
    responses(
        (status = 204, description = "erased"),
        (status = 400, description = "not a subject id", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
    ))]
async fn erase(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    SubjectArg(id): SubjectArg,
) -> Result<StatusCode, ApiError> {
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    kind: TicketKind,
}

/// Link a ticket (the centre assigns its id).
#[utoipa::path(post, path = "/subjects/{id}/tickets", operation_id = "linkTicket", params(SubjectPath),
    request_body = LinkBody,
    responses(
        (status = 201, description = "linked", body = Ticket),
        (status = 400, description = "not a subject id, or not a ticket", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
        (status = 413, description = "body too large", body = crate::error::Body),
    ))]
async fn link(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    SubjectArg(id): SubjectArg,
    body: Result<Json<LinkBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
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

/// Unlink a ticket.
#[utoipa::path(delete, path = "/subjects/{id}/tickets/{ticket}", operation_id = "unlinkTicket",
    params(SubjectPath, ("ticket" = u64, Path, description = "the ticket's id")),
    responses(
        (status = 204, description = "unlinked"),
        (status = 400, description = "not a subject id", body = crate::error::Body),
        (status = 404, description = "no such subject or ticket", body = crate::error::Body),
    ))]
async fn unlink(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((id, ticket)) = path.map_err(bad_path)?;
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

/// The subject's tickets, in link order.
#[utoipa::path(get, path = "/subjects/{id}/tickets", operation_id = "listTickets", params(SubjectPath),
    responses(
        (status = 200, description = "tickets", body = [Ticket]),
        (status = 400, description = "not a subject id", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
    ))]
async fn tickets(
    State(app): State<Arc<App>>,
    SubjectArg(id): SubjectArg,
) -> Result<Json<Vec<Ticket>>, ApiError> {
    let store = app.store.clone();
    Ok(Json(
        blocking(move || store.tickets(&id))
            .await?
            .ok_or_else(|| no_subject(&id))?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// First sequence number.
    #[serde(default)]
    #[param(maximum = 9223372036854775807_u64)]
    pub(crate) from: u64,
    /// At most this many (trips: at most 1000 a page whatever is asked).
    #[serde(default = "default_limit")]
    #[param(default = 100, maximum = 10000)]
    pub(crate) limit: usize,
}

/// The largest page a listing route answers.
const MAX_PAGE: usize = 10_000;

/// The `{id}` of every subject path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct SubjectPath {
    /// Subject id, 32 hex digits.
    id: SubjectId,
}

fn default_limit() -> usize {
    100
}

#[derive(Serialize, ToSchema)]
struct Trips {
    open_trip: Option<OpenTrip>,
    trips: Vec<TripLine>,
}

#[derive(Serialize, ToSchema)]
struct TripLine {
    seq: u64,
    #[serde(flatten)]
    #[schema(inline)]
    record: TripRecord,
}

/// The subject's open trip and trip journal.
#[utoipa::path(get, path = "/subjects/{id}/trips", operation_id = "listTrips", params(SubjectPath, Page),
    responses(
        (status = 200, description = "trips", body = Trips),
        (status = 400, description = "not a subject id, or a malformed query", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
    ))]
async fn trips(
    State(app): State<Arc<App>>,
    SubjectArg(id): SubjectArg,
    Paged(p): Paged,
) -> Result<Json<Trips>, ApiError> {
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

/// The change sequence (upserts, ticket changes, erasures) for station distribution.
#[utoipa::path(get, path = "/changes", operation_id = "listChanges", params(Page),
    responses(
        (status = 200, description = "changes, oldest first", body = [enrolment::store::Change]),
        (status = 400, description = "a malformed query", body = crate::error::Body),
    ))]
async fn changes(
    State(app): State<Arc<App>>,
    Paged(p): Paged,
) -> Result<impl IntoResponse, ApiError> {
    let store = app.store.clone();
    let limit = p.limit;
    Ok(Json(blocking(move || store.changes(p.from, limit)).await?))
}

#[derive(Serialize, ToSchema)]
struct AuditLine {
    seq: u64,
    #[serde(flatten)]
    #[schema(inline)]
    event: enrolment::store::AuditEvent,
}

/// The audit log (enrol, link, unlink, erase, key rotation).
#[utoipa::path(get, path = "/audit", operation_id = "listAudit", params(Page),
    responses(
        (status = 200, description = "events, oldest first", body = [AuditLine]),
        (status = 400, description = "a malformed query", body = crate::error::Body),
    ))]
async fn audit(
    State(app): State<Arc<App>>,
    Paged(p): Paged,
) -> Result<impl IntoResponse, ApiError> {
    let store = app.store.clone();
    let limit = p.limit;
    let lines = blocking(move || store.audit(p.from, limit)).await?;
    Ok(Json(
        lines
            .into_iter()
            .map(|(seq, event)| AuditLine { seq, event })
            .collect::<Vec<_>>(),
    ))
}
