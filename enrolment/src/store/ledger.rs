//! The fare ledger: every passage the stations report (`domain::uplink`), booked exactly once, and
//! what it changes at the centre: the subject's open trip, its single ride spent (which then goes to
//! every station as a ticket change, so the ride is refused everywhere), its trip journal. The rules
//! for reports that disagree are in `docs/tickets.md`, "Across the network".

use chrono::Utc;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    AuditEvent, AuditKind, ChangeKind, NEXT_TRIP, OPEN_TRIPS, SUBJECTS, Store, StoreError, TICKETS,
    TRIPS,
};
use chrono::NaiveDateTime;
use domain::store::OnDb;
use domain::tickets::{CentreTrip, Direction, OpenTrip, TicketId, TicketKind, TripRecord};
use domain::uplink::{Numbered, Passage, PassageBatch};
use domain::{StationId, SubjectId};

/// (station, its passage sequence) → JSON [`LedgerRow`].
pub(crate) const LEDGER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ledger");
/// station → the last passage sequence booked from it.
pub(crate) const UPLINK_HEADS: TableDefinition<&str, u64> = TableDefinition::new("uplink_heads");
/// station → JSON [`UplinkStore`]: which of its store files the ledger numbers from where.
pub(crate) const UPLINK_STORES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("uplink_stores");
/// subject → JSON time of the latest booked passage: the `as_of` of the centre's trip
/// (`domain::tickets::CentreTrip`) that every station receives.
pub(crate) const TRIP_AS_OF: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("trip_as_of");

/// One booked passage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerRow {
    pub record: TripRecord,
    /// The single ride the station spent for it.
    #[schema(value_type = Option<u64>)]
    pub spent: Option<TicketId>,
    /// Set when the report disagrees with what the centre knew (flagged for review, counted).
    pub conflict: Option<Conflict>,
}

/// A station's store files as the ledger knows them. The ledger numbers a station's passages on from
/// one file to the next: passage `seq` of the current file is ledger entry `base + seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkStore {
    /// The current file's identity (`None`: a station that has not said it).
    pub store: Option<u64>,
    pub base: u64,
    /// Files replaced since: a batch from one of them is refused, or its passages would be booked
    /// twice.
    #[serde(default)]
    pub retired: Vec<u64>,
}

/// What a batch's store identity and head told the ledger ([`Store::rebase_uplink`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebase {
    /// The file the ledger numbers from; book the batch with `base`.
    Same { base: u64 },
    /// A new file (replaced disk, recreated store): numbered on from the ledger's head; ask again
    /// from its start.
    NewStore { base: u64 },
    /// The same file with fewer passages than the ledger booked from it (restored from a backup):
    /// `missing` booked passages are not in it; numbered on from the ledger's head; ask again from
    /// its head.
    Behind { base: u64, missing: u64 },
    /// A file already replaced: refused.
    Retired,
}

impl Rebase {
    pub const NEW_STORE: &'static str = "new_store";
    pub const BEHIND: &'static str = "behind";

    /// The `kind` label of `enrold_uplink_store_changes_total` (`same`, `retired`: not counted there).
    pub fn name(self) -> &'static str {
        match self {
            Self::Same { .. } => "same",
            Self::NewStore { .. } => Self::NEW_STORE,
            Self::Behind { .. } => Self::BEHIND,
            Self::Retired => "retired",
        }
    }
}

/// What a subject's booked journal says about one trip (`Store::journal_view`).
#[derive(Debug, Default)]
struct JournalView {
    /// An exit of the trip is booked.
    exited: bool,
    /// An entry after the trip's is booked.
    later_entry: bool,
}

/// The time of the subject's first entry after `at`, if any.
fn next_entry(journal: &[TripRecord], at: NaiveDateTime) -> Option<NaiveDateTime> {
    (journal.iter())
        .filter(|r| r.direction == Direction::Entry && r.at > at)
        .map(|r| r.at)
        .min()
}

/// The booked exits of the trip entered at `from` at `entered`: from that station, not before the
/// entry, and before the subject's `next` entry.
fn exits_of<'a>(
    journal: &'a [TripRecord],
    from: &'a StationId,
    entered: NaiveDateTime,
    next: Option<NaiveDateTime>,
) -> impl Iterator<Item = &'a TripRecord> {
    journal.iter().filter(move |r| {
        r.direction == Direction::Exit
            && r.at >= entered
            && next.is_none_or(|n| r.at < n)
            && r.entry_station.as_ref() == Some(from)
    })
}

/// Retired store files remembered per station.
const MAX_RETIRED: usize = 64;

/// What a booked report can disagree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// The single ride was already spent at another station (two stations cut off from the centre
    /// both let it through): the second ride is charged as a fare (`charged` stays as reported,
    /// the review settles it).
    RideUsedTwice,
    /// An exit with no open trip known here (the entry's station has not reported yet, or never
    /// saw the entry).
    ExitWithoutKnownEntry,
    /// An entry while an earlier trip was still open (its exit was never recorded).
    EntryOverOpenTrip,
    /// A post-pay charge for a subject with no payment account when it was booked (unlinked or
    /// erased after the station decided): the charge is booked without an account, for review.
    ChargeWithoutAccount,
}

impl Conflict {
    pub const ALL: [Self; 4] = [
        Self::RideUsedTwice,
        Self::ExitWithoutKnownEntry,
        Self::EntryOverOpenTrip,
        Self::ChargeWithoutAccount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RideUsedTwice => "ride_used_twice",
            Self::ExitWithoutKnownEntry => "exit_without_known_entry",
            Self::EntryOverOpenTrip => "entry_over_open_trip",
            Self::ChargeWithoutAccount => "charge_without_account",
        }
    }
}

/// What booking one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Booked {
    /// Passages booked now (those booked before are skipped).
    pub booked: u64,
    /// The station's last booked sequence after this batch.
    pub head: u64,
    pub conflicts: Vec<Conflict>,
    /// Fares charged by the passages booked now.
    pub charged: u64,
    /// A change for the stations was logged (a ride spent, a trip opened or closed): the
    /// distribution has news.
    pub changed: bool,
}

/// The ledger's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub passages: u64,
    pub charged: u64,
    pub conflicts: u64,
}

impl Store {
    /// The last passage sequence booked from `station` (0: none yet).
    pub fn uplink_head(&self, station: &StationId) -> Result<u64, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(UPLINK_HEADS).map_err(|e| self.err(e))?;
        Ok(t.get(station.as_str())
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// How the ledger numbers `station`'s passages now.
    pub fn uplink_store(&self, station: &StationId) -> Result<UplinkStore, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(UPLINK_STORES).map_err(|e| self.err(e))?;
        match t.get(station.as_str()).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(v.value())
                .map_err(|e| self.corrupt("uplink_stores", station, e)),
            None => Ok(UplinkStore::default()),
        }
    }

    /// Weighs a verified batch's store identity and head against what the ledger knows of
    /// `station`, and keeps the outcome: the batch answered a query for the passages after `asked`
    /// (in its file's numbering). A station's first identity is adopted as the file already
    /// numbered; another one is a new file, numbered on from the ledger's head; a head below
    /// `asked` is a file that lost passages the ledger booked (restored from a backup), numbered
    /// on from the ledger's head too, so nothing it records afresh is taken for a booked passage.
    /// One caller per station at a time (the ledger's pull holds the station's lock).
    pub fn rebase_uplink(
        &self,
        station: &StationId,
        store: Option<u64>,
        head: u64,
        asked: u64,
    ) -> Result<Rebase, StoreError> {
        // Read first: a batch from the file already numbered changes nothing and writes nothing
        // (every pull weighs one, and a durable write each would cost an fsync).
        let booked = self.uplink_head(station)?;
        let mut u = self.uplink_store(station)?;
        let outcome = match (u.store, store) {
            (_, Some(s)) if u.retired.contains(&s) => return Ok(Rebase::Retired),
            (Some(known), Some(s)) if known != s => {
                u.retired.push(known);
                // A station that changes files on every pull could grow the list without end:
                // the oldest are forgotten.
                if u.retired.len() > MAX_RETIRED {
                    u.retired.remove(0);
                }
                u.store = Some(s);
                u.base = booked;
                Rebase::NewStore { base: booked }
            }
            _ if head < asked => {
                u.store = store.or(u.store);
                u.base = booked - head.min(booked);
                Rebase::Behind {
                    base: u.base,
                    missing: asked - head,
                }
            }
            (None, Some(s)) => {
                u.store = Some(s);
                Rebase::Same { base: u.base }
            }
            _ => return Ok(Rebase::Same { base: u.base }),
        };
        let bytes =
            serde_json::to_vec(&u).map_err(|e| self.corrupt("uplink_stores", station, e))?;
        self.db.write(|tx| {
            tx.open_table(UPLINK_STORES)
                .map_err(|e| self.err(e))?
                .insert(station.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
            Ok(outcome)
        })
    }

    /// Books a verified batch in one durable transaction. Passages at or below the station's head
    /// are skipped (a batch asked twice books once); a batch that starts past the head is refused.
    pub fn book(&self, batch: &PassageBatch) -> Result<Booked, StoreError> {
        let station = batch.station.as_str();
        self.db.write(|tx| {
            let mut heads = tx.open_table(UPLINK_HEADS).map_err(|e| self.err(e))?;
            let head = heads
                .get(station)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            if batch.after > head {
                return Err(StoreError::UplinkGap {
                    station: batch.station.clone(),
                    head,
                    after: batch.after,
                });
            }
            let mut out = Booked {
                head,
                ..Booked::default()
            };
            for (i, n) in batch
                .passages
                .iter()
                .enumerate()
                .filter(|(_, n)| n.seq > head)
            {
                let rest = &batch.passages[i + 1..];
                let (mut conflict, changed) =
                    self.book_one(tx, &batch.station, n.seq, &n.passage, rest)?;
                // A row carries one conflict: the trip's, when there is one, else the charge's.
                if self.charge(tx, &batch.station, n.seq, &n.passage)? && conflict.is_none() {
                    conflict = Some(Conflict::ChargeWithoutAccount);
                }
                let row = LedgerRow {
                    record: n.passage.record.clone(),
                    spent: n.passage.spent,
                    conflict,
                };
                let bytes =
                    serde_json::to_vec(&row).map_err(|e| self.corrupt("ledger", n.seq, e))?;
                tx.open_table(LEDGER)
                    .map_err(|e| self.err(e))?
                    .insert((station, n.seq), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                out.booked += 1;
                out.head = n.seq;
                out.charged += u64::from(row.record.charged);
                out.changed |= changed;
                out.conflicts.extend(conflict);
            }
            heads.insert(station, out.head).map_err(|e| self.err(e))?;
            Ok(out)
        })
    }

    /// Applies one passage to the subject's trip, tickets and journal; returns its conflict, if any,
    /// and whether a change for the stations was logged.
    fn book_one(
        &self,
        tx: &WriteTransaction,
        station: &StationId,
        seq: u64,
        p: &Passage,
        rest: &[Numbered],
    ) -> Result<(Option<Conflict>, bool), StoreError> {
        let id = p.subject;
        let known = tx
            .open_table(SUBJECTS)
            .map_err(|e| self.err(e))?
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
            .is_some();
        if !known {
            // Erased since: the ledger keeps the fare, nothing is kept of the subject.
            return Ok((None, false));
        }
        let (mut conflict, trip_changed) = self.book_trip(tx, p, rest)?;
        let mut changed = false;
        if let Some(t) = p.spent {
            match self.spend(tx, &id, t, station, seq)? {
                Spent::Now => changed = true,
                Spent::Before => conflict = Some(Conflict::RideUsedTwice),
                Spent::Gone => {}
            }
        }
        self.advance_as_of(tx, &id, p.record.at)?;
        // One change carries the subject's whole state, so a spend's change already has the trip.
        if trip_changed && !changed {
            self.log_change(tx, id, ChangeKind::Trip)?;
            changed = true;
        }
        let record = serde_json::to_vec(&p.record).map_err(|e| self.corrupt("trips", id, e))?;
        let n = self.bump(tx, NEXT_TRIP)?;
        tx.open_table(TRIPS)
            .map_err(|e| self.err(e))?
            .insert((*id.as_bytes(), n), record.as_slice())
            .map_err(|e| self.err(e))?;
        Ok((conflict, changed))
    }

    /// The centre's open trip after the passage. Reports from different stations arrive in any
    /// order, so the open trip follows the latest booked passage: an entry older than it (a late
    /// report) changes nothing, and an exit closes only a trip entered before it. What a passage
    /// disagrees with is judged against the subject's whole booked journal, so a late report of a
    /// complete trip is no conflict. `rest`: the batch's passages after this one (a late entry's
    /// exit may follow in them). Returns the conflict, if any, and whether the open trip changed.
    fn book_trip(
        &self,
        tx: &WriteTransaction,
        p: &Passage,
        rest: &[Numbered],
    ) -> Result<(Option<Conflict>, bool), StoreError> {
        let id = p.subject;
        let r = &p.record;
        let mut open = tx.open_table(OPEN_TRIPS).map_err(|e| self.err(e))?;
        let current: Option<OpenTrip> = self.subject_row(&open, "open_trips", &id)?;
        match r.direction {
            Direction::Entry => {
                let Some(trip) = &p.trip else {
                    return Ok((None, false));
                };
                let as_of: Option<NaiveDateTime> = {
                    let t = tx.open_table(TRIP_AS_OF).map_err(|e| self.err(e))?;
                    self.subject_row(&t, "trip_as_of", &id)?
                };
                let late = as_of.is_some_and(|t| t > trip.entered_at)
                    || (current.as_ref()).is_some_and(|c| c.entered_at > trip.entered_at);
                if !late {
                    let bytes =
                        serde_json::to_vec(trip).map_err(|e| self.corrupt("open_trips", id, e))?;
                    open.insert(id.as_bytes(), bytes.as_slice())
                        .map_err(|e| self.err(e))?;
                    return Ok((current.map(|_| Conflict::EntryOverOpenTrip), true));
                }
                // A late report: the centre's view, a later state, stands. The trip it began was
                // left without an exit if a later entry is booked and no exit of it is, here or
                // further on in this batch: flagged as an entry over an open trip would be.
                let journal = self.journal_view(tx, &id, trip)?;
                let exit_follows = rest.iter().any(|n| {
                    let q = &n.passage;
                    q.subject == id
                        && q.record.direction == Direction::Exit
                        && q.record.at >= trip.entered_at
                        && q.record.entry_station.as_ref() == Some(&trip.entry_station)
                });
                let unclosed = journal.later_entry && !journal.exited && !exit_follows;
                Ok((unclosed.then_some(Conflict::EntryOverOpenTrip), false))
            }
            Direction::Exit => match current {
                Some(c) if c.entered_at <= r.at => {
                    open.remove(id.as_bytes()).map_err(|e| self.err(e))?;
                    Ok((None, true))
                }
                // A late exit of an older trip whose entry is booked: the later state stands.
                _ if self.entry_booked(tx, &id, r)? => Ok((None, false)),
                _ => Ok((Some(Conflict::ExitWithoutKnownEntry), false)),
            },
        }
    }

    /// Moves the subject's `as_of` to `at` unless it is already later.
    fn advance_as_of(
        &self,
        tx: &WriteTransaction,
        id: &SubjectId,
        at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        let mut t = tx.open_table(TRIP_AS_OF).map_err(|e| self.err(e))?;
        let before: Option<NaiveDateTime> = self.subject_row(&t, "trip_as_of", id)?;
        if before.is_none_or(|b| at > b) {
            let bytes = serde_json::to_vec(&at).map_err(|e| self.corrupt("trip_as_of", id, e))?;
            t.insert(id.as_bytes(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The centre's view of the subject's trip (`None` before its first booked passage), read in
    /// `tx`.
    pub(super) fn centre_trip(
        &self,
        tx: &redb::ReadTransaction,
        id: &SubjectId,
    ) -> Result<Option<CentreTrip>, StoreError> {
        let t = tx.open_table(TRIP_AS_OF).map_err(|e| self.err(e))?;
        let Some(as_of) = self.subject_row(&t, "trip_as_of", id)? else {
            return Ok(None);
        };
        let o = tx.open_table(OPEN_TRIPS).map_err(|e| self.err(e))?;
        let open = self.subject_row(&o, "open_trips", id)?;
        Ok(Some(CentreTrip { open, as_of }))
    }

    /// The subject's booked journal, read for `trip`: one pass over it (its length is the
    /// subject's passages).
    fn journal(
        &self,
        tx: &WriteTransaction,
        id: &SubjectId,
    ) -> Result<Vec<TripRecord>, StoreError> {
        let t = tx.open_table(TRIPS).map_err(|e| self.err(e))?;
        let range = (*id.as_bytes(), 0u64)..=(*id.as_bytes(), u64::MAX);
        let mut out = Vec::new();
        for row in t.range(range).map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push(
                serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("trips", k.value().1, e))?,
            );
        }
        Ok(out)
    }

    /// Whether the journal holds an exit of `trip` (from its entry station, between its entry and
    /// the subject's next entry), and an entry after it.
    fn journal_view(
        &self,
        tx: &WriteTransaction,
        id: &SubjectId,
        trip: &OpenTrip,
    ) -> Result<JournalView, StoreError> {
        let journal = self.journal(tx, id)?;
        let next = next_entry(&journal, trip.entered_at);
        Ok(JournalView {
            exited: exits_of(&journal, &trip.entry_station, trip.entered_at, next)
                .next()
                .is_some(),
            later_entry: next.is_some(),
        })
    }

    /// Whether the journal holds the entry an exit closes, still open: the latest entry at its
    /// entry station not after it, with no other entry between the two and no exit of that trip
    /// booked yet (a second exit for one entry is a conflict, whatever its time).
    fn entry_booked(
        &self,
        tx: &WriteTransaction,
        id: &SubjectId,
        exit: &TripRecord,
    ) -> Result<bool, StoreError> {
        let Some(from) = &exit.entry_station else {
            return Ok(false);
        };
        let journal = self.journal(tx, id)?;
        let entered = (journal.iter())
            .filter(|r| r.direction == Direction::Entry && &r.station == from && r.at <= exit.at)
            .map(|r| r.at)
            .max();
        let Some(entered) = entered else {
            return Ok(false);
        };
        let next = next_entry(&journal, entered);
        Ok(next.is_none_or(|n| exit.at < n)
            && exits_of(&journal, from, entered, next).next().is_none())
    }

    /// Marks a single ride used and logs the ticket change for the stations.
    fn spend(
        &self,
        tx: &WriteTransaction,
        id: &SubjectId,
        t: TicketId,
        station: &StationId,
        seq: u64,
    ) -> Result<Spent, StoreError> {
        let key = (*id.as_bytes(), t.0);
        let kind = {
            let tickets = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
            let Some(v) = tickets.get(key).map_err(|e| self.err(e))? else {
                return Ok(Spent::Gone);
            };
            serde_json::from_slice::<TicketKind>(v.value())
                .map_err(|e| self.corrupt("tickets", t.0, e))?
        };
        let TicketKind::SingleRide {
            origin,
            valid_on,
            value,
            used,
        } = kind
        else {
            return Ok(Spent::Gone);
        };
        if used {
            return Ok(Spent::Before);
        }
        let now = TicketKind::SingleRide {
            origin,
            valid_on,
            value,
            used: true,
        };
        let bytes = serde_json::to_vec(&now).map_err(|e| self.corrupt("tickets", t.0, e))?;
        tx.open_table(TICKETS)
            .map_err(|e| self.err(e))?
            .insert(key, bytes.as_slice())
            .map_err(|e| self.err(e))?;
        let event = AuditEvent {
            at: Utc::now(),
            kind: AuditKind::Spend,
            subject: Some(*id),
            actor: format!("station {station}"),
            detail: format!("ticket {} spent (passage {seq})", t.0),
        };
        self.log(tx, Some((*id, ChangeKind::Tickets)), &event)?;
        Ok(Spent::Now)
    }

    /// Booked passages of `station` with sequence ≥ `from`, oldest first, at most `limit`.
    pub fn ledger(
        &self,
        station: &StationId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, LedgerRow)>, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(LEDGER).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let range = (station.as_str(), from)..=(station.as_str(), u64::MAX);
        for row in t.range(range).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let seq = k.value().1;
            let r =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt("ledger", seq, e))?;
            out.push((seq, r));
        }
        Ok(out)
    }

    /// Passages booked, fares charged and conflicts, over every station.
    pub fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(LEDGER).map_err(|e| self.err(e))?;
        let mut out = LedgerTotals::default();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let r: LedgerRow = serde_json::from_slice(v.value())
                .map_err(|e| self.corrupt("ledger", k.value().1, e))?;
            out.passages += 1;
            out.charged += u64::from(r.record.charged);
            out.conflicts += u64::from(r.conflict.is_some());
        }
        Ok(out)
    }
}

enum Spent {
    Now,
    Before,
    /// Unlinked since, or not a single ride: nothing to spend.
    Gone,
}
