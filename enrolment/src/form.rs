//! The enrolment form of `POST /subjects` (multipart/form-data): one `consent` part (JSON) and one
//! to `max_photos` `photo` parts, read field by field with limits instead of buffering the body,
//! and the consent checked. In the library so that it is fuzzed (`fuzz/`, `enrold_form`).

use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use zeroize::Zeroizing;

use crate::store::Consent;

/// The consent part is a small JSON object.
const MAX_CONSENT_BYTES: usize = 4096;

pub struct Form {
    pub consent: Consent,
    pub photos: Vec<Zeroizing<Vec<u8>>>,
}

#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    pub max_photos: usize,
    pub max_photo_bytes: usize,
}

/// Why a form is refused; [`FormError::code`] is the API's error code.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// The body went past the service's limit while it was read.
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    Multipart(String),
    #[error("{0}")]
    BadConsent(String),
    #[error("photo {index} is larger than {limit} bytes")]
    PhotoTooLarge { index: usize, limit: usize },
    #[error("at most {0} photos per enrolment")]
    TooManyPhotos(usize),
    #[error("unknown form field {0:?}; expected consent and photo")]
    UnknownField(Option<String>),
    #[error("at least one photo is needed")]
    NoPhotos,
}

impl FormError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge(_) => "body_too_large",
            Self::Multipart(_) => "bad_multipart",
            Self::BadConsent(_) => "bad_consent",
            Self::PhotoTooLarge { .. } => "photo_too_large",
            Self::TooManyPhotos(_) => "too_many_photos",
            Self::UnknownField(_) => "unknown_field",
            Self::NoPhotos => "no_photos",
        }
    }

    /// 413 rather than 400.
    pub fn too_large(&self) -> bool {
        matches!(self, Self::BodyTooLarge(_) | Self::PhotoTooLarge { .. })
    }
}

fn multipart_error(e: MultipartError) -> FormError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        FormError::BodyTooLarge(e.body_text())
    } else {
        FormError::Multipart(e.body_text())
    }
}

/// A part's bytes, refused past `limit`; `index` names a photo in the error.
async fn read_limited(
    mut field: Field<'_>,
    limit: usize,
    index: usize,
) -> Result<Zeroizing<Vec<u8>>, FormError> {
    let mut buf = Zeroizing::new(Vec::new());
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(FormError::PhotoTooLarge { index, limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads and checks the form; `policies` are the accepted consent policy versions (empty: any
/// well-formed one), `now` tells the time once the body is read (a consent may not lie more than
/// 5 minutes after it).
pub async fn read(
    mut mp: Multipart,
    limits: &FormLimits,
    policies: &[String],
    now: impl FnOnce() -> DateTime<Utc>,
) -> Result<Form, FormError> {
    let mut consent = None;
    let mut photos = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("consent") => {
                let text = read_limited(field, MAX_CONSENT_BYTES, 0)
                    .await
                    .map_err(|_| FormError::BadConsent("consent is larger than 4 KiB".into()))?;
                let c: Consent = serde_json::from_slice(&text)
                    .map_err(|e| FormError::BadConsent(format!("consent: {e}")))?;
                consent = Some(c);
            }
            Some("photo") => {
                if photos.len() == limits.max_photos {
                    return Err(FormError::TooManyPhotos(limits.max_photos));
                }
                photos.push(read_limited(field, limits.max_photo_bytes, photos.len()).await?);
            }
            other => return Err(FormError::UnknownField(other.map(str::to_owned))),
        }
    }
    let consent =
        consent.ok_or_else(|| FormError::BadConsent("the consent field is missing".into()))?;
    check_consent(&consent, policies, now()).map_err(FormError::BadConsent)?;
    if photos.is_empty() {
        return Err(FormError::NoPhotos);
    }
    Ok(Form { consent, photos })
}

/// A consent record the centre can keep: a well-formed (and, where the centre lists them,
/// accepted) policy version, and a time not in the future.
pub fn check_consent(c: &Consent, policies: &[String], now: DateTime<Utc>) -> Result<(), String> {
    let v = &c.policy_version;
    let well_formed = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !well_formed {
        return Err("policy_version must match [A-Za-z0-9._-]{1,64}".into());
    }
    if !policies.is_empty() && !policies.contains(v) {
        return Err(format!(
            "policy version {v:?} is not accepted ({})",
            policies.join(", ")
        ));
    }
    if c.time > now + Duration::minutes(5) {
        return Err("consent time is in the future".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequest;

    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, data) in parts {
            b.extend_from_slice(
                format!("--X\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--X--\r\n");
        b
    }

    async fn read_body(b: Vec<u8>) -> Result<Form, FormError> {
        let req = axum::http::Request::builder()
            .method("POST")
            .header("content-type", "multipart/form-data; boundary=X")
            .body(axum::body::Body::from(b))
            .unwrap();
        let mp = Multipart::from_request(req, &()).await.unwrap();
        let limits = FormLimits {
            max_photos: 2,
            max_photo_bytes: 16,
        };
        let now = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .to_utc();
        read(mp, &limits, &["2026-01".into()], || now).await
    }

    const CONSENT: &[u8] = br#"{"time":"2026-03-01T09:00:00Z","policy_version":"2026-01"}"#;

    #[tokio::test]
    async fn a_form_is_read_and_each_fault_named() {
        let f = read_body(body(&[("consent", CONSENT), ("photo", b"jpeg")]))
            .await
            .unwrap();
        assert_eq!(
            (f.photos.len(), f.consent.policy_version.as_str()),
            (1, "2026-01")
        );
        let code = |r: Result<Form, FormError>| r.err().map(|e| e.code());
        type Parts<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(Parts, &str); 6] = [
            (&[("photo", b"jpeg")], "bad_consent"),
            (&[("consent", CONSENT)], "no_photos"),
            (
                &[("consent", CONSENT), ("photo", &[0; 17])],
                "photo_too_large",
            ),
            (
                &[
                    ("consent", CONSENT),
                    ("photo", b"a"),
                    ("photo", b"b"),
                    ("photo", b"c"),
                ],
                "too_many_photos",
            ),
            (&[("consent", CONSENT), ("name", b"x")], "unknown_field"),
            (
                &[(
                    "consent",
                    br#"{"time":"2026-03-02T09:00:00Z","policy_version":"2026-01"}"#,
                )],
                "bad_consent",
            ),
        ];
        for (parts, want) in cases {
            assert_eq!(code(read_body(body(parts)).await), Some(want), "{parts:?}");
        }
        assert_eq!(
            code(read_body(b"--X\r\nnot a part".to_vec()).await),
            Some("bad_multipart")
        );
    }
}
