//! Which commands a driver lane admits (`docs/protocol.md`, "Command authority"). Only an admitted
//! command acts, is acknowledged and feeds the door's watchdog; a rejected one is counted per
//! reason and otherwise ignored, so neither a replay nor a hostile number can keep a lane out of
//! fail-safe or take it away from the epoch that holds it.
//!
//! The rule, first failing check wins:
//! 1. the deadline has passed on the driver's clock: `stale`;
//! 2. the deadline lies more than [`MAX_DEADLINE_AHEAD_MS`] ahead: `future`;
//! 3. the epoch is not the lane's, and the lane is not open to a claim (fail-safe): `epoch`;
//! 4. the seq is not above the last one admitted in that epoch (0 for a claim): `replay`;
//! 5. the seq runs more than [`SEQ_WINDOW`] ahead of it, or above [`MAX_SEQ`]: `future`.

use std::time::Instant;

use protocol::{Epoch, MAX_DEADLINE_AHEAD_MS, MAX_SEQ, Rejected, Rejection, SEQ_WINDOW, Stamp};

use crate::error::DriverError;

/// The clock deadlines are written on: this process's monotonic clock in ms, counted from a random
/// origin chosen at start. Monotonic, so a step of the wall clock changes nothing; local, so gated
/// and the driver need no synchronised clocks (gated reads this clock from the driver's state);
/// from a random origin, so a deadline written for an earlier run of the driver lies hours or years
/// away from this run's clock instead of possibly being valid again after a restart.
#[derive(Debug, Clone, Copy)]
pub struct DriverClock {
    origin: Instant,
    base_ms: u64,
}

impl DriverClock {
    /// A clock starting now, at a random origin below 2^40 ms (35 years), so that it stays below
    /// 2^53 and exact in any JSON reader for as long as a driver can run.
    pub fn start() -> Result<Self, DriverError> {
        let r = getrandom::u64().map_err(DriverError::Random)?;
        Ok(Self::at(Instant::now(), r >> 24))
    }

    /// A clock reading `base_ms` at `origin` (tests).
    pub fn at(origin: Instant, base_ms: u64) -> Self {
        Self { origin, base_ms }
    }

    pub fn ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_millis();
        self.base_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// How an admitted command relates to the lane's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Of the epoch the lane obeys.
    Current,
    /// The first of a new epoch: the lane now obeys it.
    Claimed { from: Option<Epoch> },
}

/// The rule for one command, with nothing changed: `current` is the lane's epoch and the last seq
/// admitted in it; `claimable` whether the lane may change hands now (it is in fail-safe).
pub fn judge(
    current: Option<(Epoch, u64)>,
    claimable: bool,
    cmd: Stamp,
    now_ms: u64,
) -> Result<Admitted, Rejection> {
    if cmd.deadline_ms < now_ms {
        return Err(Rejection::Stale);
    }
    if cmd.deadline_ms > now_ms.saturating_add(MAX_DEADLINE_AHEAD_MS) {
        return Err(Rejection::Future);
    }
    let (last, admitted) = match current {
        Some((epoch, last)) if epoch == cmd.epoch => (last, Admitted::Current),
        // A new epoch counts from 1, so its first seq is held to the same window from 0: a claim
        // cannot start an epoch out of its own sender's reach.
        _ if claimable => (
            0,
            Admitted::Claimed {
                from: current.map(|(e, _)| e),
            },
        ),
        _ => return Err(Rejection::Epoch),
    };
    if cmd.seq <= last {
        return Err(Rejection::Replay);
    }
    if cmd.seq > last.saturating_add(SEQ_WINDOW) || cmd.seq > MAX_SEQ {
        return Err(Rejection::Future);
    }
    Ok(admitted)
}

/// One lane's epoch, last admitted seq and rejection counters.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    current: Option<(Epoch, u64)>,
    rejected: Rejected,
}

impl Guard {
    /// Judges `cmd` and, when admitted, makes it the lane's latest; when rejected, counts why.
    pub fn admit(
        &mut self,
        cmd: Stamp,
        claimable: bool,
        now_ms: u64,
    ) -> Result<Admitted, Rejection> {
        let verdict = judge(self.current, claimable, cmd, now_ms);
        match verdict {
            Ok(_) => self.current = Some((cmd.epoch, cmd.seq)),
            Err(why) => self.rejected.count(why),
        }
        verdict
    }

    pub fn epoch(&self) -> Option<Epoch> {
        self.current.map(|(e, _)| e)
    }

    /// The last seq admitted in the lane's epoch (0 before the first).
    pub fn ack_seq(&self) -> u64 {
        self.current.map_or(0, |(_, s)| s)
    }

    pub fn rejected(&self) -> Rejected {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn epoch(n: u8) -> Epoch {
        Epoch::from_bytes([n; 16])
    }

    fn stamp(e: u8, seq: u64, deadline_ms: u64) -> Stamp {
        Stamp {
            epoch: epoch(e),
            seq,
            deadline_ms,
        }
    }

    /// Lane held by epoch 1 at seq 100, not claimable unless said.
    fn held(cmd: Stamp, claimable: bool) -> Result<Admitted, Rejection> {
        judge(Some((epoch(1), 100)), claimable, cmd, NOW)
    }

    #[test]
    fn next_seqs_of_the_current_epoch_within_the_deadline_are_admitted() {
        for seq in [101, 102, 100 + SEQ_WINDOW] {
            for deadline in [NOW, NOW + 1, NOW + MAX_DEADLINE_AHEAD_MS] {
                for claimable in [false, true] {
                    assert_eq!(
                        held(stamp(1, seq, deadline), claimable),
                        Ok(Admitted::Current),
                        "seq {seq} deadline {deadline} claimable {claimable}"
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_seqs_are_rejected() {
        let cases = [
            (0, Rejection::Replay),
            (1, Rejection::Replay),
            (100, Rejection::Replay),
            (101 + SEQ_WINDOW, Rejection::Future),
            (MAX_SEQ, Rejection::Future),
            (MAX_SEQ + 1, Rejection::Future),
            (u64::MAX - 1, Rejection::Future),
            (u64::MAX, Rejection::Future),
        ];
        for (seq, why) in cases {
            for claimable in [false, true] {
                assert_eq!(
                    held(stamp(1, seq, NOW + 100), claimable),
                    Err(why),
                    "seq {seq}"
                );
            }
        }
        // Even next to the top of the range, the window never wraps round to admit u64::MAX.
        let top = Some((epoch(1), MAX_SEQ - 1));
        assert_eq!(
            judge(top, false, stamp(1, MAX_SEQ, NOW), NOW),
            Ok(Admitted::Current)
        );
        for seq in [MAX_SEQ + 1, u64::MAX] {
            assert_eq!(
                judge(top, false, stamp(1, seq, NOW), NOW),
                Err(Rejection::Future)
            );
        }
    }

    #[test]
    fn deadlines_outside_the_drivers_window_are_rejected_first() {
        let cases = [
            (0, Rejection::Stale),
            (1, Rejection::Stale),
            (NOW - 1, Rejection::Stale),
            (NOW + MAX_DEADLINE_AHEAD_MS + 1, Rejection::Future),
            (u64::MAX, Rejection::Future),
        ];
        for (deadline, why) in cases {
            // Good seq, replayed seq, foreign epoch: the deadline decides first.
            for cmd in [
                stamp(1, 101, deadline),
                stamp(1, 50, deadline),
                stamp(2, 1, deadline),
            ] {
                assert_eq!(held(cmd, false), Err(why), "{cmd:?}");
            }
        }
        // A clock near the top of u64 does not overflow the window.
        assert_eq!(
            judge(None, true, stamp(1, 1, u64::MAX), u64::MAX - 5),
            Ok(Admitted::Claimed { from: None })
        );
    }

    #[test]
    fn another_epoch_claims_only_an_open_lane_and_counts_from_one() {
        let fresh = |seq| stamp(2, seq, NOW + 500);
        assert_eq!(held(fresh(1), false), Err(Rejection::Epoch));
        assert_eq!(held(fresh(u64::MAX), false), Err(Rejection::Epoch));
        assert_eq!(
            held(fresh(1), true),
            Ok(Admitted::Claimed {
                from: Some(epoch(1))
            })
        );
        assert_eq!(
            held(fresh(SEQ_WINDOW), true),
            Ok(Admitted::Claimed {
                from: Some(epoch(1))
            })
        );
        for (seq, why) in [
            (0, Rejection::Replay),
            (SEQ_WINDOW + 1, Rejection::Future),
            (u64::MAX, Rejection::Future),
        ] {
            assert_eq!(held(fresh(seq), true), Err(why), "seq {seq}");
        }
        // A lane that never obeyed anyone is open to the first claim.
        assert_eq!(
            judge(None, true, fresh(1), NOW),
            Ok(Admitted::Claimed { from: None })
        );
    }

    #[test]
    fn guard_advances_only_on_admission_and_counts_rejections() {
        let mut g = Guard::default();
        assert_eq!((g.epoch(), g.ack_seq()), (None, 0));
        assert!(g.admit(stamp(1, 5, NOW), true, NOW).is_ok());
        assert_eq!(
            g.admit(stamp(1, u64::MAX, NOW), false, NOW),
            Err(Rejection::Future)
        );
        assert_eq!(
            g.admit(stamp(1, 5, NOW), false, NOW),
            Err(Rejection::Replay)
        );
        assert_eq!(
            g.admit(stamp(1, 6, NOW - 1), false, NOW),
            Err(Rejection::Stale)
        );
        assert_eq!(g.admit(stamp(3, 1, NOW), false, NOW), Err(Rejection::Epoch));
        assert_eq!((g.epoch(), g.ack_seq()), (Some(epoch(1)), 5));
        assert_eq!(
            g.rejected(),
            Rejected {
                stale: 1,
                future: 1,
                replay: 1,
                epoch: 1
            }
        );
        // The sender's next command still gets in: nothing rejected moved the sequence.
        assert_eq!(g.admit(stamp(1, 6, NOW), false, NOW), Ok(Admitted::Current));
    }

    #[test]
    fn clock_counts_from_its_origin_and_never_runs_backwards() {
        let t0 = Instant::now();
        let c = DriverClock::at(t0, 7_000);
        assert_eq!(c.ms(t0), 7_000);
        assert_eq!(c.ms(t0 + std::time::Duration::from_millis(250)), 7_250);
        assert_eq!(
            c.ms(t0
                .checked_sub(std::time::Duration::from_millis(5))
                .unwrap_or(t0)),
            7_000
        );
        let started = DriverClock::start().expect("randomness");
        assert!(started.ms(Instant::now()) < 1 << 41);
    }
}
