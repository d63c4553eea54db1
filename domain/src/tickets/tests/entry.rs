//! Entry rules, one table row per situation.

use super::*;

struct Case {
    name: &'static str,
    tickets: Vec<Ticket>,
    open: Option<OpenTrip>,
    station: &'static str,
    at: &'static str,
    /// `Ok(ticket used)` or `Err(reason)`.
    expect: Result<u64, DenyReason>,
}

fn case(
    name: &'static str,
    tickets: Vec<Ticket>,
    station: &'static str,
    at: &'static str,
    expect: Result<u64, DenyReason>,
) -> Case {
    Case {
        name,
        tickets,
        open: None,
        station,
        at,
        expect,
    }
}

fn cases() -> Vec<Case> {
    use DenyReason::*;
    use RideValue::{Fare, Zones};
    let sr = |origin, valid_on| single(1, origin, valid_on, Fare(150));
    let cp = || commuter(2, "2026-04-01", "2026-04-30", stations(&["a1", "b"]));
    let dp = |cov| day_pass(3, "2026-03-01", cov);
    let mut v = vec![
        case(
            "no tickets",
            vec![],
            "a1",
            "2026-03-01 10:00",
            Err(NoTicket),
        ),
        case(
            "unknown station",
            vec![sr("a1", "2026-03-01")],
            "zz",
            "2026-03-01 10:00",
            Err(UnknownStation),
        ),
        // single ride
        case(
            "single at origin",
            vec![sr("a1", "2026-03-01")],
            "a1",
            "2026-03-01 10:00",
            Ok(1),
        ),
        case(
            "single by zones",
            vec![single(1, "b", "2026-03-01", Zones(1))],
            "b",
            "2026-03-01 10:00",
            Ok(1),
        ),
        case(
            "single elsewhere",
            vec![sr("a1", "2026-03-01")],
            "a2",
            "2026-03-01 10:00",
            Err(WrongOrigin),
        ),
        case(
            "single used",
            vec![used(sr("a1", "2026-03-01"))],
            "a1",
            "2026-03-01 10:00",
            Err(AlreadyUsed),
        ),
        case(
            "single tomorrow",
            vec![sr("a1", "2026-03-02")],
            "a1",
            "2026-03-01 10:00",
            Err(NotYetValid),
        ),
        case(
            "single yesterday",
            vec![sr("a1", "2026-02-28")],
            "a1",
            "2026-03-01 10:00",
            Err(Expired),
        ),
        case(
            "single 00:30 counts as its day",
            vec![sr("a1", "2026-03-01")],
            "a1",
            "2026-03-02 00:30",
            Ok(1),
        ),
        // commuter pass: both ends inclusive, in service days (04:00 to 03:59)
        case(
            "commuter first day",
            vec![cp()],
            "a1",
            "2026-04-01 04:00",
            Ok(2),
        ),
        case(
            "commuter before first day",
            vec![cp()],
            "a1",
            "2026-03-31 23:59",
            Err(NotYetValid),
        ),
        case(
            "commuter first day 03:59 is the day before",
            vec![cp()],
            "a1",
            "2026-04-01 03:59",
            Err(NotYetValid),
        ),
        case(
            "commuter last day",
            vec![cp()],
            "b",
            "2026-04-30 23:59",
            Ok(2),
        ),
        case(
            "commuter last service day after midnight",
            vec![cp()],
            "b",
            "2026-05-01 03:59",
            Ok(2),
        ),
        case(
            "commuter day after last",
            vec![cp()],
            "b",
            "2026-05-01 04:00",
            Err(Expired),
        ),
        case(
            "commuter station not covered",
            vec![cp()],
            "c",
            "2026-04-10 08:00",
            Err(StationNotCovered),
        ),
        case(
            "commuter zones covered",
            vec![commuter(2, "2026-04-01", "2026-04-30", zones(&[1, 2]))],
            "a2",
            "2026-04-10 08:00",
            Ok(2),
        ),
        case(
            "commuter zone not covered",
            vec![commuter(2, "2026-04-01", "2026-04-30", zones(&[1, 2]))],
            "c",
            "2026-04-10 08:00",
            Err(StationNotCovered),
        ),
        case(
            "commuter one-day validity",
            vec![commuter(2, "2026-04-10", "2026-04-10", Coverage::Network)],
            "d",
            "2026-04-10 12:00",
            Ok(2),
        ),
        // day pass and midnight
        case(
            "day pass network",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-01 10:00",
            Ok(3),
        ),
        case(
            "day pass 00:30 next day",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-02 00:30",
            Ok(3),
        ),
        case(
            "day pass 03:59 next day",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-02 03:59",
            Ok(3),
        ),
        case(
            "day pass 04:00 next day",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-02 04:00",
            Err(Expired),
        ),
        case(
            "day pass 03:59 on its date",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-01 03:59",
            Err(NotYetValid),
        ),
        case(
            "day pass 04:00 on its date",
            vec![dp(Coverage::Network)],
            "d",
            "2026-03-01 04:00",
            Ok(3),
        ),
        case(
            "day pass zone covered",
            vec![dp(zones(&[3]))],
            "c",
            "2026-03-01 10:00",
            Ok(3),
        ),
        case(
            "day pass zone not covered",
            vec![dp(zones(&[3]))],
            "d",
            "2026-03-01 10:00",
            Err(StationNotCovered),
        ),
        case(
            "day pass station covered",
            vec![dp(stations(&["b"]))],
            "b",
            "2026-03-01 10:00",
            Ok(3),
        ),
        case(
            "day pass empty coverage",
            vec![dp(stations(&[]))],
            "b",
            "2026-03-01 10:00",
            Err(StationNotCovered),
        ),
        // several tickets: passes before single rides, then the first that is valid
        case(
            "pass preferred to single ride",
            vec![sr("a1", "2026-04-10"), cp()],
            "a1",
            "2026-04-10 08:00",
            Ok(2),
        ),
        case(
            "commuter preferred to day pass",
            vec![day_pass(3, "2026-04-10", Coverage::Network), cp()],
            "a1",
            "2026-04-10 08:00",
            Ok(2),
        ),
        case(
            "single ride when the pass does not cover",
            vec![cp(), sr("c", "2026-04-10")],
            "c",
            "2026-04-10 08:00",
            Ok(1),
        ),
        case(
            "second single ride when the first is used",
            vec![
                used(sr("a1", "2026-04-10")),
                single(9, "a1", "2026-04-10", Fare(150)),
            ],
            "a1",
            "2026-04-10 08:00",
            Ok(9),
        ),
        // the reason reported is that of the ticket that got furthest: place > date > used
        case(
            "place beats date",
            vec![cp(), sr("a1", "2026-05-02")],
            "c",
            "2026-05-02 08:00",
            Err(WrongOrigin),
        ),
        case(
            "date beats used",
            vec![
                used(sr("a1", "2026-05-02")),
                single(9, "a1", "2026-05-01", Fare(150)),
            ],
            "a1",
            "2026-05-02 08:00",
            Err(Expired),
        ),
        case(
            "first of equal stage wins",
            vec![cp(), sr("a1", "2026-05-03")],
            "a1",
            "2026-05-02 08:00",
            Err(Expired),
        ),
    ];
    v.push(Case {
        name: "open trip: double entry",
        tickets: vec![cp()],
        open: Some(trip("b", "2026-04-10 07:00", 2)),
        station: "a1",
        at: "2026-04-10 08:00",
        expect: Err(DoubleEntry),
    });
    v.push(Case {
        name: "open trip from yesterday still blocks",
        tickets: vec![cp()],
        open: Some(trip("b", "2026-04-09 07:00", 2)),
        station: "a1",
        at: "2026-04-10 08:00",
        expect: Err(DoubleEntry),
    });
    v
}

fn run(c: &Case) -> Decision {
    let station = st(c.station);
    let rider = Rider {
        subject: SUBJECT,
        tickets: &c.tickets,
        open_trip: c.open.as_ref(),
        postpay: true,
    };
    let gate = Gate {
        station: &station,
        direction: Direction::Entry,
        at: at(c.at),
    };
    decide(&table(), &rider, &gate)
}

/// The refusals this table expects.
pub(super) fn expected_refusals() -> Vec<DenyReason> {
    cases().into_iter().filter_map(|c| c.expect.err()).collect()
}

#[test]
fn entry_table() {
    let table = table();
    for c in cases() {
        let d = run(&c);
        let station = st(c.station);
        let when = at(c.at);
        match c.expect {
            Ok(id) => {
                assert_eq!(d.verdict, Verdict::Allow, "{}", c.name);
                assert_eq!(d.ticket, Some(TicketId(id)), "{}", c.name);
                let want = OpenTrip {
                    entry_station: station.clone(),
                    entered_at: when,
                    service_day: table.service_day(when),
                    ticket: TicketId(id),
                };
                assert_eq!(d.effect, Effect::OpenTrip(want), "{}", c.name);
            }
            Err(reason) => {
                assert_eq!(d.verdict, Verdict::Deny { reason }, "{}", c.name);
                assert_eq!(d.effect, Effect::None, "{}", c.name);
            }
        }
        // The journal record always mirrors the decision.
        let r = &d.record;
        assert_eq!(r.subject, SUBJECT, "{}", c.name);
        assert_eq!(
            (&r.station, r.direction, r.at),
            (&station, Direction::Entry, when),
            "{}",
            c.name
        );
        assert_eq!(r.service_day, table.service_day(when), "{}", c.name);
        assert_eq!((r.verdict, r.ticket), (d.verdict, d.ticket), "{}", c.name);
        assert_eq!(
            (&r.entry_station, r.fare, r.charged),
            (&None, None, 0),
            "{}",
            c.name
        );
    }
}

#[test]
fn double_entry_names_the_open_trip_ticket() {
    let c = cases().into_iter().find(|c| c.open.is_some()).unwrap();
    assert_eq!(run(&c).ticket, Some(TicketId(2)));
}
