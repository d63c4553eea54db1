//! Whether a lane's door does what gated told it. Checked on every door state, which the driver
//! publishes on every change and at least every 200 ms, so a disagreement is seen within one
//! heartbeat (250 ms). What is compared is what gated's commands determine: whose epoch the door
//! obeys, whose sequence it acknowledges, and its mode. The flap itself is not compared: the driver
//! rightly keeps a flap open for someone in its way, which gated cannot see.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use protocol::{DoorAction, DoorMode, DoorState, Epoch};

use super::claim::Heard;
use crate::telemetry::names::DISAGREEMENT_KINDS;

/// The mode gated's commands put the door in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Normal,
    HeldOpen,
    HeldClosed,
    /// Either fail-safe position (the driver's `--failsafe` decides which).
    Safe,
}

impl Want {
    /// The mode an action sets; `open`, `close` and heartbeats leave it.
    fn of(action: DoorAction) -> Option<Self> {
        match action {
            DoorAction::HoldOpen => Some(Self::HeldOpen),
            DoorAction::HoldClosed => Some(Self::HeldClosed),
            DoorAction::Release => Some(Self::Normal),
            DoorAction::Safe => Some(Self::Safe),
            DoorAction::Open | DoorAction::Close | DoorAction::Heartbeat => None,
        }
    }

    /// The command that puts a door back in this mode, where it is not the normal one.
    pub fn latch(self) -> Option<DoorAction> {
        match self {
            Self::Normal => None,
            Self::HeldOpen => Some(DoorAction::HoldOpen),
            Self::HeldClosed => Some(DoorAction::HoldClosed),
            Self::Safe => Some(DoorAction::Safe),
        }
    }

    /// The command that sets this mode.
    fn command(self) -> DoorAction {
        match self {
            Self::Normal => DoorAction::Release,
            Self::HeldOpen => DoorAction::HoldOpen,
            Self::HeldClosed => DoorAction::HoldClosed,
            Self::Safe => DoorAction::Safe,
        }
    }

    fn admits(self, mode: DoorMode) -> bool {
        match mode {
            // Neither is the command's doing nor against it: the station's emergency input, and the
            // driver's own fail-safe (gated's token or commands missing), which `/readyz` reports.
            DoorMode::Emergency | DoorMode::FailsafeOpen | DoorMode::FailsafeClosed => true,
            DoorMode::Normal => self == Self::Normal,
            DoorMode::HeldOpen => self == Self::HeldOpen,
            DoorMode::HeldClosed => self == Self::HeldClosed,
        }
    }
}

/// How a door state disagrees with gated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// The door obeys another epoch than gated's (another gated, or someone else on the bus).
    Epoch(Option<Epoch>),
    /// It acknowledges a seq of gated's epoch that gated never sent.
    Ack { ack_seq: u64, sent: u64 },
    /// Its mode is not the one gated's acknowledged commands set.
    Mode { want: Want, got: DoorMode },
}

impl Disagreement {
    /// The `kind` label of `gate_door_disagreements_total`, spelled where the metric's series are
    /// created.
    pub fn kind(&self) -> &'static str {
        let [epoch, ack, mode] = DISAGREEMENT_KINDS;
        match self {
            Self::Epoch(_) => epoch,
            Self::Ack { .. } => ack,
            Self::Mode { .. } => mode,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Epoch(Some(e)) => format!("door obeys epoch {e}, not gated's"),
            Self::Epoch(None) => "door obeys no epoch".into(),
            Self::Ack { ack_seq, sent } => {
                format!("door acknowledges seq {ack_seq} of gated's epoch; gated sent up to {sent}")
            }
            Self::Mode { want, got } => {
                format!("door in mode {got:?}; gated's commands say {want:?}")
            }
        }
    }
}

/// gated's expectation of one lane's door.
#[derive(Debug)]
pub struct DoorWatch {
    /// What the commands acknowledged so far set.
    want: Want,
    /// Mode-setting commands sent and not yet acknowledged, oldest first.
    sent: VecDeque<(u64, Want)>,
    last_mode: Option<DoorMode>,
    /// The disagreement of the last state, if any.
    current: Option<Disagreement>,
    /// When [`DoorWatch::reassert`] last asked for the mode again.
    reasserted: Option<Instant>,
}

impl Default for DoorWatch {
    fn default() -> Self {
        Self {
            want: Want::Normal,
            sent: VecDeque::new(),
            last_mode: None,
            current: None,
            reasserted: None,
        }
    }
}

/// What a state changed in the agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Began(Disagreement),
    Ended(Disagreement),
}

impl DoorWatch {
    /// Bounds the unacknowledged list: a driver that never answers cannot grow it.
    const MAX_SENT: usize = 64;

    /// A door command left with `seq`.
    pub fn sent(&mut self, seq: u64, action: DoorAction) {
        if let Some(w) = Want::of(action) {
            self.sent.push_back((seq, w));
            if self.sent.len() > Self::MAX_SENT {
                self.sent.pop_front();
            }
        }
    }

    /// gated started a new epoch: the driver admits it only from fail-safe, which drops holds.
    pub fn new_epoch(&mut self) {
        self.want = Want::Normal;
        self.sent.clear();
    }

    /// The mode gated last asked for, acknowledged or not.
    pub fn wanted(&self) -> Want {
        self.sent.back().map_or(self.want, |&(_, w)| w)
    }

    /// The command that puts the door back in the mode gated's acknowledged commands set, when its
    /// last state disagreed on the mode and no mode command is on its way. A mode command the driver
    /// refused (it arrived late, say) or never received is otherwise lost for good: the heartbeats
    /// after it are acknowledged past its seq, and only the alarm would tell. At most one per
    /// `every`, so a driver that keeps refusing is not flooded.
    pub fn reassert(&mut self, now: Instant, every: Duration) -> Option<DoorAction> {
        let Some(Disagreement::Mode { want, .. }) = self.current else {
            return None;
        };
        if !self.sent.is_empty()
            || self
                .reasserted
                .is_some_and(|t| now.saturating_duration_since(t) < every)
        {
            return None;
        }
        self.reasserted = Some(now);
        Some(want.command())
    }

    pub fn disagreeing(&self) -> bool {
        self.current.is_some()
    }

    /// Checks a door state; `heard` is what the claim made of it, `sent` the highest seq gated
    /// stamped in its epoch (before the claim moved past a foreign acknowledgement). Returns a
    /// change when the state begins, changes or ends a disagreement.
    pub fn check(&mut self, st: &DoorState, heard: Heard, sent: u64) -> Option<Change> {
        // The driver drops holds when it enters fail-safe; a later command sets the mode again.
        let entered_failsafe = matches!(st.mode, DoorMode::FailsafeOpen | DoorMode::FailsafeClosed)
            && !matches!(
                self.last_mode,
                Some(DoorMode::FailsafeOpen | DoorMode::FailsafeClosed)
            );
        self.last_mode = Some(st.mode);
        let found = if !heard.ours {
            let obeying = matches!(
                st.mode,
                DoorMode::Normal | DoorMode::HeldOpen | DoorMode::HeldClosed
            );
            obeying.then_some(Disagreement::Epoch(st.epoch))
        } else {
            while let Some(&(seq, w)) = self.sent.front() {
                if seq > st.ack_seq {
                    break;
                }
                self.want = w;
                self.sent.pop_front();
            }
            if entered_failsafe && self.want != Want::Safe {
                self.want = Want::Normal;
            }
            match heard.beyond {
                Some(ack_seq) => Some(Disagreement::Ack { ack_seq, sent }),
                None if !self.want.admits(st.mode) => Some(Disagreement::Mode {
                    want: self.want,
                    got: st.mode,
                }),
                None => None,
            }
        };
        if found == self.current {
            return None;
        }
        let ended = std::mem::replace(&mut self.current, found.clone());
        match (found, ended) {
            (Some(d), _) => Some(Change::Began(d)),
            (None, Some(d)) => Some(Change::Ended(d)),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::{CONTROL_VERSION, Flap, Rejected};

    use super::*;

    fn state(mode: DoorMode, epoch: Option<Epoch>, ack_seq: u64) -> DoorState {
        DoorState {
            v: CONTROL_VERSION,
            lane: "L1".into(),
            flap: Flap::Closed,
            mode,
            position: 0.0,
            obstructed: false,
            epoch,
            ack_seq,
            clock_ms: 0,
            rejected: Rejected::default(),
            reason: String::new(),
            t_unix_ms: 0,
        }
    }

    const OURS: Heard = Heard {
        ours: true,
        beyond: None,
    };
    const THEIRS: Heard = Heard {
        ours: false,
        beyond: None,
    };

    fn e(n: u8) -> Option<Epoch> {
        Some(Epoch::from_bytes([n; 16]))
    }

    #[test]
    fn the_mode_is_compared_with_the_acknowledged_commands() {
        let mut w = DoorWatch::default();
        assert_eq!(w.check(&state(DoorMode::Normal, e(1), 1), OURS, 1), None);
        w.sent(2, DoorAction::HoldOpen);
        // Not yet acknowledged: the door still follows the earlier commands.
        assert_eq!(w.check(&state(DoorMode::Normal, e(1), 1), OURS, 2), None);
        assert_eq!(w.check(&state(DoorMode::HeldOpen, e(1), 2), OURS, 2), None);
        // Held open while gated's last acknowledged word was release: the pin of issue 15.
        w.sent(3, DoorAction::Release);
        let change = w.check(&state(DoorMode::HeldOpen, e(1), 4), OURS, 4);
        assert_eq!(
            change,
            Some(Change::Began(Disagreement::Mode {
                want: Want::Normal,
                got: DoorMode::HeldOpen
            }))
        );
        assert!(w.disagreeing());
        // Reported once, not on every state.
        assert_eq!(w.check(&state(DoorMode::HeldOpen, e(1), 5), OURS, 5), None);
        assert!(matches!(
            w.check(&state(DoorMode::Normal, e(1), 6), OURS, 6),
            Some(Change::Ended(_))
        ));
        // Emergency and the driver's own fail-safe are nobody's disobedience.
        for m in [DoorMode::Emergency, DoorMode::FailsafeClosed] {
            assert_eq!(w.check(&state(m, e(1), 6), OURS, 6), None);
        }
    }

    #[test]
    fn a_mode_command_that_did_not_take_is_asked_for_again_at_a_bounded_rate() {
        let mut w = DoorWatch::default();
        let t0 = Instant::now();
        let every = Duration::from_secs(1);
        assert_eq!(w.check(&state(DoorMode::Normal, e(1), 1), OURS, 1), None);
        assert_eq!(w.reassert(t0, every), None);
        // `safe` (seq 2) refused as late; the heartbeat after it (seq 3) acknowledged.
        w.sent(2, DoorAction::Safe);
        assert!(matches!(
            w.check(&state(DoorMode::Normal, e(1), 3), OURS, 3),
            Some(Change::Began(Disagreement::Mode { .. }))
        ));
        assert_eq!(w.reassert(t0, every), Some(DoorAction::Safe));
        assert_eq!(w.reassert(t0 + every / 2, every), None);
        // Refused again: asked for again once the interval is over, not while one is on its way.
        w.sent(4, DoorAction::Safe);
        assert_eq!(w.reassert(t0 + every * 2, every), None);
        assert_eq!(w.check(&state(DoorMode::Normal, e(1), 5), OURS, 5), None);
        assert_eq!(w.reassert(t0 + every * 2, every), Some(DoorAction::Safe));
        // Taken: nothing more.
        w.sent(6, DoorAction::Safe);
        assert!(matches!(
            w.check(&state(DoorMode::FailsafeClosed, e(1), 6), OURS, 6),
            Some(Change::Ended(_))
        ));
        assert_eq!(w.reassert(t0 + every * 9, every), None);
        // A lost `release` is asked for as a release.
        w.sent(7, DoorAction::HoldOpen);
        assert_eq!(w.check(&state(DoorMode::HeldOpen, e(1), 7), OURS, 7), None);
        w.sent(8, DoorAction::Release);
        w.check(&state(DoorMode::HeldOpen, e(1), 9), OURS, 9);
        assert_eq!(
            w.reassert(t0 + every * 12, every),
            Some(DoorAction::Release)
        );
    }

    #[test]
    fn another_epoch_in_control_is_a_disagreement_one_in_failsafe_is_not() {
        let mut w = DoorWatch::default();
        assert_eq!(
            w.check(&state(DoorMode::FailsafeClosed, None, 0), THEIRS, 0),
            None
        );
        assert_eq!(
            w.check(&state(DoorMode::FailsafeOpen, e(2), 9), THEIRS, 0),
            None
        );
        assert_eq!(
            w.check(&state(DoorMode::HeldOpen, e(2), 10), THEIRS, 3),
            Some(Change::Began(Disagreement::Epoch(e(2))))
        );
        let ack = Heard {
            ours: true,
            beyond: Some(70),
        };
        assert_eq!(
            w.check(&state(DoorMode::Normal, e(1), 70), ack, 12),
            Some(Change::Began(Disagreement::Ack {
                ack_seq: 70,
                sent: 12
            }))
        );
    }

    #[test]
    fn holds_are_forgotten_with_the_drivers_failsafe_and_set_again_after() {
        let mut w = DoorWatch::default();
        w.sent(1, DoorAction::HoldOpen);
        assert_eq!(w.check(&state(DoorMode::HeldOpen, e(1), 1), OURS, 1), None);
        // A watchdog blip: the driver drops the hold and comes back in normal mode.
        assert_eq!(
            w.check(&state(DoorMode::FailsafeClosed, e(1), 1), OURS, 1),
            None
        );
        assert_eq!(w.check(&state(DoorMode::Normal, e(1), 2), OURS, 2), None);
        // A hold sent during the fail-safe still counts once acknowledged.
        assert_eq!(
            w.check(&state(DoorMode::FailsafeClosed, e(1), 2), OURS, 3),
            None
        );
        w.sent(3, DoorAction::HoldClosed);
        assert_eq!(
            w.check(&state(DoorMode::FailsafeClosed, e(1), 3), OURS, 3),
            None
        );
        assert_eq!(
            w.check(&state(DoorMode::HeldClosed, e(1), 4), OURS, 4),
            None
        );
        // `safe` is expected to show as fail-safe, and a door that ignores it disagrees.
        w.sent(5, DoorAction::Safe);
        assert!(matches!(
            w.check(&state(DoorMode::HeldClosed, e(1), 5), OURS, 5),
            Some(Change::Began(Disagreement::Mode {
                want: Want::Safe,
                ..
            }))
        ));
    }
}
