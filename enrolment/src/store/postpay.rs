//! Post-pay (issue 17 item 5): a subject's payment account, and the fares the ledger charges to it.
//!
//! A station charges only what the ticket rules allow (a pass's extension fare, `domain::tickets`)
//! and only when the centre told it that the subject has an account (`Upsert::postpay`: the fact,
//! never the reference). The centre books each charge once, with the passage that made it, in a
//! gap-free sequence the payment processor collects from where it stopped (`GET /charges`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use redb::{ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::ops::next_seq;
use super::{AuditEvent, AuditKind, ChangeKind, SUBJECTS, Store, StoreError, SubjectRecord};
use domain::store::OnDb;
use domain::tickets::{Amount, Direction};
use domain::uplink::Passage;
use domain::{StationId, SubjectId};

/// charge sequence (gap-free from 1) → JSON [`Charge`].
pub(crate) const CHARGES: TableDefinition<u64, &[u8]> = TableDefinition::new("charges");

/// The payment processor's reference for an account: an opaque token it issued, never a card number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$")]
pub struct AccountRef(String);

impl TryFrom<String> for AccountRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !ok {
            return Err("an account reference is 1 to 128 of A-Z a-z 0-9 . _ : -".into());
        }
        // 12 to 19 digits alone is what a card number (PAN) looks like: the centre keeps the
        // processor's token, never the number itself.
        if (12..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "an account reference must be the processor's token, not a card number".into(),
            );
        }
        Ok(Self(s))
    }
}

impl From<AccountRef> for String {
    fn from(r: AccountRef) -> Self {
        r.0
    }
}

impl AccountRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subject's payment account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAccount {
    pub reference: AccountRef,
    pub linked_at: DateTime<Utc>,
}

/// One fare charged to an account: what the payment processor collects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    pub subject: SubjectId,
    /// The account charged. `None` when the subject had no account when the passage was booked
    /// (unlinked or erased after the station decided): flagged `charge_without_account` on the
    /// ledger row, for review.
    pub account: Option<AccountRef>,
    /// The exit's station and its passage sequence there (the ledger row).
    #[schema(value_type = String)]
    pub station: StationId,
    pub passage: u64,
    #[schema(value_type = u32)]
    pub amount: Amount,
    /// The exit's local time and service day.
    #[schema(value_type = String, format = DateTime)]
    pub at: NaiveDateTime,
    #[schema(value_type = String, format = Date)]
    pub service_day: NaiveDate,
}

/// What [`Store::set_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    Linked,
    Replaced,
    Unlinked,
    /// Asked to unlink an account that was not there, or to link the one already linked.
    Unchanged,
}

impl Store {
    /// Links (`Some`), replaces or unlinks (`None`) the subject's payment account, with its audit
    /// event, in one transaction. The stations learn only whether there is an account, so a change
    /// for them is logged when that turns, not when a reference is replaced.
    pub fn set_account(
        &self,
        id: &SubjectId,
        reference: Option<AccountRef>,
        actor: &str,
    ) -> Result<AccountChange, StoreError> {
        self.db.write(|tx| {
            let mut s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
            let mut record: SubjectRecord = self
                .subject_row(&s, "subjects", id)?
                .ok_or(StoreError::NoSubject(*id))?;
            let before = record.account.as_ref().map(|a| a.reference.clone());
            let change = match (&before, &reference) {
                (None, None) => AccountChange::Unchanged,
                (Some(a), Some(b)) if a == b => AccountChange::Unchanged,
                (None, Some(_)) => AccountChange::Linked,
                (Some(_), Some(_)) => AccountChange::Replaced,
                (Some(_), None) => AccountChange::Unlinked,
            };
            if change == AccountChange::Unchanged {
                return Ok(change);
            }
            record.account = reference.map(|reference| PaymentAccount {
                reference,
                linked_at: Utc::now(),
            });
            let bytes = serde_json::to_vec(&record).map_err(|e| self.corrupt("subjects", id, e))?;
            s.insert(id.as_bytes(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
            drop(s);
            let event = AuditEvent {
                at: Utc::now(),
                kind: AuditKind::Account,
                subject: Some(*id),
                actor: actor.into(),
                // Never the reference: the audit log is read more widely than the subject's row.
                detail: format!("payment account {change:?}").to_lowercase(),
            };
            let for_stations =
                (change != AccountChange::Replaced).then_some((*id, ChangeKind::Tickets));
            self.log(tx, for_stations, &event)?;
            Ok(change)
        })
    }

    /// Books the post-pay charge of an exit that charged one, inside the ledger's transaction.
    /// Returns `true` when it could not go to an account (the subject has none any more).
    pub(super) fn charge(
        &self,
        tx: &WriteTransaction,
        station: &StationId,
        seq: u64,
        p: &Passage,
    ) -> Result<bool, StoreError> {
        let r = &p.record;
        if r.direction != Direction::Exit || r.charged == 0 {
            return Ok(false);
        }
        let record: Option<SubjectRecord> = {
            let s = tx.open_table(SUBJECTS).map_err(|e| self.err(e))?;
            self.subject_row(&s, "subjects", &p.subject)?
        };
        let account = record.and_then(|r| r.account).map(|a| a.reference);
        let missing = account.is_none();
        let charge = Charge {
            subject: p.subject,
            account,
            station: station.clone(),
            passage: seq,
            amount: r.charged,
            at: r.at,
            service_day: r.service_day,
        };
        let mut t = tx.open_table(CHARGES).map_err(|e| self.err(e))?;
        let n = next_seq(&t).map_err(|e| self.err(e))?;
        let bytes = serde_json::to_vec(&charge).map_err(|e| self.corrupt("charges", n, e))?;
        t.insert(n, bytes.as_slice()).map_err(|e| self.err(e))?;
        Ok(missing)
    }

    /// Charges with sequence ≥ `from`, oldest first, at most `limit`.
    pub fn charges(&self, from: u64, limit: usize) -> Result<Vec<(u64, Charge)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(CHARGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.range(from..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let c = serde_json::from_slice(v.value())
                .map_err(|e| self.corrupt("charges", k.value(), e))?;
            out.push((k.value(), c));
        }
        Ok(out)
    }
}
