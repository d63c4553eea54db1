//! Reads for the distribution to stations: a subject's whole current state, the last change.

use domain::store::OnDb;
use redb::{ReadableDatabase, ReadableTable};

use super::{CHANGES, DATA_KEYS, SUBJECTS, Store, StoreError, SubjectRecord, TEMPLATES, TICKETS};
use domain::SubjectId;
use domain::seal::{SealedTemplate, WrappedDataKey};
use domain::tickets::{CentreTrip, Ticket, TicketId};

/// What the stations need of one enrolled subject, read in one transaction.
pub struct SubjectState {
    pub record: SubjectRecord,
    pub wrapped: WrappedDataKey,
    pub sealed: SealedTemplate,
    pub tickets: Vec<Ticket>,
    /// The centre's view of its trip (`None` before its first booked passage).
    pub trip: Option<CentreTrip>,
}

impl Store {
    /// The last change sequence (0 when there is none).
    pub fn head_seq(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let c = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        Ok(c.last()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| k.value())
            .unwrap_or(0))
    }

    /// The centre's view of the subject's trip (inner `None`: no passage booked yet); `None` once
    /// the subject is erased.
    #[allow(clippy::option_option)]
    pub fn subject_trip(&self, id: &SubjectId) -> Result<Option<Option<CentreTrip>>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
        if s.get(id.as_bytes()).map_err(|e| self.err(e))?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.centre_trip(&tx, id)?))
    }

    /// The subject's record, wrapped data key, sealed template and tickets; `None` once erased.
    pub fn subject_state(&self, id: &SubjectId) -> Result<Option<SubjectState>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
        let Some(record) = s.get(id.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let record: SubjectRecord =
            serde_json::from_slice(record.value()).map_err(|e| self.corrupt("subjects", id, e))?;
        let k = tx.open_table(DATA_KEYS).map_err(|e| self.err(e))?;
        let wrapped = k
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt("data_keys", id, "missing for a subject"))?;
        let wrapped = WrappedDataKey::from_bytes(wrapped.value().to_vec())
            .map_err(|e| self.corrupt("data_keys", id, e))?;
        let t = tx.open_table(TEMPLATES).map_err(|e| self.err(e))?;
        let sealed = t
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt("templates", id, "missing for a subject"))?;
        let sealed = SealedTemplate::from_bytes(sealed.value().to_vec())
            .map_err(|e| self.corrupt("templates", id, e))?;
        let tk = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
        let mut tickets = Vec::new();
        let range = (*id.as_bytes(), 0u64)..=(*id.as_bytes(), u64::MAX);
        for row in tk.range(range).map_err(|e| self.err(e))? {
            let (key, v) = row.map_err(|e| self.err(e))?;
            let (_, tid) = key.value();
            let kind =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt("tickets", tid, e))?;
            tickets.push(Ticket {
                id: TicketId(tid),
                kind,
            });
        }
        let trip = self.centre_trip(&tx, id)?;
        Ok(Some(SubjectState {
            record,
            wrapped,
            sealed,
            tickets,
            trip,
        }))
    }
}
