use chrono::NaiveDate;

use super::*;
use crate::seal::{CentreSecretKey, KeyId, StationSecretKey, UplinkKey};

fn station(id: &str) -> StationId {
    StationId::new(id).unwrap()
}

fn entry(st: &StationId, subject: SubjectId) -> Passage {
    let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let at = day.and_hms_opt(8, 30, 0).unwrap();
    let trip = OpenTrip {
        entry_station: st.clone(),
        entered_at: at,
        service_day: day,
        ticket: TicketId(7),
    };
    Passage {
        lane: "L1".into(),
        track: 3,
        subject,
        trip: Some(trip),
        spent: None,
        record: TripRecord {
            subject,
            station: st.clone(),
            direction: Direction::Entry,
            at,
            service_day: day,
            verdict: Verdict::Allow,
            ticket: Some(TicketId(7)),
            entry_station: None,
            fare: None,
            charged: 0,
        },
    }
}

fn batch(st: &StationId, after: u64, n: usize) -> PassageBatch {
    let passages = (after + 1..)
        .take(n)
        .map(|seq| Numbered {
            seq,
            passage: entry(st, SubjectId::random().unwrap()),
        })
        .collect();
    PassageBatch {
        v: UPLINK_VERSION,
        station: st.clone(),
        after,
        passages,
        head: after + n as u64,
        store: None,
    }
}

/// Both ends' keys for `st`.
fn keys(st: &StationId) -> (UplinkKey, UplinkKey) {
    let s = StationSecretKey::generate(KeyId(1)).unwrap();
    let c = CentreSecretKey::generate().unwrap();
    (
        UplinkKey::for_station(&s, st, &c.public_key()).unwrap(),
        UplinkKey::for_centre(&c, st, &s.public_key()).unwrap(),
    )
}

#[test]
fn both_ends_derive_one_key_and_a_sealed_batch_opens_whole() {
    let a = station("umeda");
    let (at_station, at_centre) = keys(&a);
    assert_eq!(at_station.bytes(), at_centre.bytes());
    let b = batch(&a, 4, 3);
    let wire = SignedPassages::seal(&at_station, &b).unwrap().encode();
    let got = SignedPassages::decode(&wire)
        .unwrap()
        .open(&at_centre, &a)
        .unwrap();
    assert_eq!(got, b);
}

#[test]
fn another_key_a_changed_byte_or_another_station_is_refused() {
    let a = station("umeda");
    let (key, centre) = keys(&a);
    let (_, other) = keys(&a);
    let sealed = SignedPassages::seal(&key, &batch(&a, 0, 2)).unwrap();
    assert_eq!(sealed.open(&other, &a).unwrap_err().reason(), "mac");

    let mut tampered = sealed.clone();
    tampered.body = tampered.body.replacen("\"L1\"", "\"L2\"", 1);
    assert_eq!(tampered.open(&centre, &a).unwrap_err().reason(), "mac");

    // The station's key for umeda, asked as noda: the names differ, so does the key.
    let noda = station("noda");
    let sealed_as_noda = SignedPassages::seal(&key, &batch(&noda, 0, 1)).unwrap();
    assert_eq!(
        sealed_as_noda.open(&centre, &a).unwrap_err().reason(),
        "station"
    );
}

#[test]
fn gaps_foreign_records_and_impossible_trips_are_refused() {
    let a = station("umeda");
    let (key, centre) = keys(&a);
    let refused = |b: &PassageBatch| {
        SignedPassages::seal(&key, b)
            .unwrap()
            .open(&centre, &a)
            .unwrap_err()
            .to_string()
    };

    let mut gap = batch(&a, 0, 3);
    gap.passages[1].seq = 5;
    assert!(
        refused(&gap).contains("passage 5 where 2 was due"),
        "{}",
        refused(&gap)
    );

    let mut foreign = batch(&a, 0, 1);
    foreign.passages[0].passage.record.station = station("noda");
    assert!(refused(&foreign).contains("records station noda"));

    let mut exit_left_open = batch(&a, 0, 1);
    exit_left_open.passages[0].passage.record.direction = Direction::Exit;
    assert!(refused(&exit_left_open).contains("direction"));

    let mut short_head = batch(&a, 0, 2);
    short_head.head = 1;
    assert!(refused(&short_head).contains("head 1"));

    let mut spent_on_entry = batch(&a, 0, 1);
    spent_on_entry.passages[0].passage.spent = Some(TicketId(7));
    assert!(refused(&spent_on_entry).contains("spends a ticket"));

    // A post-pay charge only on an exit, and never above its fare.
    let mut charged_entry = batch(&a, 0, 1);
    charged_entry.passages[0].passage.record.charged = 190;
    assert!(refused(&charged_entry).contains("charges 190"));
    let mut overcharged = batch(&a, 0, 1);
    let p = &mut overcharged.passages[0].passage;
    (p.trip, p.record.direction, p.record.fare, p.record.charged) =
        (None, Direction::Exit, Some(190), 191);
    assert!(
        refused(&overcharged).contains("charges 191"),
        "{}",
        refused(&overcharged)
    );

    // Sequences at the end of the range: refused, never an overflow.
    for after in [u64::MAX, u64::MAX - 1] {
        let mut edge = batch(&a, 0, 2);
        edge.after = after;
        edge.head = u64::MAX;
        assert!(refused(&edge).contains("overflows"), "{}", refused(&edge));
    }
    let mut empty_at_edge = batch(&a, 0, 0);
    empty_at_edge.after = u64::MAX;
    empty_at_edge.head = u64::MAX;
    SignedPassages::seal(&key, &empty_at_edge)
        .unwrap()
        .open(&centre, &a)
        .unwrap();

    // An empty answer may say a head below `after`: the station's file has fewer passages than
    // the centre booked (replaced or restored), which the centre must learn.
    let mut behind = batch(&a, 40, 0);
    behind.head = 3;
    behind.store = Some(9);
    let opened = SignedPassages::seal(&key, &behind)
        .unwrap()
        .open(&centre, &a)
        .unwrap();
    assert_eq!((opened.head, opened.store), (3, Some(9)));
}

#[test]
fn a_batch_moves_into_the_ledgers_numbering_whole_or_not_at_all() {
    let a = station("umeda");
    let moved = batch(&a, 2, 3).rebased(10).unwrap();
    assert_eq!((moved.after, moved.head), (12, 15));
    let seqs: Vec<u64> = moved.passages.iter().map(|n| n.seq).collect();
    assert_eq!(seqs, [13, 14, 15]);
    assert!(batch(&a, 2, 3).rebased(u64::MAX - 3).is_none());
}

#[test]
fn another_version_is_named_as_such() {
    let e = SignedPassages::decode(br#"{"v":2,"body":"{}","mac":"00"}"#).unwrap_err();
    assert_eq!(e.reason(), "version");
    let e = SignedPassages::decode(b"not json").unwrap_err();
    assert_eq!(e.reason(), "malformed");
    let huge = vec![b' '; MAX_PAYLOAD + 1];
    assert!(
        SignedPassages::decode(&huge)
            .unwrap_err()
            .to_string()
            .contains("at most")
    );
}
