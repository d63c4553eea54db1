//! Exit rules: closing the trip, consuming single rides, pass coverage and the difference rule.

use super::*;

struct Case {
    name: &'static str,
    tickets: Vec<Ticket>,
    open: Option<OpenTrip>,
    postpay: bool,
    station: &'static str,
    at: &'static str,
    /// `Ok((ticket, consumed, charged))` or `Err(reason)`.
    expect: Result<(u64, bool, Amount), DenyReason>,
}

fn case(
    name: &'static str,
    tickets: Vec<Ticket>,
    open: Option<OpenTrip>,
    station: &'static str,
    expect: Result<(u64, bool, Amount), DenyReason>,
) -> Case {
    Case {
        name,
        tickets,
        open,
        postpay: false,
        station,
        at: "2026-04-10 09:00",
        expect,
    }
}

fn postpay(mut c: Case) -> Case {
    c.postpay = true;
    c
}

fn cases() -> Vec<Case> {
    use DenyReason::*;
    use RideValue::{Fare, Zones};
    let sr = |value| single(1, "a1", "2026-04-10", value);
    let from_a1 = || Some(trip("a1", "2026-04-10 08:30", 1));
    let from_a1_pass = || Some(trip("a1", "2026-04-10 08:30", 2));
    // Covers a1 (zone 1) and b (zone 2): its edge towards c and d is b.
    let cp = || commuter(2, "2026-04-01", "2026-04-30", stations(&["a1", "b"]));
    let cz = |z: &[Zone]| commuter(2, "2026-04-01", "2026-04-30", zones(z));
    vec![
        case(
            "exit without entry",
            vec![sr(Fare(150))],
            None,
            "b",
            Err(NoEntry),
        ),
        case(
            "exit station unknown",
            vec![sr(Fare(150))],
            from_a1(),
            "zz",
            Err(UnknownStation),
        ),
        case(
            "entry station no longer in the table",
            vec![sr(Fare(150))],
            Some(trip("gone", "2026-04-10 08:30", 1)),
            "b",
            Err(UnknownStation),
        ),
        case(
            "entry ticket unlinked during the ride",
            vec![],
            from_a1(),
            "b",
            Err(EntryTicketGone),
        ),
        case(
            "single ride used during the ride",
            vec![used(sr(Fare(150)))],
            from_a1(),
            "b",
            Err(AlreadyUsed),
        ),
        // single ride by fare: fare a1 -> b is 190
        case(
            "single exact fare",
            vec![sr(Fare(190))],
            from_a1(),
            "b",
            Ok((1, true, 0)),
        ),
        case(
            "single overpaid",
            vec![sr(Fare(270))],
            from_a1(),
            "b",
            Ok((1, true, 0)),
        ),
        case(
            "single same zone",
            vec![sr(Fare(150))],
            from_a1(),
            "a2",
            Ok((1, true, 0)),
        ),
        case(
            "single back at origin",
            vec![sr(Fare(150))],
            from_a1(),
            "a1",
            Ok((1, true, 0)),
        ),
        case(
            "single underpaid",
            vec![sr(Fare(150))],
            from_a1(),
            "b",
            Err(FareAdjustmentNeeded { due: 40 }),
        ),
        postpay(case(
            "single underpaid is never charged, even with an account",
            vec![sr(Fare(150))],
            from_a1(),
            "d",
            Err(FareAdjustmentNeeded { due: 120 }),
        )),
        // single ride by zones: Zones(n) covers distance 0..n
        case(
            "zones 2 over one zone boundary",
            vec![sr(Zones(2))],
            from_a1(),
            "b",
            Ok((1, true, 0)),
        ),
        case(
            "zones 2 over two boundaries",
            vec![sr(Zones(2))],
            from_a1(),
            "c",
            Err(FareAdjustmentNeeded { due: 40 }),
        ),
        case(
            "zones 0 is worth nothing",
            vec![sr(Zones(0))],
            from_a1(),
            "a1",
            Err(FareAdjustmentNeeded { due: 150 }),
        ),
        case(
            "zones beyond the table cover all",
            vec![sr(Zones(200))],
            from_a1(),
            "d",
            Ok((1, true, 0)),
        ),
        // passes: covered exit is free, nothing consumed
        case(
            "pass covered exit",
            vec![cp()],
            from_a1_pass(),
            "b",
            Ok((2, false, 0)),
        ),
        case(
            "pass back at entry",
            vec![cp()],
            from_a1_pass(),
            "a1",
            Ok((2, false, 0)),
        ),
        // difference rule: the fare from the edge of coverage (b, zone 2) to the exit
        postpay(case(
            "pass one zone past its edge",
            vec![cp()],
            from_a1_pass(),
            "c",
            Ok((2, false, 190)),
        )),
        postpay(case(
            "pass two zones past its edge",
            vec![cp()],
            from_a1_pass(),
            "d",
            Ok((2, false, 230)),
        )),
        postpay(case(
            "station pass, uncovered station in a covered zone",
            vec![commuter(2, "2026-04-01", "2026-04-30", stations(&["a1"]))],
            from_a1_pass(),
            "a2",
            Ok((2, false, 150)),
        )),
        case(
            "pass extension without an account",
            vec![cp()],
            from_a1_pass(),
            "c",
            Err(FareAdjustmentNeeded { due: 190 }),
        ),
        postpay(case(
            "zone pass edge zone 2 to zone 4",
            vec![cz(&[1, 2])],
            from_a1_pass(),
            "d",
            Ok((2, false, 230)),
        )),
        postpay(case(
            "zone pass edge zone 1 to zone 3",
            vec![cz(&[1])],
            from_a1_pass(),
            "c",
            Ok((2, false, 230)),
        )),
        case(
            "zone pass covered",
            vec![cz(&[1, 3])],
            from_a1_pass(),
            "c",
            Ok((2, false, 0)),
        ),
        postpay(case(
            "no edge: capped at the full fare",
            vec![commuter(2, "2026-04-01", "2026-04-30", stations(&[]))],
            from_a1_pass(),
            "b",
            Ok((2, false, 190)),
        )),
        case(
            "network pass anywhere",
            vec![day_pass(2, "2026-04-10", Coverage::Network)],
            from_a1_pass(),
            "d",
            Ok((2, false, 0)),
        ),
        // validity is judged on the trip's service day: no refusal at exit for crossing midnight or 04:00
        Case {
            at: "2026-04-11 00:20",
            ..case(
                "day pass trip crossing midnight",
                vec![day_pass(2, "2026-04-10", Coverage::Network)],
                Some(trip("a1", "2026-04-10 23:50", 2)),
                "d",
                Ok((2, false, 0)),
            )
        },
        Case {
            at: "2026-05-01 04:10",
            ..case(
                "commuter trip crossing the end of its last service day",
                vec![cp()],
                Some(trip("a1", "2026-05-01 03:50", 2)),
                "b",
                Ok((2, false, 0)),
            )
        },
    ]
}

/// The refusals this table expects.
pub(super) fn expected_refusals() -> Vec<DenyReason> {
    cases().into_iter().filter_map(|c| c.expect.err()).collect()
}

#[test]
fn exit_table() {
    let table = table();
    for c in cases() {
        let station = st(c.station);
        let when = at(c.at);
        let rider = Rider {
            subject: SUBJECT,
            tickets: &c.tickets,
            open_trip: c.open.as_ref(),
            postpay: c.postpay,
        };
        let gate = Gate {
            station: &station,
            direction: Direction::Exit,
            at: when,
        };
        let d = decide(&table, &rider, &gate);
        match c.expect {
            Ok((id, consumed, charge)) => {
                assert_eq!(d.verdict, Verdict::Allow, "{}", c.name);
                assert_eq!(d.ticket, Some(TicketId(id)), "{}", c.name);
                let consume = consumed.then_some(TicketId(id));
                assert_eq!(
                    d.effect,
                    Effect::CloseTrip { consume, charge },
                    "{}",
                    c.name
                );
                assert_eq!(d.record.charged, charge, "{}", c.name);
            }
            Err(reason) => {
                assert_eq!(d.verdict, Verdict::Deny { reason }, "{}", c.name);
                assert_eq!(d.effect, Effect::None, "{}", c.name);
                assert_eq!(d.record.charged, 0, "{}", c.name);
            }
        }
        let r = &d.record;
        assert_eq!(
            (r.subject, &r.station, r.at),
            (SUBJECT, &station, when),
            "{}",
            c.name
        );
        assert_eq!(r.direction, Direction::Exit, "{}", c.name);
        assert_eq!(r.service_day, table.service_day(when), "{}", c.name);
        assert_eq!(
            r.entry_station,
            c.open.as_ref().map(|t| t.entry_station.clone()),
            "{}",
            c.name
        );
        // The full fare is recorded whenever both stations are known.
        let full = c
            .open
            .as_ref()
            .and_then(|t| table.fare(&t.entry_station, &station));
        let ticket_known = c
            .tickets
            .iter()
            .any(|t| Some(t.id) == c.open.as_ref().map(|o| o.ticket));
        if full.is_some() && (ticket_known || c.expect == Err(DenyReason::EntryTicketGone)) {
            assert_eq!(r.fare, full, "{}", c.name);
        }
        if let Some(fare) = full {
            assert!(
                r.charged <= fare,
                "{}: never charge more than the full fare",
                c.name
            );
        }
    }
}
