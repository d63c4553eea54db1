//! Fare routes: a subject's payment account, the charges the fare ledger booked against accounts
//! (which the payment processor collects in order), and the ledger itself, for the operator's
//! review of conflicts (docs/enrolment.md, docs/tickets.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use enrolment::store::{AccountChange, AccountRef, Charge, LedgerRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{Page, Paged, SubjectArg, SubjectPath, bad_path, blocking};
use crate::app::App;
use crate::auth::Client;
use crate::error::ApiError;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountBody {
    /// The payment processor's token for the account (never a card number).
    reference: AccountRef,
}

/// Link (or replace) the payment account a pass's extension fares are charged to at exit.
#[utoipa::path(put, path = "/subjects/{id}/account", operation_id = "linkAccount", params(SubjectPath),
    request_body = AccountBody,
    responses(
        (status = 204, description = "linked (or already this account)"),
        (status = 400, description = "not a subject id, or not an account reference", body = crate::error::Body),
        (status = 404, description = "not enrolled", body = crate::error::Body),
        (status = 413, description = "body too large", body = crate::error::Body),
    ))]
pub(crate) async fn link_account(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    SubjectArg(id): SubjectArg,
    body: Result<Json<AccountBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("body_too_large", e.body_text()),
        _ => ApiError::BadRequest("bad_account", e.body_text()),
    })?;
    set(&app, &client, id, Some(body.reference)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unlink the payment account: from then on an extension fare sends the passenger to the fare
/// adjustment machine again.
#[utoipa::path(delete, path = "/subjects/{id}/account", operation_id = "unlinkAccount", params(SubjectPath),
    responses(
        (status = 204, description = "unlinked"),
        (status = 400, description = "not a subject id", body = crate::error::Body),
        (status = 404, description = "not enrolled, or no account linked", body = crate::error::Body),
    ))]
pub(crate) async fn unlink_account(
    State(app): State<Arc<App>>,
    axum::Extension(client): axum::Extension<Client>,
    SubjectArg(id): SubjectArg,
) -> Result<StatusCode, ApiError> {
    match set(&app, &client, id, None).await? {
        AccountChange::Unchanged => Err(ApiError::NotFound(
            "no_account",
            format!("subject {id} has no payment account"),
        )),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn set(
    app: &Arc<App>,
    client: &Client,
    id: domain::SubjectId,
    reference: Option<AccountRef>,
) -> Result<AccountChange, ApiError> {
    let store = app.store.clone();
    let actor = client.0.clone();
    let change = blocking(move || store.set_account(&id, reference, &actor)).await?;
    if change != AccountChange::Unchanged {
        app.changed();
        tracing::info!(client = %client.0, subject = %id, ?change, "payment account");
    }
    Ok(change)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChargeLine {
    seq: u64,
    #[serde(flatten)]
    #[schema(inline)]
    charge: Charge,
}

/// Post-pay charges booked from the stations' passages, oldest first, numbered without gaps: the
/// payment processor collects from the last sequence it settled.
#[utoipa::path(get, path = "/charges", operation_id = "listCharges", params(Page),
    responses(
        (status = 200, description = "charges, oldest first", body = [ChargeLine]),
        (status = 400, description = "a malformed query", body = crate::error::Body),
    ))]
pub(crate) async fn charges(
    State(app): State<Arc<App>>,
    Paged(p): Paged,
) -> Result<Json<Vec<ChargeLine>>, ApiError> {
    let store = app.store.clone();
    let limit = p.limit;
    let lines = blocking(move || store.charges(p.from, limit)).await?;
    Ok(Json(
        lines
            .into_iter()
            .map(|(seq, charge)| ChargeLine { seq, charge })
            .collect(),
    ))
}

/// The `{station}` of the ledger's path: its pattern is in the document, so a client knows what a
/// station id is before it is refused one.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct StationPath {
    /// The station's id.
    station: domain::StationId,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LedgerLine {
    /// The station's passage sequence.
    seq: u64,
    #[serde(flatten)]
    #[schema(inline)]
    row: LedgerRow,
}

/// The fare ledger of one station: the passages it reported, booked in its sequence, each with its
/// conflict when it disagreed with what the centre knew (for review; docs/tickets.md).
#[utoipa::path(get, path = "/stations/{station}/ledger", operation_id = "listLedger",
    params(StationPath, Page),
    responses(
        (status = 200, description = "booked passages, oldest first", body = [LedgerLine]),
        (status = 400, description = "not a station id, or a malformed query", body = crate::error::Body),
    ))]
pub(crate) async fn ledger(
    State(app): State<Arc<App>>,
    station: Result<Path<String>, PathRejection>,
    Paged(p): Paged,
) -> Result<Json<Vec<LedgerLine>>, ApiError> {
    let Path(station) = station.map_err(bad_path)?;
    let station = domain::StationId::new(&station)
        .map_err(|e| ApiError::BadRequest("bad_station", e.to_string()))?;
    let store = app.store.clone();
    let limit = p.limit;
    let rows = blocking(move || store.ledger(&station, p.from, limit)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(seq, row)| LedgerLine { seq, row })
            .collect(),
    ))
}
