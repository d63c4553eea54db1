//! Door, lighting and card-reader drivers of the walk-through gate.
//!
//! Each driver is a separate process that owns the devices of one or more lanes and talks to `gated`
//! only over zenoh (see the `protocol` crate). The device logic is plain synchronous code with the
//! clock passed in ([`door::DoorController`], [`light::LightController`],
//! [`card::CardReaderController`]); [`bus`] runs it against zenoh; [`flap::FlapHardware`] and
//! [`light::LightHardware`] are where real devices plug in (the card reader is simulated end to
//! end). `docs/drivers.md` describes the behaviour and the flags.

pub mod bus;
pub mod card;
pub mod door;
pub mod error;
pub mod flap;
pub mod guard;
pub mod light;
pub mod process;
pub mod settings;

pub use bus::{
    run_card_reader, run_card_reader_with, run_door_driver, run_door_driver_with, run_light_driver,
    run_light_driver_with,
};
pub use card::{CardReaderConfig, CardReaderController};
pub use door::{DoorConfig, DoorController, FailsafePosition};
pub use error::{DriverError, HwError};
pub use flap::{FlapHardware, Motor, Sensors, SimFlap};
pub use guard::{DriverClock, Guard};
pub use light::{LightConfig, LightController, LightHardware, SimLight};
pub use process::terminated;
pub use settings::{BusArgs, CardReaderSettings, DoorDriverSettings, LightDriverSettings};

/// What a controller did with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Applied,
    /// Acknowledged (its seq is echoed) but the current mode forbids the action, e.g. `open` while
    /// held closed. The published mode tells gated why.
    Refused(String),
    /// Not admitted ([`guard`]): not acted on, not acknowledged, and it does not feed the watchdog.
    Rejected(protocol::Rejection),
}
