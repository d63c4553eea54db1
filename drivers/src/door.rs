//! The door controller of one lane: a state machine over [`FlapHardware`] with the clock passed in, so
//! every timing rule (travel, clearance, pass timeout, watchdog) is tested without sleeping.
//!
//! Precedence of what the flap should do, highest first:
//! 1. emergency input: open;
//! 2. fail-safe (gated's liveliness token gone, no command yet, or the watchdog expired): the
//!    configured position; only then may another epoch claim the lane (`guard`);
//! 3. the operator latch set by commands: `safe` (fail-safe position), `hold_open`, `hold_closed`;
//! 4. normal: closed, open while a grant is running.
//!
//! Whatever the outcome, a flap that is not already closed stays open while someone is in its swing
//! area and for `clearance` after they left: it never closes on a person.

use std::time::{Duration, Instant};

use protocol::{CONTROL_VERSION, DoorAction, DoorCommand, DoorMode, DoorState, Flap, unix_ms};
use tracing::{debug, info, warn};

use crate::Handled;
use crate::flap::{FlapHardware, Motor, Sensors};
use crate::guard::{Admitted, DriverClock, Guard};

/// Where the flap goes when gated cannot be trusted to be in control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailsafePosition {
    /// Evacuation first: nobody can be locked in.
    Open,
    /// Security first: nobody passes unchecked.
    Closed,
}

impl FailsafePosition {
    fn mode(self) -> DoorMode {
        match self {
            Self::Open => DoorMode::FailsafeOpen,
            Self::Closed => DoorMode::FailsafeClosed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DoorConfig {
    pub failsafe: FailsafePosition,
    /// Longest silence from gated (any admitted command, heartbeats included) before fail-safe.
    pub watchdog: Duration,
    /// Nominal time of one full stroke; a stroke taking more than twice this is a fault.
    pub travel: Duration,
    /// How long the flap stays open after the last passage or obstruction, so it does not hit the
    /// person who just walked through.
    pub clearance: Duration,
    /// How long a grant waits for its passage when the command does not say.
    pub pass_timeout: Duration,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            failsafe: FailsafePosition::Closed,
            watchdog: Duration::from_millis(1000),
            travel: Duration::from_millis(300),
            clearance: Duration::from_millis(300),
            pass_timeout: Duration::from_millis(3000),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Closed,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// Mode chosen by commands; fail-safe and emergency override it without erasing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latch {
    Normal,
    HeldOpen,
    HeldClosed,
    Safe { seq: u64 },
}

/// Permission for passages: each `open` adds one, each passage uses one.
#[derive(Debug, Clone, Copy)]
struct Grant {
    passages_left: u32,
    deadline: Instant,
    /// Set once the last granted passage happened.
    close_at: Option<Instant>,
}

pub struct DoorController<H> {
    lane: String,
    cfg: DoorConfig,
    hw: H,
    clock: DriverClock,

    guard: Guard,
    /// When the last admitted command arrived: the watchdog's food.
    last_cmd: Option<Instant>,
    liveliness_lost: bool,
    emergency: bool,
    latch: Latch,
    grant: Option<Grant>,

    failsafe_cause: Option<String>,
    mode: DoorMode,
    mode_reason: String,

    sensors: Sensors,
    last_obstructed: Option<Instant>,
    flap: Flap,
    motor: Motor,
    motion_since: Option<Instant>,
    target: Option<End>,
    fault: Option<String>,
    retry: bool,
}

impl<H: FlapHardware> DoorController<H> {
    /// A controller in fail-safe ("no command from gated yet"); the first [`tick`](Self::tick) moves the
    /// flap to the fail-safe position. Deadlines are read on `clock`, which the state reports.
    pub fn new(lane: impl Into<String>, cfg: DoorConfig, hw: H, clock: DriverClock) -> Self {
        let mode = cfg.failsafe.mode();
        Self {
            lane: lane.into(),
            cfg,
            hw,
            clock,
            guard: Guard::default(),
            last_cmd: None,
            liveliness_lost: false,
            emergency: false,
            latch: Latch::Normal,
            grant: None,
            failsafe_cause: None,
            mode,
            mode_reason: String::new(),
            sensors: Sensors {
                position: 0.0,
                open_limit: false,
                closed_limit: true,
                obstructed: false,
                passages: 0,
            },
            last_obstructed: None,
            flap: Flap::Closed,
            motor: Motor::Stop,
            motion_since: None,
            target: None,
            fault: None,
            retry: false,
        }
    }

    pub fn lane(&self) -> &str {
        &self.lane
    }
    pub fn mode(&self) -> DoorMode {
        self.mode
    }
    pub fn flap(&self) -> Flap {
        self.flap
    }
    pub fn ack_seq(&self) -> u64 {
        self.guard.ack_seq()
    }
    pub fn hardware(&self) -> &H {
        &self.hw
    }
    pub fn hardware_mut(&mut self) -> &mut H {
        &mut self.hw
    }

    /// Why the door is where it is: the mode's cause and any fault, empty when there is nothing to say.
    pub fn reason(&self) -> String {
        match (&self.fault, self.mode_reason.is_empty()) {
            (Some(f), true) => f.clone(),
            (Some(f), false) => format!("{}; {f}", self.mode_reason),
            (None, _) => self.mode_reason.clone(),
        }
    }

    /// The state as published; its clock is read now, as close to publication as it gets.
    pub fn state(&self) -> DoorState {
        DoorState {
            v: CONTROL_VERSION,
            lane: self.lane.clone(),
            flap: self.flap,
            mode: self.mode,
            position: self.sensors.position.clamp(0.0, 1.0),
            obstructed: self.sensors.obstructed,
            epoch: self.guard.epoch(),
            ack_seq: self.guard.ack_seq(),
            clock_ms: self.clock.ms(Instant::now()),
            rejected: self.guard.rejected(),
            reason: self.reason(),
            t_unix_ms: unix_ms(),
        }
    }

    /// Applies a decoded command if the guard admits it. Only an admitted command proves that the
    /// lane's gated is in control and feeds the watchdog: a rejected one (a replay, a stale or
    /// hostile number, another epoch) must not keep the lane out of fail-safe.
    pub fn command(&mut self, cmd: &DoorCommand, now: Instant) -> Handled {
        // Observe an expiry that happened since the last tick before the command cancels it, so the
        // fail-safe entry (which clears latch and grant) is never skipped, and so that a lane whose
        // gated has just gone silent is open to the next one's claim.
        self.refresh_mode(now);
        let claimable = self.failsafe_cause.is_some();
        match self.guard.admit(cmd.stamp(), claimable, self.clock.ms(now)) {
            Err(why) => return Handled::Rejected(why),
            Ok(Admitted::Claimed { from }) => {
                info!(lane = %self.lane, epoch = %cmd.epoch, previous = ?from, "lane claimed by a new epoch")
            }
            Ok(Admitted::Current) => {}
        }
        self.last_cmd = Some(now);
        self.refresh_mode(now);
        let handled = self.apply(cmd, now);
        self.refresh_mode(now);
        handled
    }

    /// gated's liveliness token appeared (`true`) or disappeared (`false`).
    pub fn gated_alive(&mut self, alive: bool, now: Instant) {
        if alive && self.liveliness_lost {
            // Anyone on the bus can declare the token, so it proves nothing and changes neither the
            // epoch nor its sequence: a restarted gated takes over with a new epoch, which the lane
            // admits while it is in fail-safe. An admitted command, not the token, ends the
            // fail-safe.
            info!(lane = %self.lane, "gated liveliness token back; waiting for its first command");
            self.liveliness_lost = false;
            self.last_cmd = None;
        } else if !alive {
            self.liveliness_lost = true;
        }
        self.refresh_mode(now);
    }

    pub fn set_emergency(&mut self, active: bool, now: Instant) {
        self.emergency = active;
        self.refresh_mode(now);
    }

    /// One control step: read the sensors, update mode and grant, drive the motor.
    pub fn tick(&mut self, now: Instant) {
        let s = self.hw.sense(now);
        self.sensors = s;
        if s.obstructed {
            self.last_obstructed = Some(now);
        }
        for _ in 0..s.passages {
            self.on_passage(now);
        }
        self.refresh_mode(now);
        self.expire_grant(now);
        let target = self.wanted(now);
        if self.target != Some(target) {
            self.target = Some(target);
            self.retry = true;
        }
        self.move_flap(target, now);
    }

    fn apply(&mut self, cmd: &DoorCommand, now: Instant) -> Handled {
        let refuse = |mode: DoorMode, what: &str| {
            Handled::Refused(format!("{what} refused in mode {mode:?}"))
        };
        let latch = match cmd.action {
            DoorAction::Heartbeat => return Handled::Applied,
            DoorAction::Open => {
                if self.mode != DoorMode::Normal {
                    return refuse(self.mode, "open");
                }
                let timeout = cmd
                    .pass_timeout_ms
                    .map_or(self.cfg.pass_timeout, |ms| Duration::from_millis(ms.into()));
                let g = self.grant.get_or_insert(Grant {
                    passages_left: 0,
                    deadline: now,
                    close_at: None,
                });
                g.passages_left = g.passages_left.saturating_add(1);
                g.deadline = now + timeout;
                g.close_at = None;
                self.retry = true;
                return Handled::Applied;
            }
            DoorAction::Close => {
                self.grant = None;
                self.retry = true;
                if self.mode != DoorMode::Normal {
                    return refuse(self.mode, "close");
                }
                return Handled::Applied;
            }
            DoorAction::HoldOpen => Latch::HeldOpen,
            DoorAction::HoldClosed => Latch::HeldClosed,
            DoorAction::Release => Latch::Normal,
            DoorAction::Safe => Latch::Safe { seq: cmd.seq },
        };
        self.latch = latch;
        self.grant = None;
        self.retry = true;
        Handled::Applied
    }

    fn failsafe_now(&self, now: Instant) -> Option<String> {
        if self.liveliness_lost {
            return Some("gated liveliness token lost".into());
        }
        match self.last_cmd {
            None => Some("no command from gated yet".into()),
            Some(t) if now.saturating_duration_since(t) > self.cfg.watchdog => {
                // Kept constant while it lasts: a changing reason would be republished every tick.
                Some(format!(
                    "no command from gated for over {} ms (watchdog)",
                    self.cfg.watchdog.as_millis()
                ))
            }
            Some(_) => None,
        }
    }

    fn refresh_mode(&mut self, now: Instant) {
        let cause = self.failsafe_now(now);
        match (&self.failsafe_cause, &cause) {
            (None, Some(c)) => {
                warn!(lane = %self.lane, reason = %c, policy = ?self.cfg.failsafe, "entering fail-safe");
                // gated's view of holds and grants is gone with it; whoever takes over re-sends them.
                self.latch = Latch::Normal;
                self.grant = None;
            }
            (Some(_), None) => {
                info!(lane = %self.lane, "commands from gated resumed; leaving fail-safe")
            }
            _ => {}
        }
        self.failsafe_cause = cause;

        let (mode, reason) = if self.emergency {
            (DoorMode::Emergency, "emergency input active".to_owned())
        } else if let Some(c) = &self.failsafe_cause {
            (self.cfg.failsafe.mode(), c.clone())
        } else {
            match self.latch {
                Latch::Normal => (DoorMode::Normal, String::new()),
                Latch::HeldOpen => (DoorMode::HeldOpen, "held open by command".to_owned()),
                Latch::HeldClosed => (DoorMode::HeldClosed, "held closed by command".to_owned()),
                Latch::Safe { seq } => (
                    self.cfg.failsafe.mode(),
                    format!("safe requested by gated (seq {seq})"),
                ),
            }
        };
        if mode != self.mode {
            info!(lane = %self.lane, from = ?self.mode, to = ?mode, reason = %reason, "door mode");
            self.retry = true;
            if mode != DoorMode::Normal {
                self.grant = None;
            }
        }
        self.mode = mode;
        self.mode_reason = reason;
    }

    fn on_passage(&mut self, now: Instant) {
        match &mut self.grant {
            Some(g) if g.passages_left > 0 => {
                g.passages_left -= 1;
                if g.passages_left == 0 {
                    g.close_at = Some(now + self.cfg.clearance);
                }
                debug!(lane = %self.lane, left = g.passages_left, "passage");
            }
            _ => debug!(lane = %self.lane, mode = ?self.mode, "passage without a grant"),
        }
    }

    fn expire_grant(&mut self, now: Instant) {
        let Some(g) = self.grant else { return };
        if g.close_at.is_some_and(|c| now >= c) {
            self.grant = None;
        } else if now >= g.deadline {
            info!(lane = %self.lane, passages_left = g.passages_left, "pass timeout; closing");
            self.grant = None;
        }
    }

    fn person_in_the_way(&self, now: Instant) -> bool {
        // A closed flap is a wall: someone standing at it is no reason to open it.
        self.flap != Flap::Closed
            && (self.sensors.obstructed
                || self
                    .last_obstructed
                    .is_some_and(|t| now < t + self.cfg.clearance))
    }

    fn wanted(&self, now: Instant) -> End {
        let wanted = match self.mode {
            DoorMode::Emergency | DoorMode::FailsafeOpen | DoorMode::HeldOpen => End::Open,
            DoorMode::FailsafeClosed | DoorMode::HeldClosed => End::Closed,
            DoorMode::Normal if self.grant.is_some() => End::Open,
            DoorMode::Normal => End::Closed,
        };
        if wanted == End::Closed && self.person_in_the_way(now) {
            End::Open
        } else {
            wanted
        }
    }

    fn move_flap(&mut self, target: End, now: Instant) {
        if self.fault.is_some() {
            // A faulted flap stays still until something asks it to move again (a command, a mode or
            // target change): hammering a jammed motor every tick would burn it out.
            if !std::mem::take(&mut self.retry) {
                return;
            }
            info!(lane = %self.lane, target = target.name(), "retrying the flap after a fault");
            self.fault = None;
            self.motion_since = None;
        }
        self.retry = false;
        let at_end = match target {
            End::Open => self.sensors.open_limit,
            End::Closed => self.sensors.closed_limit,
        };
        if at_end {
            if self.set_motor(Motor::Stop) {
                self.flap = match target {
                    End::Open => Flap::Open,
                    End::Closed => Flap::Closed,
                };
                self.motion_since = None;
            }
            return;
        }
        let (motor, moving) = match target {
            End::Open => (Motor::Open, Flap::Opening),
            End::Closed => (Motor::Close, Flap::Closing),
        };
        if self.motor != motor || self.motion_since.is_none() {
            if self.flap == Flap::Closing && motor == Motor::Open {
                info!(lane = %self.lane, position = self.sensors.position, "obstruction while closing; reopening");
            }
            if !self.set_motor(motor) {
                return;
            }
            self.motion_since = Some(now);
        }
        self.flap = moving;
        let limit = self.cfg.travel * 2;
        if self
            .motion_since
            .is_some_and(|t| now.saturating_duration_since(t) > limit)
        {
            self.set_fault(format!(
                "flap did not reach {} within {} ms (position {:.2})",
                target.name(),
                limit.as_millis(),
                self.sensors.position
            ));
        }
    }

    /// Returns false (and faults) when the hardware refuses.
    fn set_motor(&mut self, motor: Motor) -> bool {
        if self.motor == motor {
            return true;
        }
        match self.hw.drive(motor) {
            Ok(()) => {
                self.motor = motor;
                true
            }
            Err(e) => {
                self.set_fault(format!("motor {motor:?}: {e}"));
                false
            }
        }
    }

    fn set_fault(&mut self, reason: String) {
        warn!(lane = %self.lane, reason = %reason, "flap fault");
        self.flap = Flap::Fault;
        self.fault = Some(reason);
        self.motion_since = None;
        self.retry = false;
        if self.motor != Motor::Stop {
            match self.hw.drive(Motor::Stop) {
                Ok(()) => self.motor = Motor::Stop,
                Err(e) => {
                    warn!(lane = %self.lane, error = %e, "could not stop the motor after a fault")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
