//! The light driver on the shared loop: a [`LightController`] per lane, no inputs besides the
//! commands.

use std::future::Future;
use std::time::Instant;

use protocol::{Keys, LightCommand, LightState, Stamp};

use super::{Controller, Driver, LIGHT_RAMP_PERIOD, LIGHT_STATE_PERIOD, serve};
use crate::Handled;
use crate::error::DriverError;
use crate::guard::DriverClock;
use crate::light::{LightController, LightHardware, SimLight};
use crate::settings::LightDriverSettings;

/// Runs the light driver with simulated lamps per lane until `shutdown` resolves.
pub async fn run_light_driver(
    settings: LightDriverSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    run_light_driver_with(settings, |_lane: &str| SimLight::default(), shutdown).await
}

/// Runs the light driver on the lamps `make_hw` returns for each lane until `shutdown` resolves.
pub async fn run_light_driver_with<H: LightHardware>(
    settings: LightDriverSettings,
    mut make_hw: impl FnMut(&str) -> H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let (keys, lanes) = settings.bus.validate()?;
    let cfg = settings.light_config()?;
    let clock = DriverClock::start()?;
    let driver = Driver {
        name: "light driver",
        role: protocol::Role::LightDriver,
        settings: format!("ramp {} %/s", cfg.ramp_per_s),
        commands: ("light commands", keys.all_light_cmds()),
        state_key: Keys::light_state,
        inputs: vec![],
    };
    let make =
        |lane: &str| LightController::new(lane.to_owned(), cfg.clone(), make_hw(lane), clock);
    serve(&settings.bus, keys, lanes, driver, make, shutdown).await
}

impl<H: LightHardware> Controller for LightController<H> {
    type Command = LightCommand;
    type State = LightState;
    fn lane(&self) -> &str {
        LightController::lane(self)
    }
    fn command(&mut self, cmd: &LightCommand, now: Instant) -> Handled {
        LightController::command(self, cmd, now)
    }
    fn stamp(cmd: &LightCommand) -> Stamp {
        cmd.stamp()
    }
    fn describe(cmd: &LightCommand) -> String {
        format!("arch {:?} illumination {:?}", cmd.arch, cmd.illumination)
    }
    fn gated_alive(&mut self, up: bool, _now: Instant) {
        LightController::gated_alive(self, up)
    }
    fn tick(&mut self, now: Instant) {
        LightController::tick(self, now)
    }
    fn state(&self) -> LightState {
        LightController::state(self)
    }
    fn due(&self, prev: &LightState, at: Instant, cur: &LightState, now: Instant) -> bool {
        let ramping = self.is_ramping();
        let age = now.saturating_duration_since(at);
        prev.arch != cur.arch
            || prev.target != cur.target
            || prev.epoch != cur.epoch
            || prev.ack_seq != cur.ack_seq
            // The end of a ramp is reported at once, so nobody waits a second for the final level.
            || (!ramping && prev.level != cur.level)
            || (ramping && age >= LIGHT_RAMP_PERIOD)
            || age >= LIGHT_STATE_PERIOD
    }
}
