//! drive: everything gated says to the outside world over zenoh — door and lighting commands,
//! lane events, health — and what it hears back (driver states, operator commands).

mod config;
pub mod lighting;
pub mod link;
pub mod spawn;

pub use config::{DriversConfig, Failsafe, LightingLoopConfig, ZenohConfig};
pub use lighting::LightingLoop;
pub use link::{Incoming, Link};
