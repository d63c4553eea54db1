//! The zenoh side of the station sync: the live subscriber, the centre's liveliness, the periodic
//! catch-up and the catch-up query itself.

use std::sync::Arc;
use std::time::Duration;

use domain::changes::ChangeBatch;
use metrics::gauge;
use protocol::keys::{CENTRE_ALIVE, CENTRE_CHANGES, centre_templates};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use zenoh::sample::SampleKind;

use super::{Outcome, Syncer};
use crate::store::StoreError;
use crate::telemetry::names;

/// Live changes held while the sync task is busy (older ones are dropped and caught up by query).
const LIVE_RING: usize = 1024;

/// The running sync task; aborted on drop.
pub struct SyncHandle {
    pub syncer: Arc<Syncer>,
    /// Turns true after the first catch-up that reached the centre.
    pub caught_up: watch::Receiver<bool>,
    task: JoinHandle<()>,
    /// The passage uplink: its own task, so a slow catch-up never keeps the centre's ledger waiting.
    uplink: JoinHandle<()>,
    /// Makes the uplink put the passage head again.
    rehint: Arc<Notify>,
}

/// What an orderly stop's wait for the ledger ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// The station's last passage.
    pub head: u64,
    /// The last one the centre said it booked.
    pub booked: u64,
}

impl SyncHandle {
    /// Waits at most `within` for the centre's ledger to have booked every passage recorded here.
    /// The centre only says what it booked when it next asks, so the head is hinted again each
    /// time its answer is still short (each hint makes the centre ask at once).
    pub async fn drain(&self, within: Duration) -> Drained {
        let head = *self.syncer.store.passage_head().borrow();
        let mut booked = self.syncer.booked();
        let deadline = tokio::time::Instant::now() + within;
        // Equal, not at least: a query past the head is the centre still numbering another store
        // file (docs/protocol.md, "A station's store replaced"), and it asks again.
        while *booked.borrow_and_update() != head && tokio::time::Instant::now() < deadline {
            self.rehint.notify_one();
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(500));
            let _ = tokio::time::timeout_at(step, booked.changed()).await;
        }
        let booked = *booked.borrow();
        if booked == head {
            info!(
                passages = head,
                "the centre's ledger has booked every passage"
            );
        } else if !within.is_zero() {
            warn!(
                unbooked = if booked > head { head } else { head - booked },
                waited_ms = within.as_millis() as u64,
                "stopping before the centre's ledger booked every passage; they stay in the store \
                 and are booked when the centre next asks"
            );
        }
        Drained { head, booked }
    }

    /// Stops the tasks and waits until they are gone (their store handles released).
    pub async fn stop(mut self) {
        self.task.abort();
        self.uplink.abort();
        let _ = (&mut self.task).await;
        let _ = (&mut self.uplink).await;
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.task.abort();
        self.uplink.abort();
    }
}

/// Subscribes to this station's change stream and the centre's liveliness, then runs: live changes
/// are applied as they come; a gap, the centre (re)appearing, or every `poll` starts a catch-up.
pub async fn spawn(
    syncer: Arc<Syncer>,
    session: zenoh::Session,
    batch: usize,
    poll: Duration,
    query_timeout: Duration,
) -> Result<SyncHandle, zenoh::Error> {
    // A ring, not zenoh's default FIFO: while this task waits on a catch-up, a full FIFO would
    // stall the session's receive path, and with it the catch-up's own reply and the ledger's
    // queries (a livelock once the centre publishes faster than the station applies). A change
    // that falls off the ring is a gap, which the next catch-up fills.
    let sub = session
        .declare_subscriber(centre_templates(syncer.station().as_str()))
        .with(zenoh::handlers::RingChannel::new(LIVE_RING))
        .await?;
    let alive = session
        .liveliness()
        .declare_subscriber(CENTRE_ALIVE)
        .history(true)
        .await?;
    let rehint = Arc::new(Notify::new());
    let uplink = super::uplink::serve(syncer.clone(), session.clone(), rehint.clone()).await?;
    let s = syncer.clone();
    let (caught_up_tx, caught_up) = watch::channel(false);
    gauge!(names::SYNC_CENTRE_REACHABLE).set(0.0);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = tokio::select! {
                r = sub.recv_async() => match r {
                    Ok(sample) => {
                        let payload = sample.payload().to_bytes().into_owned();
                        let sy = s.clone();
                        let out = tokio::task::spawn_blocking(move || sy.apply_payload(&payload)).await;
                        matches!(out, Ok(Outcome::Gap))
                    }
                    Err(_) => break,
                },
                r = alive.recv_async() => match r {
                    Ok(sample) if sample.kind() == SampleKind::Put => {
                        info!("centre is reachable: catching up");
                        gauge!(names::SYNC_CENTRE_REACHABLE).set(1.0);
                        true
                    }
                    Ok(_) => {
                        info!("centre went away: serving from the local store");
                        gauge!(names::SYNC_CENTRE_REACHABLE).set(0.0);
                        false
                    }
                    Err(_) => break,
                },
                _ = tick.tick() => true,
            };
            if due {
                match catch_up(&s, &session, batch, query_timeout).await {
                    Ok(_) => {
                        caught_up_tx.send_replace(true);
                    }
                    Err(e) => warn!(error = %e, "catch-up failed; will retry"),
                }
            }
        }
    });
    Ok(SyncHandle {
        syncer,
        caught_up,
        task,
        uplink,
        rehint,
    })
}

/// Why a catch-up stopped (the sync task logs it and retries later).
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("zenoh query: {0}")]
    Query(#[source] zenoh::Error),
    #[error("centre refused the query: {0}")]
    Refused(String),
    #[error("no answer from the centre")]
    NoAnswer,
    #[error("batch refused ({}): {}", .source.reason(), .source)]
    Batch {
        #[source]
        source: domain::changes::ChangeError,
    },
    #[error("batch for {station} after {got} does not answer our query (after {want})")]
    Mismatch {
        station: String,
        got: u64,
        want: u64,
    },
    #[error("apply task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("catch-up batch has a gap")]
    Gap,
    #[error("catch-up batch refused: {0}")]
    Applied(&'static str),
}

/// Queries the centre from the last applied sequence until caught up; returns how many changes were
/// applied.
pub async fn catch_up(
    syncer: &Arc<Syncer>,
    session: &zenoh::Session,
    batch: usize,
    timeout: Duration,
) -> Result<u64, CatchUpError> {
    let mut applied = 0u64;
    loop {
        let after = syncer.last_seq()?;
        let params = format!(
            "station={};after={after};limit={}",
            syncer.station(),
            batch.clamp(1, domain::changes::MAX_BATCH)
        );
        let replies = session
            .get(format!("{CENTRE_CHANGES}?{params}"))
            .timeout(timeout)
            .await
            .map_err(CatchUpError::Query)?;
        let got = match replies.recv_async().await {
            Ok(reply) => match reply.result() {
                Ok(sample) => Some(sample.payload().to_bytes().into_owned()),
                Err(e) => {
                    let why = String::from_utf8_lossy(&e.payload().to_bytes()).into_owned();
                    return Err(CatchUpError::Refused(why));
                }
            },
            Err(_) => None,
        };
        let Some(bytes) = got else {
            return Err(CatchUpError::NoAnswer);
        };
        let b = match ChangeBatch::decode(&bytes) {
            Ok(b) => b,
            Err(e) => {
                syncer.stats.count(e.reason());
                return Err(CatchUpError::Batch { source: e });
            }
        };
        if &b.station != syncer.station() || b.after != after {
            syncer.stats.count("malformed");
            return Err(CatchUpError::Mismatch {
                station: b.station.to_string(),
                got: b.after,
                want: after,
            });
        }
        let n = b.changes.len() as u64;
        let head = b.head;
        syncer.heard_of(head);
        if n == 0 {
            return Ok(applied);
        }
        let sy = syncer.clone();
        let out = tokio::task::spawn_blocking(move || sy.apply_signed(b.changes)).await?;
        match out {
            Outcome::Applied(last) => {
                applied += last - after;
                debug!(after, last, head, "catch-up batch applied");
                if last >= head {
                    return Ok(applied);
                }
            }
            Outcome::Replay => return Ok(applied),
            Outcome::Gap => return Err(CatchUpError::Gap),
            Outcome::Refused(r) => return Err(CatchUpError::Applied(r)),
        }
    }
}
