//! The lighting of one lane: the arch colour shown to the passenger and the face illumination the
//! camera depends on. Illumination ramps instead of jumping because a step in brightness makes the
//! camera's auto-exposure hunt for several frames, and a slow change is also kinder to the eye.

use std::time::Instant;

use protocol::{ArchColour, CONTROL_VERSION, LightCommand, LightState, unix_ms};
use tracing::{info, warn};

use crate::Handled;
use crate::error::HwError;
use crate::guard::{Admitted, DriverClock, Guard};

/// The lamp outputs. `set_illumination` is called on every control tick while ramping (about every
/// 10 ms), so a PWM or DALI implementation should only write when the value actually changes.
pub trait LightHardware {
    fn set_arch(&mut self, colour: ArchColour) -> Result<(), HwError>;
    /// `percent` is 0.0–100.0.
    fn set_illumination(&mut self, percent: f32) -> Result<(), HwError>;
}

/// Lamps that only remember what they were told.
#[derive(Debug, Clone)]
pub struct SimLight {
    pub arch: ArchColour,
    pub illumination: f32,
}

impl Default for SimLight {
    fn default() -> Self {
        Self {
            arch: ArchColour::Idle,
            illumination: 0.0,
        }
    }
}

impl LightHardware for SimLight {
    fn set_arch(&mut self, colour: ArchColour) -> Result<(), HwError> {
        self.arch = colour;
        Ok(())
    }
    fn set_illumination(&mut self, percent: f32) -> Result<(), HwError> {
        self.illumination = percent;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct LightConfig {
    /// Illumination ramp speed in percentage points per second.
    pub ramp_per_s: f32,
}

impl Default for LightConfig {
    fn default() -> Self {
        Self { ramp_per_s: 200.0 }
    }
}

pub struct LightController<H> {
    lane: String,
    cfg: LightConfig,
    hw: H,
    arch: ArchColour,
    target: u8,
    level: f32,
    clock: DriverClock,
    guard: Guard,
    /// Another epoch may claim the lamps: set when gated's token goes, until a command is admitted.
    /// The lamps have no watchdog (gated sends light commands only on changes), so the token's loss
    /// is what says their gated may be gone.
    open_to_claim: bool,
    last_tick: Option<Instant>,
    hw_error: Option<String>,
}

impl<H: LightHardware> LightController<H> {
    /// Arch idle, illumination off until gated asks for light. Deadlines are read on `clock`.
    pub fn new(lane: impl Into<String>, cfg: LightConfig, hw: H, clock: DriverClock) -> Self {
        let mut c = Self {
            lane: lane.into(),
            cfg,
            hw,
            arch: ArchColour::Idle,
            target: 0,
            level: 0.0,
            clock,
            guard: Guard::default(),
            open_to_claim: true,
            last_tick: None,
            hw_error: None,
        };
        // The lamps may be in any state after a restart of the driver; make them match what we report.
        let r = c.hw.set_arch(c.arch);
        c.note(r);
        let r = c.hw.set_illumination(c.level);
        c.note(r);
        c
    }

    pub fn lane(&self) -> &str {
        &self.lane
    }
    pub fn arch(&self) -> ArchColour {
        self.arch
    }
    pub fn level(&self) -> f32 {
        self.level
    }
    pub fn target(&self) -> u8 {
        self.target
    }
    pub fn ack_seq(&self) -> u64 {
        self.guard.ack_seq()
    }
    pub fn hardware(&self) -> &H {
        &self.hw
    }
    pub fn is_ramping(&self) -> bool {
        self.level != f32::from(self.target)
    }

    /// The state as published; its clock is read now, as close to publication as it gets.
    pub fn state(&self) -> LightState {
        LightState {
            v: CONTROL_VERSION,
            lane: self.lane.clone(),
            arch: self.arch,
            target: self.target,
            level: self.level,
            epoch: self.guard.epoch(),
            ack_seq: self.guard.ack_seq(),
            clock_ms: self.clock.ms(Instant::now()),
            rejected: self.guard.rejected(),
            t_unix_ms: unix_ms(),
        }
    }

    /// Applies a decoded command if the guard admits it; the ramp itself advances in
    /// [`tick`](Self::tick).
    pub fn command(&mut self, cmd: &LightCommand, now: Instant) -> Handled {
        match self
            .guard
            .admit(cmd.stamp(), self.open_to_claim, self.clock.ms(now))
        {
            Err(why) => return Handled::Rejected(why),
            Ok(Admitted::Claimed { from }) => {
                info!(lane = %self.lane, epoch = %cmd.epoch, previous = ?from, "lamps claimed by a new epoch")
            }
            Ok(Admitted::Current) => {}
        }
        self.open_to_claim = false;
        // Bring the ramp up to date first so the new set-point starts from where the lamp really is.
        self.tick(now);
        if let Some(arch) = cmd.arch {
            self.set_arch(arch);
        }
        if let Some(target) = cmd.illumination {
            self.target = target.min(100);
        }
        Handled::Applied
    }

    /// gated's liveliness token appeared (`true`) or disappeared (`false`). The token changes
    /// neither the epoch nor its sequence (anyone can declare it; see `DoorController::gated_alive`).
    pub fn gated_alive(&mut self, alive: bool) {
        if !alive {
            self.open_to_claim = true;
            // A "welcome" arch with nobody deciding behind it would wave people into a closed flap.
            // Illumination stays: it harms nobody and the camera needs it when gated comes back.
            if self.arch != ArchColour::Idle {
                info!(lane = %self.lane, "gated gone; arch back to idle");
            }
            self.set_arch(ArchColour::Idle);
        }
    }

    pub fn tick(&mut self, now: Instant) {
        let dt = self
            .last_tick
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f32());
        self.last_tick = Some(now);
        if !self.is_ramping() {
            return;
        }
        let target = f32::from(self.target);
        let step = self.cfg.ramp_per_s.max(0.0) * dt;
        self.level = if (target - self.level).abs() <= step {
            target
        } else if target > self.level {
            self.level + step
        } else {
            self.level - step
        };
        let r = self.hw.set_illumination(self.level);
        self.note(r);
    }

    fn set_arch(&mut self, arch: ArchColour) {
        if arch == self.arch {
            return;
        }
        self.arch = arch;
        let r = self.hw.set_arch(arch);
        self.note(r);
    }

    /// Logs hardware errors when they start and stop rather than on every 10 ms write.
    fn note(&mut self, r: Result<(), HwError>) {
        match (r, self.hw_error.is_some()) {
            (Ok(()), true) => {
                info!(lane = %self.lane, "lamp outputs work again");
                self.hw_error = None;
            }
            (Err(e), _) => {
                let text = e.to_string();
                if self.hw_error.as_deref() != Some(text.as_str()) {
                    warn!(lane = %self.lane, error = %text, "lamp output failed");
                    self.hw_error = Some(text);
                }
            }
            (Ok(()), false) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::{Epoch, Rejection, Stamp};

    use super::*;

    /// Lamps whose clock reads 0 at `t0`, and commands of epoch `e` stamped to live 500 ms from `now`.
    struct Rig {
        t0: Instant,
    }

    impl Rig {
        fn new() -> (Self, Instant) {
            let t0 = Instant::now();
            (Self { t0 }, t0)
        }

        fn lamps(&self, cfg: LightConfig) -> LightController<SimLight> {
            LightController::new("L1", cfg, SimLight::default(), DriverClock::at(self.t0, 0))
        }

        fn cmd(
            &self,
            now: Instant,
            e: u8,
            seq: u64,
            arch: Option<ArchColour>,
            illumination: Option<u8>,
        ) -> LightCommand {
            let stamp = Stamp {
                epoch: Epoch::from_bytes([e; 16]),
                seq,
                deadline_ms: (now - self.t0).as_millis() as u64 + 500,
            };
            LightCommand::new(stamp, arch, illumination)
        }
    }

    /// Ticks every 10 ms until the ramp stops; returns the elapsed ms.
    fn ramp(c: &mut LightController<SimLight>, now: &mut Instant) -> u64 {
        let start = *now;
        while c.is_ramping() {
            assert!(
                *now - start < Duration::from_secs(5),
                "ramp never ends: {:?}",
                c.state()
            );
            *now += Duration::from_millis(10);
            c.tick(*now);
        }
        (*now - start).as_millis() as u64
    }

    #[test]
    fn illumination_ramps_at_the_configured_rate() {
        let (r, mut now) = Rig::new();
        let mut c = r.lamps(LightConfig::default());
        c.tick(now);
        assert_eq!(
            c.command(&r.cmd(now, 1, 1, None, Some(100)), now),
            Handled::Applied
        );
        now += Duration::from_millis(100);
        c.tick(now);
        assert!((c.level() - 20.0).abs() < 0.01, "{}", c.level());
        assert!((c.hardware().illumination - 20.0).abs() < 0.01);
        let t = ramp(&mut c, &mut now);
        assert!(
            (390..=410).contains(&t),
            "0 -> 100 at 200 %/s took {} ms in all",
            t + 100
        );
        assert_eq!(c.hardware().illumination, 100.0);

        let mut slow = r.lamps(LightConfig { ramp_per_s: 50.0 });
        slow.tick(now);
        slow.command(&r.cmd(now, 1, 1, None, Some(10)), now);
        let t = ramp(&mut slow, &mut now);
        assert!((190..=210).contains(&t), "{t}");
        slow.command(&r.cmd(now, 1, 2, None, Some(0)), now);
        assert!(
            (190..=210).contains(&ramp(&mut slow, &mut now)),
            "ramps down too"
        );
    }

    #[test]
    fn arch_and_illumination_are_set_independently_and_replays_rejected() {
        let (r, now) = Rig::new();
        let mut c = r.lamps(LightConfig::default());
        c.command(&r.cmd(now, 1, 3, Some(ArchColour::Welcome), Some(60)), now);
        c.command(&r.cmd(now, 1, 4, Some(ArchColour::Stop), None), now);
        assert_eq!(
            (c.arch(), c.target(), c.ack_seq()),
            (ArchColour::Stop, 60, 4)
        );
        assert_eq!(c.hardware().arch, ArchColour::Stop);
        assert_eq!(
            c.command(&r.cmd(now, 1, 4, Some(ArchColour::Alarm), None), now),
            Handled::Rejected(Rejection::Replay)
        );
        assert_eq!(
            c.command(&r.cmd(now, 1, u64::MAX, Some(ArchColour::Alarm), None), now),
            Handled::Rejected(Rejection::Future)
        );
        assert_eq!(
            c.command(&r.cmd(now, 2, 1, Some(ArchColour::Alarm), None), now),
            Handled::Rejected(Rejection::Epoch),
            "the lamps' gated is still there"
        );
        assert_eq!((c.arch(), c.ack_seq()), (ArchColour::Stop, 4));
        assert_eq!(c.state().rejected.get(Rejection::Replay), 1);
    }

    #[test]
    fn losing_gated_idles_the_arch_keeps_the_light_and_opens_the_lamps_to_a_new_epoch() {
        let (r, mut now) = Rig::new();
        let mut c = r.lamps(LightConfig::default());
        c.tick(now);
        c.command(&r.cmd(now, 1, 7, Some(ArchColour::Welcome), Some(80)), now);
        ramp(&mut c, &mut now);
        c.gated_alive(false);
        assert_eq!(
            (c.arch(), c.hardware().arch, c.target()),
            (ArchColour::Idle, ArchColour::Idle, 80)
        );
        assert_eq!(c.level(), 80.0);
        // The token's return (anyone may declare it) reopens nothing of the old epoch …
        c.gated_alive(true);
        assert_eq!(
            c.command(&r.cmd(now, 1, 7, Some(ArchColour::Alarm), None), now),
            Handled::Rejected(Rejection::Replay)
        );
        // … while a restarted gated's new epoch, counting from 1, takes over.
        assert_eq!(
            c.command(&r.cmd(now, 2, 1, Some(ArchColour::Welcome), None), now),
            Handled::Applied
        );
        assert_eq!(c.state().epoch, Some(Epoch::from_bytes([2; 16])));
        assert_eq!(
            c.command(&r.cmd(now, 1, 8, Some(ArchColour::Alarm), None), now),
            Handled::Rejected(Rejection::Epoch),
            "the old epoch is out once the new one holds the lamps"
        );
    }
}
