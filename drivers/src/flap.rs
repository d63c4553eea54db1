//! The flap's hardware boundary and its simulation.
//!
//! The door controller only ever talks to [`FlapHardware`]: it commands the motor and reads the sensors
//! once per control tick. A GPIO or serial flap unit implements the same trait, so the state machine,
//! its tests and the fail-safe policy do not change when real hardware arrives.

use std::time::{Duration, Instant};

use protocol::DoorSim;

use crate::error::HwError;

/// What the controller asks of the flap motor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motor {
    Open,
    Close,
    Stop,
}

/// One reading of the flap's sensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sensors {
    /// 0.0 closed … 1.0 fully open. Hardware with limit switches only may report an estimate; the
    /// controller decides end positions from the limit switches, not from this value.
    pub position: f32,
    /// End-of-travel switch at the open end.
    pub open_limit: bool,
    /// End-of-travel switch at the closed end.
    pub closed_limit: bool,
    /// Someone or something is in the flap's swing area.
    pub obstructed: bool,
    /// Passages counted by the passage sensor since the previous [`FlapHardware::sense`]. A count rather
    /// than a flag because two people can cross within one control tick.
    pub passages: u32,
}

/// A flap unit: motor output plus sensor inputs.
///
/// `sense` is called once per control tick (about every 10 ms) and `drive` only when the wanted motor
/// output changes, so an implementation may do blocking-free register or serial I/O in both.
pub trait FlapHardware {
    fn drive(&mut self, motor: Motor) -> Result<(), HwError>;
    fn sense(&mut self, now: Instant) -> Sensors;
    /// Feeds simulated sensor inputs. Real hardware has real sensors, so the default refuses and the
    /// driver logs that the input was ignored.
    fn inject(&mut self, _input: &DoorSim) -> bool {
        false
    }
}

/// Simulated flap with a constant-speed motor: a full stroke in either direction takes `travel`.
#[derive(Debug, Clone)]
pub struct SimFlap {
    travel: Duration,
    position: f32,
    motor: Motor,
    jammed: bool,
    obstructed: bool,
    pending_passages: u32,
    last_sense: Option<Instant>,
}

impl SimFlap {
    /// A closed flap at rest. `travel` is clamped to at least 1 ms so the speed stays finite.
    pub fn new(travel: Duration) -> Self {
        Self {
            travel: travel.max(Duration::from_millis(1)),
            position: 0.0,
            motor: Motor::Stop,
            jammed: false,
            obstructed: false,
            pending_passages: 0,
            last_sense: None,
        }
    }

    pub fn position(&self) -> f32 {
        self.position
    }

    pub fn motor(&self) -> Motor {
        self.motor
    }

    pub fn set_obstructed(&mut self, obstructed: bool) {
        self.obstructed = obstructed;
    }

    pub fn set_jammed(&mut self, jammed: bool) {
        self.jammed = jammed;
    }

    pub fn passage(&mut self) {
        self.pending_passages = self.pending_passages.saturating_add(1);
    }

    fn advance(&mut self, now: Instant) {
        // The position is integrated lazily at each reading; `drive` is called right after a reading in
        // the same tick, so a motor change takes effect from (almost exactly) that instant.
        let dt = match self.last_sense {
            Some(prev) => now.saturating_duration_since(prev),
            None => Duration::ZERO,
        };
        self.last_sense = Some(now);
        if self.jammed {
            return;
        }
        let step = (dt.as_secs_f64() / self.travel.as_secs_f64()) as f32;
        self.position = match self.motor {
            Motor::Open => (self.position + step).min(1.0),
            Motor::Close => (self.position - step).max(0.0),
            Motor::Stop => self.position,
        };
    }
}

impl FlapHardware for SimFlap {
    fn drive(&mut self, motor: Motor) -> Result<(), HwError> {
        self.motor = motor;
        Ok(())
    }

    fn sense(&mut self, now: Instant) -> Sensors {
        self.advance(now);
        let passages = std::mem::take(&mut self.pending_passages);
        Sensors {
            position: self.position,
            open_limit: self.position >= 1.0,
            closed_limit: self.position <= 0.0,
            obstructed: self.obstructed,
            passages,
        }
    }

    fn inject(&mut self, input: &DoorSim) -> bool {
        if let Some(o) = input.obstructed {
            self.obstructed = o;
        }
        if let Some(j) = input.jammed {
            self.jammed = j;
        }
        if input.passage {
            self.passage();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn travels_at_constant_speed_and_stops_at_the_ends() {
        let t0 = Instant::now();
        let mut f = SimFlap::new(ms(300));
        assert!(f.sense(t0).closed_limit);
        f.drive(Motor::Open).expect("sim drive");
        let s = f.sense(t0 + ms(150));
        assert!((s.position - 0.5).abs() < 1e-3, "{s:?}");
        assert!(!s.open_limit && !s.closed_limit);
        let s = f.sense(t0 + ms(400));
        assert_eq!(s.position, 1.0);
        assert!(s.open_limit);
        f.drive(Motor::Close).expect("sim drive");
        assert!(f.sense(t0 + ms(700)).closed_limit);
    }

    #[test]
    fn jam_freezes_the_flap_and_inputs_are_applied() {
        let t0 = Instant::now();
        let mut f = SimFlap::new(ms(100));
        f.sense(t0);
        f.drive(Motor::Open).expect("sim drive");
        f.sense(t0 + ms(50));
        let input = DoorSim {
            v: 1,
            obstructed: Some(true),
            passage: true,
            jammed: Some(true),
        };
        assert!(f.inject(&input));
        let s = f.sense(t0 + ms(500));
        assert!((s.position - 0.5).abs() < 1e-3, "{s:?}");
        assert!(s.obstructed);
        assert_eq!(s.passages, 1);
        assert_eq!(
            f.sense(t0 + ms(510)).passages,
            0,
            "passages are reported once"
        );
    }
}
