//! `enrold keys init` and `enrold keys rotate` on a real store, then the service on the new key; the
//! store's schema check; trips persisted from the passages stations report.

mod common;

use std::os::unix::fs::PermissionsExt;

use chrono::NaiveDate;
use common::*;
use domain::seal::{self, KeyId, MasterKey};
use domain::tickets::{self, Direction, Effect, FareTable, Gate, Rider, TicketKind};
use domain::uplink::{Numbered, Passage, PassageBatch, UPLINK_VERSION};
use domain::{StationId, SubjectId};
use enrolment::store::{AuditKind, Consent, EnrolRow, Store, SubjectRecord};

fn record() -> SubjectRecord {
    SubjectRecord::enrolled_now(Consent::now("2026-01"), 1, 1)
}

fn template(seed: u32) -> [f32; 128] {
    let mut t = [0f32; 128];
    for (i, v) in t.iter_mut().enumerate() {
        *v = ((i as u32 * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5;
    }
    t
}

#[test]
fn the_example_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let out = enrold().args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let path = tmp.path().join("example.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    // As written it names /etc/enrold files a test machine lacks: `check` says which.
    let check = enrold()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success() && err.contains("master key"),
        "{err}"
    );
    // With the key and tokens it refers to in place, it passes.
    let (key, tokens) = (
        tmp.path().join("keys/master.key"),
        tmp.path().join("tokens"),
    );
    let init = enrold()
        .args(["keys", "init", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    std::fs::write(&tokens, format!("app {}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("/etc/enrold/master.key", &key.display().to_string())
        .replace("/etc/enrold/tokens", &tokens.display().to_string())
        .replace(
            "/etc/enrold/certs/enrold.pem",
            &test_certs()
                .cert(protocol::Role::Enrold)
                .display()
                .to_string(),
        )
        .replace(
            "/etc/enrold/certs/enrold.key",
            &test_certs()
                .key(protocol::Role::Enrold)
                .display()
                .to_string(),
        );
    std::fs::write(&path, &text).unwrap();
    let check = enrold()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(
        &path,
        text.replace("backend = \"cpu\"", "backend = \"gpu\""),
    )
    .unwrap();
    let check = enrold()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!check.status.success());
}

#[test]
fn init_and_rotate_the_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    let out = enrold()
        .args(["keys", "init", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = enrold()
        .args(["keys", "init", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success(), "init must not overwrite a key");
    prepare(tmp.path(), "");

    // Three subjects sealed under key 1.
    let db = tmp.path().join("centre.redb");
    let old = MasterKey::load_file(KeyId(1), &key).unwrap();
    let ids: Vec<SubjectId> = (0..3).map(|_| SubjectId::random().unwrap()).collect();
    {
        let store = Store::open(&db).unwrap();
        for (n, id) in ids.iter().enumerate() {
            let (wrapped, sealed) =
                seal::seal_new_subject(&old, id, 1, &template(n as u32)).unwrap();
            let r = record();
            store
                .enrol(
                    &EnrolRow {
                        subject: *id,
                        record: &r,
                        wrapped: &wrapped,
                        sealed: &sealed,
                    },
                    "test",
                )
                .unwrap();
        }
    }
    let old_wraps: Vec<Vec<u8>> = {
        let store = Store::open(&db).unwrap();
        store
            .wrapped_keys()
            .unwrap()
            .into_iter()
            .map(|(_, w)| w.into_bytes())
            .collect()
    };

    let new_key = tmp.path().join("master-2.key");
    let out = enrold()
        .args(["keys", "rotate", "--config"])
        .arg(tmp.path().join("enrold.toml"))
        .arg("--new-key")
        .arg(&new_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = MasterKey::load_file(KeyId(2), &new_key).unwrap();
    {
        let store = Store::open(&db).unwrap();
        assert_eq!(store.master_key_id().unwrap(), 2);
        for (n, (id, wrapped, sealed)) in store.sealed_all().unwrap().into_iter().enumerate() {
            let t = seal::open_subject(&new, &id, 1, &wrapped, &sealed).unwrap();
            assert!(ids.contains(&id));
            assert!(t.iter().all(|v| v.is_finite()), "{n}");
            assert!(seal::unwrap_data_key(&old, &id, &wrapped).is_err());
        }
        let audit = store.audit(0, 100).unwrap();
        assert_eq!(audit.last().unwrap().1.kind, AuditKind::KeyRotation);
    }
    for w in &old_wraps {
        assert!(
            !file_contains(&db, w),
            "an old wrap is still in the store file"
        );
    }

    // The service refuses the old key, and serves with the new one.
    let out = enrold()
        .args(["serve", "--config"])
        .arg(tmp.path().join("enrold.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("master key"),
        "{out:?}"
    );
    let cfg = std::fs::read_to_string(tmp.path().join("enrold.toml")).unwrap();
    std::fs::write(
        tmp.path().join("enrold.toml"),
        cfg.replace("master.key", "master-2.key"),
    )
    .unwrap();
    let srv = Server::start(tmp.path());
    let h = request(srv.addr, "GET", "/healthz", None, &[], b"").json();
    assert_eq!(h["subjects"], 3);
}

#[test]
fn trips_from_gate_decisions_and_schema_check() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("centre.redb");
    let store = Store::open(&db).unwrap();
    let master = MasterKey::generate(KeyId(1)).unwrap();
    let id = SubjectId::random().unwrap();
    let (wrapped, sealed) = seal::seal_new_subject(&master, &id, 1, &template(1)).unwrap();
    let r = record();
    store
        .enrol(
            &EnrolRow {
                subject: id,
                record: &r,
                wrapped: &wrapped,
                sealed: &sealed,
            },
            "t",
        )
        .unwrap();
    let umeda = StationId::new("umeda").unwrap();
    let kind = TicketKind::SingleRide {
        origin: umeda.clone(),
        valid_on: NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        value: tickets::RideValue::Fare(190),
        used: false,
    };
    store.link_ticket(&id, &kind, "t").unwrap();
    let table = FareTable::parse(
        "fares = [150, 190]\n[stations]\numeda = 1\nnoda = 2\n",
        "test",
    )
    .unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 4, 2)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    let noda = StationId::new("noda").unwrap();
    for (seq, (station, direction)) in [(&umeda, Direction::Entry), (&noda, Direction::Exit)]
        .into_iter()
        .enumerate()
    {
        let tks = store.tickets(&id).unwrap().unwrap();
        let open = store.trips(&id, 0, 10).unwrap().unwrap().0;
        let d = tickets::decide(
            &table,
            &Rider {
                subject: id,
                tickets: &tks,
                open_trip: open.as_ref(),
                postpay: false,
            },
            &Gate {
                station,
                direction,
                at,
            },
        );
        assert!(d.allowed(), "{d:?}");
        // As the station reports it (`domain::uplink`), each station's first passage.
        let (trip, spent) = match d.effect {
            Effect::OpenTrip(t) => (Some(t), None),
            Effect::CloseTrip { consume, .. } => (None, consume),
            Effect::None => (None, None),
        };
        let passage = Passage {
            lane: "L1".into(),
            track: seq as u64,
            subject: id,
            trip,
            spent,
            record: d.record,
        };
        let booked = store
            .book(&PassageBatch {
                v: UPLINK_VERSION,
                station: station.clone(),
                after: 0,
                passages: vec![Numbered { seq: 1, passage }],
                head: 1,
                store: None,
            })
            .unwrap();
        assert_eq!((booked.booked, booked.conflicts.len()), (1, 0));
    }
    let (open, trips) = store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none());
    assert_eq!(trips.len(), 2);
    let tks = store.tickets(&id).unwrap().unwrap();
    assert!(matches!(
        tks[0].kind,
        TicketKind::SingleRide { used: true, .. }
    ));
    drop(store);

    // A file from another schema version is refused, untouched.
    {
        let db2 = redb::Database::create(&db).unwrap();
        let tx = db2.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema_version", 99)
            .unwrap();
        tx.commit().unwrap();
    }
    let e = Store::open(&db).err().unwrap().to_string();
    assert!(e.contains("schema version 99"), "{e}");
}
