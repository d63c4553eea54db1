//! The recogniser's watch (issue 15, "Faults"): a tick that hangs (a GPU hang, a driver blocking in
//! a wait) stops every lane's results without closing anything, so neither the drivers' watchdog
//! (gated's heartbeats go on) nor the device-lost callback can notice. The station loop can: a
//! frame has waited in the hub for `[recognise] stall_ms` and no result has come back in that
//! time. Then the doors go to their safe position and the lanes to IC-card mode until results come
//! back. A stall longer than [`GIVE_UP`] is treated like a lost device: gated stops for its
//! supervisor to restart it.
//!
//! Armed only for live lanes and only after the first result: recorded footage in benchmark mode
//! takes as long as it takes, and the first tick builds the GPU pipelines (seconds on lavapipe).

use std::time::{Duration, Instant};

/// How long a stall may last before gated gives up on the tick and stops (the doors stay safe
/// meanwhile, and the drivers keep them so while gated restarts).
pub const GIVE_UP: Duration = Duration::from_secs(30);

/// What a report or a check changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// No result for this long while frames waited.
    Stalled(Duration),
    /// Results again after a stall of this long (from its detection).
    Resumed(Duration),
}

#[derive(Debug)]
pub struct StallWatch {
    /// `None`: not watched (recorded footage in benchmark mode).
    limit: Option<Duration>,
    last_report: Option<Instant>,
    stalled_since: Option<Instant>,
    /// Frames captured before this are from during the stall: too old to open a door on.
    resumed_at: Option<Instant>,
    stalls: u64,
}

impl StallWatch {
    pub fn new(limit: Option<Duration>) -> Self {
        Self {
            limit,
            last_report: None,
            stalled_since: None,
            resumed_at: None,
            stalls: 0,
        }
    }

    /// A result (or a frame's normalisation) came back at `now`.
    pub fn report(&mut self, now: Instant) -> Option<Change> {
        self.last_report = Some(now);
        let since = self.stalled_since.take()?;
        self.resumed_at = Some(now);
        Some(Change::Resumed(now.saturating_duration_since(since)))
    }

    /// The periodic look: `waiting` is since when a frame has waited for the tick (`None`: none
    /// waits). Silence counts from the later of the last result and the frame's arrival, so a
    /// lane that was quiet (a camera reconnecting, a slow frame rate) is not a stall.
    pub fn check(&mut self, now: Instant, waiting: Option<Instant>) -> Option<Change> {
        let (limit, last, waiting) = (self.limit?, self.last_report?, waiting?);
        let silent = now.saturating_duration_since(last.max(waiting));
        if self.stalled_since.is_some() || silent <= limit {
            return None;
        }
        self.stalled_since = Some(now);
        self.stalls += 1;
        Some(Change::Stalled(silent))
    }

    pub fn stalled(&self) -> bool {
        self.stalled_since.is_some()
    }

    /// Whether the stall has lasted past [`GIVE_UP`]: a tick that is not coming back.
    pub fn hopeless(&self, now: Instant) -> bool {
        self.stalled_since
            .is_some_and(|s| now.saturating_duration_since(s) > GIVE_UP)
    }

    /// Whether a frame captured at `captured` may be decided on: not during a stall, and not one
    /// that waited out the stall (the walker it shows has moved on).
    pub fn decides(&self, captured: Instant) -> bool {
        !self.stalled() && self.resumed_at.is_none_or(|r| captured >= r)
    }

    /// Stalls seen in this run.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn silence_while_frames_wait_is_a_stall_and_the_next_result_ends_it() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(Some(400 * MS));
        let waiting = Some(t0);
        // Not armed before the first result (the first tick builds pipelines).
        assert_eq!(w.check(t0 + 5000 * MS, waiting), None);
        assert_eq!(w.report(t0), None);
        assert_eq!(w.check(t0 + 400 * MS, waiting), None);
        // Idle lanes (nothing waiting) are not a stall, however long.
        assert_eq!(w.check(t0 + 9000 * MS, None), None);
        // A frame that has just arrived after a quiet spell is not a stall either.
        assert_eq!(w.check(t0 + 9000 * MS, Some(t0 + 8900 * MS)), None);
        assert_eq!(
            w.check(t0 + 450 * MS, waiting),
            Some(Change::Stalled(450 * MS))
        );
        assert!(w.stalled() && !w.decides(t0 + 460 * MS));
        // Reported once.
        assert_eq!(w.check(t0 + 900 * MS, waiting), None);
        assert!(!w.hopeless(t0 + 900 * MS) && w.hopeless(t0 + 450 * MS + GIVE_UP + MS));
        assert_eq!(w.report(t0 + 1450 * MS), Some(Change::Resumed(1000 * MS)));
        assert!(!w.stalled());
        assert!(!w.decides(t0 + 1000 * MS), "captured during the stall");
        assert!(w.decides(t0 + 1500 * MS));
        assert_eq!(w.stalls(), 1);
    }

    #[test]
    fn recorded_footage_is_not_watched() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(None);
        w.report(t0);
        assert_eq!(w.check(t0 + 60_000 * MS, Some(t0)), None);
        assert!(w.decides(t0));
    }
}
