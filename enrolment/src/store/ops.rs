//! The store's transactions: enrol, tickets, trips, erasure and key rotation.

use chrono::Utc;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::{
    AUDIT, AuditEvent, AuditKind, CHANGES, ChangeKind, DATA_KEYS, MASTER_KEY_ID, NEXT_TICKET,
    OPEN_TRIPS, SUBJECTS, Store, StoreError, SubjectRecord, TEMPLATES, TICKETS, TRIPS,
};
use domain::SubjectId;
use domain::seal::{SealedTemplate, WrappedDataKey};
use domain::store::{META, OnDb};
use domain::tickets::{OpenTrip, Ticket, TicketId, TicketKind, TripRecord};

/// What enrolment writes for one subject.
pub struct EnrolRow<'a> {
    pub subject: SubjectId,
    pub record: &'a SubjectRecord,
    pub wrapped: &'a WrappedDataKey,
    pub sealed: &'a SealedTemplate,
}

pub(super) fn next_seq<V: redb::Value + 'static>(
    t: &Table<'_, u64, V>,
) -> Result<u64, redb::StorageError> {
    Ok(t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1))
}

impl Store {
    fn write<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.db.write(f)
    }

    /// Appends a change and an audit event inside `tx`; returns the change's sequence.
    pub(super) fn log(
        &self,
        tx: &WriteTransaction,
        change: Option<(SubjectId, ChangeKind)>,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut seq = 0;
        if let Some((subject, kind)) = change {
            seq = self.log_change(tx, subject, kind)?;
        }
        let mut a = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
        let n = next_seq(&a).map_err(|e| self.err(e))?;
        let bytes = serde_json::to_vec(event).map_err(|e| self.corrupt("audit", n, e))?;
        a.insert(n, bytes.as_slice()).map_err(|e| self.err(e))?;
        Ok(seq)
    }

    /// Appends a change for the stations inside `tx` (no audit event: a booked passage is in the
    /// ledger); returns its sequence.
    pub(super) fn log_change(
        &self,
        tx: &WriteTransaction,
        subject: SubjectId,
        kind: ChangeKind,
    ) -> Result<u64, StoreError> {
        let mut c = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        let seq = next_seq(&c).map_err(|e| self.err(e))?;
        c.insert(seq, (*subject.as_bytes(), kind as u8))
            .map_err(|e| self.err(e))?;
        Ok(seq)
    }

    fn require_subject(&self, tx: &WriteTransaction, id: &SubjectId) -> Result<(), StoreError> {
        let s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
        match s.get(id.as_bytes()).map_err(|e| self.err(e))? {
            Some(_) => Ok(()),
            None => Err(StoreError::NoSubject(*id)),
        }
    }

    pub(super) fn bump(&self, tx: &WriteTransaction, key: &str) -> Result<u64, StoreError> {
        let mut m = tx.open_table(META).map_err(|e| self.err(e))?;
        let v = m
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
            .unwrap_or(1);
        m.insert(key, v + 1).map_err(|e| self.err(e))?;
        Ok(v)
    }

    /// Stores a new subject (row, sealed template, wrapped key), its change and audit event, in one
    /// transaction. Returns the change sequence.
    pub fn enrol(&self, row: &EnrolRow<'_>, actor: &str) -> Result<u64, StoreError> {
        self.write(|tx| self.enrol_in(tx, row, actor))
    }

    /// Many subjects in one transaction (bulk import, benchmarks); all or nothing. Returns the last
    /// change sequence.
    pub fn enrol_many(&self, rows: &[EnrolRow<'_>], actor: &str) -> Result<u64, StoreError> {
        self.write(|tx| {
            let mut last = 0;
            for row in rows {
                last = self.enrol_in(tx, row, actor)?;
            }
            Ok(last)
        })
    }

    fn enrol_in(
        &self,
        tx: &WriteTransaction,
        row: &EnrolRow<'_>,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let id = row.subject;
        let record = serde_json::to_vec(row.record).map_err(|e| self.corrupt("subjects", id, e))?;
        {
            {
                let mut s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
                if s.get(id.as_bytes()).map_err(|e| self.err(e))?.is_some() {
                    return Err(StoreError::SubjectExists(id));
                }
                s.insert(id.as_bytes(), record.as_slice())
                    .map_err(|e| self.err(e))?;
                let mut t = tx.open_table(TEMPLATES).map_err(|e| self.err(e))?;
                t.insert(id.as_bytes(), row.sealed.as_bytes())
                    .map_err(|e| self.err(e))?;
                let mut k = tx.open_table(DATA_KEYS).map_err(|e| self.err(e))?;
                k.insert(id.as_bytes(), row.wrapped.as_bytes())
                    .map_err(|e| self.err(e))?;
            }
            let event = AuditEvent {
                at: Utc::now(),
                kind: AuditKind::Enrol,
                subject: Some(id),
                actor: actor.into(),
                detail: format!(
                    "{} photo(s), policy {}",
                    row.record.photos, row.record.consent.policy_version
                ),
            };
            self.log(tx, Some((id, ChangeKind::Upsert)), &event)
        }
    }

    pub fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
        let Some(v) = s.get(id.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| self.corrupt("subjects", id, e))
    }

    /// Every subject's wrapped data key and sealed template (to build the gallery at start).
    pub fn sealed_all(
        &self,
    ) -> Result<Vec<(SubjectId, WrappedDataKey, SealedTemplate)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(TEMPLATES).map_err(|e| self.err(e))?;
        let k = tx.open_table(DATA_KEYS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (id, sealed) = row.map_err(|e| self.err(e))?;
            let id = SubjectId::from_bytes(id.value());
            let wrapped = k
                .get(id.as_bytes())
                .map_err(|e| self.err(e))?
                .ok_or_else(|| self.corrupt("data_keys", id, "missing for a template"))?;
            let wrapped = WrappedDataKey::from_bytes(wrapped.value().to_vec())
                .map_err(|e| self.corrupt("data_keys", id, e))?;
            let sealed = SealedTemplate::from_bytes(sealed.value().to_vec())
                .map_err(|e| self.corrupt("templates", id, e))?;
            out.push((id, wrapped, sealed));
        }
        Ok(out)
    }

    /// Every wrapped data key (for master key rotation).
    pub fn wrapped_keys(&self) -> Result<Vec<(SubjectId, WrappedDataKey)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let k = tx.open_table(DATA_KEYS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in k.iter().map_err(|e| self.err(e))? {
            let (id, w) = row.map_err(|e| self.err(e))?;
            let id = SubjectId::from_bytes(id.value());
            let w = WrappedDataKey::from_bytes(w.value().to_vec())
                .map_err(|e| self.corrupt("data_keys", id, e))?;
            out.push((id, w));
        }
        Ok(out)
    }

    /// Links a ticket; the centre assigns its id.
    pub fn link_ticket(
        &self,
        id: &SubjectId,
        kind: &TicketKind,
        actor: &str,
    ) -> Result<(Ticket, u64), StoreError> {
        let bytes = serde_json::to_vec(kind).map_err(|e| self.corrupt("tickets", id, e))?;
        self.write(|tx| {
            self.require_subject(tx, id)?;
            let ticket = TicketId(self.bump(tx, NEXT_TICKET)?);
            tx.open_table(TICKETS)
                .map_err(|e| self.err(e))?
                .insert((*id.as_bytes(), ticket.0), bytes.as_slice())
                .map_err(|e| self.err(e))?;
            let event = AuditEvent {
                at: Utc::now(),
                kind: AuditKind::Link,
                subject: Some(*id),
                actor: actor.into(),
                detail: format!("ticket {}", ticket.0),
            };
            let seq = self.log(tx, Some((*id, ChangeKind::Tickets)), &event)?;
            Ok((
                Ticket {
                    id: ticket,
                    kind: kind.clone(),
                },
                seq,
            ))
        })
    }

    /// Unlinks a ticket; `false` when the subject has no such ticket.
    pub fn unlink_ticket(
        &self,
        id: &SubjectId,
        ticket: TicketId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            self.require_subject(tx, id)?;
            let removed = tx
                .open_table(TICKETS)
                .map_err(|e| self.err(e))?
                .remove((*id.as_bytes(), ticket.0))
                .map_err(|e| self.err(e))?
                .is_some();
            if removed {
                let event = AuditEvent {
                    at: Utc::now(),
                    kind: AuditKind::Unlink,
                    subject: Some(*id),
                    actor: actor.into(),
                    detail: format!("ticket {}", ticket.0),
                };
                self.log(tx, Some((*id, ChangeKind::Tickets)), &event)?;
            }
            Ok(removed)
        })
    }

    /// The subject's tickets in link order; `None` when the subject does not exist.
    pub fn tickets(&self, id: &SubjectId) -> Result<Option<Vec<Ticket>>, StoreError> {
        if self.subject(id)?.is_none() {
            return Ok(None);
        }
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let range = (*id.as_bytes(), 0u64)..=(*id.as_bytes(), u64::MAX);
        for row in t.range(range).map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (_, tid) = k.value();
            let kind =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt("tickets", tid, e))?;
            out.push(Ticket {
                id: TicketId(tid),
                kind,
            });
        }
        Ok(Some(out))
    }

    /// The subject's open trip and journal records with sequence ≥ `from` (at most `limit`); `None`
    /// when the subject does not exist.
    #[allow(clippy::type_complexity)]
    pub fn trips(
        &self,
        id: &SubjectId,
        from: u64,
        limit: usize,
    ) -> Result<Option<(Option<OpenTrip>, Vec<(u64, TripRecord)>)>, StoreError> {
        if self.subject(id)?.is_none() {
            return Ok(None);
        }
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let open = tx.open_table(OPEN_TRIPS).map_err(|e| self.err(e))?;
        let open = self.subject_row(&open, "open_trips", id)?;
        let t = tx.open_table(TRIPS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let range = (*id.as_bytes(), from)..=(*id.as_bytes(), u64::MAX);
        for row in t.range(range).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (_, seq) = k.value();
            let r = serde_json::from_slice(v.value()).map_err(|e| self.corrupt("trips", seq, e))?;
            out.push((seq, r));
        }
        Ok(Some((open, out)))
    }

    /// Erasure: deletes every row of the subject (record, sealed template, wrapped data key — the
    /// crypto-shredding — tickets, open trip, trips) and appends the erase change and audit event, in
    /// one transaction; then purges the file (rewrites it without the freed pages, as the stations
    /// do), so no byte of the template or its wrap is left in it. Returns the change sequence, or
    /// `None` when the subject does not exist.
    pub fn erase(&self, id: &SubjectId, actor: &str) -> Result<Option<u64>, StoreError> {
        let seq = self.write(|tx| {
            let existed = tx
                .open_table(SUBJECTS)
                .map_err(|e| self.err(e))?
                .remove(id.as_bytes())
                .map_err(|e| self.err(e))?
                .is_some();
            if !existed {
                return Ok(None);
            }
            for table in [DATA_KEYS, TEMPLATES, OPEN_TRIPS, super::ledger::TRIP_AS_OF] {
                tx.open_table(table)
                    .map_err(|e| self.err(e))?
                    .remove(id.as_bytes())
                    .map_err(|e| self.err(e))?;
            }
            let range = (*id.as_bytes(), 0u64)..=(*id.as_bytes(), u64::MAX);
            for table in [TICKETS, TRIPS] {
                tx.open_table(table)
                    .map_err(|e| self.err(e))?
                    .retain_in(range.clone(), |_, _| false)
                    .map_err(|e| self.err(e))?;
            }
            let event = AuditEvent {
                at: Utc::now(),
                kind: AuditKind::Erase,
                subject: Some(*id),
                actor: actor.into(),
                detail: "consent withdrawn: data key destroyed, rows deleted".into(),
            };
            self.log(tx, Some((*id, ChangeKind::Erase)), &event)
                .map(Some)
        })?;
        if seq.is_some() {
            self.purge()?;
        }
        Ok(seq)
    }

    /// Replaces every wrapped data key by its re-wrap under master key `new_id`, records the new id and
    /// an audit event, in one transaction; then purges (the old wraps leave the file). Refused when
    /// the set of subjects changed since the keys were read.
    pub fn rotate_keys(
        &self,
        new_id: u32,
        rewrapped: &[(SubjectId, WrappedDataKey)],
        actor: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut k = tx.open_table(DATA_KEYS).map_err(|e| self.err(e))?;
            let count = k.len().map_err(|e| self.err(e))?;
            if count != rewrapped.len() as u64 {
                return Err(StoreError::Rotation(format!(
                    "{count} data keys in the store, {} re-wrapped; run it again",
                    rewrapped.len()
                )));
            }
            for (id, w) in rewrapped {
                let old = k
                    .insert(id.as_bytes(), w.as_bytes())
                    .map_err(|e| self.err(e))?;
                if old.is_none() {
                    return Err(StoreError::Rotation(format!(
                        "subject {id} has no data key"
                    )));
                }
            }
            drop(k);
            let old_id = {
                let mut m = tx.open_table(META).map_err(|e| self.err(e))?;
                let old = m
                    .insert(MASTER_KEY_ID, u64::from(new_id))
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value());
                old.unwrap_or(1)
            };
            let event = AuditEvent {
                at: Utc::now(),
                kind: AuditKind::KeyRotation,
                subject: None,
                actor: actor.into(),
                detail: format!(
                    "master key {old_id} → {new_id}: {} data key(s) re-wrapped",
                    rewrapped.len()
                ),
            };
            self.log(tx, None, &event)?;
            Ok(())
        })?;
        self.purge()
    }
}
