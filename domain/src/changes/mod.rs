//! The signed change messages of the template distribution from the centre to the stations (issue 4,
//! part 4). The centre's side (building and publishing them) is `enrolment::distribution`; the
//! station's (verifying and applying them) is `pipeline::sync`.
//!
//! The centre numbers every change in its `changes` table (gap-free from 1). For each station it turns a
//! change into a [`ChangeBody`] — an upsert carrying the subject's sealed template, its data key wrapped
//! for that station ([`crate::seal::wrap_for_station`]) and its tickets, or an erasure — signs it with
//! its Ed25519 key and publishes it on `gate/centre/templates/{station}` (`protocol::keys`). A station applies a change
//! only when the signature verifies under the pinned centre key, the body names this station, the
//! versions match and its `seq` is exactly one more than the last applied. Wire format:
//! `docs/protocol.md`; what a station can open: `docs/privacy.md`.

mod keys;
#[cfg(test)]
mod tests;

use ed25519_dalek::Verifier;
use serde::{Deserialize, Serialize};

pub use keys::{CentreSigningKey, CentreVerifyingKey, public_from_hex, public_to_hex};

use crate::ids::{StationId, SubjectId};
use crate::seal::{SealedTemplate, StationWrappedKey};
use crate::tickets::{CentreTrip, Ticket};

/// The `v` of every distribution payload this build writes and reads.
pub const SYNC_VERSION: u32 = 1;
/// Prefixed to the body before signing, so a signature made for anything else never verifies here.
pub const SIGN_DOMAIN: &[u8] = b"gate-centre-change-v1\0";
/// Largest batch a query may ask for (the centre clamps `limit` to it).
pub const MAX_BATCH: usize = 1000;

/// Why a payload was refused, or a key could not be had. Each variant has a short `reason()` used as
/// the metrics label.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("malformed payload: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("invalid payload: {0}")]
    Invalid(String),
    #[error("protocol version {found}, this build speaks {SYNC_VERSION}")]
    Version { found: u32 },
    #[error("signature does not verify under the pinned centre key")]
    Signature,
    #[error("addressed to station {found}, this is {expected}")]
    Station { found: String, expected: String },
    #[error("blob: {0}")]
    Blob(#[from] crate::seal::SealError),
    #[error("key file: {0}")]
    KeyFile(#[source] crate::seal::SealError),
    #[error("no randomness for a new key: {0}")]
    Random(#[source] getrandom::Error),
    #[error("public key: {0}")]
    PublicKey(String),
}

impl ChangeError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Invalid(_) | Self::Blob(_) => "malformed",
            Self::Version { .. } => "version",
            Self::Signature => "signature",
            Self::Station { .. } => "station",
            Self::KeyFile(_) | Self::Random(_) | Self::PublicKey(_) => "key",
        }
    }
}

/// Bytes as a lowercase hex string on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        crate::hex::decode(&s)
            .map(HexBytes)
            .ok_or_else(|| serde::de::Error::custom("not an even-length hex string"))
    }
}

/// What is signed: one change for one station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    pub v: u32,
    pub station: StationId,
    /// The centre's change sequence (gap-free from 1).
    pub seq: u64,
    pub op: ChangeOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeOp {
    /// The subject's whole current state (replaces whatever the station had).
    Upsert(Upsert),
    /// The subject was erased (also the tombstone sent for an upsert whose subject is gone since).
    Erase { subject: SubjectId },
    /// Only the centre's view of the subject's trip changed (a booked passage): far smaller than an
    /// upsert, which a trip change would otherwise resend whole (template and key wrap included).
    Trip {
        subject: SubjectId,
        trip: Option<CentreTrip>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upsert {
    pub subject: SubjectId,
    pub template_version: u32,
    /// Sealed template, `seal` format `T` (558 bytes).
    pub sealed: HexBytes,
    /// The data key wrapped for this station, `seal` format `S` (110 bytes).
    pub wrapped_key: HexBytes,
    pub tickets: Vec<Ticket>,
    /// The centre's view of the subject's trip; absent until a passage of the subject is booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip: Option<CentreTrip>,
    /// The subject has a payment account: a pass's extension fare is charged to it at exit (post-pay)
    /// instead of sending the passenger to the fare adjustment machine. Absent: no account. Only the
    /// fact travels; the account's reference stays at the centre.
    #[serde(default, skip_serializing_if = "is_false")]
    pub postpay: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ChangeOp {
    pub fn subject(&self) -> SubjectId {
        match self {
            Self::Upsert(u) => u.subject,
            Self::Erase { subject } | Self::Trip { subject, .. } => *subject,
        }
    }
}

/// The wire payload of one change: the body as a JSON string and the centre's signature over
/// `SIGN_DOMAIN ‖ body` (hex, 64 bytes). Signing the exact bytes avoids any JSON canonicalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedChange {
    pub v: u32,
    pub body: String,
    pub sig: HexBytes,
}

/// The reply to a catch-up query: changes `after+1 ..= after+len`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBatch {
    pub v: u32,
    pub station: StationId,
    pub after: u64,
    pub changes: Vec<SignedChange>,
    /// The centre's last sequence when the batch was made; more to fetch while `after + len < head`.
    pub head: u64,
}

/// A change that passed every check: authentic, for this station, well-formed blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChange {
    pub seq: u64,
    pub op: VerifiedOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedOp {
    Upsert {
        subject: SubjectId,
        template_version: u32,
        sealed: SealedTemplate,
        wrapped: StationWrappedKey,
        tickets: Vec<Ticket>,
        trip: Option<CentreTrip>,
        postpay: bool,
    },
    Erase {
        subject: SubjectId,
    },
    Trip {
        subject: SubjectId,
        trip: Option<CentreTrip>,
    },
}

impl VerifiedOp {
    pub fn subject(&self) -> SubjectId {
        match self {
            Self::Upsert { subject, .. } | Self::Erase { subject } | Self::Trip { subject, .. } => {
                *subject
            }
        }
    }
}

impl SignedChange {
    /// Serialises and signs `body`.
    pub fn sign(key: &CentreSigningKey, body: &ChangeBody) -> Result<Self, ChangeError> {
        let text = serde_json::to_string(body)?;
        let sig = key.sign(&signed_bytes(&text));
        Ok(Self {
            v: SYNC_VERSION,
            body: text,
            sig: HexBytes(sig.to_vec()),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ChangeError> {
        decode_versioned(serde_json::from_slice(bytes)?)
    }

    /// Checks the signature, then the body: version, station, blob structure.
    pub fn verify(
        &self,
        centre: &CentreVerifyingKey,
        station: &StationId,
    ) -> Result<VerifiedChange, ChangeError> {
        if self.v != SYNC_VERSION {
            return Err(ChangeError::Version { found: self.v });
        }
        let sig: [u8; 64] = self
            .sig
            .0
            .as_slice()
            .try_into()
            .map_err(|_| ChangeError::Signature)?;
        centre
            .key()
            .verify(
                &signed_bytes(&self.body),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .map_err(|_| ChangeError::Signature)?;
        let body: ChangeBody = decode_versioned(serde_json::from_str(&self.body)?)?;
        if &body.station != station {
            return Err(ChangeError::Station {
                found: body.station.to_string(),
                expected: station.to_string(),
            });
        }
        if body.seq == 0 {
            return Err(ChangeError::Invalid("seq 0 (sequences start at 1)".into()));
        }
        let op = match body.op {
            ChangeOp::Erase { subject } => VerifiedOp::Erase { subject },
            ChangeOp::Trip { subject, trip } => VerifiedOp::Trip { subject, trip },
            ChangeOp::Upsert(u) => {
                let sealed = SealedTemplate::from_bytes(u.sealed.0)?;
                if sealed.template_version() != u.template_version {
                    return Err(ChangeError::Invalid(format!(
                        "template_version {} but the sealed template says {}",
                        u.template_version,
                        sealed.template_version()
                    )));
                }
                VerifiedOp::Upsert {
                    subject: u.subject,
                    template_version: u.template_version,
                    sealed,
                    wrapped: StationWrappedKey::from_bytes(u.wrapped_key.0)?,
                    tickets: u.tickets,
                    trip: u.trip,
                    postpay: u.postpay,
                }
            }
        };
        Ok(VerifiedChange { seq: body.seq, op })
    }
}

impl ChangeBatch {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ChangeError> {
        decode_versioned(serde_json::from_slice(bytes)?)
    }
}

/// Checks `v` before the rest, so a future format gets "version" rather than "malformed".
fn decode_versioned<T: serde::de::DeserializeOwned>(
    probe: serde_json::Value,
) -> Result<T, ChangeError> {
    check_version(&probe)?;
    Ok(serde_json::from_value(probe)?)
}

fn signed_bytes(body: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_DOMAIN.len() + body.len());
    m.extend_from_slice(SIGN_DOMAIN);
    m.extend_from_slice(body.as_bytes());
    m
}

fn check_version(v: &serde_json::Value) -> Result<(), ChangeError> {
    version_check(v, SYNC_VERSION).map_err(|found| match found {
        Some(found) => ChangeError::Version { found },
        None => ChangeError::Invalid("no numeric field v".into()),
    })
}

/// A payload's numeric `v` against `want`: the version found when it differs, `None` when there is
/// no numeric `v`. Shared by every signed or authenticated payload of this crate.
pub(crate) fn version_check(v: &serde_json::Value, want: u32) -> Result<(), Option<u32>> {
    match v.get("v").and_then(|v| v.as_u64()) {
        Some(found) if found == u64::from(want) => Ok(()),
        Some(found) => Err(Some(u32::try_from(found).unwrap_or(u32::MAX))),
        None => Err(None),
    }
}
