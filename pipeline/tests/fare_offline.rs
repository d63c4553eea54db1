//! Stations cut off from the centre (issue 17 item 3), on real stores and real zenoh sessions on
//! loopback: they keep deciding on their own state, their passages wait in their stores, and when
//! the centre is back its ledger books every one of them, the fares add up, and what the stations
//! could not know is flagged as a conflict and counted (docs/tickets.md, "Offline stations and the
//! conflicts they leave"). The stations are their store, sync and uplink (as gated runs them) and
//! the ticket desk the deciders use, fed the walkers directly.

// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_common;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use domain::StationId;
use domain::tickets::{Coverage, DenyReason, Direction, Ticket, TicketId, TicketKind, Verdict};
use enrolment::store::Conflict;
use pipeline::decide::gate::TicketDesk;
use pipeline::store::Store;
use sync_common::fares::*;
use sync_common::*;

fn day_pass() -> TicketKind {
    TicketKind::DayPass {
        date: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        coverage: Coverage::Network,
    }
}

/// Judges `id` at `desk` with `tickets` and no word from the centre, and commits the grant as the
/// deciders do.
fn offline_pass(
    desk: &mut TicketDesk,
    store: &Store,
    id: domain::SubjectId,
    tickets: &[Ticket],
    direction: Direction,
    when: chrono::NaiveDateTime,
    track: u64,
) -> Verdict {
    let d = desk.judge(id, &tickets.to_vec().into(), None, direction, when);
    let p: Vec<_> = (desk.take_changes().iter())
        .map(|c| c.passage("L1", track))
        .collect();
    store.commit_passages(&p, &[]).unwrap();
    d.verdict
}

/// Closes the centre's session: the stations' sync and uplink stay up and cannot reach it.
async fn centre_down(centre: &mut TestCentre) {
    let session = centre.session.take().unwrap();
    centre.service = None;
    session.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passages_made_while_the_centre_was_down_are_booked_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda"]);
    let ids = centre.enrol(100);
    let umeda = StationId::new("umeda").unwrap();
    let pass_kind = TicketKind::DayPass {
        date: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        coverage: domain::tickets::Coverage::Network,
    };
    for id in &ids {
        centre.store.link_ticket(id, &pass_kind, "test").unwrap();
    }
    // The station starts from a store that already holds the subjects (an earlier sync), with the
    // centre down: 100 walkers go in and out.
    centre.start().await;
    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 500).await;
    a.wait_for("every subject", WAIT, |s| s.gallery().len() == ids.len())
        .await;
    let store_a: Arc<Store> = a.syncer().store().clone();
    centre_down(&mut centre).await;

    let mut desk = TicketDesk::new(table(), umeda.clone());
    let tickets = vec![domain::tickets::Ticket {
        id: domain::tickets::TicketId(0),
        kind: pass_kind.clone(),
    }];
    for (i, id) in ids.iter().enumerate() {
        let m = i as u32 % 50;
        for (dir_, when) in [(Direction::Entry, at(7, m)), (Direction::Exit, at(9, m))] {
            let d = desk.judge(*id, &tickets.clone().into(), None, dir_, when);
            assert_eq!(d.verdict, Verdict::Allow);
            let p: Vec<_> = desk
                .take_changes()
                .iter()
                .map(|c| c.passage("L1", i as u64))
                .collect();
            store_a.commit_passages(&p, &[]).unwrap();
        }
    }
    // An orderly stop with the centre down waits its time and says what is left unbooked.
    let drained = a.handle.drain(Duration::from_millis(300)).await;
    assert_eq!((drained.head, drained.booked), (200, 0));
    a.stop().await;
    drop(store_a);

    // The centre comes back, then the station: the ledger catches up by itself.
    centre.start().await;
    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 500).await;
    let cs = centre.store.clone();
    until("the ledger to book all 200 passages", || {
        cs.uplink_head(&umeda).unwrap() == 200
    })
    .await;
    let totals = centre.store.ledger_totals().unwrap();
    assert_eq!((totals.passages, totals.conflicts), (200, 0));
    // An orderly stop now finds every passage booked (the centre confirms it when next asked).
    let drained = a.handle.drain(WAIT).await;
    assert_eq!((drained.head, drained.booked), (200, 200));
    // The ledger's fares are the fares of the trips: 100 rides within umeda's zone, 150 each.
    let fares: u32 = (centre.store.ledger(&umeda, 1, 1000).unwrap().iter())
        .filter_map(|(_, r)| r.record.fare)
        .sum();
    assert_eq!(fares, 100 * 150);
    for id in &ids {
        let (open, trips) = centre.store.trips(id, 0, 10).unwrap().unwrap();
        assert!(open.is_none());
        assert_eq!(trips.len(), 2);
    }
    a.stop().await;
}

/// Two stations cut off together. 90 walkers go in and out at umeda (150 each). 10 more enter at
/// umeda, leave through no gate umeda hears of (a broken flap, a card), then enter at noda, which
/// cannot know of the umeda trip, and leave there (150 each). When the centre returns, the ledger
/// books all 210 passages, the fares add up to 100 × 150, the 10 entries at noda over a trip still
/// open are flagged `entry_over_open_trip` for review, every trip ends closed, and umeda, told so by
/// the centre, no longer holds those 10 trips open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offline_stations_converge_and_flag_what_they_could_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda", "noda"]);
    let ids = centre.enrol(100);
    let (umeda, noda) = (
        StationId::new("umeda").unwrap(),
        StationId::new("noda").unwrap(),
    );
    for id in &ids {
        centre.store.link_ticket(id, &day_pass(), "test").unwrap();
    }
    centre.start().await;
    let a = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 500).await;
    let b = TestStation::start(&centre, "noda", &dir.path().join("b.redb"), 500).await;
    for s in [&a, &b] {
        s.wait_for("every subject", WAIT, |s| s.gallery().len() == ids.len())
            .await;
    }
    centre_down(&mut centre).await;

    let tickets = [Ticket {
        id: TicketId(0),
        kind: day_pass(),
    }];
    let (store_a, store_b) = (a.syncer().store().clone(), b.syncer().store().clone());
    let mut desk_a = TicketDesk::new(table(), umeda.clone());
    let mut desk_b = TicketDesk::new(table(), noda.clone());
    let (regular, wanderers) = ids.split_at(90);
    for (i, id) in regular.iter().enumerate() {
        let m = i as u32 % 50;
        for (d, when) in [(Direction::Entry, at(7, m)), (Direction::Exit, at(9, m))] {
            let v = offline_pass(&mut desk_a, &store_a, *id, &tickets, d, when, i as u64);
            assert_eq!(v, Verdict::Allow);
        }
    }
    for (i, id) in wanderers.iter().enumerate() {
        let m = i as u32;
        let v = offline_pass(
            &mut desk_a,
            &store_a,
            *id,
            &tickets,
            Direction::Entry,
            at(7, m),
            i as u64,
        );
        assert_eq!(v, Verdict::Allow);
        for (d, when) in [(Direction::Entry, at(10, m)), (Direction::Exit, at(11, m))] {
            let v = offline_pass(&mut desk_b, &store_b, *id, &tickets, d, when, i as u64);
            assert_eq!(v, Verdict::Allow, "noda cannot know of the umeda entry");
        }
    }
    assert_eq!(
        (
            *store_a.passage_head().borrow(),
            *store_b.passage_head().borrow()
        ),
        (190, 20)
    );
    // Cut off, umeda still holds the 10 trips open.
    let wanderer = wanderers[0];
    let d = desk_a.judge(
        wanderer,
        &tickets.to_vec().into(),
        None,
        Direction::Entry,
        at(12, 0),
    );
    assert_eq!(
        d.verdict,
        Verdict::Deny {
            reason: DenyReason::DoubleEntry
        }
    );
    desk_a.take_changes();

    // The centre returns; the ledger asks both stations from where it stopped.
    centre.start().await;
    let cs = centre.store.clone();
    until("the ledger to book both stations' passages", || {
        cs.uplink_head(&umeda).unwrap() == 190 && cs.uplink_head(&noda).unwrap() == 20
    })
    .await;
    let totals = centre.store.ledger_totals().unwrap();
    assert_eq!((totals.passages, totals.conflicts), (210, 10));
    let rows: Vec<_> = [&umeda, &noda]
        .iter()
        .flat_map(|s| centre.store.ledger(s, 1, 1000).unwrap())
        .collect();
    let fares: u32 = rows.iter().filter_map(|(_, r)| r.record.fare).sum();
    assert_eq!(fares, 100 * 150, "the ledger's fares are the trips'");
    // Whichever station the ledger books first, each wanderer's unclosed umeda trip is flagged
    // once: at noda's entry over it, or at umeda's entry reported after noda's trip.
    let mut flagged: Vec<_> = rows
        .iter()
        .filter(|(_, r)| r.conflict.is_some())
        .map(|(_, r)| (r.record.subject, r.record.direction, r.conflict))
        .collect();
    flagged.sort_by_key(|(s, _, _)| *s);
    let mut want: Vec<_> = (wanderers.iter())
        .map(|s| (*s, Direction::Entry, Some(Conflict::EntryOverOpenTrip)))
        .collect();
    want.sort_by_key(|(s, _, _)| *s);
    assert_eq!(flagged, want);
    for id in &ids {
        let (open, _) = centre.store.trips(id, 0, 10).unwrap().unwrap();
        assert!(open.is_none(), "every trip ends closed at the centre");
    }

    // The centre's view reaches umeda, whose desk then lets the wanderer in again.
    a.wait_for("noda's exits known at umeda", WAIT, |s| {
        let g = s.syncer().gallery().read();
        wanderers
            .iter()
            .all(|id| g.trip(id).is_some_and(|t| t.open.is_none()))
    })
    .await;
    assert_eq!(
        pass(
            &mut desk_a,
            &store_a,
            &a,
            wanderer,
            Direction::Entry,
            at(12, 0)
        ),
        Verdict::Allow
    );
    a.stop().await;
    b.stop().await;
}

/// A station's store file replaced (a new disk: numbered from 1 again) and then restored from a
/// backup (the same file, without its latest passages): the ledger numbers each file's passages on
/// from what it booked, so nothing recorded afresh is taken for a passage already booked, and a
/// batch from the replaced file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_or_restored_station_store_loses_no_passage() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda"]);
    let ids = centre.enrol(10);
    let umeda = StationId::new("umeda").unwrap();
    for id in &ids {
        centre.store.link_ticket(id, &day_pass(), "test").unwrap();
    }
    centre.start().await;
    let tickets = [Ticket {
        id: TicketId(0),
        kind: day_pass(),
    }];
    let path = dir.path().join("a.redb");
    let backup = dir.path().join("a.backup.redb");
    let cs = centre.store.clone();
    let booked = |n: u64| {
        let cs = cs.clone();
        let umeda = umeda.clone();
        move || cs.uplink_head(&umeda).unwrap() == n
    };
    // One walker in and out per call, from subject `i`, at minute `m`.
    let walk = |store: &Store, desk: &mut TicketDesk, i: usize, m: u32| {
        for (d, when) in [(Direction::Entry, at(7, m)), (Direction::Exit, at(8, m))] {
            let v = offline_pass(desk, store, ids[i], &tickets, d, when, i as u64);
            assert_eq!(v, Verdict::Allow);
        }
    };

    // The first file: 2 walkers (4 passages), booked; a backup taken; one more walker, booked.
    let a = TestStation::start(&centre, "umeda", &path, 500).await;
    let (store, first_id) = (a.syncer().store().clone(), a.syncer().store().id());
    let mut desk = TicketDesk::new(table(), umeda.clone());
    walk(&store, &mut desk, 0, 0);
    walk(&store, &mut desk, 1, 1);
    until("4 passages booked", booked(4)).await;
    a.stop().await;
    drop(store);
    std::fs::copy(&path, &backup).unwrap();
    let a = TestStation::start(&centre, "umeda", &path, 500).await;
    let store = a.syncer().store().clone();
    walk(&store, &mut desk, 2, 2);
    until("6 passages booked", booked(6)).await;
    a.stop().await;
    drop(store);

    // Restored from the backup: the same file without its last 2 passages. The centre learns it
    // from the head the station announces as it starts (4, below the 6 booked), so what it records
    // now (its passages 5 and 6 again) is booked after the 6.
    std::fs::copy(&backup, &path).unwrap();
    let a = TestStation::start(&centre, "umeda", &path, 500).await;
    let store = a.syncer().store().clone();
    assert_eq!(store.id(), first_id);
    until("the centre to see the restored file", || {
        cs.uplink_store(&umeda).unwrap().base == 2
    })
    .await;
    walk(&store, &mut desk, 3, 3);
    until(
        "the restored file's new passages booked after the 6",
        booked(8),
    )
    .await;
    a.stop().await;
    drop(store);

    // A new disk: a fresh file numbers from 1 again, under another identity.
    std::fs::remove_file(&path).unwrap();
    let a = TestStation::start(&centre, "umeda", &path, 500).await;
    let store = a.syncer().store().clone();
    assert_ne!(store.id(), first_id, "a new file draws a new identity");
    let mut desk = TicketDesk::new(table(), umeda.clone());
    walk(&store, &mut desk, 4, 4);
    until("the new file's 2 passages booked after the 8", booked(10)).await;
    a.stop().await;
    drop(store);

    // The old file back once more: it was replaced, so the ledger refuses it whole. The station
    // sees the centre's queries: once one has come after the new passages, they were refused.
    std::fs::copy(&backup, &path).unwrap();
    let a = TestStation::start(&centre, "umeda", &path, 500).await;
    let store = a.syncer().store().clone();
    let mut asked = a.syncer().booked();
    walk(&store, &mut desk, 5, 5);
    asked.mark_unchanged();
    tokio::time::timeout(WAIT, asked.changed())
        .await
        .expect("the centre asks the station")
        .unwrap();
    assert_eq!(
        cs.uplink_head(&umeda).unwrap(),
        10,
        "a replaced file books nothing"
    );
    a.stop().await;
    drop(store);

    let totals = centre.store.ledger_totals().unwrap();
    assert_eq!(totals.passages, 10);
    let rows = centre.store.ledger(&umeda, 1, 100).unwrap();
    let who: Vec<_> = rows
        .iter()
        .map(|(seq, r)| (*seq, r.record.subject))
        .collect();
    let want: Vec<_> = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        .iter()
        .enumerate()
        .map(|(k, i)| (k as u64 + 1, ids[*i]))
        .collect();
    assert_eq!(who, want, "every passage once, in the order recorded");
}
