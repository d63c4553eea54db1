//! The centre's store (redb): subjects, sealed templates, wrapped data keys, tickets, trips, the change
//! sequence for the stations and an append-only audit log. Table layout: `docs/enrolment.md`.
//!
//! Every mutating call is one redb write transaction, committed durably (fsync) before it returns, so
//! an acknowledged request survives a crash and a crash never leaves half of one. Nothing biometric is
//! stored except sealed templates (opaque AEAD blobs); photos never reach this module.

mod ledger;
mod ops;
mod postpay;
mod state;
#[cfg(test)]
mod tests;

use std::path::Path;

use chrono::{DateTime, Utc};
use domain::SubjectId;
use domain::store::{Db, DbError, META, OnDb, Opened, Schema, copy_table};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

pub use ledger::{Booked, Conflict, LedgerRow, LedgerTotals, Rebase, UplinkStore};
pub use ops::EnrolRow;
pub use postpay::{AccountChange, AccountRef, Charge, PaymentAccount};
pub use state::SubjectState;

/// 2 added the fare ledger (`ledger`, `uplink_heads`, `trip_as_of`); 3 the post-pay charges
/// (`charges`) and a subject row's optional `account`; 4 each station's store identity
/// (`uplink_stores`). Older files are upgraded in place (the new tables are created, nothing else is
/// touched: a row without `account` reads as no account, a station without a store row as one
/// whose store has not said its identity yet).
pub const SCHEMA: Schema = Schema {
    version: 4,
    upgrades_from: &[1, 2, 3],
};

type Sid = [u8; 16];
pub(crate) const SUBJECTS: TableDefinition<Sid, &[u8]> = TableDefinition::new("subjects");
pub(crate) const TEMPLATES: TableDefinition<Sid, &[u8]> = TableDefinition::new("templates");
pub(crate) const DATA_KEYS: TableDefinition<Sid, &[u8]> = TableDefinition::new("data_keys");
pub(crate) const TICKETS: TableDefinition<(Sid, u64), &[u8]> = TableDefinition::new("tickets");
pub(crate) const OPEN_TRIPS: TableDefinition<Sid, &[u8]> = TableDefinition::new("open_trips");
pub(crate) const TRIPS: TableDefinition<(Sid, u64), &[u8]> = TableDefinition::new("trips");
pub(crate) const CHANGES: TableDefinition<u64, (Sid, u8)> = TableDefinition::new("changes");
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

pub(crate) const MASTER_KEY_ID: &str = "master_key_id";
pub(crate) const NEXT_TICKET: &str = "next_ticket_id";
pub(crate) const NEXT_TRIP: &str = "next_trip_seq";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening, reading or writing the file, or a row that does not decode.
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("subject {0} is not enrolled")]
    NoSubject(SubjectId),
    #[error("subject {0} already exists")]
    SubjectExists(SubjectId),
    #[error("key rotation: {0}")]
    Rotation(String),
    #[error("passages of {station} after {after}, but only {head} are booked: a gap")]
    UplinkGap {
        station: domain::StationId,
        head: u64,
        after: u64,
    },
}

/// The consent record kept with every subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// When the passenger gave consent (from the app).
    pub time: DateTime<Utc>,
    /// The privacy policy version they agreed to.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub policy_version: String,
}

impl Consent {
    /// Consent given now to `policy_version`.
    pub fn now(policy_version: impl Into<String>) -> Self {
        Self {
            time: Utc::now(),
            policy_version: policy_version.into(),
        }
    }
}

/// A subject's row (no biometric data; the template is in its own table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRecord {
    pub consent: Consent,
    pub enrolled_at: DateTime<Utc>,
    /// The face model version the template was made with (authenticated in the sealed blob).
    pub template_version: u32,
    /// How many photos made the template.
    pub photos: u8,
    /// The payment account post-pay fares are charged to (`PUT /subjects/{id}/account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<PaymentAccount>,
}

impl SubjectRecord {
    /// A subject enrolled now.
    pub fn enrolled_now(consent: Consent, template_version: u32, photos: u8) -> Self {
        Self {
            consent,
            enrolled_at: Utc::now(),
            template_version,
            photos,
            account: None,
        }
    }
}

/// What a change means for the stations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new (or replaced) template and data key.
    Upsert = 1,
    /// The subject was erased: drop everything.
    Erase = 2,
    /// The subject's tickets or payment account changed.
    Tickets = 3,
    /// A booked passage changed the subject's open trip (`ledger`).
    Trip = 4,
}

impl ChangeKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Upsert),
            2 => Some(Self::Erase),
            3 => Some(Self::Tickets),
            4 => Some(Self::Trip),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Change {
    pub seq: u64,
    pub subject: SubjectId,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Enrol,
    Link,
    Unlink,
    Erase,
    KeyRotation,
    /// A station reported a single ride spent (`actor`: the station).
    Spend,
    /// A payment account was linked, replaced or unlinked.
    Account,
}

/// One audit line: who/what/when, never biometric data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub kind: AuditKind,
    pub subject: Option<SubjectId>,
    /// The authenticated client (bearer token name), or the command.
    pub actor: String,
    pub detail: String,
}

pub struct Store {
    db: Db,
}

impl OnDb for Store {
    type Error = StoreError;

    fn layer(&self) -> &Db {
        &self.db
    }
}

impl Store {
    /// Opens (or creates) the store; a file of another schema version is refused untouched.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (db, _) = Db::open(path, SCHEMA, |tx, opened| {
            if opened == Opened::Created {
                let mut meta = tx.open_table(META)?;
                meta.insert(MASTER_KEY_ID, 1)?;
                meta.insert(NEXT_TICKET, 1)?;
                meta.insert(NEXT_TRIP, 1)?;
            }
            for t in [SUBJECTS, TEMPLATES, DATA_KEYS, OPEN_TRIPS] {
                tx.open_table(t)?;
            }
            tx.open_table(TICKETS)?;
            tx.open_table(TRIPS)?;
            tx.open_table(CHANGES)?;
            tx.open_table(AUDIT)?;
            tx.open_table(ledger::LEDGER)?;
            tx.open_table(ledger::UPLINK_HEADS)?;
            tx.open_table(ledger::UPLINK_STORES)?;
            tx.open_table(ledger::TRIP_AS_OF)?;
            tx.open_table(postpay::CHARGES)?;
            Ok(())
        })?;
        Ok(Self { db })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// The JSON row of subject `id` in a subject-keyed table (`name` in the error when it does not
    /// decode), if there is one.
    pub(crate) fn subject_row<T: serde::de::DeserializeOwned>(
        &self,
        table: &impl redb::ReadableTable<Sid, &'static [u8]>,
        name: &'static str,
        id: &SubjectId,
    ) -> Result<Option<T>, StoreError> {
        match table.get(id.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(name, id, e))?,
            )),
            None => Ok(None),
        }
    }

    pub(crate) fn db(&self) -> Result<std::sync::RwLockReadGuard<'_, redb::Database>, StoreError> {
        Ok(self.db.db()?)
    }

    /// Rewrites the file without the rows erased since (`domain::store::Db::purge`): after it, no
    /// byte of an erased subject's sealed template or key wrap, nor of a replaced wrap, is in the file.
    pub fn purge(&self) -> Result<(), StoreError> {
        Ok(self.db.purge(|r, w| {
            for t in [SUBJECTS, TEMPLATES, DATA_KEYS, OPEN_TRIPS] {
                copy_table(r, w, t)?;
            }
            copy_table(r, w, TICKETS)?;
            copy_table(r, w, TRIPS)?;
            copy_table(r, w, CHANGES)?;
            copy_table(r, w, ledger::LEDGER)?;
            copy_table(r, w, ledger::UPLINK_HEADS)?;
            copy_table(r, w, ledger::UPLINK_STORES)?;
            copy_table(r, w, ledger::TRIP_AS_OF)?;
            copy_table(r, w, postpay::CHARGES)?;
            copy_table(r, w, AUDIT)
        })?)
    }

    pub fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.db.meta(key)?)
    }

    /// The id of the master key every data key is wrapped under.
    pub fn master_key_id(&self) -> Result<u32, StoreError> {
        let id = self.meta(MASTER_KEY_ID)?.unwrap_or(1);
        u32::try_from(id).map_err(|_| self.corrupt("meta", MASTER_KEY_ID, "out of range"))
    }

    /// Changes with sequence ≥ `from`, oldest first, at most `limit`.
    pub fn changes(&self, from: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.range(from..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (sid, kind) = v.value();
            let kind = ChangeKind::from_u8(kind)
                .ok_or_else(|| self.corrupt("changes", k.value(), "unknown kind"))?;
            out.push(Change {
                seq: k.value(),
                subject: SubjectId::from_bytes(sid),
                kind,
            });
        }
        Ok(out)
    }

    /// Audit events with sequence ≥ `from`, oldest first, at most `limit`.
    pub fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
        let db = self.db()?;
        let tx = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.err(e))?;
        let t = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.range(from..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let e = serde_json::from_slice(v.value())
                .map_err(|e| self.corrupt("audit", k.value(), e))?;
            out.push((k.value(), e));
        }
        Ok(out)
    }
}
