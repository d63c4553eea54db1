//! The station's template tables (schema versions 2, 4 and 5, `docs/store.md`), written by
//! `crate::sync`.

use domain::SubjectId;
use domain::seal::{SealedTemplate, StationWrappedKey};
use domain::store::{META, OnDb};
use domain::tickets::{CentreTrip, Ticket};
use redb::{ReadableTable, TableDefinition};

use super::{Store, StoreError};

/// subject → (template version, sealed template `T`, data key wrapped for this station `S`, tickets
/// as JSON).
type Row<'a> = (u32, &'a [u8], &'a [u8], &'a [u8]);
pub(super) const TEMPLATES: TableDefinition<[u8; 16], Row<'static>> =
    TableDefinition::new("sync_templates");
/// subject → JSON `CentreTrip`: the centre's view of the subject's trip, from the same changes
/// (schema version 4).
pub(super) const CENTRE_TRIPS: TableDefinition<[u8; 16], &[u8]> =
    TableDefinition::new("centre_trips");
/// The subjects the centre says have a payment account (schema version 5): an extension fare is
/// charged to it instead of refused. Absent: no account.
pub(super) const POSTPAY: TableDefinition<[u8; 16], ()> = TableDefinition::new("postpay");
/// In `meta`: the last change sequence applied.
pub const LAST_SEQ: &str = "sync_last_seq";

/// One subject as the station stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub template_version: u32,
    pub sealed: SealedTemplate,
    pub wrapped: StationWrappedKey,
    pub tickets: Vec<Ticket>,
    /// The centre's view of the subject's trip (`None` before its first booked passage).
    pub trip: Option<CentreTrip>,
    /// The subject has a payment account (post-pay).
    pub postpay: bool,
}

/// A verified change, ready to write.
pub enum RowOp<'a> {
    Upsert(SubjectId, &'a TemplateRow),
    /// The centre's view of the trip of a stored subject (ignored for a subject not stored here).
    Trip(SubjectId, Option<&'a CentreTrip>),
    Erase(SubjectId),
}

impl Store {
    /// The last change sequence applied (0 before the first).
    pub fn sync_last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.meta(LAST_SEQ)?.unwrap_or(0))
    }

    /// Writes changes `first_seq, first_seq + 1, …` in one transaction and moves `last_seq` to the last
    /// of them. Refused (nothing written) unless `first_seq` is exactly the stored `last_seq + 1`, so two
    /// writers or a stale caller can never skip or repeat a change.
    pub fn sync_apply(&self, first_seq: u64, ops: &[RowOp<'_>]) -> Result<u64, StoreError> {
        self.db.write(|tx| {
            let last = {
                let mut m = tx.open_table(META).map_err(|e| self.err(e))?;
                let stored = m
                    .get(LAST_SEQ)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if first_seq != stored + 1 {
                    return Err(StoreError::OutOfOrder {
                        path: self.path().to_path_buf(),
                        first: first_seq,
                        stored,
                    });
                }
                let last = stored + ops.len() as u64;
                m.insert(LAST_SEQ, last).map_err(|e| self.err(e))?;
                last
            };
            {
                let mut t = tx.open_table(TEMPLATES).map_err(|e| self.err(e))?;
                let mut trips = tx.open_table(CENTRE_TRIPS).map_err(|e| self.err(e))?;
                let mut postpay = tx.open_table(POSTPAY).map_err(|e| self.err(e))?;
                for op in ops {
                    match op {
                        RowOp::Upsert(id, row) => {
                            let tickets = serde_json::to_vec(&row.tickets)
                                .map_err(|e| self.corrupt("sync_templates", id, e))?;
                            t.insert(
                                id.as_bytes(),
                                (
                                    row.template_version,
                                    row.sealed.as_bytes(),
                                    row.wrapped.as_bytes(),
                                    tickets.as_slice(),
                                ),
                            )
                            .map_err(|e| self.err(e))?;
                            self.put_trip(&mut trips, id, row.trip.as_ref())?;
                            if row.postpay {
                                postpay.insert(id.as_bytes(), ()).map_err(|e| self.err(e))?;
                            } else {
                                postpay.remove(id.as_bytes()).map_err(|e| self.err(e))?;
                            }
                        }
                        RowOp::Trip(id, trip) => {
                            if t.get(id.as_bytes()).map_err(|e| self.err(e))?.is_none() {
                                continue;
                            }
                            self.put_trip(&mut trips, id, *trip)?;
                        }
                        RowOp::Erase(id) => {
                            t.remove(id.as_bytes()).map_err(|e| self.err(e))?;
                            trips.remove(id.as_bytes()).map_err(|e| self.err(e))?;
                            postpay.remove(id.as_bytes()).map_err(|e| self.err(e))?;
                        }
                    }
                }
            }
            Ok(last)
        })
    }

    /// Writes (or, for `None`, deletes) the subject's centre trip row.
    fn put_trip(
        &self,
        trips: &mut redb::Table<'_, [u8; 16], &'static [u8]>,
        id: &SubjectId,
        trip: Option<&CentreTrip>,
    ) -> Result<(), StoreError> {
        match trip {
            Some(trip) => {
                let bytes =
                    serde_json::to_vec(trip).map_err(|e| self.corrupt("centre_trips", id, e))?;
                trips
                    .insert(id.as_bytes(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            None => {
                trips.remove(id.as_bytes()).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Every stored subject, in id order.
    pub fn sync_rows(&self) -> Result<Vec<(SubjectId, TemplateRow)>, StoreError> {
        self.db.read(|tx| {
            let t = tx.open_table(TEMPLATES).map_err(|e| self.err(e))?;
            let trips = tx.open_table(CENTRE_TRIPS).map_err(|e| self.err(e))?;
            let postpay = tx.open_table(POSTPAY).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let id = SubjectId::from_bytes(k.value());
                let (template_version, sealed, wrapped, tickets) = v.value();
                let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
                    self.corrupt("sync_templates", id, e)
                };
                out.push((
                    id,
                    TemplateRow {
                        template_version,
                        sealed: SealedTemplate::from_bytes(sealed.to_vec())
                            .map_err(|e| bad(e.into()))?,
                        wrapped: StationWrappedKey::from_bytes(wrapped.to_vec())
                            .map_err(|e| bad(e.into()))?,
                        tickets: serde_json::from_slice(tickets).map_err(|e| bad(e.into()))?,
                        trip: match trips.get(k.value()).map_err(|e| self.err(e))? {
                            Some(v) => Some(
                                serde_json::from_slice(v.value())
                                    .map_err(|e| self.corrupt("centre_trips", id, e))?,
                            ),
                            None => None,
                        },
                        postpay: postpay.get(k.value()).map_err(|e| self.err(e))?.is_some(),
                    },
                ));
            }
            Ok(out)
        })
    }
}
