//! `POST /subjects`: the multipart form, the face work, the 1:N check and the durable write.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::Utc;
use domain::SubjectId;
use domain::seal;
use enrolment::check::{self, Accepted};
use enrolment::form::{self, FormLimits};
use enrolment::photo::DecodeLimits;
use enrolment::quality::{Reason, Rejection};
use enrolment::store::{Consent, EnrolRow, SubjectRecord};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::app::App;
use crate::auth::Client;
use crate::error::ApiError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    subject: SubjectId,
    photos: usize,
    template_version: u32,
    /// The change sequence stations will see this enrolment under.
    seq: u64,
    /// Time spent on the photos (decode, detect, embed), milliseconds.
    analysis_ms: u64,
}

/// Runs the face chain on every photo (on the blocking pool, `workers` at a time). Each photo's bytes
/// are dropped right after its analysis.
async fn analyse(
    app: &Arc<App>,
    photos: Vec<Zeroizing<Vec<u8>>>,
) -> Result<Result<Vec<Accepted>, Vec<Rejection>>, ApiError> {
    let limits = DecodeLimits {
        max_pixels: app.cfg.limits.max_pixels,
    };
    let mut tasks = Vec::new();
    for (i, bytes) in photos.into_iter().enumerate() {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = app.face_slots.acquire().await;
            let worker = app.clone();
            tokio::task::spawn_blocking(move || {
                let app = worker;
                check::analyse_photo(&app.faces, i, &bytes, limits, &app.cfg.quality)
            })
            .await
        }));
    }
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await?? {
            Ok(Ok(a)) => accepted.push(a),
            Ok(Err(r)) => refused.push(r),
            // The whole chain of causes: the model, then the engine's reason.
            Err(e) => return Err(ApiError::Internal(format!("{:#}", anyhow::Error::new(e)))),
        }
    }
    Ok(if refused.is_empty() {
        Ok(accepted)
    } else {
        Err(refused)
    })
}

/// The multipart form `POST /subjects` takes, for the OpenAPI document (`read_form` parses it
/// field by field, with limits, instead of deserialising it whole).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EnrolForm {
    /// The consent record, as JSON in its part, e.g.
    /// `{"time":"2026-03-01T09:00:00Z","policy_version":"2026-01"}`.
    consent: Consent,
    /// JPEG or PNG; repeat the field for each photo (1 to 5).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 5)]
    photo: Vec<Vec<u8>>,
}

/// Enrol a subject from 1-5 photos and a consent record.
#[utoipa::path(post, path = "/subjects", operation_id = "enrol",
    request_body(content(
        (EnrolForm = "multipart/form-data",
            encoding(("consent" = (content_type = "application/json"))))
    )),
    responses(
        (status = 201, description = "enrolled", body = Enrolled),
        (status = 400, description = "malformed form or consent", body = crate::error::Body),
        (status = 413, description = "body or a photo too large", body = crate::error::Body),
        (status = 422, description = "refused: one rejection per refused photo (or one for the request)", body = crate::error::Body),
    ))]
pub async fn enrol(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let mp = mp.map_err(|e| ApiError::BadRequest("bad_multipart", e.body_text()))?;
    let limits = FormLimits {
        max_photos: app.cfg.limits.max_photos,
        max_photo_bytes: app.cfg.limits.max_photo_bytes,
    };
    let form = form::read(mp, &limits, &app.cfg.policy_versions, Utc::now)
        .await
        .map_err(|e| {
            if e.too_large() {
                ApiError::TooLarge(e.code(), e.to_string())
            } else {
                ApiError::BadRequest(e.code(), e.to_string())
            }
        })?;
    let n = form.photos.len();
    let t0 = Instant::now();
    let accepted = match analyse(&app, form.photos).await? {
        Ok(a) => a,
        Err(refused) => {
            tracing::info!(client = %client.0, photos = n, reasons = ?refused.iter().map(|r| r.code.code()).collect::<Vec<_>>(), "enrolment refused");
            return Err(ApiError::Quality(refused));
        }
    };
    let template =
        check::template_of(&accepted, &app.cfg.quality).map_err(|r| ApiError::Quality(vec![r]))?;
    drop(accepted);
    let analysis_ms = t0.elapsed().as_millis() as u64;

    // One enrolment at a time from the 1:N check to the gallery insert, so two requests of the same
    // person cannot both pass.
    let _serial = app.enrol_lock.lock().await;
    let best = app.gallery_best(&template)?;
    if let Some((_, score)) = best.filter(|(_, s)| *s >= app.cfg.quality.duplicate_cosine) {
        tracing::info!(client = %client.0, score, "enrolment refused: already enrolled");
        return Err(ApiError::Quality(vec![Rejection {
            code: Reason::AlreadyEnrolled,
            photo: None,
            message: "this person is already enrolled; erase the existing subject first".into(),
        }]));
    }
    let subject = SubjectId::random().map_err(|e| ApiError::Internal(e.to_string()))?;
    let version = app.cfg.template_version;
    let (wrapped, sealed) = seal::seal_new_subject(&app.master, &subject, version, &template)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let record = SubjectRecord::enrolled_now(form.consent, version, n as u8);
    let store = app.store.clone();
    let actor = client.0.clone();
    let seq = tokio::task::spawn_blocking(move || {
        store.enrol(
            &EnrolRow {
                subject,
                record: &record,
                wrapped: &wrapped,
                sealed: &sealed,
            },
            &actor,
        )
    })
    .await??;
    app.gallery_insert(subject, template)?;
    app.changed();
    tracing::info!(client = %client.0, %subject, photos = n, analysis_ms, total_ms = t0.elapsed().as_millis() as u64, seq, "enrolled");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            subject,
            photos: n,
            template_version: version,
            seq,
            analysis_ms,
        }),
    ))
}
