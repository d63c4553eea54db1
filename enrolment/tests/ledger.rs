//! The fare ledger's booking rules (`store::ledger`, docs/tickets.md "Across the network"): each
//! passage booked once, a gap refused, and reports that disagree flagged, not lost.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, NaiveDateTime};
use domain::seal::{self, KeyId, MasterKey};
use domain::tickets::{Direction, OpenTrip, RideValue, TicketId, TicketKind, TripRecord, Verdict};
use domain::uplink::{Numbered, Passage, PassageBatch, UPLINK_VERSION};
use domain::{StationId, SubjectId};
use enrolment::store::{
    AccountChange, AccountRef, AuditKind, Conflict, Consent, EnrolRow, Rebase, Store, StoreError,
    SubjectRecord,
};

fn st(s: &str) -> StationId {
    StationId::new(s).unwrap()
}

fn at(h: u32, m: u32) -> NaiveDateTime {
    day().and_hms_opt(h, m, 0).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
}

fn enrolled(store: &Store) -> SubjectId {
    let master = MasterKey::generate(KeyId(1)).unwrap();
    let id = SubjectId::random().unwrap();
    let (wrapped, sealed) = seal::seal_new_subject(&master, &id, 1, &[0.1; 128]).unwrap();
    let record = SubjectRecord::enrolled_now(Consent::now("2026-01"), 1, 1);
    store
        .enrol(
            &EnrolRow {
                subject: id,
                record: &record,
                wrapped: &wrapped,
                sealed: &sealed,
            },
            "t",
        )
        .unwrap();
    id
}

fn entry(station: &StationId, id: SubjectId, when: NaiveDateTime, ticket: TicketId) -> Passage {
    let trip = OpenTrip {
        entry_station: station.clone(),
        entered_at: when,
        service_day: day(),
        ticket,
    };
    Passage {
        lane: "L1".into(),
        track: 1,
        subject: id,
        trip: Some(trip),
        spent: None,
        record: record(station, id, Direction::Entry, when, ticket, None),
    }
}

fn exit(
    station: &StationId,
    from: &StationId,
    id: SubjectId,
    when: NaiveDateTime,
    ticket: TicketId,
    spent: bool,
) -> Passage {
    Passage {
        lane: "L1".into(),
        track: 2,
        subject: id,
        trip: None,
        spent: spent.then_some(ticket),
        record: record(station, id, Direction::Exit, when, ticket, Some(from)),
    }
}

fn record(
    station: &StationId,
    id: SubjectId,
    direction: Direction,
    when: NaiveDateTime,
    ticket: TicketId,
    from: Option<&StationId>,
) -> TripRecord {
    TripRecord {
        subject: id,
        station: station.clone(),
        direction,
        at: when,
        service_day: day(),
        verdict: Verdict::Allow,
        ticket: Some(ticket),
        entry_station: from.cloned(),
        fare: from.map(|_| 150),
        charged: 0,
    }
}

fn batch(station: &StationId, after: u64, passages: Vec<Passage>) -> PassageBatch {
    let n = passages.len() as u64;
    PassageBatch {
        v: UPLINK_VERSION,
        station: station.clone(),
        after,
        passages: (after + 1..)
            .zip(passages)
            .map(|(seq, passage)| Numbered { seq, passage })
            .collect(),
        head: after + n,
        store: None,
    }
}

#[test]
fn a_batch_is_booked_once_and_a_gap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, id) = (st("umeda"), enrolled(&store));
    let t = TicketId(1);
    let b = batch(
        &a,
        0,
        vec![
            entry(&a, id, at(8, 0), t),
            exit(&a, &a, id, at(8, 30), t, false),
        ],
    );
    assert_eq!(store.book(&b).unwrap().booked, 2);
    assert_eq!(store.book(&b).unwrap().booked, 0, "booked twice");
    // Overlapping: 2 is known, 3 is new.
    let more = batch(
        &a,
        1,
        vec![
            exit(&a, &a, id, at(8, 30), t, false),
            entry(&a, id, at(9, 0), t),
        ],
    );
    let done = store.book(&more).unwrap();
    assert_eq!((done.booked, done.head), (1, 3));
    let gap = batch(&a, 5, vec![entry(&a, id, at(10, 0), t)]);
    assert!(matches!(
        store.book(&gap),
        Err(StoreError::UplinkGap {
            head: 3,
            after: 5,
            ..
        })
    ));
    assert_eq!(store.uplink_head(&a).unwrap(), 3);
    assert_eq!(store.ledger_totals().unwrap().passages, 3);
    let (open, trips) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert_eq!(open.map(|t| t.entered_at), Some(at(9, 0)));
    assert_eq!(trips.len(), 3);
}

#[test]
fn a_ride_spent_at_two_stations_is_flagged_and_spent_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, b, id) = (st("umeda"), st("noda"), enrolled(&store));
    let ride = TicketKind::SingleRide {
        origin: a.clone(),
        valid_on: day(),
        value: RideValue::Fare(190),
        used: false,
    };
    let (t, _) = store.link_ticket(&id, &ride, "t").unwrap();
    // Two stations cut off from the centre both let the same ride through.
    let first = store
        .book(&batch(
            &a,
            0,
            vec![
                entry(&a, id, at(8, 0), t.id),
                exit(&a, &a, id, at(8, 20), t.id, true),
            ],
        ))
        .unwrap();
    assert!(first.changed && first.conflicts.is_empty());
    let second = store
        .book(&batch(
            &b,
            0,
            vec![
                entry(&b, id, at(8, 5), t.id),
                exit(&b, &b, id, at(8, 25), t.id, true),
            ],
        ))
        .unwrap();
    assert_eq!(second.conflicts, vec![Conflict::RideUsedTwice]);
    let tickets = store.tickets(&id).unwrap().unwrap();
    assert!(matches!(
        tickets[0].kind,
        TicketKind::SingleRide { used: true, .. }
    ));
    let spends = store
        .audit(1, 100)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == AuditKind::Spend)
        .count();
    assert_eq!(spends, 1, "a ride is spent once");
    let rows = store.ledger(&b, 1, 10).unwrap();
    assert_eq!(rows[1].1.conflict, Some(Conflict::RideUsedTwice));
    assert_eq!(store.ledger_totals().unwrap().conflicts, 1);
}

#[test]
fn reports_in_any_order_leave_the_right_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, b, id) = (st("umeda"), st("noda"), enrolled(&store));
    let t = TicketId(9);
    // Exit at noda arrives before the entry at umeda it closes.
    let exit_first = store
        .book(&batch(&b, 0, vec![exit(&b, &a, id, at(8, 40), t, false)]))
        .unwrap();
    assert_eq!(exit_first.conflicts, vec![Conflict::ExitWithoutKnownEntry]);
    let late_entry = store
        .book(&batch(&a, 0, vec![entry(&a, id, at(8, 0), t)]))
        .unwrap();
    assert!(late_entry.conflicts.is_empty());
    let (open, _) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "a late entry must not reopen a closed trip");

    // An entry over a trip whose exit was never recorded replaces it, flagged.
    store
        .book(&batch(&a, 1, vec![entry(&a, id, at(10, 0), t)]))
        .unwrap();
    let over = store
        .book(&batch(&b, 1, vec![entry(&b, id, at(12, 0), t)]))
        .unwrap();
    assert_eq!(over.conflicts, vec![Conflict::EntryOverOpenTrip]);
    let (open, _) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert_eq!(open.map(|t| t.entry_station), Some(b.clone()));
}

/// A station cut off for a while reports an old trip after the passenger has travelled from
/// another station since: the later state stands, and a trip reported whole is no conflict; an old
/// entry that no exit ever closed, with a later entry booked, is flagged as an entry over an open
/// trip would have been in order.
#[test]
fn late_reports_keep_the_later_trip_and_flag_only_what_was_never_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, b, id) = (st("umeda"), st("noda"), enrolled(&store));
    let t = TicketId(9);
    let later = store
        .book(&batch(
            &b,
            0,
            vec![
                entry(&b, id, at(10, 0), t),
                exit(&b, &b, id, at(11, 0), t, false),
            ],
        ))
        .unwrap();
    assert!(later.conflicts.is_empty());

    // The whole morning trip at umeda, reported late: nothing to flag, nothing reopened.
    let whole = store
        .book(&batch(
            &a,
            0,
            vec![
                entry(&a, id, at(7, 0), t),
                exit(&a, &a, id, at(8, 0), t, false),
            ],
        ))
        .unwrap();
    assert!(whole.conflicts.is_empty(), "{:?}", whole.conflicts);
    let (open, _) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "a late entry must not reopen a closed trip");

    // An entry at umeda at 9:00 that no exit closed, reported after the noda trip: flagged.
    let unclosed = store
        .book(&batch(&a, 2, vec![entry(&a, id, at(9, 0), t)]))
        .unwrap();
    assert_eq!(unclosed.conflicts, vec![Conflict::EntryOverOpenTrip]);
    let (open, _) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "the later state (exited at noda) stands");

    // With a later trip still open, a late unclosed entry leaves it open and is flagged too.
    store
        .book(&batch(&b, 2, vec![entry(&b, id, at(18, 0), t)]))
        .unwrap();
    let under = store
        .book(&batch(&a, 3, vec![entry(&a, id, at(17, 0), t)]))
        .unwrap();
    assert_eq!(under.conflicts, vec![Conflict::EntryOverOpenTrip]);
    let (open, _) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert_eq!(open.map(|t| t.entered_at), Some(at(18, 0)));

    // A second exit for the morning umeda trip, reported late with an earlier time: flagged.
    let second_exit = store
        .book(&batch(&a, 4, vec![exit(&a, &a, id, at(7, 30), t, false)]))
        .unwrap();
    assert_eq!(second_exit.conflicts, vec![Conflict::ExitWithoutKnownEntry]);
    assert_eq!(store.ledger_totals().unwrap().conflicts, 3);
}

#[test]
fn a_passage_of_an_erased_subject_keeps_its_fare_and_nothing_of_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, id) = (st("umeda"), enrolled(&store));
    store.erase(&id, "t").unwrap().unwrap();
    let done = store
        .book(&batch(&a, 0, vec![entry(&a, id, at(8, 0), TicketId(1))]))
        .unwrap();
    assert_eq!(done.booked, 1);
    assert!(store.trips(&id, 0, 10).unwrap().is_none());
    assert_eq!(store.ledger_totals().unwrap().passages, 1);
}

/// Post-pay: a charged exit is booked once as a charge to the subject's account; a charge for a
/// subject whose account is gone by then is booked without one and flagged; linking and unlinking
/// tell the stations, replacing the reference does not (they only know whether there is one).
#[test]
fn post_pay_charges_are_booked_once_against_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, b, id) = (st("umeda"), st("noda"), enrolled(&store));
    let r = |s: &str| AccountRef::try_from(s.to_owned()).unwrap();
    for not_a_token in ["4111 1111 1111 1111", "4111111111111111", ""] {
        assert!(AccountRef::try_from(not_a_token.to_owned()).is_err());
    }
    let head = store.head_seq().unwrap();
    assert_eq!(
        store.set_account(&id, Some(r("psp:1")), "t").unwrap(),
        AccountChange::Linked
    );
    assert_eq!(
        store.set_account(&id, Some(r("psp:2")), "t").unwrap(),
        AccountChange::Replaced
    );
    assert_eq!(
        store.head_seq().unwrap(),
        head + 1,
        "a replaced reference is not news"
    );
    let t = TicketId(1);
    let charged = |when, amount| {
        let mut p = exit(&b, &a, id, when, t, false);
        p.record.charged = amount;
        p
    };
    let first = batch(
        &b,
        0,
        vec![entry(&a, id, at(8, 0), t), charged(at(8, 30), 80)],
    );
    assert_eq!(store.book(&first).unwrap().charged, 80);
    store.book(&first).unwrap();
    let charges = store.charges(0, 10).unwrap();
    assert_eq!(charges.len(), 1, "booked twice: {charges:?}");
    let (seq, c) = &charges[0];
    assert_eq!((*seq, c.amount, c.passage), (1, 80, 2));
    assert_eq!((&c.station, c.account.as_ref()), (&b, Some(&r("psp:2"))));

    assert_eq!(
        store.set_account(&id, None, "t").unwrap(),
        AccountChange::Unlinked
    );
    assert_eq!(
        store.set_account(&id, None, "t").unwrap(),
        AccountChange::Unchanged
    );
    // The station decided before it heard of the unlink.
    let late = batch(
        &b,
        2,
        vec![entry(&a, id, at(9, 0), t), charged(at(9, 30), 40)],
    );
    let done = store.book(&late).unwrap();
    assert_eq!(done.conflicts, vec![Conflict::ChargeWithoutAccount]);
    let charges = store.charges(2, 10).unwrap();
    assert_eq!(charges.len(), 1);
    assert_eq!(
        (charges[0].1.amount, charges[0].1.account.as_ref()),
        (40, None)
    );
    let details: Vec<String> = store
        .audit(1, 100)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == AuditKind::Account)
        .map(|(_, e)| e.detail)
        .collect();
    assert_eq!(
        details,
        [
            "payment account linked",
            "payment account replaced",
            "payment account unlinked"
        ]
    );
    assert!(
        details.iter().all(|d| !d.contains("psp:")),
        "the audit log never names the account"
    );
}

/// A version-2 file (before post-pay) opens as version 3: its subjects read with no account and the
/// charges table is there (and version 4's store identities).
#[test]
fn a_version_2_centre_store_gains_post_pay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let id = {
        let store = Store::open(&path).unwrap();
        enrolled(&store)
    };
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(domain::store::META)
            .unwrap()
            .insert(domain::store::SCHEMA_VERSION_KEY, 2)
            .unwrap();
        assert!(
            tx.delete_table(redb::TableDefinition::<u64, &[u8]>::new("charges"))
                .unwrap()
        );
        assert!(
            tx.delete_table(redb::TableDefinition::<&str, &[u8]>::new("uplink_stores"))
                .unwrap()
        );
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.meta(domain::store::SCHEMA_VERSION_KEY).unwrap(),
        Some(4)
    );
    assert_eq!(store.subject(&id).unwrap().unwrap().account, None);
    assert!(store.charges(0, 10).unwrap().is_empty());
    // Version 4's table too: no station has said its store's identity yet.
    let umeda = st("umeda");
    assert_eq!(store.uplink_store(&umeda).unwrap(), Default::default());
}

/// A station's store files as the ledger numbers them: the first identity is adopted, a head below
/// what was asked is a restored file, another identity a new file, and a replaced one is refused.
#[test]
fn the_ledger_numbers_a_station_on_across_its_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.redb")).unwrap();
    let (a, id) = (st("umeda"), enrolled(&store));
    let t = TicketId(9);
    let walk = |after: u64, h: u32| {
        let trip = vec![
            entry(&a, id, at(h, 0), t),
            exit(&a, &a, id, at(h, 30), t, false),
        ];
        batch(&a, after, trip)
    };
    // Adopted: the file already numbered from 1.
    assert_eq!(
        store.rebase_uplink(&a, Some(11), 0, 0).unwrap(),
        Rebase::Same { base: 0 }
    );
    store.book(&walk(0, 7)).unwrap();
    store.book(&walk(2, 8)).unwrap();
    assert_eq!(
        store.rebase_uplink(&a, Some(11), 4, 4).unwrap(),
        Rebase::Same { base: 0 }
    );
    // Restored with 2 passages: numbered on after the 4 booked.
    assert_eq!(
        store.rebase_uplink(&a, Some(11), 2, 4).unwrap(),
        Rebase::Behind {
            base: 2,
            missing: 2
        }
    );
    store.book(&walk(2, 9).rebased(2).unwrap()).unwrap();
    assert_eq!(store.uplink_head(&a).unwrap(), 6);
    // A new file: numbered on after the 6.
    assert_eq!(
        store.rebase_uplink(&a, Some(12), 0, 4).unwrap(),
        Rebase::NewStore { base: 6 }
    );
    assert_eq!(
        store.rebase_uplink(&a, Some(12), 0, 0).unwrap(),
        Rebase::Same { base: 6 }
    );
    // The replaced file, back: refused.
    assert_eq!(
        store.rebase_uplink(&a, Some(11), 4, 0).unwrap(),
        Rebase::Retired
    );
    let u = store.uplink_store(&a).unwrap();
    assert_eq!((u.store, u.base, u.retired), (Some(12), 6, vec![11]));
}
