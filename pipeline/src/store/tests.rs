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
