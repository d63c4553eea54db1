//! State-machine tests of the simulated reader with an injected clock: 10 ms ticks like the
//! driver's loop, no sleeping, so timing assertions are exact to a tick.

use protocol::{CardEntry, Epoch, Rejection, Stamp};

use super::*;

const TICK: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn card(balance: u32) -> CardData {
    CardData {
        id: "0123456789abcdef".into(),
        balance,
        entry: None,
    }
}

fn entry() -> Option<CardEntry> {
    Some(CardEntry {
        station: "umeda".into(),
        at_unix_ms: 1_700_000_000_000,
    })
}

fn write(balance: u32, charged: u32) -> CardVerdict {
    CardVerdict::Write {
        balance,
        charged,
        entry: entry(),
    }
}

struct Rig {
    c: CardReaderController,
    /// The driver clock's origin (it reads 0 here).
    t0: Instant,
    now: Instant,
    seq: u64,
}

impl Rig {
    /// A reader with the default timing (read 60 ms, write 40 ms, verdict timeout 800 ms) and
    /// gated up.
    fn new() -> Self {
        let now = Instant::now();
        let mut c =
            CardReaderController::new("L1", CardReaderConfig::default(), DriverClock::at(now, 0));
        c.gated_alive(true, now);
        c.tick(now);
        Self {
            c,
            t0: now,
            now,
            seq: 0,
        }
    }

    fn present(&mut self, balance: u32, hold_ms: u32) {
        self.c.present(card(balance), hold_ms, self.now);
    }

    /// A command of epoch 1 with seq `seq`, alive for 500 ms.
    fn cmd(&self, seq: u64, tap: u64, verdict: CardVerdict) -> CardCommand {
        let now_ms = (self.now - self.t0).as_millis() as u64;
        CardCommand::new(
            Stamp {
                epoch: Epoch::from_bytes([1; 16]),
                seq,
                deadline_ms: now_ms + 500,
            },
            tap,
            card(0).id,
            verdict,
        )
    }

    /// gated's next verdict for `tap`.
    fn verdict(&mut self, tap: u64, verdict: CardVerdict) -> Handled {
        self.seq += 1;
        let cmd = self.cmd(self.seq, tap, verdict);
        self.c.command(&cmd, self.now)
    }

    fn run_for(&mut self, n: u64) {
        for _ in 0..n / 10 {
            self.now += TICK;
            self.c.tick(self.now);
        }
    }

    /// Ticks until `pred` holds and returns how long that took, in ms.
    fn run_until(
        &mut self,
        what: &str,
        limit_ms: u64,
        pred: impl Fn(&CardReaderController) -> bool,
    ) -> u64 {
        let start = self.now;
        while !pred(&self.c) {
            assert!(
                self.now - start < ms(limit_ms),
                "no {what} within {limit_ms} ms; state {:?}",
                self.c.state()
            );
            self.now += TICK;
            self.c.tick(self.now);
        }
        (self.now - start).as_millis() as u64
    }

    fn until_tap(&mut self, seq: u64) -> u64 {
        self.run_until(&format!("tap {seq}"), 1_000, |c| c.awaiting() == Some(seq))
    }

    fn until_outcome(&mut self, limit_ms: u64) -> CardOutcome {
        self.run_until("an outcome", limit_ms, |c| c.outcome().is_some());
        self.outcome().expect("an outcome")
    }

    /// The reader's outcome with `at_ms` set to 0: the reader's clock starts at a random origin, so
    /// the tests compare everything else.
    fn outcome(&self) -> Option<CardOutcome> {
        self.c.outcome().map(|o| CardOutcome {
            at_ms: 0,
            ..o.clone()
        })
    }
}

#[test]
fn a_tap_is_read_written_and_reported() {
    let mut r = Rig::new();
    r.present(1_000, 2_000);
    let t = r.until_tap(1);
    assert_eq!(t, 60, "read takes read_ms");
    let tap = r.c.state().tap.expect("tap published");
    assert_eq!((tap.seq, tap.card), (1, card(1_000)));
    assert_eq!(r.c.state().outcome, None);

    assert_eq!(r.verdict(1, write(810, 190)), Handled::Applied);
    assert_eq!(r.outcome().as_ref(), None, "the write takes time");
    let start = r.now;
    let o = r.until_outcome(200);
    assert_eq!((r.now - start).as_millis(), 40, "write takes write_ms");
    let written = CardData {
        id: card(0).id,
        balance: 810,
        entry: entry(),
    };
    assert_eq!(
        o,
        CardOutcome {
            at_ms: 0,
            tap: 1,
            result: CardResult::Written {
                card: written.clone()
            }
        }
    );
    assert_eq!(r.c.card(), Some(&written));
    let s = r.c.state();
    assert_eq!((s.ack_seq, s.epoch), (1, Some(Epoch::from_bytes([1; 16]))));
    assert_eq!(
        s.tap.map(|t| t.card.balance),
        Some(1_000),
        "the tap is the card as read"
    );

    // The card still in the field is not read again; the next presentation is tap 2.
    r.run_for(500);
    assert_eq!(r.c.tap().map(|t| t.seq), Some(1));
    r.present(810, 500);
    r.until_tap(2);
    assert_eq!(r.outcome().as_ref(), None, "a new tap has no outcome yet");
}

#[test]
fn a_card_removed_before_the_read_is_not_tapped() {
    let mut r = Rig::new();
    r.present(1_000, 50);
    r.run_for(1_000);
    assert_eq!(r.c.tap(), None);
    assert_eq!(r.c.state().tap, None);
    assert_eq!(r.outcome().as_ref(), None);
    // The reader is free again at once.
    r.present(1_000, 100);
    r.until_tap(1);
}

#[test]
fn a_card_removed_before_the_write_completes_is_unchanged() {
    let mut r = Rig::new();
    r.present(1_000, 80);
    r.until_tap(1);
    // Read at 60 ms, card gone at 80 ms, the write would complete at 100 ms.
    assert_eq!(r.verdict(1, write(810, 190)), Handled::Applied);
    let o = r.until_outcome(200);
    assert_eq!(
        o.result,
        CardResult::WriteFailed {
            reason: WRITE_REMOVED.into()
        }
    );
    assert_eq!(r.c.card(), Some(&card(1_000)), "nothing written");

    // The verdict came after the card had left: the write fails too.
    r.present(1_000, 100);
    r.until_tap(2);
    r.run_for(100);
    assert_eq!(r.verdict(2, write(810, 190)), Handled::Applied);
    let o = r.until_outcome(50);
    assert_eq!(o.tap, 2);
    assert!(matches!(o.result, CardResult::WriteFailed { .. }), "{o:?}");
    assert_eq!(r.c.card(), Some(&card(1_000)));
}

/// A loaded machine runs the loop late; the reader still judges each step at the moment it
/// happened, as a real reader does (the card_gate test's pulled card failed this way under load).
#[test]
fn a_late_tick_judges_the_read_and_the_write_when_they_happened() {
    let mut r = Rig::new();
    // Held 70 ms, read at 60 ms, first looked at 90 ms in, after it left: it was read.
    r.present(1_000, 70);
    r.now += ms(90);
    r.c.tick(r.now);
    assert_eq!(
        r.c.awaiting(),
        Some(1),
        "read at 60 ms, while the card was there"
    );
    // The verdict comes after the card left: nothing is written.
    assert_eq!(r.verdict(1, write(810, 190)), Handled::Applied);
    r.now += ms(200);
    r.c.tick(r.now);
    assert_eq!(
        r.outcome().map(|o| o.result),
        Some(CardResult::WriteFailed {
            reason: WRITE_REMOVED.into()
        })
    );
    assert_eq!(r.c.card(), Some(&card(1_000)), "nothing written");

    // Held 150 ms, read at 60, verdict at once, written at 100; first looked at again 260 ms in,
    // long after it left: it was written, and the outcome is dated when the write completed.
    r.present(1_000, 150);
    r.now += ms(60);
    r.c.tick(r.now);
    assert_eq!(r.c.awaiting(), Some(2));
    assert_eq!(r.verdict(2, write(810, 190)), Handled::Applied);
    let written_ms = (r.now - r.t0).as_millis() as u64 + 40;
    r.now += ms(200);
    r.c.tick(r.now);
    let o = r.c.outcome().cloned().expect("an outcome");
    assert!(matches!(o.result, CardResult::Written { .. }), "{o:?}");
    assert_eq!(o.at_ms, written_ms);

    // A tap a late loop publishes 500 ms after its read gives gated its whole window from then;
    // a verdict that never comes times out when that window ends, however late that is noticed.
    r.present(1_000, 5_000);
    r.now += ms(560);
    r.c.tick(r.now);
    assert_eq!(r.c.awaiting(), Some(3));
    let due_ms = (r.now - r.t0).as_millis() as u64 + 800;
    r.now += ms(790);
    r.c.tick(r.now);
    assert_eq!(r.c.awaiting(), Some(3), "gated still has 10 ms");
    r.now += ms(1_000);
    r.c.tick(r.now);
    let o = r.c.outcome().cloned().expect("an outcome");
    assert_eq!(
        (o.tap, o.result, o.at_ms),
        (3, CardResult::TimedOut, due_ms)
    );
}

#[test]
fn a_write_that_does_not_match_the_card_read_is_refused() {
    let mut r = Rig::new();
    for (tap, (balance, charged)) in [(810, 100), (1_000, 1), (u32::MAX, 1_001), (0, u32::MAX)]
        .into_iter()
        .enumerate()
    {
        let tap = tap as u64 + 1;
        r.present(1_000, 2_000);
        r.until_tap(tap);
        assert!(matches!(
            r.verdict(tap, write(balance, charged)),
            Handled::Refused(_)
        ));
        assert_eq!(
            r.outcome().as_ref(),
            Some(&CardOutcome {
                at_ms: 0,
                tap,
                result: CardResult::WriteFailed {
                    reason: WRITE_MISMATCH.into()
                }
            }),
            "balance {balance} charged {charged}"
        );
        r.run_for(100);
        assert_eq!(r.c.card(), Some(&card(1_000)));
        // The card is still in the field, but done with: take it away and present it again.
        r.run_for(2_000);
    }
}

#[test]
fn a_verdict_for_another_tap_is_ignored() {
    let mut r = Rig::new();
    r.present(1_000, 2_000);
    r.until_tap(1);
    assert_eq!(r.verdict(1, CardVerdict::Paid), Handled::Applied);
    r.run_for(2_000);
    r.present(1_000, 2_000);
    r.until_tap(2);
    // A late verdict for tap 1, and one for a tap that never was: acknowledged, not acted on.
    for tap in [1, 3] {
        assert!(matches!(
            r.verdict(tap, write(810, 190)),
            Handled::Refused(_)
        ));
        assert_eq!(r.c.awaiting(), Some(2));
    }
    // The right tap number, another card (a verdict meant for a run of the reader before a
    // restart): not applied either.
    r.seq += 1;
    let mut other = r.cmd(r.seq, 2, write(810, 190));
    other.card = "fedcba9876543210".into();
    assert!(matches!(r.c.command(&other, r.now), Handled::Refused(_)));
    assert_eq!(r.c.awaiting(), Some(2));
    r.run_for(200);
    assert_eq!(r.c.outcome(), None);
    assert_eq!(r.c.ack_seq(), 4);
    assert_eq!(r.verdict(2, write(810, 190)), Handled::Applied);
    assert!(matches!(
        r.until_outcome(100).result,
        CardResult::Written { .. }
    ));
    // Nothing awaits a verdict now: a second one for the same tap is ignored too.
    assert!(matches!(
        r.verdict(2, CardVerdict::Paid),
        Handled::Refused(_)
    ));
    assert!(matches!(
        r.c.outcome().map(|o| &o.result),
        Some(CardResult::Written { .. })
    ));
}

#[test]
fn a_tap_without_a_verdict_times_out() {
    let mut r = Rig::new();
    r.present(1_000, 5_000);
    r.until_tap(1);
    let t = r.run_until("time-out", 2_000, |c| c.outcome().is_some());
    assert_eq!(t, 800);
    assert_eq!(
        r.outcome().as_ref(),
        Some(&CardOutcome {
            at_ms: 0,
            tap: 1,
            result: CardResult::TimedOut
        })
    );
    // Too late: the write is not done.
    assert!(matches!(r.verdict(1, write(810, 190)), Handled::Refused(_)));
    r.run_for(100);
    assert_eq!(r.c.card(), Some(&card(1_000)));

    // A verdict that arrives after the time-out but before the next tick is late all the same.
    r.run_for(5_000);
    r.present(1_000, 5_000);
    r.until_tap(2);
    r.now += ms(805);
    assert!(matches!(
        r.verdict(2, CardVerdict::Paid),
        Handled::Refused(_)
    ));
    assert_eq!(
        r.c.outcome().map(|o| &o.result),
        Some(&CardResult::TimedOut)
    );
}

#[test]
fn taps_go_on_without_gated_and_time_out() {
    let mut r = Rig::new();
    r.c.gated_alive(false, r.now);
    r.present(1_000, 5_000);
    r.until_tap(1);
    assert_eq!(r.until_outcome(1_000).result, CardResult::TimedOut);
}

#[test]
fn paid_and_refuse_are_shown_and_write_nothing() {
    let mut r = Rig::new();
    let verdicts = [
        CardVerdict::Paid,
        CardVerdict::Refuse {
            reason: "insufficient_balance".into(),
        },
    ];
    for (i, v) in verdicts.into_iter().enumerate() {
        let tap = i as u64 + 1;
        r.present(1_000, 500);
        r.until_tap(tap);
        assert_eq!(r.verdict(tap, v), Handled::Applied);
        assert_eq!(
            r.outcome().as_ref(),
            Some(&CardOutcome {
                at_ms: 0,
                tap,
                result: CardResult::Shown
            }),
            "shown at once"
        );
        r.run_for(1_000);
        assert_eq!(r.c.card(), Some(&card(1_000)));
    }
}

#[test]
fn a_new_card_waits_until_the_tap_has_its_outcome() {
    let mut r = Rig::new();
    r.present(1_000, 2_000);
    r.run_for(30);
    r.c.present(card(5), 2_000, r.now);
    r.until_tap(1);
    r.c.present(card(5), 2_000, r.now);
    r.run_for(200);
    assert_eq!(r.c.tap().map(|t| (t.seq, t.card.balance)), Some((1, 1_000)));
    assert_eq!(r.verdict(1, CardVerdict::Paid), Handled::Applied);
    // Answered: the next card replaces the one still in the field.
    r.c.present(card(5), 2_000, r.now);
    r.until_tap(2);
    assert_eq!(r.c.tap().map(|t| t.card.balance), Some(5));
}

#[test]
fn a_replayed_command_is_rejected_by_the_guard() {
    let mut r = Rig::new();
    r.present(1_000, 2_000);
    r.until_tap(1);
    let cmd = r.cmd(7, 1, write(810, 190));
    assert_eq!(r.c.command(&cmd, r.now), Handled::Applied);
    assert_eq!(
        r.c.command(&cmd, r.now),
        Handled::Rejected(Rejection::Replay)
    );
    r.until_outcome(100);
    r.run_for(2_000);
    r.present(810, 2_000);
    r.until_tap(2);
    // The same seq aimed at the new tap with a fresh deadline, and the recorded write once its
    // deadline has passed: neither acts.
    let replay = r.cmd(7, 2, write(620, 190));
    assert_eq!(
        r.c.command(&replay, r.now),
        Handled::Rejected(Rejection::Replay)
    );
    assert_eq!(
        r.c.command(&cmd, r.now),
        Handled::Rejected(Rejection::Stale)
    );
    assert_eq!(r.c.awaiting(), Some(2));
    let s = r.c.state();
    assert_eq!((s.ack_seq, s.rejected.replay, s.rejected.stale), (7, 2, 1));
    // Another epoch cannot take the reader while its gated is there …
    let foreign = CardCommand {
        epoch: Epoch::from_bytes([2; 16]),
        ..r.cmd(1, 2, CardVerdict::Paid)
    };
    assert_eq!(
        r.c.command(&foreign, r.now),
        Handled::Rejected(Rejection::Epoch)
    );
    // … but may once gated's token is gone.
    r.c.gated_alive(false, r.now);
    assert_eq!(r.c.command(&foreign, r.now), Handled::Applied);
    assert_eq!(r.c.state().epoch, Some(Epoch::from_bytes([2; 16])));
}
