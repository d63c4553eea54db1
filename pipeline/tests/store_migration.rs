//! The station store's schema-version-1 → 2 migration (`docs/store.md`, "Schema versions"): a file as
//! the version-1 build wrote it (commit 21c1c25, `pipeline/src/store.rs`: tables `meta` and `journal`
//! only, `schema_version` = 1) is opened by the current `Store`, which must keep every journal entry,
//! create the template table (empty, `sync_last_seq` 0) and set the version to 2; a file of an
//! unknown version is refused and its contents left as they were.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use pipeline::store::{JournalEntry, JournalKind, SCHEMA_VERSION, Store};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

// The version-1 table definitions, copied from the version-1 source.
const V1_META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const V1_JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

fn entry(i: u64) -> JournalEntry {
    JournalEntry {
        t_unix_ms: 1_700_000_000_000 + i,
        lane: format!("lane-{}", i % 3),
        kind: if i.is_multiple_of(2) {
            JournalKind::DoorCommand
        } else {
            JournalKind::LaneEvent
        },
        detail: format!("entry {i}"),
    }
}

/// Writes a store exactly as the version-1 `Store::open` + `Store::append` did: `meta.schema_version`
/// = `version`, journal rows `1..=n` holding JSON `JournalEntry`.
fn write_v1(path: &Path, version: u64, n: u64) {
    let db = Database::create(path).expect("create v1 file");
    let tx = db.begin_write().expect("tx");
    {
        tx.open_table(V1_META)
            .expect("meta")
            .insert("schema_version", version)
            .expect("version");
        let mut j = tx.open_table(V1_JOURNAL).expect("journal");
        for seq in 1..=n {
            let bytes = serde_json::to_vec(&entry(seq)).expect("json");
            j.insert(seq, bytes.as_slice()).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn raw_version_and_tables(path: &Path) -> (Option<u64>, Vec<String>) {
    let db = Database::open(path).expect("open raw");
    let tx = db.begin_read().expect("read");
    let v = tx
        .open_table(V1_META)
        .expect("meta")
        .get("schema_version")
        .expect("get")
        .map(|v| v.value());
    let mut tables: Vec<String> = tx
        .list_tables()
        .expect("list")
        .map(|t| t.name().to_string())
        .collect();
    tables.sort();
    (v, tables)
}

#[test]
fn version_1_file_is_migrated_in_place_and_keeps_its_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("station.redb");
    write_v1(&path, 1, 50);
    assert_eq!(
        raw_version_and_tables(&path),
        (Some(1), vec!["journal".to_string(), "meta".to_string()]),
        "the fixture is a version-1 file"
    );

    {
        let s = Store::open(&path).expect("a version-1 file opens");
        assert_eq!(SCHEMA_VERSION, 5);
        assert_eq!(s.schema_version().expect("version"), 5);
        let j = s.journal(1, 1000).expect("journal reads");
        assert_eq!(j.len(), 50, "every version-1 journal entry survives");
        for (i, (seq, e)) in j.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*e, entry(*seq));
        }
        // The template side of version 2 is there and empty.
        assert_eq!(s.sync_last_seq().expect("last seq"), 0);
        assert!(s.sync_rows().expect("template rows").is_empty());
        // The journal goes on from where version 1 left it.
        assert_eq!(s.append(&[entry(51)]).expect("append"), 51);
    }

    // On disk: version 5, the template, fare, centre-trip and post-pay tables exist, and a reopen is
    // a plain open.
    let (v, tables) = raw_version_and_tables(&path);
    assert_eq!(v, Some(5));
    for t in [
        "trips",
        "spent_rides",
        "passages",
        "centre_trips",
        "postpay",
    ] {
        assert!(tables.iter().any(|n| n == t), "{t} created: {tables:?}");
    }
    assert!(
        tables.iter().any(|t| t == "sync_templates"),
        "template table created: {tables:?}"
    );
    assert!(tables.iter().any(|t| t == "journal"), "{tables:?}");
    let s = Store::open(&path).expect("reopen migrated file");
    assert_eq!(s.schema_version().expect("version"), 5);
    let j = s.journal(1, 1000).expect("journal");
    assert_eq!(j.len(), 51);
    assert_eq!(j[50], (51, entry(51)));
}

#[test]
fn empty_version_1_file_is_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    write_v1(&path, 1, 0);
    let s = Store::open(&path).expect("open");
    assert_eq!(s.schema_version().expect("version"), 5);
    assert!(s.journal(1, 10).expect("journal").is_empty());
    assert_eq!(s.append(&[entry(1)]).expect("append"), 1);
}

#[test]
fn version_2_to_4_files_gain_the_missing_tables_and_keep_their_journal() {
    for version in [2, 3, 4] {
        version_n_file_is_migrated(version);
    }
}

fn version_n_file_is_migrated(version: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    write_v1(&path, version, 20);
    let s = Store::open(&path).expect("an older file opens");
    assert_eq!(s.schema_version().expect("version"), 5);
    assert_eq!(s.journal(1, 100).expect("journal").len(), 20);
    let fare = s.fare_state().expect("fare state");
    assert!(fare.open_trips.is_empty() && fare.spent.is_empty());
    assert_eq!(fare.passages, 0);
}

/// The journal rows as stored (seq, raw bytes).
fn raw_journal(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let db = Database::open(path).expect("open raw");
    let tx = db.begin_read().expect("read");
    let j = tx.open_table(V1_JOURNAL).expect("journal");
    j.iter()
        .expect("iter")
        .map(|r| {
            let (k, v) = r.expect("row");
            (k.value(), v.value().to_vec())
        })
        .collect()
}

/// "Untouched" is checked on the contents: the version, the set of tables and every journal row are
/// as before. Not byte for byte: `Store::open` opens the file read-write before it reads the version,
/// and redb rewrites its own header bookkeeping on that open and close (in this test, 4185 bytes from
/// offset 9 on, same file size), although no transaction is committed.
#[test]
fn unknown_versions_are_refused_untouched() {
    for version in [0u64, 6, 99] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        write_v1(&path, version, 5);
        let tables_before = raw_version_and_tables(&path);
        let journal_before = raw_journal(&path);
        let size_before = std::fs::metadata(&path).expect("stat").len();
        for _ in 0..2 {
            let e = Store::open(&path).err().expect("must refuse");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("schema version {version}")) && msg.contains("s.redb"),
                "{msg}"
            );
        }
        assert_eq!(
            raw_version_and_tables(&path),
            tables_before,
            "version {version}"
        );
        assert_eq!(tables_before.0, Some(version));
        assert!(!tables_before.1.iter().any(|t| t == "sync_templates"));
        assert_eq!(raw_journal(&path), journal_before, "version {version}");
        assert_eq!(journal_before.len(), 5);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), size_before);
    }
}
