//! The IC-card reader of one lane, simulated end to end: the test rig's `card/sim` puts a card in
//! the field for a while, and the reader behaves as a real one does with a card that can be pulled
//! away at any moment. Reading and writing take time, and a card that leaves before either finishes
//! is not tapped or not written; gated's verdict answers one tap and must come in time.
//!
//! The card carries its own fare, so the write is what charges the passenger: the door opens only
//! once the reader reports it done (`protocol::card`). Hence the two failure modes that matter are
//! reported rather than guessed at: a write the card did not get (`write_failed`) leaves the card
//! as it was, and a tap without a verdict (`timed_out`) writes nothing.
//!
//! The card id is a card number: it is never logged, only published to gated in the state.

use std::time::{Duration, Instant};

use protocol::{
    CONTROL_VERSION, CardCommand, CardData, CardOutcome, CardResult, CardState, CardTap,
    CardVerdict, unix_ms,
};
use tracing::{debug, info, warn};

use crate::Handled;
use crate::guard::{Admitted, DriverClock, Guard};

/// The reason of a write refused because it would not leave the card consistent.
pub const WRITE_MISMATCH: &str = "write does not match the card read";
/// The reason of a write the card left the field before it could complete.
pub const WRITE_REMOVED: &str = "card removed before the write completed";

#[derive(Debug, Clone)]
pub struct CardReaderConfig {
    /// How long the card must stay in the field to be read.
    pub read: Duration,
    /// How long the card must stay in the field for a write to complete.
    pub write: Duration,
    /// How long a tap waits for gated's verdict before the passenger is asked to touch again.
    pub verdict_timeout: Duration,
}

impl Default for CardReaderConfig {
    fn default() -> Self {
        Self {
            read: Duration::from_millis(60),
            write: Duration::from_millis(40),
            verdict_timeout: Duration::from_millis(800),
        }
    }
}

/// The card last put in the field. It is kept after it left (`leaves` passed), since it is still
/// what the reader knows the card holds.
#[derive(Debug, Clone)]
struct Field {
    card: CardData,
    presented: Instant,
    leaves: Instant,
}

impl Field {
    fn holds(&self, now: Instant) -> bool {
        now < self.leaves
    }
}

/// What the reader is doing with the card in its field.
#[derive(Debug, Clone)]
enum Phase {
    /// No card to handle: none presented, the read failed, or the last tap has its outcome.
    Idle,
    Reading,
    /// The latest tap, published at `since`, waits for gated's verdict.
    Awaiting {
        since: Instant,
    },
    /// Writing `card` (what the verdict makes of the card read) since `since`.
    Writing {
        since: Instant,
        card: CardData,
    },
}

pub struct CardReaderController {
    lane: String,
    cfg: CardReaderConfig,
    clock: DriverClock,
    guard: Guard,
    /// Another epoch may claim the reader: from the start, and again from the loss of gated's
    /// token, until a command is admitted. Like the lamps, the reader has no watchdog (gated only
    /// speaks when a card is tapped), so the token's loss is what says its gated may be gone.
    open_to_claim: bool,
    gated_alive: bool,
    field: Option<Field>,
    phase: Phase,
    /// Taps since the start (the latest tap's seq).
    taps: u64,
    tap: Option<CardTap>,
    outcome: Option<CardOutcome>,
}

impl CardReaderController {
    /// A reader with an empty field. Deadlines are read on `clock`, which the state reports.
    pub fn new(lane: impl Into<String>, cfg: CardReaderConfig, clock: DriverClock) -> Self {
        Self {
            lane: lane.into(),
            cfg,
            clock,
            guard: Guard::default(),
            open_to_claim: true,
            gated_alive: false,
            field: None,
            phase: Phase::Idle,
            taps: 0,
            tap: None,
            outcome: None,
        }
    }

    pub fn lane(&self) -> &str {
        &self.lane
    }
    pub fn ack_seq(&self) -> u64 {
        self.guard.ack_seq()
    }
    /// The latest tap.
    pub fn tap(&self) -> Option<&CardTap> {
        self.tap.as_ref()
    }
    /// The latest tap's outcome, once it has one.
    pub fn outcome(&self) -> Option<&CardOutcome> {
        self.outcome.as_ref()
    }
    /// What the card last presented holds now, as far as the reader knows (in the field or gone).
    pub fn card(&self) -> Option<&CardData> {
        self.field.as_ref().map(|f| &f.card)
    }
    /// The tap waiting for a verdict, if any.
    pub fn awaiting(&self) -> Option<u64> {
        match self.phase {
            Phase::Awaiting { .. } => self.tap.as_ref().map(|t| t.seq),
            _ => None,
        }
    }

    /// The state as published; its clock is read now, as close to publication as it gets.
    pub fn state(&self) -> CardState {
        CardState {
            v: CONTROL_VERSION,
            lane: self.lane.clone(),
            epoch: self.guard.epoch(),
            ack_seq: self.guard.ack_seq(),
            clock_ms: self.clock.ms(Instant::now()),
            rejected: self.guard.rejected(),
            tap: self.tap.clone(),
            outcome: self.outcome.clone(),
            t_unix_ms: unix_ms(),
        }
    }

    /// A card enters the field and stays `hold_ms`. While the reader is still busy with another
    /// card (reading it, or its tap has no outcome yet) the new one is ignored: a verdict on its
    /// way is for the card already read, and must not be written to another.
    pub fn present(&mut self, card: CardData, hold_ms: u32, now: Instant) {
        self.tick(now);
        if !matches!(self.phase, Phase::Idle) {
            debug!(lane = %self.lane, tap = self.taps, "card presented while another is being handled; ignored");
            return;
        }
        self.field = Some(Field {
            card,
            presented: now,
            leaves: now + Duration::from_millis(hold_ms.into()),
        });
        self.phase = Phase::Reading;
    }

    /// Acts on gated's verdict if the guard admits it and it answers the tap that awaits one.
    pub fn command(&mut self, cmd: &CardCommand, now: Instant) -> Handled {
        match self
            .guard
            .admit(cmd.stamp(), self.open_to_claim, self.clock.ms(now))
        {
            Err(why) => return Handled::Rejected(why),
            Ok(Admitted::Claimed { from }) => {
                info!(lane = %self.lane, epoch = %cmd.epoch, previous = ?from, "card reader claimed by a new epoch")
            }
            Ok(Admitted::Current) => {}
        }
        self.open_to_claim = false;
        // A verdict after the timeout but before the tick that would notice it is late all the same.
        self.tick(now);
        let read = match (&self.phase, &self.tap) {
            // The card too: after a restart of this reader its tap numbers begin again, and a
            // verdict still on its way for the old tap N must not be applied to a new card's.
            (Phase::Awaiting { .. }, Some(t)) if t.seq == cmd.tap && t.card.id == cmd.card => {
                t.card.clone()
            }
            (Phase::Awaiting { .. }, Some(t)) if t.seq == cmd.tap => {
                return Handled::Refused(format!(
                    "verdict for tap {} of another card than the one read",
                    cmd.tap
                ));
            }
            (Phase::Awaiting { .. }, Some(t)) => {
                return Handled::Refused(format!(
                    "verdict for tap {}, the reader awaits one for tap {}",
                    cmd.tap, t.seq
                ));
            }
            _ => {
                return Handled::Refused(format!("verdict for tap {}, no tap awaits one", cmd.tap));
            }
        };
        match &cmd.verdict {
            CardVerdict::Paid | CardVerdict::Refuse { .. } => {
                self.finish(CardResult::Shown, now);
                Handled::Applied
            }
            CardVerdict::Write {
                balance,
                charged,
                entry,
            } => {
                // gated computed the write from the card it was shown; anything else would charge
                // (or credit) the passenger from a balance the card never had.
                if balance.checked_add(*charged) != Some(read.balance) {
                    self.finish(
                        CardResult::WriteFailed {
                            reason: WRITE_MISMATCH.into(),
                        },
                        now,
                    );
                    return Handled::Refused(WRITE_MISMATCH.into());
                }
                let card = CardData {
                    id: read.id,
                    balance: *balance,
                    entry: entry.clone(),
                };
                self.phase = Phase::Writing { since: now, card };
                Handled::Applied
            }
        }
    }

    /// gated's liveliness token appeared (`true`) or disappeared (`false`). Taps go on without
    /// gated (the reader cannot tell a slow gated from a gone one) and time out unanswered.
    pub fn gated_alive(&mut self, up: bool, now: Instant) {
        self.tick(now);
        if !up {
            self.open_to_claim = true;
            if self.gated_alive {
                warn!(lane = %self.lane, "gated gone; taps will time out until it is back");
            }
        }
        self.gated_alive = up;
    }

    /// One control step: finish a read or a write that is due, notice a card that left, time out
    /// a tap nobody answered.
    ///
    /// A read and a write are judged at the moment they fall due, not at the tick that notices
    /// them: a real reader completes either the instant the card has been there long enough,
    /// however late the loop that reports it runs. A tick delayed past a card's leaving (a loaded
    /// machine) must not turn a card that stayed long enough into one that left too soon. The
    /// verdict's time-out runs from the tap's publication, the moment gated could first see it.
    pub fn tick(&mut self, now: Instant) {
        let held = self.field.as_ref().is_some_and(|f| f.holds(now));
        match &self.phase {
            Phase::Idle => {}
            Phase::Reading => {
                let Some(f) = &self.field else {
                    self.phase = Phase::Idle;
                    return;
                };
                let read_at = f.presented + self.cfg.read;
                if now >= read_at && f.holds(read_at) {
                    self.taps = self.taps.saturating_add(1);
                    self.tap = Some(CardTap {
                        seq: self.taps,
                        card: f.card.clone(),
                    });
                    self.outcome = None;
                    // gated's window runs from now, when the tap is published and gated can
                    // first see it: a late loop must not eat into the time gated has to answer.
                    self.phase = Phase::Awaiting { since: now };
                    info!(lane = %self.lane, tap = self.taps, "card tapped");
                } else if !held {
                    debug!(lane = %self.lane, "card left the field before it was read");
                    self.phase = Phase::Idle;
                }
            }
            Phase::Awaiting { since } => {
                let timeout_at = *since + self.cfg.verdict_timeout;
                if now >= timeout_at {
                    self.finish(CardResult::TimedOut, timeout_at);
                }
            }
            Phase::Writing { since, card } => {
                let written_at = *since + self.cfg.write;
                let stays = self.field.as_ref().is_some_and(|f| f.holds(written_at));
                if now >= written_at && stays {
                    let card = card.clone();
                    if let Some(f) = &mut self.field {
                        f.card = card.clone();
                    }
                    self.finish(CardResult::Written { card }, written_at);
                } else if !held {
                    let left = self.field.as_ref().map_or(now, |f| f.leaves.max(*since));
                    self.finish(
                        CardResult::WriteFailed {
                            reason: WRITE_REMOVED.into(),
                        },
                        left,
                    );
                }
            }
        }
    }

    /// Ends the tap with `result`, which happened `at`.
    fn finish(&mut self, result: CardResult, at: Instant) {
        let tap = self.taps;
        // Only the kind and reason are logged: `Written` carries the card, and with it its id.
        match &result {
            CardResult::Written { .. } => info!(lane = %self.lane, tap, "card written"),
            CardResult::Shown => info!(lane = %self.lane, tap, "verdict shown"),
            CardResult::WriteFailed { reason } => {
                info!(lane = %self.lane, tap, reason = %reason, "card write failed")
            }
            // With gated there, a verdict that does not come is a fault worth a look; without it,
            // it is what the loss of gated (already warned about) means.
            CardResult::TimedOut if self.gated_alive => {
                warn!(lane = %self.lane, tap, timeout_ms = self.cfg.verdict_timeout.as_millis(), "no verdict in time; tap timed out")
            }
            CardResult::TimedOut => {
                info!(lane = %self.lane, tap, "no verdict (gated absent); tap timed out")
            }
        }
        self.outcome = Some(CardOutcome {
            tap,
            at_ms: self.clock.ms(at),
            result,
        });
        self.phase = Phase::Idle;
    }
}

#[cfg(test)]
mod tests;
