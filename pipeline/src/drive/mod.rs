//! drive: everything gated says to the outside world over zenoh — door and lighting commands,
//! decisions, lane events, health — and what it hears back (driver states, operator commands).
//! Commands are values ([`command::Command`]); the [`Outbox`] is the one place that sends them.
//! `spawn` starts the driver processes where the station runs them itself.

pub mod agreement;
pub mod claim;
pub mod command;
mod config;
pub mod lighting;
pub mod link;
mod outbox;
pub(crate) mod restart;
pub mod spawn;

pub use config::{DriversConfig, Failsafe, LightingLoopConfig, ZenohConfig};
pub use lighting::LightingLoop;
pub use link::{Incoming, Link};
pub use outbox::Outbox;
