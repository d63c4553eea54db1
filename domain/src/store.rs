//! The redb layer under both stores: the centre's (`enrolment::store`) and a station's
//! (`pipeline::store`). Each store defines its own tables and transactions; this module owns what they
//! share: opening a file with a schema version (refusing other versions untouched, upgrading the listed
//! older ones in place), the `meta` table, read and write transactions with errors that name the file,
//! and [`Db::purge`], which rewrites the file after an erasure so that no copy of an erased row
//! survives in it. Formats: `docs/store.md` (station), `docs/enrolment.md` (centre).
//!
//! Why a rewrite rather than redb's `compact`: `compact` moves live pages into free space and
//! truncates the file, but redb does not promise to overwrite freed pages, so whether an erased
//! template's bytes survive it depends on the page layout. The raw-file scans in both stores' tests
//! (`enrolment::store` tests, `pipeline/tests/sync.rs`) check the outcome; the rewrite makes it hold
//! by construction: the fresh file only ever receives live rows.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{
    Database, Key, MultimapTableHandle, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableHandle, Value, WriteTransaction,
};

/// `meta`: the schema version and each store's counters.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The key of the schema version in [`META`].
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// redb's page cache per open file. redb's default is 1 GiB, which a station's journal fills over
/// weeks of decisions: the process's memory then grows for a month before it levels off. The working
/// set is small (a gallery is held in memory by `sync::Gallery`, tickets and open trips are a few
/// pages per lookup) and misses fall to the kernel's page cache, so a bounded cache costs little.
pub const CACHE_BYTES: usize = 32 << 20;

/// Failures of the layer, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("store {path}: {source}")]
    Redb {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error(
        "store {path} has schema version {found}, this build reads version {want}; refusing to touch it"
    )]
    Schema {
        path: PathBuf,
        found: u64,
        want: u64,
    },
    #[error("store {path}: table {table}, row {key}: {source}")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store {path}: lock poisoned by a panicked thread")]
    Poisoned { path: PathBuf },
    #[error("store {path}: purge would drop table {table}, which the store did not copy")]
    PurgeIncomplete { path: PathBuf, table: String },
}

/// A store's schema: the version it writes and the older versions it upgrades in place.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub version: u64,
    /// Versions whose files are upgraded by creating the newer tables (the setup does that) and
    /// writing the new version; anything else that is not `version` is refused.
    pub upgrades_from: &'static [u64],
}

/// What [`Db::open`] found, for the store's setup and its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new file: the setup writes its initial `meta` rows.
    Created,
    /// Upgraded in place from this version.
    Upgraded {
        from: u64,
    },
    Current,
}

/// One redb file. The lock is taken for writing only by [`Db::purge`], which swaps the database.
pub struct Db {
    db: RwLock<Database>,
    path: PathBuf,
}

impl Db {
    /// Opens (or creates) the file, checks its schema version and runs `setup` in the same write
    /// transaction (create every table, write initial rows when [`Opened::Created`]). A file of a
    /// version neither current nor in `upgrades_from` is refused untouched.
    pub fn open(
        path: &Path,
        schema: Schema,
        setup: impl FnOnce(&WriteTransaction, Opened) -> Result<(), redb::Error>,
    ) -> Result<(Self, Opened), DbError> {
        let p = path.to_path_buf();
        let err = |e: redb::Error| DbError::Redb {
            path: p.clone(),
            source: Box::new(e),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(redb::Error::Io(e)))?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| err(e.into()))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        let opened = {
            let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get(SCHEMA_VERSION_KEY)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            let opened = match found {
                None => Opened::Created,
                Some(v) if v == schema.version => Opened::Current,
                Some(v) if schema.upgrades_from.contains(&v) => Opened::Upgraded { from: v },
                Some(v) => {
                    return Err(DbError::Schema {
                        path: p,
                        found: v,
                        want: schema.version,
                    });
                }
            };
            if opened != Opened::Current {
                meta.insert(SCHEMA_VERSION_KEY, schema.version)
                    .map_err(|e| err(e.into()))?;
            }
            opened
        };
        setup(&tx, opened).map_err(err)?;
        tx.commit().map_err(|e| err(e.into()))?;
        Ok((
            Self {
                db: RwLock::new(db),
                path: p,
            },
            opened,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one read transaction of the file at `path`, opened read-only (for tools; a
    /// process holding the file open, such as a running gated, keeps it locked, and this fails).
    /// The file must be of `schema.version`.
    pub fn read_file<R, E: From<DbError>>(
        path: &Path,
        schema: Schema,
        f: impl FnOnce(&ReadTransaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let err = |e: redb::Error| DbError::Redb {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let db = redb::ReadOnlyDatabase::open(path).map_err(|e| err(e.into()))?;
        let tx = db.begin_read().map_err(|e| err(e.into()))?;
        let found = {
            let meta = tx.open_table(META).map_err(|e| err(e.into()))?;
            meta.get(SCHEMA_VERSION_KEY)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value())
        };
        if found != Some(schema.version) {
            return Err(DbError::Schema {
                path: path.to_path_buf(),
                found: found.unwrap_or(0),
                want: schema.version,
            }
            .into());
        }
        f(&tx)
    }

    /// A redb failure on this file.
    pub fn err(&self, e: impl Into<redb::Error>) -> DbError {
        DbError::Redb {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// A row that does not decode.
    pub fn corrupt(
        &self,
        table: &'static str,
        key: impl ToString,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> DbError {
        DbError::Corrupt {
            path: self.path.clone(),
            table,
            key: key.to_string(),
            source: source.into(),
        }
    }

    /// The database, shared with other readers and writers (blocked only while a purge runs).
    pub fn db(&self) -> Result<RwLockReadGuard<'_, Database>, DbError> {
        self.db.read().map_err(|_| DbError::Poisoned {
            path: self.path.clone(),
        })
    }

    /// Runs `f` in one read transaction.
    pub fn read<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let db = self.db()?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        f(&tx)
    }

    /// Runs `f` in one write transaction, committed durably (fsync) before it returns; nothing is
    /// written when `f` fails.
    pub fn write<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let db = self.db()?;
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        let r = f(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<u64>, DbError> {
        self.read(|tx| {
            let t = tx.open_table(META).map_err(|e| self.err(e))?;
            Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value()))
        })
    }

    pub fn schema_version(&self) -> Result<u64, DbError> {
        Ok(self.meta(SCHEMA_VERSION_KEY)?.unwrap_or(0))
    }

    /// Rewrites every table into a fresh file that then atomically replaces this one, so that no freed
    /// page of the old file (an erased template, its key wrap) survives in the store file. `copy`
    /// copies the store's tables (with [`copy_table`]); `meta` is copied here, and the purge is refused
    /// (nothing replaced) when the old file has a table the fresh one lacks. Blocks every other
    /// transaction while it runs (O(file size)).
    pub fn purge(
        &self,
        copy: impl FnOnce(&ReadTransaction, &WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), DbError> {
        let mut db = self.db.write().map_err(|_| DbError::Poisoned {
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
        let fresh = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&tmp)
            .map_err(|e| self.err(e))?;
        let copied = (|| {
            let r = db.begin_read()?;
            let w = fresh.begin_write()?;
            copy_table(&r, &w, META)?;
            copy(&r, &w)?;
            let have: Vec<String> = w.list_tables()?.map(|t| t.name().to_owned()).collect();
            let missing = r
                .list_tables()?
                .map(|t| t.name().to_owned())
                .chain(r.list_multimap_tables()?.map(|t| t.name().to_owned()))
                .find(|n| !have.contains(n));
            if missing.is_none() {
                w.commit()?;
            }
            Ok::<_, redb::Error>(missing)
        })();
        let missing = match copied {
            Ok(m) => m,
            Err(e) => {
                drop(fresh);
                let _ = std::fs::remove_file(&tmp);
                return Err(self.err(e));
            }
        };
        if let Some(table) = missing {
            drop(fresh);
            let _ = std::fs::remove_file(&tmp);
            return Err(DbError::PurgeIncomplete {
                path: self.path.clone(),
                table,
            });
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
}

/// A store built on one [`Db`]: its own error type, and the layer's errors turned into it, so that a
/// store's transactions write `.map_err(|e| self.err(e))` with no per-store scaffolding.
pub trait OnDb {
    type Error: From<DbError>;

    fn layer(&self) -> &Db;

    /// A redb failure on this store's file.
    fn err(&self, e: impl Into<redb::Error>) -> Self::Error {
        self.layer().err(e).into()
    }

    /// A row of `table` that does not decode.
    fn corrupt(
        &self,
        table: &'static str,
        key: impl ToString,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self::Error {
        self.layer().corrupt(table, key, source).into()
    }
}

/// Copies every row of `table` from `r` into `w` (for [`Db::purge`]).
pub fn copy_table<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    w: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error> {
    let src = r.open_table(table)?;
    let mut dst = w.open_table(table)?;
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
    const OTHER: TableDefinition<u64, u64> = TableDefinition::new("other");
    const SCHEMA: Schema = Schema {
        version: 2,
        upgrades_from: &[1],
    };

    fn setup(tx: &WriteTransaction, _: Opened) -> Result<(), redb::Error> {
        tx.open_table(ROWS)?;
        Ok(())
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn versions_are_created_upgraded_or_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/s.redb");
        let (db, o) = Db::open(&path, SCHEMA, setup).unwrap();
        assert_eq!(o, Opened::Created);
        assert_eq!(db.schema_version().unwrap(), 2);
        drop(db);
        assert_eq!(Db::open(&path, SCHEMA, setup).unwrap().1, Opened::Current);
        let older = Schema {
            version: 3,
            upgrades_from: &[2],
        };
        let (db, o) = Db::open(&path, older, setup).unwrap();
        assert_eq!(o, Opened::Upgraded { from: 2 });
        assert_eq!(db.schema_version().unwrap(), 3);
        drop(db);
        let e = Db::open(&path, SCHEMA, setup).err().unwrap();
        assert!(e.to_string().contains("schema version 3"), "{e}");
        let db = Db::open(&path, older, setup).unwrap().0;
        assert_eq!(db.schema_version().unwrap(), 3, "refused file untouched");
    }

    #[test]
    fn purge_keeps_live_rows_and_drops_erased_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (db, _) = Db::open(&path, SCHEMA, setup).unwrap();
        let blob = |i: u64| format!("row-{i:08}-").repeat(40).into_bytes();
        db.write(|tx| {
            let mut t = tx.open_table(ROWS).map_err(|e| db.err(e))?;
            for i in 0..200 {
                t.insert(i, blob(i).as_slice()).map_err(|e| db.err(e))?;
            }
            Ok::<_, DbError>(())
        })
        .unwrap();
        db.write(|tx| {
            let mut t = tx.open_table(ROWS).map_err(|e| db.err(e))?;
            t.remove(17).map_err(|e| db.err(e))?;
            Ok::<_, DbError>(())
        })
        .unwrap();
        db.purge(|r, w| copy_table(r, w, ROWS)).unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!contains(&raw, &blob(17)));
        assert!(contains(&raw, &blob(18)));
        let n = db
            .read(|tx| {
                let t = tx.open_table(ROWS).map_err(|e| db.err(e))?;
                t.len().map_err(|e| db.err(e))
            })
            .unwrap();
        assert_eq!(n, 199);
        assert_eq!(db.schema_version().unwrap(), 2, "meta copied");
    }

    #[test]
    fn purge_that_forgets_a_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (db, _) = Db::open(&path, SCHEMA, |tx, _| {
            tx.open_table(ROWS)?;
            tx.open_table(OTHER)?;
            Ok(())
        })
        .unwrap();
        let e = db.purge(|r, w| copy_table(r, w, ROWS)).err().unwrap();
        assert!(matches!(e, DbError::PurgeIncomplete { ref table, .. } if table == "other"));
        assert!(!dir.path().join("s.redb.purge").exists());
        db.purge(|r, w| {
            copy_table(r, w, ROWS)?;
            copy_table(r, w, OTHER)
        })
        .unwrap();
    }
}
