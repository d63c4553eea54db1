//! Station side of the template distribution (issue 4, part 4): verifies the centre's signed
//! changes, applies them in order to the station store (one redb transaction per batch) and to the
//! in-memory [`Gallery`]. Wire format: `docs/protocol.md`; tables: `docs/store.md`.
//!
//! A change is applied only if its signature verifies under the pinned centre key, it names this
//! station, its version is known and its `seq` is exactly the last applied + 1. Anything older is a
//! replay (a no-op); anything newer is a gap, refused and answered with a catch-up query.

pub(crate) mod gallery;
mod net;
mod uplink;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::StationId;
use domain::changes::{CentreVerifyingKey, ChangeError, SignedChange, VerifiedOp};
use domain::seal::{
    self, CentrePublicKey, KeyId, StationSecretKey, open_from_centre, open_template,
};
use domain::tickets::Wallet;
use metrics::{counter, gauge};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

pub use gallery::{Gallery, GalleryData};
pub use net::{CatchUpError, Drained, SyncHandle, catch_up, spawn};
pub use uplink::UplinkServeError;

use crate::store::{RowOp, Store, StoreError, TemplateRow};
use gallery::GalleryChange;

/// `[sync]` in the station file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The station's X25519 secret key file (0600), `gated keys init`.
    pub station_key_file: PathBuf,
    /// Its key id, as registered at the centre.
    #[serde(default = "one")]
    pub station_key_id: u32,
    /// The centre's Ed25519 public key (64 hex digits): every change must be signed by it.
    pub centre_ed25519: String,
    /// The centre's X25519 public key (64 hex digits): authenticates the data key wraps.
    pub centre_x25519: String,
    /// zenoh endpoints of the centre, dialled in addition to `[zenoh] connect`.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Changes asked for per catch-up query (1..=1000).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// A catch-up query runs at least this often even when nothing seems missing.
    #[serde(default = "default_poll_s")]
    pub poll_s: u64,
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// On an orderly stop (SIGTERM, the end of recorded footage), how long gated waits for the
    /// centre to book its last passages, so the network learns of them now and not at its next
    /// start. 0: do not wait.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
}

fn one() -> u32 {
    1
}
fn default_batch() -> usize {
    500
}
fn default_poll_s() -> u64 {
    30
}
fn default_query_timeout_ms() -> u64 {
    10_000
}
fn default_drain_ms() -> u64 {
    3_000
}

/// The keys a station needs: its own secret, the centre's two public keys.
pub struct StationKeys {
    pub station: StationId,
    pub secret: StationSecretKey,
    pub centre_x25519: CentrePublicKey,
    pub centre_ed25519: CentreVerifyingKey,
}

impl StationKeys {
    pub fn load(station: &str, cfg: &SyncConfig) -> Result<Self, StationSyncError> {
        let station = StationId::new(station)?;
        let secret = StationSecretKey::load_file(KeyId(cfg.station_key_id), &cfg.station_key_file)
            .map_err(StationSyncError::KeyFile)?;
        Ok(Self {
            station,
            secret,
            centre_x25519: CentrePublicKey(domain::changes::public_from_hex(&cfg.centre_x25519)?),
            centre_ed25519: CentreVerifyingKey::from_hex(&cfg.centre_ed25519)?,
        })
    }
}

/// A verified change waiting for its batch's store write.
enum Pending {
    Upsert(Box<TemplateRow>),
    Trip(Option<domain::tickets::CentreTrip>),
    Erase,
}

/// What became of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the new last sequence.
    Applied(u64),
    /// Already applied before (replay or duplicate): nothing changed.
    Replay,
    /// Newer than the next expected one: refused, a catch-up is due.
    Gap,
    /// Refused for the reason given (logged and counted).
    Refused(&'static str),
}

/// Per-reason counters (also exported as `gate_sync_refused_total{reason}`).
#[derive(Debug, Default)]
pub struct SyncStats {
    pub applied: AtomicU64,
    pub replay: AtomicU64,
    pub gap: AtomicU64,
    pub signature: AtomicU64,
    pub version: AtomicU64,
    pub station: AtomicU64,
    pub malformed: AtomicU64,
    pub open: AtomicU64,
}

impl SyncStats {
    /// The reasons a refusal is counted under (docs/metrics.md), created at 0 on start.
    const REASONS: [&'static str; 7] = [
        "replay",
        "gap",
        "signature",
        "version",
        "station",
        "open",
        "malformed",
    ];

    fn count(&self, reason: &'static str) {
        let c = match reason {
            "replay" => &self.replay,
            "gap" => &self.gap,
            "signature" => &self.signature,
            "version" => &self.version,
            "station" => &self.station,
            "open" => &self.open,
            _ => &self.malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
        counter!(crate::telemetry::names::SYNC_REFUSED, "reason" => reason).increment(1);
    }

    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Applies the centre's changes to one station's store and gallery.
pub struct Syncer {
    keys: StationKeys,
    store: Arc<Store>,
    gallery: Gallery,
    pub stats: SyncStats,
    /// Serialises appliers (the live subscriber and catch-up run in one task, tests may call directly).
    apply_lock: Mutex<()>,
    /// The newest sequence number the centre is known to have for this station.
    head: AtomicU64,
    /// Authenticates the passages reported to the centre (`uplink`).
    uplink: seal::UplinkKey,
    /// The last passage the centre's ledger has booked, as its queries say (`after`). Only a
    /// progress report: nothing is decided on it but how long an orderly stop waits.
    booked: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StationSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("station id: {0}")]
    Id(#[from] domain::IdError),
    #[error("station key file: {0}")]
    KeyFile(#[source] seal::SealError),
    #[error("centre key: {0}")]
    CentreKey(#[from] ChangeError),
    #[error("uplink key from the station and centre X25519 keys: {0}")]
    Uplink(#[source] seal::SealError),
    #[error("stored template of subject {subject} does not open: {source}")]
    Open {
        subject: domain::SubjectId,
        source: seal::SealError,
    },
}

impl Syncer {
    /// Opens every stored template into a new gallery.
    pub fn load(keys: StationKeys, store: Arc<Store>) -> Result<Self, StationSyncError> {
        let gallery = Gallery::new();
        let last = store.sync_last_seq()?;
        let mut changes = Vec::new();
        for (subject, row) in store.sync_rows()? {
            let t = open_row(&keys, &subject, &row)
                .map_err(|source| StationSyncError::Open { subject, source })?;
            let wallet = Wallet {
                tickets: row.tickets,
                postpay: row.postpay,
            };
            changes.push(GalleryChange::Upsert(subject, Box::new(t), wallet));
            changes.push(GalleryChange::Trip(subject, row.trip));
        }
        gallery.update(last, changes);
        gauge!(crate::telemetry::names::GALLERY_SUBJECTS).set(gallery.len() as f64);
        // From the start, not only after the next change: the lag is head minus this.
        gauge!(crate::telemetry::names::SYNC_LAST_SEQ).set(last as f64);
        // At 0, so an alert on increase() sees the first refusal too.
        for reason in SyncStats::REASONS {
            counter!(crate::telemetry::names::SYNC_REFUSED, "reason" => reason).increment(0);
        }
        info!(
            subjects = gallery.len(),
            last_seq = last,
            "gallery loaded from the store"
        );
        let uplink = seal::UplinkKey::for_station(&keys.secret, &keys.station, &keys.centre_x25519)
            .map_err(StationSyncError::Uplink)?;
        Ok(Self {
            keys,
            store,
            gallery,
            stats: SyncStats::default(),
            apply_lock: Mutex::new(()),
            head: AtomicU64::new(last),
            uplink,
            booked: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The centre has at least `seq` for this station (a catch-up answer's head, a verified
    /// change): exported so the station's lag behind the centre can be watched.
    pub fn heard_of(&self, seq: u64) {
        let before = self.head.fetch_max(seq, Ordering::Relaxed);
        gauge!(crate::telemetry::names::SYNC_CENTRE_HEAD).set(before.max(seq) as f64);
    }

    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    pub fn station(&self) -> &StationId {
        &self.keys.station
    }

    /// The station store this syncer writes templates to and reports passages from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.store.sync_last_seq()
    }

    /// Verifies and applies one live payload.
    pub fn apply_payload(&self, payload: &[u8]) -> Outcome {
        match SignedChange::decode(payload) {
            Ok(c) => self.apply_signed(vec![c]),
            Err(e) => self.refuse(None, &e),
        }
    }

    /// Verifies `changes` (in order) and applies the ones that follow the last applied, in one
    /// transaction. Stops at the first refused one; what came before it is still applied.
    pub fn apply_signed(&self, changes: Vec<SignedChange>) -> Outcome {
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        let last = match self.store.sync_last_seq() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read last_seq");
                return Outcome::Refused("store");
            }
        };
        let mut next = last + 1;
        let mut rows: Vec<(domain::SubjectId, Pending)> = Vec::new();
        let mut gallery = Vec::new();
        let mut outcome = Outcome::Replay;
        for c in changes {
            let v = match c.verify(&self.keys.centre_ed25519, &self.keys.station) {
                Ok(v) => v,
                Err(e) => {
                    outcome = self.refuse(None, &e);
                    break;
                }
            };
            self.heard_of(v.seq);
            if v.seq < next {
                debug!(seq = v.seq, last = next - 1, "replayed change ignored");
                self.stats.count("replay");
                continue;
            }
            if v.seq > next {
                warn!(
                    seq = v.seq,
                    expected = next,
                    "change refused: sequence gap; catching up"
                );
                self.stats.count("gap");
                outcome = Outcome::Gap;
                break;
            }
            match v.op {
                VerifiedOp::Erase { subject } => {
                    rows.push((subject, Pending::Erase));
                    gallery.push(GalleryChange::Remove(subject));
                }
                VerifiedOp::Trip { subject, trip } => {
                    gallery.push(GalleryChange::Trip(subject, trip.clone()));
                    rows.push((subject, Pending::Trip(trip)));
                }
                VerifiedOp::Upsert {
                    subject,
                    template_version,
                    sealed,
                    wrapped,
                    tickets,
                    trip,
                    postpay,
                } => {
                    let row = TemplateRow {
                        template_version,
                        sealed,
                        wrapped,
                        tickets,
                        trip,
                        postpay,
                    };
                    match open_row(&self.keys, &subject, &row) {
                        Ok(t) => {
                            let wallet = Wallet {
                                tickets: row.tickets.clone(),
                                postpay: row.postpay,
                            };
                            gallery.push(GalleryChange::Upsert(subject, Box::new(t), wallet));
                            gallery.push(GalleryChange::Trip(subject, row.trip.clone()));
                            rows.push((subject, Pending::Upsert(Box::new(row))));
                        }
                        Err(e) => {
                            warn!(seq = v.seq, %subject, error = %e, "change refused: template does not open with this station's key");
                            self.stats.count("open");
                            outcome = Outcome::Refused("open");
                            break;
                        }
                    }
                }
            }
            next += 1;
        }
        if rows.is_empty() {
            return outcome;
        }
        let erased = rows.iter().any(|(_, r)| matches!(r, Pending::Erase));
        let ops: Vec<RowOp<'_>> = rows
            .iter()
            .map(|(id, r)| match r {
                Pending::Upsert(r) => RowOp::Upsert(*id, r),
                Pending::Trip(t) => RowOp::Trip(*id, t.as_ref()),
                Pending::Erase => RowOp::Erase(*id),
            })
            .collect();
        let new_last = match self.store.sync_apply(last + 1, &ops) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "changes not applied: store write failed");
                return Outcome::Refused("store");
            }
        };
        self.gallery.update(new_last, gallery);
        let n = rows.len() as u64;
        self.stats.applied.fetch_add(n, Ordering::Relaxed);
        counter!(crate::telemetry::names::SYNC_APPLIED).increment(n);
        gauge!(crate::telemetry::names::SYNC_LAST_SEQ).set(new_last as f64);
        gauge!(crate::telemetry::names::GALLERY_SUBJECTS).set(self.gallery.len() as f64);
        debug!(applied = n, last_seq = new_last, "changes applied");
        if erased {
            // The erased rows' pages are free but still hold the sealed template and the wrap until
            // overwritten: the store is rewritten without them.
            let t0 = std::time::Instant::now();
            match self.store.purge_rewrite() {
                Ok(()) => debug!(
                    ms = t0.elapsed().as_millis() as u64,
                    "store rewritten after erasure"
                ),
                Err(e) => {
                    warn!(error = %e, "store rewrite after erasure failed; freed pages may keep old copies")
                }
            }
        }
        match outcome {
            Outcome::Replay => Outcome::Applied(new_last),
            other => other,
        }
    }

    fn refuse(&self, seq: Option<u64>, e: &ChangeError) -> Outcome {
        let reason = e.reason();
        warn!(?seq, reason, error = %e, "change refused");
        self.stats.count(reason);
        Outcome::Refused(reason)
    }
}

fn open_row(
    keys: &StationKeys,
    subject: &domain::SubjectId,
    row: &TemplateRow,
) -> Result<Zeroizing<seal::Template>, seal::SealError> {
    let key = open_from_centre(
        &keys.secret,
        &keys.station,
        &keys.centre_x25519,
        subject,
        &row.wrapped,
    )?;
    open_template(&key, subject, row.template_version, &row.sealed)
}
