//! gated's side of command authority (`docs/protocol.md`, "Command authority"): for each driver
//! lane, the epoch gated speaks in, its sequence, and the driver's clock as the driver's states
//! report it. Every command's deadline is written on that clock, so gated and the drivers need no
//! synchronised clocks; until a driver has been heard from, nothing can be stamped for it.

use std::time::Instant;

use protocol::{COMMAND_TTL_MS, Epoch, SEQ_WINDOW, Stamp};
use tracing::{info, warn};

/// A fresh random epoch.
pub fn fresh_epoch() -> Result<Epoch, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(Epoch::from_bytes(b))
}

/// What a driver's state says about gated's hold on the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// The lane obeys gated's current epoch.
    pub ours: bool,
    /// It acknowledges a seq of gated's epoch that gated never sent: someone else wrote in it.
    pub beyond: Option<u64>,
}

/// One driver lane as gated holds it.
#[derive(Debug)]
pub struct Claim {
    epoch: Epoch,
    /// The last seq stamped in `epoch`.
    sent: u64,
    /// The driver's clock in its latest state, and when that state arrived.
    clock: Option<(u64, Instant)>,
}

impl Claim {
    pub fn new() -> Result<Self, getrandom::Error> {
        Ok(Self {
            epoch: fresh_epoch()?,
            sent: 0,
            clock: None,
        })
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The driver's clock in its latest state, and when that state arrived.
    pub fn clock(&self) -> Option<(u64, Instant)> {
        self.clock
    }

    /// The highest seq stamped in the current epoch.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The next command's stamp, or `None` while the driver's clock is unknown.
    pub fn stamp(&mut self, now: Instant) -> Option<Stamp> {
        let (clock_ms, at) = self.clock?;
        // The state's clock was read before it travelled here, so this estimate runs a little
        // behind the driver: the deadline errs early, never late.
        let driver_now = clock_ms.saturating_add(
            u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX),
        );
        self.sent = self.sent.saturating_add(1);
        Some(Stamp {
            epoch: self.epoch,
            seq: self.sent,
            deadline_ms: driver_now.saturating_add(COMMAND_TTL_MS),
        })
    }

    /// A state of the driver arrived at `received`. Learns its clock; when the driver can no
    /// longer admit gated's next seq in the current epoch (it holds another epoch and the sequence
    /// has run past the window a claim may start in, or commands were lost beyond the window),
    /// starts a new epoch from 1, which the driver admits as a claim once the lane is in
    /// fail-safe. An acknowledgement above what gated sent moves gated's sequence past it, so that
    /// gated's next command is admitted rather than rejected as a replay.
    pub fn heard(
        &mut self,
        epoch: Option<Epoch>,
        ack_seq: u64,
        clock_ms: u64,
        received: Instant,
        what: &str,
    ) -> Heard {
        self.clock = Some((clock_ms, received));
        let ours = epoch == Some(self.epoch);
        let mut beyond = None;
        if ours && ack_seq > self.sent {
            beyond = Some(ack_seq);
            self.sent = ack_seq;
        }
        let last = if ours { ack_seq } else { 0 };
        if self.sent >= last.saturating_add(SEQ_WINDOW) {
            match fresh_epoch() {
                Ok(e) => {
                    info!(driver = what, old = %self.epoch, new = %e, ?epoch, ack_seq, sent = self.sent,
                        "the driver cannot admit this epoch's next command; starting a new epoch");
                    self.epoch = e;
                    self.sent = 0;
                }
                Err(e) => warn!(driver = what, error = %e, "no randomness for a new epoch"),
            }
        }
        Heard { ours, beyond }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn nothing_is_stamped_before_the_driver_is_heard_and_deadlines_follow_its_clock() {
        let t0 = Instant::now();
        let mut c = Claim::new().expect("randomness");
        assert_eq!(c.stamp(t0), None);
        let h = c.heard(None, 0, 5_000, t0, "door");
        assert_eq!(
            h,
            Heard {
                ours: false,
                beyond: None
            }
        );
        let s = c
            .stamp(t0 + Duration::from_millis(40))
            .expect("clock known");
        assert_eq!(
            (s.epoch, s.seq, s.deadline_ms),
            (c.epoch(), 1, 5_040 + COMMAND_TTL_MS)
        );
        assert_eq!(c.stamp(t0).map(|s| s.seq), Some(2));
    }

    #[test]
    fn a_foreign_ack_beyond_what_was_sent_moves_the_sequence_past_it() {
        let t0 = Instant::now();
        let mut c = Claim::new().expect("randomness");
        c.heard(None, 0, 0, t0, "door");
        for _ in 0..3 {
            c.stamp(t0);
        }
        let e = c.epoch();
        assert_eq!(
            c.heard(Some(e), 2, 0, t0, "door"),
            Heard {
                ours: true,
                beyond: None
            }
        );
        assert_eq!(
            c.heard(Some(e), 40, 0, t0, "door"),
            Heard {
                ours: true,
                beyond: Some(40)
            }
        );
        assert_eq!(c.stamp(t0).map(|s| (s.epoch, s.seq)), Some((e, 41)));
    }

    #[test]
    fn a_new_epoch_starts_when_the_driver_cannot_admit_the_next_seq() {
        let t0 = Instant::now();
        let mut c = Claim::new().expect("randomness");
        let other = fresh_epoch().expect("randomness");
        c.heard(Some(other), 7, 0, t0, "door");
        for _ in 0..SEQ_WINDOW - 1 {
            c.stamp(t0);
        }
        let first = c.epoch();
        // Its next seq still fits a claim's window: keep the epoch.
        c.heard(Some(other), 7, 0, t0, "door");
        assert_eq!(c.epoch(), first);
        c.stamp(t0);
        c.heard(Some(other), 7, 0, t0, "door");
        assert_ne!(
            c.epoch(),
            first,
            "seq {} cannot start a claim",
            SEQ_WINDOW + 1
        );
        assert_eq!(c.stamp(t0).map(|s| s.seq), Some(1));

        // Held, but commands lost beyond the window (a long partition): a new epoch too.
        let held = c.epoch();
        c.heard(Some(held), 1, 0, t0, "door");
        for _ in 0..SEQ_WINDOW + 5 {
            c.stamp(t0);
        }
        c.heard(Some(held), 2, 0, t0, "door");
        assert_ne!(c.epoch(), held);
    }
}
