//! Table-driven tests of the gate rules and the fare table.
//!
//! The network used throughout: zone 1 `a1`, `a2`; zone 2 `b`; zone 3 `c`; zone 4 `d`;
//! fares by zone distance 150, 190, 230, 270; the service day starts at 04:00.

mod entry;
mod exit;
mod fares;

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveDateTime};

use super::*;
use crate::ids::{StationId, SubjectId};

const TABLE: &str = r#"
service_day_start = "04:00"
fares = [150, 190, 230, 270]

[stations]
a1 = 1
a2 = 1
b = 2
c = 3
d = 4
"#;

pub(super) fn table() -> FareTable {
    FareTable::parse(TABLE, "test").unwrap()
}

pub(super) fn st(s: &str) -> StationId {
    StationId::new(s).unwrap()
}

pub(super) fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub(super) fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

pub(super) const SUBJECT: SubjectId = SubjectId::from_bytes([7; 16]);

pub(super) fn single(id: u64, origin: &str, valid_on: &str, value: RideValue) -> Ticket {
    Ticket {
        id: TicketId(id),
        kind: TicketKind::SingleRide {
            origin: st(origin),
            valid_on: day(valid_on),
            value,
            used: false,
        },
    }
}

pub(super) fn used(mut t: Ticket) -> Ticket {
    if let TicketKind::SingleRide { used, .. } = &mut t.kind {
        *used = true;
    }
    t
}

pub(super) fn day_pass(id: u64, date: &str, coverage: Coverage) -> Ticket {
    Ticket {
        id: TicketId(id),
        kind: TicketKind::DayPass {
            date: day(date),
            coverage,
        },
    }
}

pub(super) fn commuter(id: u64, from: &str, to: &str, coverage: Coverage) -> Ticket {
    Ticket {
        id: TicketId(id),
        kind: TicketKind::CommuterPass {
            from: day(from),
            to: day(to),
            coverage,
        },
    }
}

pub(super) fn stations(list: &[&str]) -> Coverage {
    Coverage::Stations(list.iter().map(|s| st(s)).collect())
}

pub(super) fn zones(list: &[Zone]) -> Coverage {
    Coverage::Zones(list.iter().copied().collect::<BTreeSet<_>>())
}

pub(super) fn trip(entry: &str, entered: &str, ticket: u64) -> OpenTrip {
    let entered_at = at(entered);
    OpenTrip {
        entry_station: st(entry),
        entered_at,
        service_day: table().service_day(entered_at),
        ticket: TicketId(ticket),
    }
}

/// Every refusal reason, written so that adding a variant breaks the build until a test reaches it.
fn all_reasons() -> BTreeSet<&'static str> {
    let exhaustive = |r: DenyReason| match r {
        DenyReason::DoubleEntry
        | DenyReason::NoEntry
        | DenyReason::UnknownStation
        | DenyReason::NoTicket
        | DenyReason::Expired
        | DenyReason::NotYetValid
        | DenyReason::StationNotCovered
        | DenyReason::WrongOrigin
        | DenyReason::AlreadyUsed
        | DenyReason::EntryTicketGone
        | DenyReason::FareAdjustmentNeeded { .. } => r.code(),
    };
    [
        DenyReason::DoubleEntry,
        DenyReason::NoEntry,
        DenyReason::UnknownStation,
        DenyReason::NoTicket,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::StationNotCovered,
        DenyReason::WrongOrigin,
        DenyReason::AlreadyUsed,
        DenyReason::EntryTicketGone,
        DenyReason::FareAdjustmentNeeded { due: 1 },
    ]
    .into_iter()
    .map(exhaustive)
    .collect()
}

#[test]
fn every_reason_is_reached_by_the_tables() {
    let mut reached: BTreeSet<&'static str> = BTreeSet::new();
    let refusals = entry::expected_refusals()
        .into_iter()
        .chain(exit::expected_refusals());
    reached.extend(refusals.map(|r| r.code()));
    assert_eq!(reached, all_reasons());
}

#[test]
fn reason_codes_match_their_serialised_form() {
    for code in all_reasons() {
        let reason = match code {
            "fare_adjustment_needed" => DenyReason::FareAdjustmentNeeded { due: 40 },
            other => serde_json::from_value(serde_json::json!({ "code": other })).unwrap(),
        };
        assert_eq!(reason.code(), code);
        let json = serde_json::to_value(reason).unwrap();
        assert_eq!(json["code"], code);
    }
    let json = serde_json::to_string(&DenyReason::FareAdjustmentNeeded { due: 40 }).unwrap();
    assert_eq!(json, r#"{"code":"fare_adjustment_needed","due":40}"#);
}

#[test]
fn tickets_have_a_stable_json_form() {
    let t = commuter(3, "2026-04-01", "2026-09-30", zones(&[1, 2]));
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(
        json,
        r#"{"id":3,"kind":{"type":"commuter_pass","from":"2026-04-01","to":"2026-09-30","coverage":{"zones":[1,2]}}}"#
    );
    assert_eq!(serde_json::from_str::<Ticket>(&json).unwrap(), t);
    let s = single(1, "a1", "2026-04-01", RideValue::Zones(2));
    let back: Ticket = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let unknown =
        r#"{"id":3,"kind":{"type":"day_pass","date":"2026-04-01","coverage":"network","x":1}}"#;
    assert!(serde_json::from_str::<Ticket>(unknown).is_err());
    let bad_station = r#"{"id":3,"kind":{"type":"day_pass","date":"2026-04-01","coverage":{"stations":["a/b"]}}}"#;
    assert!(serde_json::from_str::<Ticket>(bad_station).is_err());
}

/// A whole day: enter, exit, enter again, exit, with the state applied the way a store would.
#[test]
fn sequence_of_trips_applies_effects() {
    let table = table();
    let mut tickets = vec![single(1, "a1", "2026-03-02", RideValue::Fare(190))];
    let mut open: Option<OpenTrip> = None;
    let mut journal = Vec::new();
    let mut pass =
        |tickets: &mut Vec<Ticket>, open: &mut Option<OpenTrip>, station: &str, dir, when| {
            let station = st(station);
            let rider = Rider {
                subject: SUBJECT,
                tickets: tickets.as_slice(),
                open_trip: open.as_ref(),
                postpay: false,
            };
            let gate = Gate {
                station: &station,
                direction: dir,
                at: at(when),
            };
            let d = decide(&table, &rider, &gate);
            match &d.effect {
                Effect::None => {}
                Effect::OpenTrip(t) => *open = Some(t.clone()),
                Effect::CloseTrip { consume, .. } => {
                    *open = None;
                    for t in tickets.iter_mut() {
                        if Some(t.id) == *consume {
                            t.kind = used(t.clone()).kind;
                        }
                    }
                }
            }
            journal.push(d.record.clone());
            d
        };
    use Direction::{Entry, Exit};
    assert!(pass(&mut tickets, &mut open, "a1", Entry, "2026-03-02 08:00").allowed());
    let again = pass(&mut tickets, &mut open, "a1", Entry, "2026-03-02 08:01");
    assert_eq!(again.reason(), Some(DenyReason::DoubleEntry));
    assert!(pass(&mut tickets, &mut open, "b", Exit, "2026-03-02 08:20").allowed());
    let twice = pass(&mut tickets, &mut open, "b", Exit, "2026-03-02 08:21");
    assert_eq!(twice.reason(), Some(DenyReason::NoEntry));
    let reuse = pass(&mut tickets, &mut open, "a1", Entry, "2026-03-02 18:00");
    assert_eq!(reuse.reason(), Some(DenyReason::AlreadyUsed));
    assert_eq!(journal.len(), 5);
    assert!(journal.iter().all(|r| r.subject == SUBJECT));
    assert_eq!(journal[2].entry_station, Some(st("a1")));
    assert_eq!(journal[2].fare, Some(190));
}
