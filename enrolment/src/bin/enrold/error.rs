//! Every error response: `{"code": "...", "message": "...", "rejections": [...]}` with a fitting status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use enrolment::quality::Rejection;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// 400 with a code.
    BadRequest(&'static str, String),
    Unauthorized,
    NotFound(&'static str, String),
    /// 413 with a code (`body_too_large`, `photo_too_large`).
    TooLarge(&'static str, String),
    /// 422: the photos were refused.
    Quality(Vec<Rejection>),
    /// 429 with Retry-After seconds.
    RateLimited(u64),
    /// 500: logged with the detail; the client gets no internals.
    Internal(String),
}

/// Every error's JSON body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct Body<'a> {
    /// Machine-readable, e.g. `no_subject`, `bad_ticket`, `refused`, `rate_limited`.
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejections: Option<&'a [Rejection]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, rejections) = match &self {
            Self::BadRequest(code, m) => (StatusCode::BAD_REQUEST, *code, m.clone(), None),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required".into(),
                None,
            ),
            Self::NotFound(code, m) => (StatusCode::NOT_FOUND, *code, m.clone(), None),
            Self::TooLarge(code, m) => (StatusCode::PAYLOAD_TOO_LARGE, *code, m.clone(), None),
            Self::Quality(r) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused",
                format!(
                    "enrolment refused: {}",
                    r.iter()
                        .map(|r| r.code.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(r.as_slice()),
            ),
            Self::RateLimited(s) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {s} s"),
                None,
            ),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log".into(),
                    None,
                )
            }
        };
        let mut resp = (
            status,
            Json(Body {
                code,
                message,
                rejections,
            }),
        )
            .into_response();
        match self {
            Self::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited(s) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            _ => {}
        }
        resp
    }
}

impl From<enrolment::store::StoreError> for ApiError {
    fn from(e: enrolment::store::StoreError) -> Self {
        match e {
            enrolment::store::StoreError::NoSubject(id) => {
                Self::NotFound("no_subject", format!("subject {id} is not enrolled"))
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("worker task failed: {e}"))
    }
}
