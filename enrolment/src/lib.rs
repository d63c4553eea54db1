//! Enrolment for the walk-through face gate (issue 4): the core that the central enrolment service
//! (`enrold`, in `src/bin/enrold`) and the stations build on.
//!
//! - [`tickets`]: ticket kinds, the fare table (TOML) and the gate rules, as pure functions
//!   (`docs/tickets.md`);
//! - [`seal`]: sealed face templates, the key hierarchy (master key → per-subject data key), key
//!   rotation, crypto-shredding and the centre → station key wrap (`docs/privacy.md`);
//! - [`photo`], [`quality`], [`check`]: bounded photo decoding, the quality thresholds and reasons, one
//!   request → one template through the face chain (`engine::face`: detect → align → embed, the quality
//!   measures);
//! - [`store`]: the centre's redb store (subjects, templates, data keys, tickets, trips, changes, audit)
//!   and [`gallery`], the in-memory 1:N index (`docs/enrolment.md`);
//! - [`sync`]: signed, sequenced distribution of templates and erasures to the stations over zenoh.

// Gate and enrolment code must fail with an error, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod check;
pub mod gallery;
mod hex;
pub mod ids;
pub mod photo;
pub mod quality;
pub mod seal;
pub mod store;
pub mod sync;
pub mod tickets;

pub use ids::{IdError, StationId, SubjectId};
