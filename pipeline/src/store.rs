//! The station's local store (redb): a schema-version table, an append-only journal of door
//! commands and lane events, and the templates distributed by the centre (`crate::sync`, tables in
//! `sync/rows.rs`). No image or frame ever reaches this module: journal entries are typed records with
//! short text fields; templates arrive sealed. Format: `docs/store.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, mpsc};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tracing::{error, info};

/// 2 added the template tables (`sync_templates`, `meta.sync_last_seq`); a version-1 file is migrated
/// in place (the tables are created, the journal is untouched).
pub const SCHEMA_VERSION: u64 = 2;
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {error}")]
    Redb { path: PathBuf, error: redb::Error },
    #[error(
        "store {path} has schema version {found}, this build reads version {want}; refusing to touch it"
    )]
    Schema {
        path: PathBuf,
        found: u64,
        want: u64,
    },
    #[error("store {path}: journal entry {seq} is not valid: {reason}")]
    Entry {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error("store {path}: {what}")]
    Sync { path: PathBuf, what: String },
    #[error("store {path}: lock poisoned by a panicked thread")]
    Poisoned { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalKind {
    DoorCommand,
    LaneEvent,
    Lighting,
    Station,
    /// A walker's decision (the `Decision` message as JSON: pseudonymous id, reason, timings).
    Decision,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    pub t_unix_ms: u64,
    pub lane: String,
    pub kind: JournalKind,
    pub detail: String,
}

/// Shared between the journal thread and the template sync (`Arc<Store>`); the lock is taken for
/// writing only by [`Store::compact`].
pub struct Store {
    db: RwLock<Database>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store; a file from another schema version is refused untouched.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.to_path_buf();
        let err = |e: redb::Error| StoreError::Redb {
            path: p.clone(),
            error: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(redb::Error::Io(e)))?;
        }
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get("schema_version")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            match found {
                Some(1) => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(|e| err(e.into()))?;
                    info!(path = %p.display(), "store migrated from schema version 1 to 2");
                }
                Some(v) if v != SCHEMA_VERSION => {
                    return Err(StoreError::Schema {
                        path: p,
                        found: v,
                        want: SCHEMA_VERSION,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(|e| err(e.into()))?;
                }
            }
            tx.open_table(JOURNAL).map_err(|e| err(e.into()))?;
            tx.open_table(crate::sync::rows::TEMPLATES)
                .map_err(|e| err(e.into()))?;
        }
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(Self {
            db: RwLock::new(db),
            path: p,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            error: e.into(),
        }
    }

    pub(crate) fn db(&self) -> Result<RwLockReadGuard<'_, Database>, StoreError> {
        self.db.read().map_err(|_| StoreError::Poisoned {
            path: self.path.clone(),
        })
    }

    /// Rewrites the file so freed pages (erased templates) leave it; waits for running transactions
    /// and blocks new ones meanwhile.
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().map_err(|_| StoreError::Poisoned {
            path: self.path.clone(),
        })?;
        while db.compact().map_err(|e| self.err(e))? {}
        Ok(())
    }

    /// Rewrites every table into a fresh file that then atomically replaces this one, so that no
    /// freed page of the old file (an erased template, its wrap) survives in the store file. redb's
    /// `compact` moves pages but does not guarantee that freed pages in the middle are overwritten.
    /// Blocks every other transaction while it runs (O(file size)).
    pub fn purge_rewrite(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().map_err(|_| StoreError::Poisoned {
            path: self.path.clone(),
        })?;
        let io = |e: std::io::Error| self.err(redb::Error::Io(e));
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".purge");
        let tmp = PathBuf::from(tmp);
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let fresh = Database::create(&tmp).map_err(|e| self.err(e))?;
        {
            let r = db.begin_read().map_err(|e| self.err(e))?;
            let w = fresh.begin_write().map_err(|e| self.err(e))?;
            {
                let (src, mut dst) = (
                    r.open_table(META).map_err(|e| self.err(e))?,
                    w.open_table(META).map_err(|e| self.err(e))?,
                );
                for row in src.iter().map_err(|e| self.err(e))? {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    dst.insert(k.value(), v.value()).map_err(|e| self.err(e))?;
                }
                let (src, mut dst) = (
                    r.open_table(JOURNAL).map_err(|e| self.err(e))?,
                    w.open_table(JOURNAL).map_err(|e| self.err(e))?,
                );
                for row in src.iter().map_err(|e| self.err(e))? {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    dst.insert(k.value(), v.value()).map_err(|e| self.err(e))?;
                }
                let t = crate::sync::rows::TEMPLATES;
                let (src, mut dst) = (
                    r.open_table(t).map_err(|e| self.err(e))?,
                    w.open_table(t).map_err(|e| self.err(e))?,
                );
                for row in src.iter().map_err(|e| self.err(e))? {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    dst.insert(k.value(), v.value()).map_err(|e| self.err(e))?;
                }
            }
            w.commit().map_err(|e| self.err(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        // The fresh database is open on the renamed file; the old one is closed (and its file,
        // unlinked by the rename, released) here.
        *db = fresh;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let v = meta
            .get("schema_version")
            .map_err(|e| self.err(e))?
            .map(|v| v.value());
        Ok(v.unwrap_or(0))
    }

    /// Appends entries in one transaction; returns the sequence number of the last one.
    pub fn append(&self, entries: &[JournalEntry]) -> Result<u64, StoreError> {
        let db = self.db()?;
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        let mut last = 0;
        {
            let mut j = tx.open_table(JOURNAL).map_err(|e| self.err(e))?;
            let first = j
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            for (seq, e) in (first..).zip(entries) {
                let bytes = serde_json::to_vec(e).unwrap_or_default();
                j.insert(seq, bytes.as_slice()).map_err(|e| self.err(e))?;
                last = seq;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(last)
    }

    /// Journal entries with sequence number >= `from`, oldest first, at most `limit`.
    pub fn journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, JournalEntry)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let j = tx.open_table(JOURNAL).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in j.range(from..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let entry = serde_json::from_slice(v.value()).map_err(|e| StoreError::Entry {
                path: self.path.clone(),
                seq: k.value(),
                reason: e.to_string(),
            })?;
            out.push((k.value(), entry));
        }
        Ok(out)
    }
}

/// Writes journal entries on a thread of its own so the control loop never waits on an fsync.
/// Entries that arrive while a commit is running are committed together.
pub struct JournalWriter {
    tx: Option<mpsc::Sender<JournalEntry>>,
    thread: Option<JoinHandle<Arc<Store>>>,
}

impl JournalWriter {
    pub fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel::<JournalEntry>();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    if let Err(e) = store.append(&batch) {
                        error!(error = %e, lost = batch.len(), "journal write failed");
                    }
                }
                store
            })
            .ok();
        Self {
            tx: Some(tx),
            thread,
        }
    }

    pub fn append(&self, entry: JournalEntry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(entry);
        }
    }

    /// Flushes what is queued and gives the store back.
    pub fn finish(mut self) -> Option<Arc<Store>> {
        self.tx = None;
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
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
}
