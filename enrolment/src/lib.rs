//! Enrolment core for the walk-through face gate (issue 4): the pure parts that the central enrolment
//! service and the stations build on.
//!
//! - [`tickets`]: ticket kinds, the fare table (TOML) and the gate rules, as pure functions
//!   (`docs/tickets.md`);
//! - [`seal`]: sealed face templates, the key hierarchy (master key → per-subject data key), key
//!   rotation, crypto-shredding and the centre → station key wrap (`docs/privacy.md`).
//!
//! No I/O here except reading key files and the fare table; the HTTP service, the zenoh distribution and
//! the stores come on top of this API.

// Gate and enrolment code must fail with an error, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod hex;
pub mod ids;
pub mod seal;
pub mod tickets;

pub use ids::{IdError, StationId, SubjectId};
