//! The station's local store (redb, on the shared layer `domain::store`): a schema-version table, an
//! append-only journal of door commands and lane events ([`journal`]), the templates distributed
//! by the centre ([`templates`], written by `crate::sync`), and the fare state: open trips, spent
//! single rides and passage records ([`trips`], written by the deciders before a door opens). No image or frame ever reaches this module:
//! journal entries are typed records with short text fields; templates arrive sealed. Format:
//! `docs/store.md`.

mod journal;
mod templates;
#[cfg(test)]
mod tests;
mod trips;

use std::path::Path;

use domain::store::{Db, DbError, META, OnDb, Opened, Schema, copy_table};
use redb::ReadableTable;
use tracing::info;

pub use journal::{JournalEntry, JournalKind, JournalWriter, query_journal_file};
pub use templates::{LAST_SEQ, RowOp, TemplateRow};
pub use trips::{FareState, Passage};

/// 2 added the template tables (`sync_templates`, `meta.sync_last_seq`); 3 the fare state (`trips`,
/// `spent_rides`, `passages`); 4 the centre's view of each subject's trip (`centre_trips`) and each
/// subject's last passage here (`last_here`); 5 the subjects with a payment account (`postpay`).
/// Older files are migrated in place (the new tables are created, nothing else is touched).
pub const SCHEMA_VERSION: u64 = 5;
const SCHEMA: Schema = Schema {
    version: SCHEMA_VERSION,
    upgrades_from: &[1, 2, 3, 4],
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening, reading or writing the file, or a row that does not decode.
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("store {}: no randomness for the store's identity", path.display())]
    Identity {
        path: std::path::PathBuf,
        #[source]
        source: getrandom::Error,
    },
    #[error("store {path}: change {first} does not follow the stored {stored}")]
    OutOfOrder {
        path: std::path::PathBuf,
        first: u64,
        stored: u64,
    },
}

/// Shared between the journal thread and the template sync (`Arc<Store>`); the file is swapped only by
/// [`Store::purge_rewrite`].
pub struct Store {
    db: Db,
    /// The last passage sequence committed (`trips`), for the uplink to tell the centre at once.
    passage_head: tokio::sync::watch::Sender<u64>,
    /// `meta.store_id`: drawn when the file is made (or first opened by a gated that knows it), so
    /// the centre can tell this file's passages from those of a file it replaced.
    id: u64,
}

impl OnDb for Store {
    type Error = StoreError;

    fn layer(&self) -> &Db {
        &self.db
    }
}

impl Store {
    /// Opens (or creates) the station's file; a version-1 file is upgraded in place, any other
    /// version refused untouched.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (db, opened) = Db::open(path, SCHEMA, |tx, _| {
            tx.open_table(journal::JOURNAL)?;
            tx.open_table(templates::TEMPLATES)?;
            tx.open_table(templates::CENTRE_TRIPS)?;
            tx.open_table(templates::POSTPAY)?;
            tx.open_table(trips::TRIPS)?;
            tx.open_table(trips::SPENT)?;
            tx.open_table(trips::PASSAGES)?;
            tx.open_table(trips::LAST_HERE)?;
            Ok(())
        })?;
        if let Opened::Upgraded { from } = opened {
            info!(path = %path.display(), from, to = SCHEMA_VERSION, "store migrated");
        }
        let id = identity(&db, path)?;
        let store = Self {
            db,
            passage_head: tokio::sync::watch::Sender::new(0),
            id,
        };
        store.passage_head.send_replace(store.passage_count()?);
        Ok(store)
    }

    /// This file's identity (`meta.store_id`), sent with its passages to the centre.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Rewrites every table into a fresh file that then replaces this one
    /// (`domain::store::Db::purge`), so that no freed page of the old file (an erased template, its
    /// wrap) survives in the store file. Blocks every other transaction while it runs (O(file size)).
    pub fn purge_rewrite(&self) -> Result<(), StoreError> {
        Ok(self.db.purge(|r, w| {
            copy_table(r, w, journal::JOURNAL)?;
            copy_table(r, w, templates::TEMPLATES)?;
            copy_table(r, w, templates::CENTRE_TRIPS)?;
            copy_table(r, w, templates::POSTPAY)?;
            copy_table(r, w, trips::TRIPS)?;
            copy_table(r, w, trips::SPENT)?;
            copy_table(r, w, trips::PASSAGES)?;
            copy_table(r, w, trips::LAST_HERE)
        })?)
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        Ok(self.db.schema_version()?)
    }

    /// Counts one more lost GPU device in `meta.gpu_losses` and returns the count. gated exits
    /// right after a loss, so the gauge saying so may never be scraped; the count outlives the
    /// process and the next run exports it (`gate_gpu_losses_total`).
    pub fn count_gpu_loss(&self) -> Result<u64, StoreError> {
        self.db.write(|tx| {
            let mut m = tx.open_table(META).map_err(|e| self.err(e))?;
            let n = m
                .get(GPU_LOSSES)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value())
                .saturating_add(1);
            m.insert(GPU_LOSSES, n).map_err(|e| self.err(e))?;
            Ok(n)
        })
    }

    /// GPU devices lost over every run of this station.
    pub fn gpu_losses(&self) -> Result<u64, StoreError> {
        Ok(self.db.meta(GPU_LOSSES)?.unwrap_or(0))
    }
}

/// The `meta` key of [`Store::count_gpu_loss`].
const GPU_LOSSES: &str = "gpu_losses";
/// The `meta` key of [`Store::id`].
const STORE_ID: &str = "store_id";

/// The file's identity, made and kept on its first open without one. A file that already holds
/// passages (from before identities, or a backup of such a file) takes one derived from its first
/// passage, so every copy of it, whenever first opened, has the same identity and the centre never
/// takes a restored copy for a new file (whose passages it would book again). An empty file draws
/// a random one.
fn identity(db: &Db, path: &Path) -> Result<u64, StoreError> {
    use sha2::Digest;
    if let Some(id) = db.meta(STORE_ID)? {
        return Ok(id);
    }
    let first: Option<Vec<u8>> = db.read(|tx| {
        let t = tx.open_table(trips::PASSAGES).map_err(|e| db.err(e))?;
        Ok::<_, StoreError>(t.get(1).map_err(|e| db.err(e))?.map(|v| v.value().to_vec()))
    })?;
    let drawn = match first {
        Some(row) => {
            let h = sha2::Sha256::new()
                .chain_update(b"gate-station-store-id\0")
                .chain_update(&row)
                .finalize();
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[..8]);
            u64::from_le_bytes(b)
        }
        None => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|source| StoreError::Identity {
                path: path.to_owned(),
                source,
            })?;
            u64::from_le_bytes(b)
        }
    };
    db.write(|tx| {
        let mut m = tx.open_table(META).map_err(|e| db.err(e))?;
        let kept = m.get(STORE_ID).map_err(|e| db.err(e))?.map(|v| v.value());
        if let Some(id) = kept {
            return Ok(id);
        }
        m.insert(STORE_ID, drawn).map_err(|e| db.err(e))?;
        Ok(drawn)
    })
}

/// The key after a sequence-keyed table's last (1 for an empty table): the journal's and the
/// passages' numbering.
fn next_key<T: redb::ReadableTable<u64, V>, V: redb::Value + 'static>(
    t: &T,
) -> Result<u64, redb::Error> {
    Ok(t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1))
}

/// JSON of a row value that always serialises (plain data, string keys).
fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
