//! The gate verdicts: ticket rules, tailgating, unknown walkers, and the card-and-face rule.

use super::*;
use crate::decide::Subject;
use chrono::NaiveDate;
use domain::tickets::{Coverage, TicketId, TicketKind};
use protocol::{ArchColour, DoorAction};

fn at() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 5, 12)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .expect("date")
}

fn pass(to: (i32, u32, u32)) -> Vec<Ticket> {
    vec![Ticket {
        id: TicketId(1),
        kind: TicketKind::CommuterPass {
            from: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            to: NaiveDate::from_ymd_opt(to.0, to.1, to.2).expect("date"),
            coverage: Coverage::Network,
        },
    }]
}

fn identified(track: u64, subject: u32) -> Event {
    Event::Identified {
        track: TrackId(track),
        evidence: Evidence {
            subject: Subject(subject),
            similarity: 0.7,
            margin: 0.3,
            at_ms: 100,
        },
        first_seen_ms: 0,
        frames: 4,
        live: None,
    }
}

struct World {
    desk: TicketDesk,
    ids: Vec<SubjectId>,
    tickets: Vec<Vec<Ticket>>,
}

impl World {
    fn new() -> Self {
        let station = StationId::new("s1").expect("id");
        Self {
            desk: TicketDesk::single_station(station).expect("table"),
            ids: (0..2).map(|_| SubjectId::random().expect("id")).collect(),
            // Subject 0: a valid pass; subject 1: expired in March.
            tickets: vec![pass((2026, 12, 31)), pass((2026, 3, 31))],
        }
    }

    fn run(&mut self, events: &[Event], in_zone: usize) -> Vec<GateVerdict> {
        self.run_paid(events, in_zone, false)
    }

    fn run_paid(&mut self, events: &[Event], in_zone: usize, paid: bool) -> Vec<GateVerdict> {
        let (ids, tickets) = (&self.ids, &self.tickets);
        let mut resolve = |n: u32| {
            let n = n as usize;
            Some((*ids.get(n)?, (tickets.get(n)?.clone().into(), None)))
        };
        verdicts(
            events,
            in_zone,
            paid,
            &mut resolve,
            &mut self.desk,
            Direction::Entry,
            at(),
        )
    }
}

/// The card-and-face rule (`cards`): a face identified while the lane's passage is already paid
/// by the one walker's card is that walker; it opens nothing new and touches no trip.
#[test]
fn a_face_behind_its_own_card_is_not_charged_again() {
    let mut w = World::new();
    let v = w.run_paid(&[identified(1, 0)], 1, true);
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str(), v[0].door),
        (Outcome::Open, "paid_by_card", None)
    );
    assert!(w.desk.take_changes().is_empty(), "no trip opened");
    // The same face later, the card's passage over: judged as usual.
    let v = w.run_paid(&[identified(2, 0)], 1, false);
    assert_eq!(v[0].reason, "granted");
}

#[test]
fn a_valid_pass_opens_once_then_double_entry() {
    let mut w = World::new();
    let v = w.run(&[identified(1, 0)], 1);
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str()),
        (Outcome::Open, "granted")
    );
    assert_eq!(
        (v[0].door, v[0].arch),
        (Some(DoorAction::Open), Some(ArchColour::Welcome))
    );
    assert_eq!(v[0].subject, Some(w.ids[0]));
    let v = w.run(&[identified(2, 0)], 1);
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str()),
        (Outcome::Closed, "double_entry")
    );
    assert_eq!(v[0].door, None);
    // Benchmarks on footage judge every passage alone.
    w.desk.keep_trips = false;
    w.desk.open_trips.clear();
    for t in 3..5 {
        assert_eq!(w.run(&[identified(t, 0)], 1)[0].outcome, Outcome::Open);
    }
}

#[test]
fn expired_pass_unknown_subject_and_tailgating_never_open() {
    let mut w = World::new();
    let v = w.run(&[identified(1, 1)], 1);
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str()),
        (Outcome::Closed, "expired")
    );
    assert_eq!(v[0].arch, Some(ArchColour::Stop));
    // A subject erased between matching and deciding: unknown.
    let v = w.run(&[identified(2, 7)], 1);
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str(), v[0].subject),
        (Outcome::Closed, "unknown", None)
    );
    // Two in the zone at identification: tailgating, whatever the ticket.
    let v = w.run(&[identified(3, 0)], 2);
    assert_eq!(
        (v[0].outcome, v[0].door),
        (Outcome::Tailgating, Some(DoorAction::Close))
    );
    assert_eq!(v[0].arch, Some(ArchColour::Alarm));
    // Tailgating reported in the same update as the identification: one verdict, tailgating.
    let ev = [
        identified(4, 0),
        Event::Tailgating {
            identified: TrackId(4),
            others: vec![TrackId(5)],
            at_ms: 100,
        },
    ];
    let v = w.run(&ev, 1);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].outcome, Outcome::Tailgating);
}

#[test]
fn someone_joining_an_opened_walker_closes_the_door() {
    let mut w = World::new();
    assert_eq!(w.run(&[identified(1, 0)], 1)[0].outcome, Outcome::Open);
    let v = w.run(
        &[Event::Tailgating {
            identified: TrackId(1),
            others: vec![TrackId(2)],
            at_ms: 300,
        }],
        2,
    );
    assert_eq!(
        (v[0].outcome, v[0].door),
        (Outcome::Tailgating, Some(DoorAction::Close))
    );
    assert_eq!(v[0].reason, "tailgating (1 more)");
}

fn gone(gated: usize, reason: &'static str) -> Event {
    Event::Unidentified {
        track: TrackId(9),
        first_seen_ms: 0,
        frames: 5,
        gated,
        needed: 3,
        reason,
        live: None,
    }
}

#[test]
fn unidentified_walkers_are_unknown_or_keep_the_gate_reason() {
    let mut w = World::new();
    let v = w.run(&[gone(3, "not confident"), gone(0, "face too small")], 0);
    assert_eq!(v[0].reason, "unknown");
    assert_eq!(v[1].reason, "face too small");
    // k usable frames that named nobody: unknown. No usable frame at all: the lane never
    // judged the person, so not decided (it was `closed` before), still with the gate's reason.
    assert_eq!(
        (v[0].outcome, v[1].outcome),
        (Outcome::Closed, Outcome::NotDecided)
    );
    assert!(v.iter().all(|v| v.door.is_none() && v.arch.is_none()));
}

#[test]
fn fewer_usable_frames_than_k_is_not_decided_not_unknown() {
    let mut w = World::new();
    let v = w.run(
        &[
            gone(2, "not confident"),
            gone(1, "not confident"),
            gone(7, "not confident"),
            gone(2, "frames named different subjects"),
        ],
        0,
    );
    let got: Vec<(Outcome, &str)> = v.iter().map(|v| (v.outcome, v.reason.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Outcome::NotDecided, "too few usable frames (2 of 3)"),
            (Outcome::NotDecided, "too few usable frames (1 of 3)"),
            (Outcome::Closed, "unknown"),
            // Conflicting evidence is a refusal however few the frames.
            (Outcome::Closed, "frames named different subjects"),
        ]
    );
    assert!(
        v.iter()
            .all(|v| v.door.is_none() && v.arch.is_none() && v.subject.is_none())
    );
}
