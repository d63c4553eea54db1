//! The centre's side of the passage uplink (issue 17 item 2): asks each registered station for the
//! passages after the last one booked, checks them (`domain::uplink`) and books them in the fare
//! ledger (`store::ledger`). A station's head hint starts a pull at once; every station is also
//! polled every `POLL`, so a lost hint or an outage only delays the ledger. A spent single ride
//! becomes a ticket change that the distribution sends to every station.
//!
//! The station's side is `pipeline::sync::uplink`; wire format in `docs/protocol.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::counter;
use tokio::sync::{Mutex, Notify};
use tracing::{debug, info, warn};

use domain::StationId;
use domain::seal::UplinkKey;
use domain::uplink::{MAX_PASSAGES, SignedPassages, UplinkError};
use protocol::keys::{ALL_PASSAGE_HEADS, Keys, station_of_passage_head};

use crate::distribution::Centre;
use crate::metrics as names;
use crate::store::{Booked, Conflict, Rebase, StoreError};

/// Every station is asked at least this often.
pub const POLL: Duration = Duration::from_secs(5);
/// How long a station has to answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a pull from one station stopped (logged; the next hint or poll tries again).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("zenoh query: {0}")]
    Query(#[source] zenoh::Error),
    #[error("station refused the query: {0}")]
    Refused(String),
    #[error("no answer")]
    NoAnswer,
    #[error("batch refused ({}): {source}", .source.reason())]
    Batch {
        #[source]
        source: UplinkError,
    },
    #[error("batch after {got} does not answer our query (after {want})")]
    Mismatch { got: u64, want: u64 },
    #[error("batch from a store file the station replaced")]
    RetiredStore,
    #[error("the station's store changed more than {MAX_REBASES} times in one pull")]
    Unsettled,
    #[error("sequence numbers overflow in the ledger's numbering")]
    Overflow,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("booking task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Store changes weighed in one pull before it gives up until the next (a new file and a restored
/// one settle in one each).
const MAX_REBASES: usize = 3;

/// How many replies to one query are weighed: any station's gated may answer on a station's key
/// (the access control knows roles, not stations), so the first reply that verifies counts.
const MAX_REPLIES: usize = 8;

/// One registered station: the key its reports are checked with, and its pulls (one at a time, and
/// at most one more waiting, however many hints arrive).
struct Puller {
    key: UplinkKey,
    running: Mutex<()>,
    queued: AtomicBool,
}

/// The ledger's view of the registered stations.
pub struct Ledger {
    centre: Arc<Centre>,
    stations: HashMap<StationId, Puller>,
}

impl Ledger {
    pub fn new(centre: Arc<Centre>) -> Result<Self, domain::seal::SealError> {
        let mut stations = HashMap::new();
        for (id, pk) in &centre.stations {
            let puller = Puller {
                key: UplinkKey::for_centre(&centre.x25519, id, pk)?,
                running: Mutex::new(()),
                queued: AtomicBool::new(false),
            };
            stations.insert(id.clone(), puller);
            counter!(names::LEDGER_PASSAGES, "station" => id.to_string()).increment(0);
        }
        for reason in [
            "malformed",
            "version",
            "mac",
            "station",
            "mismatch",
            "retired_store",
        ] {
            counter!(names::UPLINK_REFUSED, "reason" => reason).increment(0);
        }
        for kind in [Rebase::NEW_STORE, Rebase::BEHIND] {
            counter!(names::UPLINK_STORE_CHANGES, "kind" => kind).increment(0);
        }
        for c in Conflict::ALL {
            counter!(names::LEDGER_CONFLICTS, "kind" => c.name()).increment(0);
        }
        Ok(Self { centre, stations })
    }

    /// Marks a pull of `station` as wanted; false when one is already waiting (or the station is
    /// not registered), so a flood of hints costs nothing.
    fn queue(&self, station: &StationId) -> bool {
        self.stations
            .get(station)
            .is_some_and(|p| !p.queued.swap(true, Ordering::AcqRel))
    }

    /// Asks `station` for everything after the last booked passage until caught up; returns how
    /// many were booked. `changed` is woken when a ride was spent (the distribution has news).
    pub async fn pull(
        &self,
        session: &zenoh::Session,
        station: &StationId,
        changed: &Notify,
    ) -> Result<u64, PullError> {
        let Some(puller) = self.stations.get(station) else {
            return Ok(0);
        };
        let _one = puller.running.lock().await;
        // From here a new hint queues the next pull: what it announces may come after our query.
        puller.queued.store(false, Ordering::Release);
        let selector = match Keys::new(station.as_str()) {
            Ok(k) => k.passages(),
            Err(_) => return Ok(0),
        };
        let mut booked = 0;
        let mut rebased = 0;
        loop {
            let store = self.centre.store.clone();
            let s = station.clone();
            // The ledger's head, in the numbering of the station's current store file.
            let after = tokio::task::spawn_blocking(move || {
                Ok::<_, StoreError>(
                    store
                        .uplink_head(&s)?
                        .saturating_sub(store.uplink_store(&s)?.base),
                )
            })
            .await??;
            let replies = session
                .get(format!("{selector}?after={after};limit={MAX_PASSAGES}"))
                .timeout(QUERY_TIMEOUT)
                .await
                .map_err(PullError::Query)?;
            let batch = first_verified(&replies, &puller.key, station).await?;
            if batch.after != after {
                counter!(names::UPLINK_REFUSED, "reason" => "mismatch").increment(1);
                return Err(PullError::Mismatch {
                    got: batch.after,
                    want: after,
                });
            }
            let store = self.centre.store.clone();
            let (s, id, head) = (station.clone(), batch.store, batch.head);
            let rebase =
                tokio::task::spawn_blocking(move || store.rebase_uplink(&s, id, head, after))
                    .await??;
            let base = match rebase {
                Rebase::Same { base } => base,
                Rebase::Retired => {
                    counter!(names::UPLINK_REFUSED, "reason" => "retired_store").increment(1);
                    return Err(PullError::RetiredStore);
                }
                Rebase::NewStore { base } | Rebase::Behind { base, .. } => {
                    if let Rebase::Behind { missing, .. } = rebase {
                        warn!(%station, missing, base, "station store behind the ledger (restored from a backup?): the passages it lost stay booked, and what it records now is numbered on after them");
                    } else {
                        warn!(%station, base, "station reports from a new store file: its passages are numbered on from the ledger's head");
                    }
                    counter!(names::UPLINK_STORE_CHANGES, "kind" => rebase.name()).increment(1);
                    rebased += 1;
                    if rebased > MAX_REBASES {
                        return Err(PullError::Unsettled);
                    }
                    continue;
                }
            };
            if batch.passages.is_empty() {
                return Ok(booked);
            }
            let batch = batch.rebased(base).ok_or(PullError::Overflow)?;
            let head = batch.head;
            let store = self.centre.store.clone();
            let done: Booked = tokio::task::spawn_blocking(move || store.book(&batch)).await??;
            booked += done.booked;
            counter!(names::LEDGER_PASSAGES, "station" => station.to_string())
                .increment(done.booked);
            counter!(names::LEDGER_CHARGED).increment(done.charged);
            for c in &done.conflicts {
                warn!(%station, conflict = c.name(), "passage flagged for review");
                counter!(names::LEDGER_CONFLICTS, "kind" => c.name()).increment(1);
            }
            if done.changed {
                changed.notify_one();
            }
            debug!(%station, after, booked = done.booked, head, "passages booked");
            if done.head >= head {
                return Ok(booked);
            }
        }
    }
}

/// The first of the replies (at most [`MAX_REPLIES`]) whose batch verifies under `station`'s key;
/// every refused one is counted.
async fn first_verified(
    replies: &zenoh::handlers::FifoChannelHandler<zenoh::query::Reply>,
    key: &UplinkKey,
    station: &StationId,
) -> Result<domain::uplink::PassageBatch, PullError> {
    let mut last = PullError::NoAnswer;
    for _ in 0..MAX_REPLIES {
        let Ok(reply) = replies.recv_async().await else {
            break;
        };
        match reply.result() {
            Ok(sample) => {
                let bytes = sample.payload().to_bytes();
                match SignedPassages::decode(&bytes).and_then(|b| b.open(key, station)) {
                    Ok(batch) => return Ok(batch),
                    Err(source) => {
                        counter!(names::UPLINK_REFUSED, "reason" => source.reason()).increment(1);
                        last = PullError::Batch { source };
                    }
                }
            }
            Err(e) => {
                last = PullError::Refused(String::from_utf8_lossy(&e.payload().to_bytes()).into());
            }
        }
    }
    Err(last)
}

/// Runs the ledger: pulls on each station's head hint and polls every station every [`POLL`].
pub(crate) async fn run(ledger: Arc<Ledger>, session: zenoh::Session, changed: Arc<Notify>) {
    let hints = match session.declare_subscriber(ALL_PASSAGE_HEADS).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no passage-head subscription; the ledger only polls");
            None
        }
    };
    let mut stations: Vec<StationId> = ledger.stations.keys().cloned().collect();
    stations.sort();
    info!(stations = stations.len(), "fare ledger started");
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due: Vec<StationId> = tokio::select! {
            _ = tick.tick() => stations.clone(),
            r = async {
                match &hints {
                    Some(h) => h.recv_async().await.ok(),
                    None => std::future::pending().await,
                }
            } => match r {
                // Nothing in a hint is trusted: it names a station to ask, no more.
                Some(sample) => station_of_passage_head(sample.key_expr().as_str())
                    .and_then(|s| StationId::new(s).ok())
                    .filter(|s| ledger.stations.contains_key(s))
                    .into_iter()
                    .collect(),
                None => break,
            },
        };
        for station in due.into_iter().filter(|s| ledger.queue(s)) {
            let (l, s, c) = (ledger.clone(), session.clone(), changed.clone());
            tokio::spawn(async move {
                match l.pull(&s, &station, &c).await {
                    Ok(0) => {}
                    Ok(n) => debug!(%station, n, "ledger caught up"),
                    // A station that is down is normal: say it quietly.
                    Err(PullError::NoAnswer | PullError::Query(_)) => {
                        debug!(%station, "station did not answer the ledger")
                    }
                    Err(e) => warn!(%station, error = %e, "ledger pull stopped"),
                }
            });
        }
    }
}
