//! The journal: door commands, lane events, lighting, station events and decisions, append-only.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use std::path::Path;

use domain::store::{Db, DbError, OnDb};
use protocol::{JournalLine, JournalQuery, MAX_JOURNAL_LINES};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tracing::error;

use super::{Store, StoreError};

pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

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

impl JournalEntry {
    /// A walker's decision as its journal line, stamped `t_unix_ms`.
    pub fn decision(msg: &protocol::Decision, t_unix_ms: u64) -> Self {
        Self {
            t_unix_ms,
            lane: msg.lane.clone(),
            kind: JournalKind::Decision,
            detail: serde_json::to_string(msg).unwrap_or_default(),
        }
    }
}

/// Appends `entries` to the journal within `tx`, numbered on from its last entry; returns the
/// number of the last one (0 for none). The journal thread's batches and a grant's transaction
/// (`trips`) both append through here.
pub(super) fn append_in(
    tx: &WriteTransaction,
    entries: &[JournalEntry],
) -> Result<u64, redb::Error> {
    let mut j = tx.open_table(JOURNAL)?;
    let mut last = 0;
    for (seq, e) in (super::next_key(&j)?..).zip(entries) {
        j.insert(seq, super::json(e).as_slice())?;
        last = seq;
    }
    Ok(last)
}

impl Store {
    /// Appends entries in one transaction; returns the sequence number of the last one.
    pub fn append(&self, entries: &[JournalEntry]) -> Result<u64, StoreError> {
        self.db
            .write(|tx| append_in(tx, entries).map_err(|e| self.err(e)))
    }

    /// Journal entries with sequence number >= `from`, oldest first, at most `limit`.
    pub fn journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, JournalEntry)>, StoreError> {
        self.db.read(|tx| {
            let j = tx.open_table(JOURNAL).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in j.range(from..).map_err(|e| self.err(e))?.take(limit) {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let entry = serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("journal", k.value(), e))?;
                out.push((k.value(), entry));
            }
            Ok(out)
        })
    }

    /// The newest entries matching `q` (at most `q.limit`), oldest first.
    pub fn query_journal(&self, q: &JournalQuery) -> Result<Vec<JournalLine>, StoreError> {
        let db = self.layer();
        self.db
            .read(|tx| query(tx, q, |e| db.err(e), |k, e| db.corrupt("journal", k, e)))
    }
}

/// [`Store::query_journal`] on a store file no process holds open (a stopped gated's); a running
/// gated answers the same query itself (`gated journal` asks it first).
pub fn query_journal_file(path: &Path, q: &JournalQuery) -> Result<Vec<JournalLine>, StoreError> {
    let redb_err = |e: redb::Error| DbError::Redb {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let corrupt = |k: u64, e: serde_json::Error| DbError::Corrupt {
        path: path.to_path_buf(),
        table: "journal",
        key: k.to_string(),
        source: Box::new(e),
    };
    Db::read_file(path, super::SCHEMA, |tx| query(tx, q, redb_err, corrupt))
}

/// Walks the journal from its newest entry back, keeping what matches, until `limit` are found.
fn query(
    tx: &ReadTransaction,
    q: &JournalQuery,
    err: impl Fn(redb::Error) -> DbError,
    corrupt: impl Fn(u64, serde_json::Error) -> DbError,
) -> Result<Vec<JournalLine>, StoreError> {
    let j = tx.open_table(JOURNAL).map_err(|e| err(e.into()))?;
    let limit = q.limit.clamp(1, MAX_JOURNAL_LINES) as usize;
    // The kind asked for, parsed once; a name no entry can have matches nothing.
    let kind: Option<JournalKind> = match &q.kind {
        None => None,
        Some(k) => match serde_json::from_value(serde_json::Value::String(k.clone())) {
            Ok(kind) => Some(kind),
            Err(_) => return Ok(Vec::new()),
        },
    };
    let mut out = Vec::new();
    for row in j.iter().map_err(|e| err(e.into()))?.rev() {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let e: JournalEntry =
            serde_json::from_slice(v.value()).map_err(|e| corrupt(k.value(), e))?;
        if q.since_unix_ms.is_some_and(|t| e.t_unix_ms < t) {
            // Entries are appended in time order (one writer thread): nothing older can match.
            break;
        }
        if q.lane.as_ref().is_some_and(|l| *l != e.lane)
            || kind.as_ref().is_some_and(|k| *k != e.kind)
            || q.contains
                .as_ref()
                .is_some_and(|c| !e.detail.contains(c.as_str()))
        {
            continue;
        }
        out.push(JournalLine {
            seq: k.value(),
            t_unix_ms: e.t_unix_ms,
            lane: e.lane,
            kind: serde_json::to_value(&e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            detail: e.detail,
        });
        if out.len() == limit {
            break;
        }
    }
    out.reverse();
    Ok(out)
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
