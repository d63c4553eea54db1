//! The card reader beside the face (issue 17 item 4): each lane's taps judged by the card's own
//! fare (`domain::tickets::card`), and the lane's one arbitration rule between card and face
//! (docs/tickets.md, "IC cards beside faces").
//!
//! **One passage, one payer.** The first credential that pays for a lane's passage (a face grant,
//! or a card whose write the reader confirmed or is completing) holds the passage for
//! `card_window_ms`. Within it, the first credential of the other kind presented while the camera
//! sees at most one person in the lane zone belongs to the passenger who already paid: it is not
//! charged (a card is answered `paid`, nothing written; a face is decided `open`, reason
//! `paid_by_card`, no fare change), and it uses the passage up, so one payment excuses one other
//! credential at most. With two or more people in the zone it is the next passenger's, judged and
//! charged on its own. A card is charged only once its write is on the card, and the door opens
//! only then.

use std::time::{Duration, Instant};

use domain::tickets::{CardDecision, CardFare, DenyReason, Direction, FareTable, card};
use domain::{StationId, tickets::Amount};
use protocol::{CardEntry, CardOutcome, CardResult, CardState, CardTap, CardVerdict, unix_ms};

/// Who paid for the lane's current passage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payer {
    Face,
    Card,
}

/// The lane's fixed terms for judging a tap: the fare table, this station, the lane's direction,
/// and how long one credential's payment excuses the other ([`CardLane::take_paid`]).
#[derive(Debug, Clone, Copy)]
pub struct CardTerms<'a> {
    pub table: &'a FareTable,
    pub station: &'a StationId,
    pub direction: Direction,
    pub window: Duration,
}

/// A lane's card side: the taps handled, the write awaited, and who paid for the passage.
#[derive(Debug, Default)]
pub struct CardLane {
    /// The last tap judged (the reader numbers them; every state repeats its latest).
    seen: u64,
    /// The reader's clock in its last state, and when that arrived: a jump is a new run of the
    /// reader, whose taps count from 1 again.
    clock: Option<(u64, Instant)>,
    /// The tap whose write gated waits for: its number and when it was judged.
    awaiting: Option<(u64, Instant)>,
    paid: Option<(Payer, Instant)>,
}

/// What a lane does about a reader's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardStep {
    /// Answer tap `tap` with `verdict`; `closed` is the refusal's reason when it refuses, `paid`
    /// when the passage was already paid by the face.
    Answer {
        tap: u64,
        /// The id of the card read in the tap: the reader applies the verdict to that card only.
        card: String,
        verdict: CardVerdict,
        refused: Option<String>,
    },
    /// The write of tap `tap`, judged at `judged`, is on the card: open the door.
    Written { tap: u64, judged: Instant },
    /// Tap `tap`'s write did not happen (`reason`): the door stays shut, touch again.
    NotWritten { tap: u64, reason: &'static str },
}

impl CardLane {
    /// Whether a credential of kind `who`, presented at `now` with `in_zone` people in the lane
    /// zone, belongs to the passenger who already paid with the other kind (the rule above). It
    /// uses the passage up. A face while a card's write is on its way is that card's passenger too:
    /// should the write fail, neither pays and the door stays shut (touch again).
    pub fn take_paid(
        &mut self,
        who: Payer,
        in_zone: usize,
        now: Instant,
        window: Duration,
    ) -> bool {
        if in_zone > 1 {
            return false;
        }
        if who == Payer::Face && self.awaiting.is_some() {
            return true;
        }
        let paid = self
            .paid
            .is_some_and(|(p, at)| p != who && now.saturating_duration_since(at) < window);
        if paid {
            self.paid = None;
        }
        paid
    }

    /// The lane's passage was paid by `who` at `now`.
    pub fn paid_by(&mut self, who: Payer, now: Instant) {
        self.paid = Some((who, now));
    }

    /// What to do about a reader state: judge a new tap, or act on the outcome of the awaited one.
    pub fn on_state(
        &mut self,
        st: &CardState,
        terms: CardTerms<'_>,
        in_zone: usize,
        now: Instant,
    ) -> Vec<CardStep> {
        let window = terms.window;
        let mut steps = Vec::new();
        let restarted = crate::drive::restart::new_run(self.clock, st.clock_ms, now);
        self.clock = Some((st.clock_ms, now));
        if let Some(tap) = &st.tap {
            // Taps count from 1 again after the reader restarts.
            if restarted || tap.seq < self.seen {
                self.seen = 0;
                self.awaiting = None;
            }
            if tap.seq > self.seen {
                self.seen = tap.seq;
                match st.outcome.as_ref().filter(|o| o.tap == tap.seq) {
                    None => steps.push(self.judge(tap, terms, in_zone, now)),
                    // Written for a verdict this run never sent: gated restarted while the write
                    // was on its way. The card has paid; a write that recent still gets its door.
                    Some(o)
                        if matches!(o.result, CardResult::Written { .. })
                            && Duration::from_millis(st.clock_ms.saturating_sub(o.at_ms))
                                < window =>
                    {
                        steps.push(CardStep::Written {
                            tap: tap.seq,
                            judged: now,
                        });
                        self.paid_by(Payer::Card, now);
                    }
                    Some(_) => {}
                }
            }
        }
        if let (Some(o), Some((tap, judged))) = (&st.outcome, self.awaiting)
            && o.tap == tap
        {
            self.awaiting = None;
            steps.extend(settle(o, judged));
            if matches!(o.result, CardResult::Written { .. }) {
                self.paid_by(Payer::Card, now);
            }
        }
        steps
    }

    fn judge(
        &mut self,
        tap: &CardTap,
        terms: CardTerms<'_>,
        in_zone: usize,
        now: Instant,
    ) -> CardStep {
        let CardTerms {
            table,
            station,
            direction,
            window,
        } = terms;
        let answer = |verdict, refused: Option<&str>| CardStep::Answer {
            tap: tap.seq,
            card: tap.card.id.clone(),
            verdict,
            refused: refused.map(str::to_owned),
        };
        if self.take_paid(Payer::Card, in_zone, now, window) {
            return answer(CardVerdict::Paid, None);
        }
        let entry = match &tap.card.entry {
            // A card entered at a station whose id is not ours to read: no known entry station.
            Some(e) => match StationId::new(&e.station) {
                Ok(s) => Some(s),
                Err(_) => {
                    let reason = DenyReason::UnknownStation.code();
                    return answer(
                        CardVerdict::Refuse {
                            reason: reason.into(),
                        },
                        Some(reason),
                    );
                }
            },
            None => None,
        };
        let fare = CardFare {
            balance: tap.card.balance,
            entry,
        };
        match card(table, &fare, station, direction) {
            CardDecision::Allow { after, charged, .. } => {
                self.awaiting = Some((tap.seq, now));
                answer(write(after, charged), None)
            }
            CardDecision::Deny(reason) => answer(
                CardVerdict::Refuse {
                    reason: reason.code().into(),
                },
                Some(reason.code()),
            ),
        }
    }
}

fn write(after: CardFare, charged: Amount) -> CardVerdict {
    CardVerdict::Write {
        balance: after.balance,
        charged,
        entry: after.entry.map(|s| CardEntry {
            station: s.as_str().to_owned(),
            at_unix_ms: unix_ms(),
        }),
    }
}

fn settle(o: &CardOutcome, judged: Instant) -> Option<CardStep> {
    let reason = match &o.result {
        CardResult::Written { .. } => {
            return Some(CardStep::Written { tap: o.tap, judged });
        }
        CardResult::Shown => return None,
        CardResult::WriteFailed { .. } => "card_not_written",
        CardResult::TimedOut => "card_timed_out",
    };
    Some(CardStep::NotWritten { tap: o.tap, reason })
}

#[cfg(test)]
mod tests {
    use protocol::{CONTROL_VERSION, CardData, Rejected};

    use super::*;

    const W: Duration = Duration::from_secs(3);

    fn table() -> FareTable {
        FareTable::parse("fares = [150, 190]\n[stations]\numeda = 1\nnoda = 2\n", "t")
            .expect("table")
    }

    fn state(tap: u64, balance: u32, outcome: Option<CardResult>) -> CardState {
        CardState {
            v: CONTROL_VERSION,
            lane: "L1".into(),
            epoch: None,
            ack_seq: 0,
            clock_ms: 0,
            rejected: Rejected::default(),
            tap: Some(CardTap {
                seq: tap,
                card: CardData {
                    id: "0123456789abcdef".into(),
                    balance,
                    entry: None,
                },
            }),
            outcome: outcome.map(|result| CardOutcome {
                tap,
                at_ms: 0,
                result,
            }),
            t_unix_ms: 0,
        }
    }

    fn step(l: &mut CardLane, st: &CardState, in_zone: usize, now: Instant) -> Vec<CardStep> {
        let (umeda, table) = (StationId::new("umeda").expect("id"), table());
        let terms = CardTerms {
            table: &table,
            station: &umeda,
            direction: Direction::Entry,
            window: W,
        };
        l.on_state(st, terms, in_zone, now)
    }

    #[test]
    fn a_tap_is_written_before_the_door_opens_and_judged_once() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        let s = step(&mut l, &state(1, 500, None), 1, t0);
        assert!(
            matches!(
                &s[..],
                [CardStep::Answer {
                    tap: 1,
                    verdict: CardVerdict::Write {
                        balance: 500,
                        charged: 0,
                        entry: Some(_)
                    },
                    refused: None,
                    ..
                }]
            ),
            "{s:?}"
        );
        // The same state again (republished): nothing new.
        assert!(step(&mut l, &state(1, 500, None), 1, t0).is_empty());
        let written = CardResult::Written {
            card: state(1, 500, None).tap.expect("tap").card,
        };
        let s = step(&mut l, &state(1, 500, Some(written)), 1, t0);
        assert_eq!(s, [CardStep::Written { tap: 1, judged: t0 }]);
        assert!(
            !l.take_paid(Payer::Face, 2, t0, W),
            "two in the zone: the next passenger"
        );
        assert!(!l.take_paid(Payer::Face, 1, t0 + W, W), "after the window");
        assert!(
            l.take_paid(Payer::Face, 1, t0, W),
            "the face behind the card is the same passenger"
        );
        assert!(
            !l.take_paid(Payer::Face, 1, t0, W),
            "one payment excuses one other credential"
        );
    }

    #[test]
    fn a_face_while_the_write_is_on_its_way_is_the_cards_passenger() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        step(&mut l, &state(1, 500, None), 1, t0);
        assert!(l.take_paid(Payer::Face, 1, t0, W));
        assert!(!l.take_paid(Payer::Face, 2, t0, W));
    }

    #[test]
    fn a_restarted_gated_opens_for_a_write_just_done_and_not_for_an_old_one() {
        let t0 = Instant::now();
        let written = |at_ms, clock_ms| {
            let mut st = state(
                3,
                500,
                Some(CardResult::Written {
                    card: state(3, 500, None).tap.expect("tap").card,
                }),
            );
            st.clock_ms = clock_ms;
            if let Some(o) = &mut st.outcome {
                o.at_ms = at_ms;
            }
            st
        };
        let mut fresh = CardLane::default();
        let s = step(&mut fresh, &written(10_000, 10_200), 1, t0);
        assert_eq!(s, [CardStep::Written { tap: 3, judged: t0 }]);
        let mut old = CardLane::default();
        assert!(step(&mut old, &written(10_000, 60_000), 1, t0).is_empty());
    }

    #[test]
    fn a_reader_whose_clock_jumped_is_a_new_run_and_its_taps_are_judged() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        let mut st = state(1, 500, None);
        st.clock_ms = 1_000;
        assert_eq!(step(&mut l, &st, 1, t0).len(), 1);
        // The same tap number from a new run of the reader (its clock starts elsewhere).
        st.clock_ms = 9_000_000;
        assert_eq!(step(&mut l, &st, 1, t0).len(), 1, "tap 1 of the new run");
    }

    #[test]
    fn a_write_that_did_not_happen_opens_nothing_and_pays_for_nothing() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        step(&mut l, &state(1, 500, None), 1, t0);
        let failed = CardResult::WriteFailed {
            reason: "card removed".into(),
        };
        let s = step(&mut l, &state(1, 500, Some(failed)), 1, t0);
        assert_eq!(
            s,
            [CardStep::NotWritten {
                tap: 1,
                reason: "card_not_written"
            }]
        );
        assert!(!l.take_paid(Payer::Face, 1, t0, W));
    }

    #[test]
    fn a_tap_behind_a_face_grant_is_paid_unless_someone_else_is_in_the_zone() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        l.paid_by(Payer::Face, t0);
        let s = step(&mut l, &state(1, 500, None), 1, t0);
        assert!(
            matches!(
                &s[..],
                [CardStep::Answer {
                    verdict: CardVerdict::Paid,
                    ..
                }]
            ),
            "{s:?}"
        );
        // A card-only passenger behind the face passenger: charged on its own.
        let s = step(&mut l, &state(2, 500, None), 2, t0);
        assert!(
            matches!(
                &s[..],
                [CardStep::Answer {
                    verdict: CardVerdict::Write { .. },
                    ..
                }]
            ),
            "{s:?}"
        );
    }

    #[test]
    fn a_refusal_names_its_reason_and_a_restarted_reader_is_heard() {
        let (mut l, t0) = (CardLane::default(), Instant::now());
        let s = step(&mut l, &state(5, 100, None), 1, t0);
        assert_eq!(
            s,
            [CardStep::Answer {
                tap: 5,
                card: "0123456789abcdef".into(),
                verdict: CardVerdict::Refuse {
                    reason: "fare_adjustment_needed".into()
                },
                refused: Some("fare_adjustment_needed".into())
            }]
        );
        // The reader restarted: its taps count from 1 again.
        let s = step(&mut l, &state(1, 500, None), 1, t0);
        assert_eq!(s.len(), 1, "{s:?}");
    }
}
