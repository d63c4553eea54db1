//! The gate's on-wire contract: every zenoh key expression (the station's and the centre's
//! `gate/centre/*`), the zenoh session settings of every process, and the JSON payloads shared by
//! `gated`, the door and lighting drivers and `gated ctl` (the centre's signed change messages are
//! `domain::changes`). Every payload carries `v` (the protocol version); decoding refuses
//! unknown fields, other versions and out-of-range values with an error that names the problem, so a
//! malformed message is logged and dropped by the receiver, never acted on.
//!
//! `docs/protocol.md` is the written specification of everything here. `logging` is the one log
//! set-up of every station process.

pub mod acl;
pub mod card;
pub mod certs;
pub mod keys;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod private_file;
pub mod session;
pub mod stamp;

pub use card::{
    CardCommand, CardData, CardEntry, CardOutcome, CardPresent, CardResult, CardState, CardTap,
    CardVerdict, quiet,
};
pub use certs::{CertDir, CertError, Role, TlsFiles};
pub use keys::{Keys, validate_id};
pub use messages::*;
pub use session::{BusSecurity, ZenohEndpoints, check_schemes, zenoh_config};
pub use stamp::{
    COMMAND_TTL_MS, Epoch, MAX_DEADLINE_AHEAD_MS, MAX_SEQ, Rejected, Rejection, SEQ_WINDOW, Stamp,
};

/// Version carried in the `v` field of the payloads whose format has not changed since the first.
pub const VERSION: u32 = 1;
/// Version of the door and light commands and states and of the ctl reply: 2 since commands carry
/// an epoch and a deadline (`docs/protocol.md`, "Command authority").
pub const CONTROL_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed {what} payload: {error}")]
    Json {
        what: &'static str,
        error: serde_json::Error,
    },
    #[error("{what} payload has protocol version {got}, this build speaks {want}")]
    Version {
        what: &'static str,
        got: u32,
        want: u32,
    },
    #[error("invalid {what} payload: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("invalid identifier {id:?}: {reason}")]
    BadId { id: String, reason: &'static str },
    #[error("bus certificate {}: {reason}", path.display())]
    Certificate {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("zenoh endpoint {endpoint:?}: {reason}")]
    Endpoint {
        endpoint: String,
        reason: &'static str,
    },
    #[error("zenoh configuration {key} = {value}: {source}")]
    Config {
        key: &'static str,
        value: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Milliseconds since the Unix epoch, for event timestamps (wall clock: events are read by people and
/// other machines). Latency is never measured with it.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
