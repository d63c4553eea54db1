//! The gate's shared domain: what the centre (`enrold`, crate `enrolment`) and the stations (`gated`,
//! crate `pipeline`) both speak, so that neither depends on the other.
//!
//! - [`ids`]: subject and station ids;
//! - [`tickets`]: ticket kinds, the fare table (TOML) and the gate rules, as pure functions
//!   (`docs/tickets.md`);
//! - [`seal`]: sealed face templates, the key hierarchy (master key → per-subject data key), key
//!   rotation, crypto-shredding and the centre → station key wrap (`docs/privacy.md`);
//! - [`changes`]: the signed, sequenced change messages the centre sends and a station verifies, and
//!   the centre's Ed25519 signing key (`docs/protocol.md`, "Template distribution");
//! - [`uplink`]: the passages a station reports to the centre, authenticated under a key both derive
//!   from their X25519 keys (`docs/protocol.md`, "Passage uplink");
//! - [`store`]: the redb layer under both stores (the centre's and a station's): open with a schema
//!   version and in-place upgrades, read/write transactions, and the purge that rewrites the file
//!   after an erasure (`docs/store.md`).

// Gate and enrolment code must fail with an error, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod changes;
mod hex;
pub mod ids;
pub mod seal;
pub mod store;
pub mod tickets;
pub mod uplink;

pub use ids::{IdError, StationId, SubjectId};
