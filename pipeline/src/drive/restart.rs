//! A door driver that restarts (a crash, `systemctl restart`, its supervisor's `Restart=always`)
//! comes back in fail-safe with no grant and no hold: "whoever takes over re-sends them"
//! (`drivers::door`). gated notices the new instance from its clock (each run of a driver starts
//! its clock at a random origin, so a state that does not continue the last one's clock is a new
//! run) and re-sends what the old run had not acknowledged: the opens of walkers still on their
//! way (a grant the passenger would otherwise lose to the outage) and the lane's hold. An open the
//! old run acknowledged is never re-sent: it was applied, and sending it again would let a second
//! person through. Nor is one that a later close, hold or safe revoked: at the driver those end
//! every grant.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::command::DoorCause;

/// How far a state's clock may stray from the last one's run-on before it is a new driver run: far
/// above any delay of the link or of gated itself (a stalled gated receives a backlog of states
/// late), far below the random distance between two runs' origins (spread over 2^40 ms, so a new
/// run lands within this of the old clock about once in two million restarts).
const CLOCK_SLACK_MS: u64 = 10 * 60 * 1000;

/// How long an unacknowledged open stays worth re-sending: the drivers' default pass timeout
/// (`--pass-timeout-ms`), after which the grant would have lapsed at the door anyway.
pub const RESEND_WITHIN: Duration = Duration::from_millis(3_000);

/// Whether a state with `clock_ms`, received at `received`, comes from another run of the driver
/// than the last state (`last`: its clock and arrival).
pub fn new_run(last: Option<(u64, Instant)>, clock_ms: u64, received: Instant) -> bool {
    let Some((last_ms, at)) = last else {
        return false;
    };
    let elapsed =
        u64::try_from(received.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    let expected = last_ms.saturating_add(elapsed);
    clock_ms.abs_diff(expected) > CLOCK_SLACK_MS
}

/// Opens sent to a lane's door and not acknowledged yet, with what caused them.
#[derive(Default)]
pub struct Unacked(VecDeque<(u64, Instant, DoorCause)>);

impl Unacked {
    const MAX: usize = 64;

    pub fn sent(&mut self, seq: u64, cause: DoorCause, now: Instant) {
        self.0.push_back((seq, now, cause));
        if self.0.len() > Self::MAX {
            self.0.pop_front();
        }
    }

    /// The driver acknowledged every seq up to `ack_seq` of gated's epoch.
    pub fn acked(&mut self, ack_seq: u64) {
        self.0.retain(|&(seq, _, _)| seq > ack_seq);
    }

    /// A close, hold or safe went out: at the driver it ends every grant, so none is re-sent.
    pub fn revoked(&mut self) {
        self.0.clear();
    }

    /// Takes the opens still worth sending to a new run of the driver (first sent within
    /// [`RESEND_WITHIN`] of `now`), with when each was first sent; forgets the rest.
    pub fn take_fresh(&mut self, now: Instant) -> Vec<(Instant, DoorCause)> {
        self.0
            .drain(..)
            .filter(|(_, at, _)| now.saturating_duration_since(*at) < RESEND_WITHIN)
            .map(|(_, at, cause)| (at, cause))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_clock_that_does_not_run_on_is_a_new_run() {
        let t0 = Instant::now();
        assert!(!new_run(None, 5, t0));
        let last = Some((1_000_000, t0));
        assert!(!new_run(last, 1_000_200, t0 + 200 * MS));
        // Link delay and a late state are well inside the slack.
        assert!(!new_run(last, 1_000_150, t0 + 400 * MS));
        // A backlog received late by a gated that stalled for seconds: still the same run.
        assert!(!new_run(last, 1_000_200, t0 + 5000 * MS));
        // Another run: a random origin far away, before or after.
        assert!(new_run(last, 77, t0 + 1500 * MS));
        assert!(new_run(last, 9_000_000_000, t0 + 1500 * MS));
    }

    #[test]
    fn only_unacknowledged_fresh_opens_are_resent() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
        u.sent(3, DoorCause::Operator, t0);
        u.sent(5, DoorCause::Operator, t0 + 100 * MS);
        u.sent(9, DoorCause::Operator, t0 + 2000 * MS);
        u.acked(3);
        // seq 5 is too old by now; seq 9 is still wanted.
        let resent = u.take_fresh(t0 + 4000 * MS);
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].0, t0 + 2000 * MS, "first sent, not last sent");
        assert!(u.take_fresh(t0 + 4000 * MS).is_empty(), "sent once");
        // A close after an open revokes it.
        u.sent(11, DoorCause::Operator, t0 + 4000 * MS);
        u.revoked();
        assert!(u.take_fresh(t0 + 4100 * MS).is_empty());
    }
}
