//! Fares across the network (issue 17 item 2), on real stores and real zenoh sessions on loopback:
//! the passages a station records reach the centre's ledger, booked once each, even when the centre
//! was down while they happened; a single ride spent at one station is then refused at the other;
//! a trip entered at one station is closed at the other, with the fare between them; a pass's
//! extension fare is charged to a linked payment account (post-pay).
//!
//! The stations here are their store, sync and uplink (the real ones, as gated runs them) and the
//! ticket desk the deciders use, fed the walkers directly instead of by cameras.

// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_common;

use std::time::Instant;

use chrono::NaiveDate;
use domain::StationId;
use domain::tickets::{DenyReason, Direction, RideValue, TicketKind, Verdict};
use domain::uplink::{SignedPassages, UPLINK_VERSION};
use enrolment::store::AccountRef;
use pipeline::decide::gate::TicketDesk;
use sync_common::fares::*;
use sync_common::*;

/// Links a single ride from `origin`, worth the one-zone fare, for today.
fn link_ride(
    centre: &TestCentre,
    id: domain::SubjectId,
    origin: &StationId,
) -> domain::tickets::Ticket {
    let ride = TicketKind::SingleRide {
        origin: origin.clone(),
        valid_on: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        value: RideValue::Fare(190),
        used: false,
    };
    centre.store.link_ticket(&id, &ride, "test").unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passages_reach_the_ledger_once_and_a_spent_ride_is_refused_at_the_other_station() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda", "noda"]);
    let id = centre.enrol(1)[0];
    let umeda = StationId::new("umeda").unwrap();
    let ticket = link_ride(&centre, id, &umeda);
    centre.start().await;

    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 100).await;
    let b = TestStation::start(&centre, "noda", &dir.path().join("b.redb"), 100).await;
    for s in [&a, &b] {
        s.wait_for("the subject's ride", WAIT, |s| {
            s.gallery().contains_key(&id)
        })
        .await;
    }
    let store_a = a.syncer().store().clone();
    let mut desk_a = TicketDesk::new(table(), umeda.clone());
    let mut desk_b = TicketDesk::new(table(), StationId::new("noda").unwrap());

    // Before the ride is spent, noda refuses it for its origin only.
    let before = desk_b.judge(
        id,
        &b.gallery()[&id].1.clone().into(),
        None,
        Direction::Entry,
        at(8, 0),
    );
    assert!(matches!(
        before.verdict,
        Verdict::Deny {
            reason: DenyReason::WrongOrigin
        }
    ));

    // In and out at umeda: the exit spends the ride.
    let t0 = Instant::now();
    assert_eq!(
        pass(&mut desk_a, &store_a, &a, id, Direction::Entry, at(8, 1)),
        Verdict::Allow
    );
    assert_eq!(
        pass(&mut desk_a, &store_a, &a, id, Direction::Exit, at(8, 20)),
        Verdict::Allow
    );

    // The ledger books both from the head hint, and the centre marks the ride used.
    let cs = centre.store.clone();
    until("the ledger to book umeda's passages", || {
        cs.uplink_head(&umeda).unwrap() == 2
    })
    .await;
    let booked_in = t0.elapsed();
    let rows = centre.store.ledger(&umeda, 1, 10).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1.record.direction, Direction::Entry);
    assert_eq!(rows[1].1.spent, Some(ticket.id));
    assert!(rows.iter().all(|(_, r)| r.conflict.is_none()));
    let (open, _) = centre.store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "the trip is closed at the centre");

    // The centre's ticket change reaches noda, which now refuses the ride as used.
    b.wait_for("the spent ride at noda", WAIT, |s| {
        s.gallery()[&id]
            .1
            .iter()
            .any(|t| matches!(t.kind, TicketKind::SingleRide { used: true, .. }))
    })
    .await;
    let known_at_b = t0.elapsed();
    let after = desk_b.judge(
        id,
        &b.gallery()[&id].1.clone().into(),
        None,
        Direction::Entry,
        at(9, 0),
    );
    assert_eq!(
        after.verdict,
        Verdict::Deny {
            reason: DenyReason::AlreadyUsed
        }
    );
    eprintln!("booked at the centre in {booked_in:?}; spent ride known at noda in {known_at_b:?}");

    // Asked again, nothing is booked twice.
    let sealed = a.syncer().passages(0, 100).unwrap();
    assert_eq!(sealed.v, UPLINK_VERSION);
    let centre_key = domain::seal::UplinkKey::for_centre(
        &centre.centre.x25519,
        &umeda,
        &centre.centre.stations[&umeda],
    )
    .unwrap();
    let batch = SignedPassages::decode(&sealed.encode())
        .unwrap()
        .open(&centre_key, &umeda)
        .unwrap();
    assert_eq!(batch.passages.len(), 2);
    assert_eq!(centre.store.book(&batch).unwrap().booked, 0);
    assert_eq!(centre.store.ledger_totals().unwrap().passages, 2);

    // Noda's key does not pass for umeda's passages.
    let noda_key = domain::seal::UplinkKey::for_centre(
        &centre.centre.x25519,
        &umeda,
        &centre.centre.stations[&StationId::new("noda").unwrap()],
    )
    .unwrap();
    assert_eq!(sealed.open(&noda_key, &umeda).unwrap_err().reason(), "mac");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_entered_at_one_station_is_closed_at_the_other_with_the_fare_between() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda", "noda"]);
    let id = centre.enrol(1)[0];
    let (umeda, noda) = (
        StationId::new("umeda").unwrap(),
        StationId::new("noda").unwrap(),
    );
    let ticket = link_ride(&centre, id, &umeda);
    let pass_kind = TicketKind::DayPass {
        date: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        coverage: domain::tickets::Coverage::Network,
    };
    centre.start().await;
    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 100).await;
    let b = TestStation::start(&centre, "noda", &dir.path().join("b.redb"), 100).await;
    for s in [&a, &b] {
        s.wait_for("the subject", WAIT, |s| s.gallery().contains_key(&id))
            .await;
    }
    let (store_a, store_b) = (a.syncer().store().clone(), b.syncer().store().clone());
    let mut desk_a = TicketDesk::new(table(), umeda.clone());
    let mut desk_b = TicketDesk::new(table(), noda.clone());

    // Without the centre's word, noda knows no entry.
    assert_eq!(
        desk_b
            .judge(
                id,
                &b.gallery()[&id].1.clone().into(),
                None,
                Direction::Exit,
                at(7, 50)
            )
            .verdict,
        Verdict::Deny {
            reason: DenyReason::NoEntry
        }
    );
    desk_b.take_changes();

    // In at umeda on the single ride; the centre's trip reaches noda.
    let t0 = Instant::now();
    assert_eq!(
        pass(&mut desk_a, &store_a, &a, id, Direction::Entry, at(8, 0)),
        Verdict::Allow
    );
    let open_at = |s: &TestStation| {
        s.syncer()
            .gallery()
            .read()
            .trip(&id)
            .and_then(|t| t.open.clone())
            .map(|t| t.entry_station)
    };
    b.wait_for("umeda's entry at noda", WAIT, |s| {
        open_at(s) == Some(umeda.clone())
    })
    .await;
    let known_at_b = t0.elapsed();

    // Out at noda: one zone apart, 190, paid by the ride, which noda spends.
    let t1 = Instant::now();
    assert_eq!(
        pass(&mut desk_b, &store_b, &b, id, Direction::Exit, at(8, 30)),
        Verdict::Allow
    );
    let cs = centre.store.clone();
    until("noda's exit booked", || cs.uplink_head(&noda).unwrap() == 1).await;
    let rows = centre.store.ledger(&noda, 1, 10).unwrap();
    assert_eq!(rows[0].1.record.entry_station, Some(umeda.clone()));
    assert_eq!(rows[0].1.record.fare, Some(190));
    assert_eq!(rows[0].1.spent, Some(ticket.id));
    assert_eq!(rows[0].1.conflict, None);
    let (open, _) = centre.store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "closed at the centre");

    // The close reaches umeda, which no longer holds the walker's trip open: a day pass bought
    // since lets them in again, where the stale local trip would say double_entry.
    a.wait_for("noda's exit at umeda", WAIT, |s| {
        s.syncer()
            .gallery()
            .read()
            .trip(&id)
            .is_some_and(|t| t.open.is_none())
    })
    .await;
    let closed_at_a = t1.elapsed();
    centre.store.link_ticket(&id, &pass_kind, "test").unwrap();
    centre.changed();
    a.wait_for("the day pass at umeda", WAIT, |s| {
        s.gallery()[&id].1.len() == 2
    })
    .await;
    assert_eq!(
        pass(&mut desk_a, &store_a, &a, id, Direction::Entry, at(9, 0)),
        Verdict::Allow
    );
    eprintln!(
        "entry at umeda known at noda in {known_at_b:?}; exit at noda known at umeda in {closed_at_a:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// Post-pay end to end (issue 17 item 5): the centre's account link reaches the station, whose
/// desk then charges a pass's extension fare instead of refusing it; the ledger books the charge
/// against the account; once the unlink reaches the station, the same exit is refused again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_extension_is_charged_to_a_linked_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda", "noda"]);
    let ids = centre.enrol(2);
    let (payer, other) = (ids[0], ids[1]);
    let (umeda, noda) = (
        StationId::new("umeda").unwrap(),
        StationId::new("noda").unwrap(),
    );
    // A commuter pass covering umeda only: an exit at noda (one zone on) costs the extension, 190.
    let pass_kind = TicketKind::CommuterPass {
        from: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        coverage: domain::tickets::Coverage::Stations([umeda.clone()].into()),
    };
    for id in &ids {
        centre.store.link_ticket(id, &pass_kind, "test").unwrap();
    }
    let reference = AccountRef::try_from("psp:acct_42".to_owned()).unwrap();
    centre
        .store
        .set_account(&payer, Some(reference.clone()), "test")
        .unwrap();
    centre.start().await;
    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 100).await;
    let b = TestStation::start(&centre, "noda", &dir.path().join("b.redb"), 100).await;
    let postpay = |s: &TestStation, id| {
        s.syncer()
            .gallery()
            .read()
            .wallet(&id)
            .is_some_and(|w| w.postpay)
    };
    b.wait_for("the payer's account at noda", WAIT, |s| postpay(s, payer))
        .await;
    assert!(!postpay(&b, other));
    let (store_a, store_b) = (a.syncer().store().clone(), b.syncer().store().clone());
    let mut desk_a = TicketDesk::new(table(), umeda.clone());
    let mut desk_b = TicketDesk::new(table(), noda.clone());

    // Both enter at umeda; the entries reach noda through the centre.
    for id in &ids {
        assert_eq!(
            pass(&mut desk_a, &store_a, &a, *id, Direction::Entry, at(8, 0)),
            Verdict::Allow
        );
    }
    b.wait_for("both entries at noda", WAIT, |s| {
        ids.iter().all(|id| {
            s.syncer()
                .gallery()
                .read()
                .trip(id)
                .is_some_and(|t| t.open.is_some())
        })
    })
    .await;

    // The payer leaves at noda, charged; the other is sent to the fare adjustment machine.
    assert_eq!(
        pass(&mut desk_b, &store_b, &b, payer, Direction::Exit, at(8, 30)),
        Verdict::Allow
    );
    assert_eq!(
        pass(&mut desk_b, &store_b, &b, other, Direction::Exit, at(8, 31)),
        Verdict::Deny {
            reason: DenyReason::FareAdjustmentNeeded { due: 190 }
        }
    );
    let cs = centre.store.clone();
    until("the charge booked", || {
        !cs.charges(0, 10).unwrap().is_empty()
    })
    .await;
    let charges = centre.store.charges(0, 10).unwrap();
    assert_eq!(charges.len(), 1, "{charges:?}");
    let c = &charges[0].1;
    assert_eq!(
        (c.subject, c.amount, &c.station, c.account.as_ref()),
        (payer, 190, &noda, Some(&reference))
    );
    let rows = centre.store.ledger(&noda, 1, 10).unwrap();
    assert_eq!(rows[0].1.record.charged, 190);
    assert_eq!(rows[0].1.conflict, None);

    // Unlinked at the centre: once noda hears, the next extension is refused.
    centre.store.set_account(&payer, None, "test").unwrap();
    centre.changed();
    assert_eq!(
        pass(
            &mut desk_a,
            &store_a,
            &a,
            payer,
            Direction::Entry,
            at(17, 0)
        ),
        Verdict::Allow
    );
    b.wait_for("the unlink at noda", WAIT, |s| !postpay(s, payer))
        .await;
    b.wait_for("the second entry at noda", WAIT, |s| {
        s.syncer()
            .gallery()
            .read()
            .trip(&payer)
            .and_then(|t| t.open.clone())
            .is_some_and(|t| t.entered_at == at(17, 0))
    })
    .await;
    assert_eq!(
        pass(
            &mut desk_b,
            &store_b,
            &b,
            payer,
            Direction::Exit,
            at(17, 30)
        ),
        Verdict::Deny {
            reason: DenyReason::FareAdjustmentNeeded { due: 190 }
        }
    );
    assert_eq!(centre.store.charges(0, 10).unwrap().len(), 1);
    a.stop().await;
    b.stop().await;
}
