//! The station's side of the passage uplink (issue 17 item 2): the centre's ledger asks for the
//! passages recorded here after the last one it booked, and gets them authenticated under the
//! station's uplink key (`domain::uplink`). The centre's side is `enrolment::ledger`; the wire
//! format is in `docs/protocol.md`, "Passage uplink". The station never deletes a passage, so the
//! centre can ask again after any outage, from wherever it stopped.

use std::sync::Arc;

use domain::uplink::{MAX_PASSAGES, Numbered, PassageBatch, SignedPassages, UPLINK_VERSION};
use metrics::gauge;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::Syncer;
use crate::store::StoreError;

/// Why a query for passages was not answered.
#[derive(Debug, thiserror::Error)]
pub enum UplinkServeError {
    #[error("need after=SEQ[;limit=N]")]
    Query,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("sealing the batch: {0}")]
    Seal(#[from] domain::uplink::UplinkError),
}

impl Syncer {
    /// Passages `after+1 ..`, at most `limit` (clamped to 1..=[`MAX_PASSAGES`]), sealed for the
    /// centre.
    pub fn passages(&self, after: u64, limit: usize) -> Result<SignedPassages, UplinkServeError> {
        let rows = self
            .store
            .passages(after.saturating_add(1), limit.clamp(1, MAX_PASSAGES))?;
        // Read after the rows: a commit in between only raises it.
        let committed = *self.store.passage_head().borrow();
        let head = rows
            .last()
            .map_or(committed, |(seq, _)| committed.max(*seq));
        let batch = PassageBatch {
            v: UPLINK_VERSION,
            station: self.keys.station.clone(),
            after,
            passages: rows
                .into_iter()
                .map(|(seq, passage)| Numbered { seq, passage })
                .collect(),
            head,
            store: Some(self.store.id()),
        };
        Ok(SignedPassages::seal(&self.uplink, &batch)?)
    }

    /// The centre asked for the passages after `after`: it has booked that far, in this file's
    /// numbering. The latest query counts, not the highest: the first one after this store file
    /// replaced another may still carry the old file's numbering, and the centre then asks again.
    fn centre_asked_after(&self, after: u64) {
        self.booked.send_replace(after);
        self.export_unbooked();
    }

    /// The last passage the centre has booked, as its latest query said, and a receiver that sees
    /// every query.
    pub fn booked(&self) -> tokio::sync::watch::Receiver<u64> {
        self.booked.subscribe()
    }

    fn export_unbooked(&self) {
        let head = *self.store.passage_head().borrow();
        let booked = *self.booked.borrow();
        // Past the head: the centre still numbers another file; none of this one's is booked yet.
        let unbooked = if booked > head { head } else { head - booked };
        gauge!(crate::telemetry::names::UPLINK_UNBOOKED).set(unbooked as f64);
    }
}

/// Declares the passages queryable and starts the task that answers it and puts the passage head
/// after each commit (a hint for the centre to ask at once), and again whenever `rehint` is
/// notified (an orderly stop asking the centre to confirm what it booked).
pub(super) async fn serve(
    syncer: Arc<Syncer>,
    session: zenoh::Session,
    rehint: Arc<Notify>,
) -> Result<JoinHandle<()>, zenoh::Error> {
    let keys = protocol::keys::Keys::new(syncer.station().as_str())?;
    let queries = session.declare_queryable(keys.passages()).await?;
    let head_key = keys.passage_head();
    let mut heads = syncer.store.passage_head();
    // Once at start too: passages recorded while the centre could not ask are announced at once.
    heads.mark_changed();
    Ok(tokio::spawn(async move {
        let mut heads_open = true;
        loop {
            tokio::select! {
                r = queries.recv_async() => match r {
                    Ok(query) => {
                        tokio::spawn(answer(syncer.clone(), query));
                    }
                    Err(_) => break,
                },
                r = heads.changed(), if heads_open => match r {
                    Ok(()) => {
                        let head = *heads.borrow_and_update();
                        syncer.export_unbooked();
                        put_head(&session, &head_key, head).await;
                    }
                    Err(_) => heads_open = false,
                },
                () = rehint.notified() => {
                    let head = *heads.borrow();
                    put_head(&session, &head_key, head).await;
                }
            }
        }
    }))
}

async fn put_head(session: &zenoh::Session, key: &str, head: u64) {
    if let Err(e) = session.put(key, head.to_string()).await {
        debug!(error = %e, "passage head not put; the centre polls");
    }
}

/// Answers one query of the centre's ledger (`after=SEQ;limit=N`).
async fn answer(syncer: Arc<Syncer>, query: zenoh::query::Query) {
    let p = query.parameters();
    let after = p.get("after").map(str::parse::<u64>);
    let limit = p
        .get("limit")
        .map(str::parse::<usize>)
        .unwrap_or(Ok(MAX_PASSAGES));
    let (Some(Ok(after)), Ok(limit)) = (after, limit) else {
        warn!(selector = %query.selector(), "malformed passages query");
        let _ = query
            .reply_err(UplinkServeError::Query.to_string().into_bytes())
            .await;
        return;
    };
    // Only the centre's role may ask (the bus's access control); what it says it has booked
    // moves nothing but the unbooked gauge and how long an orderly stop waits.
    syncer.centre_asked_after(after);
    let sy = syncer.clone();
    let built = tokio::task::spawn_blocking(move || sy.passages(after, limit)).await;
    match built {
        Ok(Ok(batch)) => {
            debug!(after, "passages query answered");
            if let Err(e) = query.reply(query.key_expr().clone(), batch.encode()).await {
                warn!(error = %e, "passages reply failed");
            }
        }
        Ok(Err(e)) => {
            warn!(after, error = %e, "cannot answer passages query");
            let _ = query.reply_err(e.to_string().into_bytes()).await;
        }
        Err(e) => warn!(error = %e, "passages query task failed"),
    }
}
