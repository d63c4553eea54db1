//! The journal across reopen, and files the store must refuse untouched.

use std::sync::Arc;

use domain::store::META;
use redb::{Database, ReadableDatabase};

use super::*;

fn entry(i: u64) -> JournalEntry {
    JournalEntry {
        t_unix_ms: i,
        lane: "L1".into(),
        kind: JournalKind::DoorCommand,
        detail: format!("open #{i}"),
    }
}

#[test]
fn journal_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/station.redb");
    {
        let s = Store::open(&path).expect("create");
        assert_eq!(s.append(&[entry(1), entry(2)]).expect("append"), 2);
        let w = JournalWriter::start(Arc::new(s));
        w.append(entry(3));
        w.finish().expect("writer returns the store");
    }
    let s = Store::open(&path).expect("reopen");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let j = s.journal(1, 100).expect("read");
    assert_eq!(j.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(j[2].1, entry(3));
    assert_eq!(s.journal(3, 100).expect("read").len(), 1);
}

/// gated exits on a lost GPU; the count it leaves is what the next run exports.
#[test]
fn gpu_losses_count_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("station.redb");
    {
        let s = Store::open(&path).expect("create");
        assert_eq!(s.gpu_losses().expect("read"), 0);
        assert_eq!(s.count_gpu_loss().expect("count"), 1);
    }
    let s = Store::open(&path).expect("reopen");
    assert_eq!(s.gpu_losses().expect("read"), 1);
    assert_eq!(s.count_gpu_loss().expect("count"), 2);
    assert_eq!(s.journal(1, 10).expect("journal").len(), 0);
}

#[test]
fn the_store_keeps_its_identity_and_a_new_file_draws_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let id = Store::open(&path).unwrap().id();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.id(), id, "kept across reopen");
    s.purge_rewrite().unwrap();
    assert_eq!(s.db.meta(STORE_ID).unwrap(), Some(id), "kept by the purge");
    drop(s);
    assert_eq!(Store::open(&path).unwrap().id(), id);
    let other = Store::open(&dir.path().join("t.redb")).unwrap().id();
    assert_ne!(other, id);
}

#[test]
fn other_schema_version_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    {
        let db = Database::create(&path).expect("create");
        let tx = db.begin_write().expect("tx");
        tx.open_table(META)
            .expect("meta")
            .insert("schema_version", 99)
            .expect("insert");
        tx.commit().expect("commit");
    }
    let e = Store::open(&path).err().expect("must refuse");
    assert!(e.to_string().contains("schema version 99"), "{e}");
    // Untouched: still version 99.
    let db = Database::create(&path).expect("reopen raw");
    let tx = db.begin_read().expect("read");
    assert_eq!(
        tx.open_table(META)
            .expect("meta")
            .get("schema_version")
            .expect("get")
            .map(|v| v.value()),
        Some(99)
    );
}

#[test]
fn garbage_file_is_a_clear_error_and_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let junk = vec![0x5au8; 8192];
    std::fs::write(&path, &junk).expect("write");
    let e = Store::open(&path).err().expect("must refuse garbage");
    assert!(e.to_string().contains("s.redb"), "{e}");
    assert_eq!(std::fs::read(&path).expect("read back"), junk);
}

#[test]
fn journal_queries_filter_newest_first_and_read_a_closed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).expect("open");
    let mut entries = Vec::new();
    for i in 0..30u64 {
        entries.push(JournalEntry {
            t_unix_ms: 1_000 + i,
            lane: if i % 2 == 0 { "L1" } else { "L2" }.into(),
            kind: if i % 3 == 0 {
                JournalKind::Decision
            } else {
                JournalKind::DoorCommand
            },
            detail: format!(
                r#"{{"outcome":"{}","i":{i}}}"#,
                if i % 5 == 0 { "open" } else { "closed" }
            ),
        });
    }
    store.append(&entries).expect("append");
    let q = |lane: Option<&str>, kind: Option<&str>, since, contains: Option<&str>, limit| {
        protocol::JournalQuery {
            lane: lane.map(Into::into),
            kind: kind.map(Into::into),
            since_unix_ms: since,
            contains: contains.map(Into::into),
            limit,
        }
    };
    // The newest three of L1, oldest first.
    let got = store
        .query_journal(&q(Some("L1"), None, None, None, 3))
        .expect("q");
    assert_eq!(got.iter().map(|l| l.seq).collect::<Vec<_>>(), [25, 27, 29]);
    // Decisions that opened: i = 0, 15 (multiples of 3 and 5).
    let opens = q(
        None,
        Some("decision"),
        None,
        Some(r#""outcome":"open""#),
        50,
    );
    let got = store.query_journal(&opens).expect("q");
    assert_eq!(got.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 16]);
    assert!(got.iter().all(|l| l.kind == "decision"));
    // Since t = 1020: entries 20..29 only.
    let got = store
        .query_journal(&q(None, None, Some(1_020), None, 50))
        .expect("q");
    assert_eq!(got.len(), 10);
    // While the store is open the file is locked; once closed, the file gives the same answer.
    assert!(query_journal_file(&path, &opens).is_err());
    drop(store);
    assert_eq!(query_journal_file(&path, &opens).expect("file"), {
        let s = Store::open(&path).expect("reopen");
        let v = s.query_journal(&opens).expect("q");
        drop(s);
        v
    });
    // Not a store: a clear error, the file untouched.
    std::fs::write(dir.path().join("junk"), b"junk").expect("write");
    let e = query_journal_file(&dir.path().join("junk"), &opens).expect_err("junk");
    assert!(e.to_string().contains("junk"), "{e}");
}
