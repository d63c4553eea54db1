//! The door driver on the shared loop: a [`DoorController`] per lane, and two inputs besides the
//! commands (simulated sensors, the station's emergency input).

use std::future::Future;
use std::time::Instant;

use protocol::{DoorCommand, DoorSim, DoorState, Emergency, Keys, Stamp};
use tracing::{debug, info, warn};
use zenoh::sample::Sample;

use super::{
    Controller, DOOR_STATE_PERIOD, Driver, Input, Lanes, Publish, Trust, lane_payload, payload,
    serve,
};
use crate::Handled;
use crate::door::DoorController;
use crate::error::DriverError;
use crate::flap::{FlapHardware, SimFlap};
use crate::guard::DriverClock;
use crate::settings::DoorDriverSettings;

/// Runs the door driver with a simulated flap per lane until `shutdown` resolves.
pub async fn run_door_driver(
    settings: DoorDriverSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let travel = settings.door_config()?.travel;
    run_door_driver_with(settings, |_lane: &str| SimFlap::new(travel), shutdown).await
}

/// Runs the door driver on the hardware `make_hw` returns for each lane until `shutdown` resolves.
pub async fn run_door_driver_with<H: FlapHardware>(
    settings: DoorDriverSettings,
    mut make_hw: impl FnMut(&str) -> H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let (keys, lanes) = settings.bus.validate()?;
    let cfg = settings.door_config()?;
    let clock = DriverClock::start()?;
    let driver = Driver {
        name: "door driver",
        role: protocol::Role::DoorDriver,
        settings: format!(
            "failsafe {:?}, watchdog {} ms",
            cfg.failsafe,
            cfg.watchdog.as_millis()
        ),
        commands: ("door commands", keys.all_door_cmds()),
        state_key: Keys::door_state,
        inputs: vec![
            Input {
                what: "door sim inputs",
                key: keys.all_door_sims(),
                on: door_sim::<H>,
            },
            Input {
                what: "emergency",
                key: keys.emergency(),
                on: emergency::<H>,
            },
        ],
    };
    let make = |lane: &str| DoorController::new(lane.to_owned(), cfg.clone(), make_hw(lane), clock);
    serve(&settings.bus, keys, lanes, driver, make, shutdown).await
}

impl<H: FlapHardware> Controller for DoorController<H> {
    type Command = DoorCommand;
    type State = DoorState;
    fn lane(&self) -> &str {
        DoorController::lane(self)
    }
    fn command(&mut self, cmd: &DoorCommand, now: Instant) -> Handled {
        DoorController::command(self, cmd, now)
    }
    fn stamp(cmd: &DoorCommand) -> Stamp {
        cmd.stamp()
    }
    fn describe(cmd: &DoorCommand) -> String {
        format!("{:?}", cmd.action)
    }
    fn routine(cmd: &DoorCommand) -> bool {
        cmd.action == protocol::DoorAction::Heartbeat
    }
    fn gated_alive(&mut self, up: bool, now: Instant) {
        DoorController::gated_alive(self, up, now)
    }
    fn tick(&mut self, now: Instant) {
        DoorController::tick(self, now)
    }
    fn state(&self) -> DoorState {
        DoorController::state(self)
    }
    fn due(&self, prev: &DoorState, at: Instant, cur: &DoorState, now: Instant) -> bool {
        door_changed(prev, cur) || now.saturating_duration_since(at) >= DOOR_STATE_PERIOD
    }
}

/// Position moves every tick while the flap travels; publishing each 10 ms step would flood the bus,
/// so a stroke is reported in steps of a tenth (the end positions come with the flap state change).
/// The clock and the rejection counters ride on the periodic copies only: republishing on every
/// rejected command would let a flood of them flood the states too.
fn door_changed(prev: &DoorState, cur: &DoorState) -> bool {
    prev.flap != cur.flap
        || prev.mode != cur.mode
        || prev.obstructed != cur.obstructed
        || prev.epoch != cur.epoch
        || prev.ack_seq != cur.ack_seq
        || prev.reason != cur.reason
        || (prev.position - cur.position).abs() >= 0.1
}

/// A simulated sensor input for one flap (tests and demos); real sensors ignore it.
fn door_sim<H: FlapHardware>(
    s: &Sample,
    keys: &Keys,
    lanes: &mut Lanes<DoorController<H>>,
    _now: Instant,
    _trust: Trust,
) -> Publish {
    let Some((lane, input)) = lane_payload::<DoorSim, _>(keys, lanes, s) else {
        return Publish::Nothing;
    };
    if lane.ctl.hardware_mut().inject(&input) {
        debug!(lane = lane.ctl.lane(), ?input, "sim input");
    } else {
        warn!(
            lane = lane.ctl.lane(),
            "sim input ignored: this flap has real sensors"
        );
    }
    Publish::Nothing
}

/// The station's emergency input: every flap opens while it is active.
fn emergency<H: FlapHardware>(
    s: &Sample,
    _keys: &Keys,
    lanes: &mut Lanes<DoorController<H>>,
    now: Instant,
    trust: Trust,
) -> Publish {
    let Some(e) = payload::<Emergency>(s) else {
        return Publish::Nothing;
    };
    let from = trust.sender("operator");
    if e.active {
        warn!(from, "emergency input active: opening every flap");
    } else {
        info!(from, "emergency input cleared");
    }
    for lane in lanes.values_mut() {
        lane.ctl.set_emergency(e.active, now);
    }
    Publish::All
}
