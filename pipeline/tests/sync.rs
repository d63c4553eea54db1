//! Template distribution end to end: the centre's store and zenoh service (enrolment library) and
//! stations (`pipeline::sync`) on loopback TCP, real redb files on both sides.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_common;

use std::time::{Duration, Instant};

use domain::SubjectId;
use domain::changes::{ChangeBody, SYNC_VERSION, SignedChange};
use domain::seal::{self, KeyId, StationSecretKey};
use domain::tickets::TicketKind;
use enrolment::store::{Change, ChangeKind};
use pipeline::sync::Outcome;
use sync_common::*;

fn sealed_bytes(c: &TestCentre, id: &SubjectId) -> Vec<u8> {
    c.store
        .subject_state(id)
        .unwrap()
        .unwrap()
        .sealed
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_reaches_a_connected_station_within_5_s() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["st-a"]);
    let ids = centre.enrol(20);
    centre.start().await;
    let st = TestStation::start(&centre, "st-a", &dir.path().join("a.redb"), 500).await;
    st.wait_for("initial catch-up", Duration::from_secs(10), |s| {
        s.gallery().len() == 20
    })
    .await;

    // A live upsert and a ticket change arrive without a query.
    let new = centre.enrol(1)[0];
    let kind: TicketKind = serde_json::from_value(serde_json::json!(
        {"type":"day_pass","date":"2026-04-01","coverage":{"zones":[1]}}))
    .unwrap();
    centre.store.link_ticket(&new, &kind, "test").unwrap();
    centre.changed();
    st.wait_for("live upsert with ticket", Duration::from_secs(5), |s| {
        s.gallery().get(&new).is_some_and(|(_, t)| t.len() == 1)
    })
    .await;

    let victim = ids[3];
    let sealed = sealed_bytes(&centre, &victim);
    assert!(
        file_contains(&st.path, &sealed),
        "the station stores the sealed template"
    );
    let t0 = Instant::now();
    centre.erase(&victim);
    let waited = st
        .wait_for("erasure", Duration::from_secs(5), |s| {
            !s.syncer().gallery().read().contains(&victim)
        })
        .await;
    println!(
        "erase request → station gallery updated: {:.1} ms (wait {:.1} ms)",
        t0.elapsed().as_secs_f64() * 1e3,
        waited.as_secs_f64() * 1e3
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(st.gallery(), centre.expected());
    assert_eq!(st.syncer().stats.get(&st.syncer().stats.gap), 0);
    assert_eq!(st.syncer().gallery().len(), 20);
    let station = st.path.clone();
    st.stop().await;
    // Compacted: no copy of the erased subject's sealed template remains in the station's file.
    assert!(
        !file_contains(&station, &sealed),
        "sealed template bytes left in the station file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_station_converges_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["st-a"]);
    let first = centre.enrol(10);
    centre.start().await;
    let path = dir.path().join("a.redb");
    let st = TestStation::start(&centre, "st-a", &path, 16).await;
    st.wait_for("first sync", Duration::from_secs(10), |s| {
        s.gallery().len() == 10
    })
    .await;
    st.stop().await;

    // Offline: 100 enrolments (one by one, each published to nobody), tickets, 10 erasures.
    let mut ids = first.clone();
    for _ in 0..100 {
        ids.extend(centre.enrol(1));
    }
    let kind: TicketKind = serde_json::from_value(serde_json::json!(
        {"type":"commuter_pass","from":"2026-04-01","to":"2026-09-30","coverage":{"zones":[1,2]}}))
    .unwrap();
    for id in ids.iter().skip(5).step_by(9) {
        centre.store.link_ticket(id, &kind, "test").unwrap();
    }
    for id in ids.iter().step_by(11).take(10) {
        centre.erase(id);
    }
    let expected = centre.expected();
    assert_eq!(expected.len(), 100);
    let head = centre.store.head_seq().unwrap();

    let t0 = Instant::now();
    let st = TestStation::start(&centre, "st-a", &path, 16).await;
    st.wait_for("catch-up", Duration::from_secs(30), |s| {
        s.syncer().last_seq().unwrap() == head
    })
    .await;
    println!(
        "offline catch-up of {} changes in batches of 16: {:.0} ms",
        head - 10,
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(st.gallery(), expected, "gallery equals the centre");
    assert_eq!(st.syncer().gallery().version(), head);
    // The station store holds exactly the centre's subjects, with the centre's sealed templates.
    st.stop().await;
    let store = pipeline::store::Store::open(&path).unwrap();
    let stored = store.sync_rows().unwrap();
    assert_eq!(stored.len(), 100);
    for (id, row) in stored {
        let st = centre
            .store
            .subject_state(&id)
            .unwrap()
            .expect("subject at the centre");
        assert_eq!(row.sealed, st.sealed);
        assert_eq!(row.tickets, st.tickets);
    }
    assert_eq!(store.sync_last_seq().unwrap(), head);
}

/// A centre store and a station `Syncer` without zenoh, for the refusal tests.
fn offline(dir: &std::path::Path, stations: &[&str]) -> (TestCentre, pipeline::sync::Syncer) {
    let centre = TestCentre::new(dir, stations);
    let store = std::sync::Arc::new(pipeline::store::Store::open(&dir.join("s.redb")).unwrap());
    let syncer = pipeline::sync::Syncer::load(centre.station_keys(stations[0]), store).unwrap();
    (centre, syncer)
}

fn signed(centre: &TestCentre, station: &str, seq: u64) -> SignedChange {
    let c = centre.store.changes(seq, 1).unwrap()[0];
    centre
        .centre
        .change_for(&domain::StationId::new(station).unwrap(), &c)
        .unwrap()
}

#[test]
fn replays_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (centre, sy) = offline(dir.path(), &["st-a"]);
    let ids = centre.enrol(5);
    centre.erase(&ids[0]);
    let msgs: Vec<SignedChange> = (1..=6).map(|s| signed(&centre, "st-a", s)).collect();
    assert_eq!(sy.apply_signed(msgs.clone()), Outcome::Applied(6));
    let before = (
        sy.gallery().version(),
        sy.gallery().len(),
        sy.last_seq().unwrap(),
    );
    let snapshot: Vec<_> = sy.gallery().read().ids().to_vec();
    // Every message again, singly and as a batch, and an upsert of the erased subject re-made now
    // (the centre answers it with a tombstone).
    for m in &msgs {
        assert_eq!(sy.apply_payload(&m.encode()), Outcome::Replay);
    }
    assert_eq!(sy.apply_signed(msgs.clone()), Outcome::Replay);
    assert_eq!(
        sy.apply_payload(&signed(&centre, "st-a", 1).encode()),
        Outcome::Replay
    );
    assert_eq!(
        (
            sy.gallery().version(),
            sy.gallery().len(),
            sy.last_seq().unwrap()
        ),
        before
    );
    assert_eq!(sy.gallery().read().ids(), snapshot.as_slice());
    assert_eq!(sy.stats.get(&sy.stats.replay), 6 + 6 + 1);
    // A batch overlapping what was applied: the old part is skipped, the new part applied.
    centre.enrol(2);
    let overlap: Vec<_> = (4..=8).map(|s| signed(&centre, "st-a", s)).collect();
    assert_eq!(sy.apply_signed(overlap), Outcome::Applied(8));
    assert_eq!(sy.gallery().len(), 6);
}

#[test]
fn bad_signature_version_or_gap_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (centre, sy) = offline(dir.path(), &["st-a"]);
    centre.enrol(3);
    assert_eq!(
        sy.apply_signed(vec![signed(&centre, "st-a", 1)]),
        Outcome::Applied(1)
    );
    let state = || {
        (
            sy.last_seq().unwrap(),
            sy.gallery().len(),
            sy.gallery().version(),
        )
    };
    let before = state();

    // Signed by another key.
    let good = signed(&centre, "st-a", 2);
    let body: ChangeBody = serde_json::from_str(&good.body).unwrap();
    let forger = domain::changes::CentreSigningKey::generate().unwrap();
    let forged = SignedChange::sign(&forger, &body).unwrap();
    assert_eq!(
        sy.apply_payload(&forged.encode()),
        Outcome::Refused("signature")
    );
    // Tampered signature bytes.
    let mut t = good.clone();
    t.sig.0[0] ^= 1;
    assert_eq!(sy.apply_payload(&t.encode()), Outcome::Refused("signature"));
    // Another version: in the envelope, and inside a correctly signed body.
    let env = String::from_utf8(good.encode())
        .unwrap()
        .replacen("\"v\":1", "\"v\":7", 1);
    assert_eq!(
        sy.apply_payload(env.as_bytes()),
        Outcome::Refused("version")
    );
    let signing = &centre.centre.signing;
    let b7 = ChangeBody {
        v: 7,
        ..body.clone()
    };
    assert_eq!(
        sy.apply_payload(&SignedChange::sign(signing, &b7).unwrap().encode()),
        Outcome::Refused("version")
    );
    // A gap: change 3 before change 2.
    assert_eq!(
        sy.apply_payload(&signed(&centre, "st-a", 3).encode()),
        Outcome::Gap
    );
    // Garbage.
    assert_eq!(
        sy.apply_payload(b"{\"v\":1}"),
        Outcome::Refused("malformed")
    );
    assert_eq!(sy.apply_payload(b"\xff"), Outcome::Refused("malformed"));
    assert_eq!(state(), before, "nothing was applied");
    let s = &sy.stats;
    assert_eq!(
        (
            s.get(&s.signature),
            s.get(&s.version),
            s.get(&s.gap),
            s.get(&s.malformed)
        ),
        (2, 2, 1, 2)
    );
    // The genuine change 2 still applies afterwards.
    assert_eq!(sy.apply_payload(&good.encode()), Outcome::Applied(2));
    assert_eq!(SYNC_VERSION, 1);
}

#[test]
fn a_station_cannot_open_what_is_wrapped_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let (centre, sy_b) = offline(dir.path(), &["st-b", "st-a"]);
    let id = centre.enrol(1)[0];
    // A's message delivered to B: refused (addressed to A), nothing stored.
    let for_a = signed(&centre, "st-a", 1);
    assert_eq!(
        sy_b.apply_payload(&for_a.encode()),
        Outcome::Refused("station")
    );
    assert_eq!(sy_b.last_seq().unwrap(), 0);
    // B re-labelling A's wrap as its own (a body the centre never signed) is refused on the
    // signature; and B's key does not open A's wrap under either station name.
    let mut body: ChangeBody = serde_json::from_str(&for_a.body).unwrap();
    body.station = domain::StationId::new("st-b").unwrap();
    let relabelled = SignedChange {
        body: serde_json::to_string(&body).unwrap(),
        ..for_a.clone()
    };
    assert_eq!(
        sy_b.apply_payload(&relabelled.encode()),
        Outcome::Refused("signature")
    );
    let domain::changes::ChangeOp::Upsert(u) = body.op else {
        panic!("upsert expected")
    };
    let wrap = seal::StationWrappedKey::from_bytes(u.wrapped_key.0).unwrap();
    let b_secret = StationSecretKey::from_bytes(KeyId(1), centre.station_secrets["st-b"]);
    for name in ["st-a", "st-b"] {
        let r = seal::open_from_centre(
            &b_secret,
            &domain::StationId::new(name).unwrap(),
            &centre.x25519_public,
            &id,
            &wrap,
        );
        assert!(r.is_err(), "station B opened A's wrap as {name}");
    }
    // B's own message opens.
    assert_eq!(
        sy_b.apply_payload(&signed(&centre, "st-b", 1).encode()),
        Outcome::Applied(1)
    );
    assert!(sy_b.gallery().read().contains(&id));
    let _ = Change {
        seq: 1,
        subject: id,
        kind: ChangeKind::Upsert,
    };
}
