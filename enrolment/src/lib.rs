//! The central enrolment service (issue 4): the core of `enrold` (in `src/bin/enrold`). The domain it
//! shares with the stations (ids, tickets, sealing, signed change messages, the redb layer) is the
//! `domain` crate.
//!
//! - [`config`]: `enrold.toml`; [`form`]: the enrolment form (consent and photo parts, with limits);
//! - [`photo`], [`quality`], [`check`]: bounded photo decoding, the quality thresholds and reasons, one
//!   request → one template through the face chain (`engine::face`: detect → align → embed, the quality
//!   measures);
//! - [`store`]: the centre's redb store (subjects, templates, data keys, tickets, trips, changes, audit)
//!   and [`gallery`], the in-memory 1:N index (`docs/enrolment.md`);
//! - [`distribution`]: turns the store's change log into signed per-station changes and serves them
//!   to the stations over zenoh.

// Gate and enrolment code must fail with an error, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod check;
pub mod config;
pub mod distribution;
pub mod form;
pub mod gallery;
pub mod metrics;
pub mod photo;
pub mod quality;
pub mod store;
