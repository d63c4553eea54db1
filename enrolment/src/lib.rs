//! The central enrolment service (issue 4): the core of `enrold` (in `src/bin/enrold`). The domain it
//! shares with the stations (ids, tickets, sealing, signed change messages, the redb layer) is the
//! `domain` crate.
//!
//! - [`config`]: `enrold.toml`; [`form`]: the enrolment form (consent and photo parts, with limits);
//! - [`photo`], [`quality`], [`check`]: bounded photo decoding, the quality thresholds and reasons, one
//!   request → one template through the face chain (`engine::face`: detect → align → embed, the quality
//!   measures);
//! - [`store`]: the centre's redb store (subjects, templates, data keys, tickets, trips, changes, audit, the fare ledger)
//!   and [`gallery`], the in-memory 1:N index (`docs/enrolment.md`);
//! - [`distribution`]: turns the store's change log into signed per-station changes and serves them
//!   to the stations over zenoh;
//! - [`ledger`]: pulls the passages each station recorded and books them in the fare ledger (one
//!   booking per passage; a spent ride becomes a ticket change for every station).

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
pub mod ledger;
pub mod metrics;
pub mod photo;
pub mod quality;
pub mod store;
