//! The station's fare state (schema version 3, `docs/store.md`): the open trips of subjects who
//! entered here, the single rides spent here, and a record of every allowed passage. A grant's trip
//! change, its passage record and its decision's journal line are written in one transaction before
//! the door is told to open ([`Store::commit_passages`]), so a crash at any point either leaves the
//! grant whole (the trip open, the ride spent, the line written) or leaves no trace of it (and the
//! door was never commanded).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use domain::SubjectId;
use domain::store::OnDb;
use domain::tickets::{OpenTrip, TicketId};
pub use domain::uplink::Passage;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::journal::{JournalEntry, append_in};
use super::{Store, StoreError};
use super::{json, next_key};

/// subject → JSON [`OpenTrip`].
pub(super) const TRIPS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("trips");
/// Single rides spent at this station: ticket id → the passage's sequence number.
pub(super) const SPENT: TableDefinition<u64, u64> = TableDefinition::new("spent_rides");
/// subject → JSON time of its last passage here (schema version 4): what the desk weighs against
/// the centre's view of the subject's trip, kept so a restart does not forget it.
pub(super) const LAST_HERE: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("last_here");
/// Allowed passages, in order: sequence (from 1) → JSON [`Passage`]. What the centre's fare ledger
/// is fed from (`sync::uplink`).
pub(super) const PASSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("passages");

/// The fare state a station restarts from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FareState {
    pub open_trips: HashMap<SubjectId, OpenTrip>,
    pub spent: HashSet<TicketId>,
    /// Each subject's last passage here.
    pub last_here: HashMap<SubjectId, NaiveDateTime>,
    /// Passages recorded so far.
    pub passages: u64,
}

impl Store {
    /// Writes `passages` (trip changes, spent rides, passage records) and `journal` lines in one
    /// durable transaction: all of it or, on error, none.
    pub fn commit_passages(
        &self,
        passages: &[Passage],
        journal: &[JournalEntry],
    ) -> Result<(), StoreError> {
        let head = self.db.write(|tx| {
            let mut trips = tx.open_table(TRIPS).map_err(|e| self.err(e))?;
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let mut recs = tx.open_table(PASSAGES).map_err(|e| self.err(e))?;
            let mut last = tx.open_table(LAST_HERE).map_err(|e| self.err(e))?;
            let first = next_key(&recs).map_err(|e| self.err(e))?;
            for (seq, p) in (first..).zip(passages) {
                let id = *p.subject.as_bytes();
                match &p.trip {
                    Some(t) => {
                        let bytes = json(t);
                        trips
                            .insert(id, bytes.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    None => {
                        trips.remove(id).map_err(|e| self.err(e))?;
                    }
                }
                if let Some(t) = p.spent {
                    spent.insert(t.0, seq).map_err(|e| self.err(e))?;
                }
                recs.insert(seq, json(p).as_slice())
                    .map_err(|e| self.err(e))?;
                last.insert(id, json(&p.record.at).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            append_in(tx, journal).map_err(|e| self.err(e))?;
            Ok::<_, StoreError>(first + passages.len() as u64 - 1)
        })?;
        if !passages.is_empty() {
            self.passage_head.send_replace(head);
        }
        Ok(())
    }

    /// The last passage sequence committed, updated after each commit.
    pub fn passage_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.passage_head.subscribe()
    }

    /// The open trips, spent rides and passage count as last committed.
    pub fn fare_state(&self) -> Result<FareState, StoreError> {
        self.db.read(|tx| {
            let mut st = FareState::default();
            let trips = tx.open_table(TRIPS).map_err(|e| self.err(e))?;
            for row in trips.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let id = SubjectId::from_bytes(k.value());
                let trip =
                    serde_json::from_slice(v.value()).map_err(|e| self.corrupt("trips", id, e))?;
                st.open_trips.insert(id, trip);
            }
            let spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            for row in spent.iter().map_err(|e| self.err(e))? {
                let (k, _) = row.map_err(|e| self.err(e))?;
                st.spent.insert(TicketId(k.value()));
            }
            let last = tx.open_table(LAST_HERE).map_err(|e| self.err(e))?;
            for row in last.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let id = SubjectId::from_bytes(k.value());
                let at = serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("last_here", id, e))?;
                st.last_here.insert(id, at);
            }
            st.passages = self.passages_in(tx)?;
            Ok(st)
        })
    }

    /// Passages recorded so far: the last sequence, since they are numbered from 1 without a gap.
    pub(super) fn passage_count(&self) -> Result<u64, StoreError> {
        self.db.read(|tx| self.passages_in(tx))
    }

    fn passages_in(&self, tx: &redb::ReadTransaction) -> Result<u64, StoreError> {
        let recs = tx.open_table(PASSAGES).map_err(|e| self.err(e))?;
        recs.len().map_err(|e| self.err(e))
    }

    /// Passage records with sequence number >= `from`, oldest first, at most `limit`.
    pub fn passages(&self, from: u64, limit: usize) -> Result<Vec<(u64, Passage)>, StoreError> {
        self.db.read(|tx| {
            let recs = tx.open_table(PASSAGES).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in recs.range(from..).map_err(|e| self.err(e))?.take(limit) {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let p = serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("passages", k.value(), e))?;
                out.push((k.value(), p));
            }
            Ok(out)
        })
    }
}
