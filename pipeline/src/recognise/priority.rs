//! Which lanes a tick recognises when live lanes deliver more frames than the station can take:
//! the detection cadence follows the tracks. A lane with a walker still to decide in view is
//! recognised on every tick, and for `busy_hold` after the last such face (at least the grants'
//! confirmation window and a tick beyond, so a held grant is released, and a person who appears
//! behind a walker just granted is seen, at full rate). A lane where nobody has been seen, or whose walkers in view are all
//! decided (their faces overlap the boxes the deciders settled), is still looked at, but only
//! every `idle_interval` while another lane has someone to decide: the frames go where a decision
//! is due. No lane starves: such a lane's wait is bounded by `idle_interval`, any face it then
//! shows that is not a decided walker makes it busy again, and when no lane is busy every lane is
//! taken. Recorded footage in benchmark mode (every frame) does not use this.
//!
//! Pure logic on instants passed in, tested below.

use std::time::{Duration, Instant};

/// How long a lane stays at full rate after its last face still to decide: a second, or the
/// grants' confirmation window and a tick beyond when that is longer. A grant held for
/// confirmation is released by the lane's next frame, and a person appearing behind the walker
/// must be seen within the window.
pub fn busy_hold(confirm: Duration) -> Duration {
    Duration::from_secs(1).max(confirm + Duration::from_millis(200))
}

#[derive(Debug)]
pub struct LanePriority {
    /// A lane counts as busy until this instant (the last face seen + `busy_hold`).
    busy_until: Vec<Option<Instant>>,
    last_taken: Vec<Option<Instant>>,
    idle_interval: Duration,
    busy_hold: Duration,
}

impl LanePriority {
    pub fn new(lanes: usize, idle_interval: Duration, busy_hold: Duration) -> Self {
        Self {
            busy_until: vec![None; lanes],
            last_taken: vec![None; lanes],
            idle_interval,
            busy_hold,
        }
    }

    fn busy(&self, lane: usize, now: Instant) -> bool {
        self.busy_until
            .get(lane)
            .copied()
            .flatten()
            .is_some_and(|t| now < t)
    }

    /// For each lane with a new frame (`lanes`, in the tick's order), whether this tick takes it.
    pub fn select(&mut self, lanes: &[usize], now: Instant) -> Vec<bool> {
        let any_busy = lanes.iter().any(|&l| self.busy(l, now));
        lanes
            .iter()
            .map(|&l| {
                let due = self
                    .last_taken
                    .get(l)
                    .copied()
                    .flatten()
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.idle_interval);
                let take = !any_busy || self.busy(l, now) || due;
                if take && let Some(slot) = self.last_taken.get_mut(l) {
                    *slot = Some(now);
                }
                take
            })
            .collect()
    }

    /// What a recognised frame of `lane` showed: `to_decide`, a face that is not a decided walker.
    pub fn saw(&mut self, lane: usize, to_decide: bool, now: Instant) {
        if to_decide && let Some(slot) = self.busy_until.get_mut(lane) {
            *slot = Some(now + self.busy_hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn all_lanes_taken_while_nobody_is_seen() {
        let mut p = LanePriority::new(3, 200 * MS, 1000 * MS);
        let t = Instant::now();
        for k in 0..5 {
            assert_eq!(p.select(&[0, 1, 2], t + k * 30 * MS), vec![true; 3]);
        }
    }

    #[test]
    fn busy_lanes_every_tick_idle_lanes_every_interval() {
        let mut p = LanePriority::new(3, 200 * MS, 1000 * MS);
        let t = Instant::now();
        assert_eq!(p.select(&[0, 1, 2], t), vec![true; 3]);
        p.saw(1, true, t);
        let mut idle_taken = 0;
        for k in 1..=20 {
            let now = t + k * 50 * MS; // one second of ticks
            let s = p.select(&[0, 1, 2], now);
            assert!(s[1], "the busy lane is taken on every tick");
            p.saw(1, true, now);
            idle_taken += usize::from(s[0]);
        }
        // 1 s at one look per 200 ms: the idle lane is never starved, nor taken every tick.
        assert!((4..=6).contains(&idle_taken), "{idle_taken}");
    }

    #[test]
    fn a_lane_of_decided_walkers_drops_to_the_idle_cadence_after_the_hold() {
        let mut p = LanePriority::new(2, 200 * MS, 500 * MS);
        let t = Instant::now();
        p.select(&[0, 1], t);
        // Lane 0's walker is undecided at first, then decided (its face still in view); lane 1
        // has someone to decide throughout.
        p.saw(0, true, t);
        p.saw(1, true, t);
        let (mut held, mut after) = (0, 0);
        for k in 1..=30 {
            let now = t + k * 50 * MS;
            let s = p.select(&[0, 1], now);
            assert!(s[1]);
            p.saw(1, true, now);
            p.saw(0, false, now);
            match now < t + 500 * MS {
                true => held += usize::from(s[0]),
                false => after += usize::from(s[0]),
            }
        }
        assert_eq!(held, 9, "every tick while the hold lasts");
        // 1.05 s of ticks after it at one look per 200 ms.
        assert!((5..=6).contains(&after), "{after}");
    }

    #[test]
    fn a_lane_stops_being_busy_after_the_hold() {
        let mut p = LanePriority::new(2, 200 * MS, 500 * MS);
        let t = Instant::now();
        p.select(&[0, 1], t);
        p.saw(0, true, t);
        assert_eq!(p.select(&[0, 1], t + 100 * MS), vec![true, false]);
        // Nobody seen since: after the hold both lanes are idle again and both are taken.
        assert_eq!(p.select(&[0, 1], t + 600 * MS), vec![true, true]);
    }
}
