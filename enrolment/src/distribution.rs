//! The centre side of the template distribution: turns the store's change log into signed
//! per-station changes (`domain::changes`), publishes new ones and answers catch-up queries
//! (`docs/protocol.md`, "Template distribution"). The station side is `pipeline::sync`.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tracing::{debug, info, warn};

use domain::StationId;
use domain::changes::{
    CentreSigningKey, ChangeBatch, ChangeBody, ChangeError, ChangeOp, HexBytes, MAX_BATCH,
    SYNC_VERSION, SignedChange, Upsert,
};
use domain::seal::{self, CentreSecretKey, MasterKey, SealError, StationPublicKey};
use protocol::keys::{CENTRE_ALIVE, CENTRE_CHANGES, centre_templates};

use crate::ledger::Ledger;
use crate::store::{Change, ChangeKind, Store, StoreError};

/// Why a change could not be built or the service not started.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("station {0} is not registered")]
    UnknownStation(StationId),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("key wrap: {0}")]
    Seal(#[from] SealError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("zenoh: {0}")]
    Zenoh(#[source] zenoh::Error),
    #[error("background task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Everything the centre needs to make changes for stations.
pub struct Centre {
    pub store: Arc<Store>,
    pub master: Arc<MasterKey>,
    pub x25519: CentreSecretKey,
    pub signing: CentreSigningKey,
    pub stations: HashMap<StationId, StationPublicKey>,
}

impl Centre {
    /// One change as `station` gets it: the subject's current state (or a tombstone once it is gone),
    /// its data key wrapped for that station, signed.
    pub fn change_for(
        &self,
        station: &StationId,
        change: &Change,
    ) -> Result<SignedChange, DistributionError> {
        let pk = self
            .stations
            .get(station)
            .ok_or_else(|| DistributionError::UnknownStation(station.clone()))?;
        let subject = change.subject;
        let state = match change.kind {
            ChangeKind::Erase => None,
            ChangeKind::Trip => {
                let op = match self.store.subject_trip(&subject)? {
                    Some(trip) => ChangeOp::Trip { subject, trip },
                    None => ChangeOp::Erase { subject },
                };
                return self.sign(station, change.seq, op);
            }
            ChangeKind::Upsert | ChangeKind::Tickets => self.store.subject_state(&subject)?,
        };
        let op = match state {
            None => ChangeOp::Erase { subject },
            Some(st) => {
                let key = seal::unwrap_data_key(&self.master, &subject, &st.wrapped)?;
                let wrapped = seal::wrap_for_station(&self.x25519, station, pk, &subject, &key)?;
                ChangeOp::Upsert(Upsert {
                    subject,
                    template_version: st.sealed.template_version(),
                    sealed: HexBytes(st.sealed.into_bytes()),
                    wrapped_key: HexBytes(wrapped.into_bytes()),
                    tickets: st.tickets,
                    trip: st.trip,
                    postpay: st.record.account.is_some(),
                })
            }
        };
        self.sign(station, change.seq, op)
    }

    fn sign(
        &self,
        station: &StationId,
        seq: u64,
        op: ChangeOp,
    ) -> Result<SignedChange, DistributionError> {
        let body = ChangeBody {
            v: SYNC_VERSION,
            station: station.clone(),
            seq,
            op,
        };
        Ok(SignedChange::sign(&self.signing, &body)?)
    }

    /// Changes `after+1 ..` for `station`, at most `limit` (clamped to 1..=[`MAX_BATCH`]).
    pub fn batch(
        &self,
        station: &StationId,
        after: u64,
        limit: usize,
    ) -> Result<ChangeBatch, DistributionError> {
        let head = self.store.head_seq()?;
        let limit = limit.clamp(1, MAX_BATCH);
        let changes = self
            .store
            .changes(after.saturating_add(1), limit)?
            .iter()
            .map(|c| self.change_for(station, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChangeBatch {
            v: SYNC_VERSION,
            station: station.clone(),
            after,
            changes,
            head,
        })
    }
}

/// The running distribution: call [`CentreService::changed`] after every committed change.
pub struct CentreService {
    notify: Arc<Notify>,
    _token: zenoh::liveliness::LivelinessToken,
}

impl CentreService {
    /// Declares the liveliness token and the catch-up queryable and starts the publisher and the fare
    /// ledger (`crate::ledger`). Changes committed before this call are not published (stations
    /// fetch them by query).
    pub async fn start(
        centre: Arc<Centre>,
        session: &zenoh::Session,
    ) -> Result<Self, DistributionError> {
        let queryable = session
            .declare_queryable(CENTRE_CHANGES)
            .await
            .map_err(DistributionError::Zenoh)?;
        let c = centre.clone();
        tokio::spawn(async move {
            while let Ok(query) = queryable.recv_async().await {
                let c = c.clone();
                tokio::spawn(async move { answer(c, query).await });
            }
        });
        let notify = Arc::new(Notify::new());
        let head = {
            let c = centre.clone();
            tokio::task::spawn_blocking(move || c.store.head_seq()).await??
        };
        // The fare ledger pulls the stations' passages; a ride it books as spent is a change to
        // publish, so it shares the publisher's wake-up.
        let ledger = Arc::new(Ledger::new(centre.clone())?);
        tokio::spawn(crate::ledger::run(ledger, session.clone(), notify.clone()));
        let (n, s) = (notify.clone(), session.clone());
        tokio::spawn(async move { publisher(centre, s, n, head).await });
        let token = session
            .liveliness()
            .declare_token(CENTRE_ALIVE)
            .await
            .map_err(DistributionError::Zenoh)?;
        info!(head, "template distribution started");
        Ok(Self {
            notify,
            _token: token,
        })
    }

    /// Wakes the publisher: it publishes every change after the last one it published.
    pub fn changed(&self) {
        self.notify.notify_one();
    }
}

async fn publisher(
    centre: Arc<Centre>,
    session: zenoh::Session,
    notify: Arc<Notify>,
    mut done: u64,
) {
    let mut stations: Vec<StationId> = centre.stations.keys().cloned().collect();
    stations.sort();
    loop {
        notify.notified().await;
        loop {
            let c = centre.clone();
            let st = stations.clone();
            let built = tokio::task::spawn_blocking(move || {
                let changes = c.store.changes(done + 1, 64)?;
                let mut out = Vec::new();
                for ch in &changes {
                    for s in &st {
                        out.push((
                            ch.seq,
                            centre_templates(s.as_str()),
                            c.change_for(s, ch)?.encode(),
                        ));
                    }
                }
                Ok::<_, DistributionError>((changes.last().map(|c| c.seq), out))
            })
            .await;
            let (last, msgs) = match built {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot build changes to publish; stations will catch up by query");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "publisher task failed");
                    break;
                }
            };
            for (seq, key, payload) in msgs {
                if let Err(e) = session.put(&key, payload).await {
                    warn!(%key, seq, error = %e, "publish failed; the station will catch up by query");
                } else {
                    debug!(%key, seq, "change published");
                }
            }
            match last {
                Some(l) => done = l,
                None => break,
            }
        }
    }
}

async fn answer(centre: Arc<Centre>, query: zenoh::query::Query) {
    let p = query.parameters();
    let station = p.get("station").map(StationId::new);
    let after = p.get("after").map(str::parse::<u64>);
    let limit = p
        .get("limit")
        .map(str::parse::<usize>)
        .unwrap_or(Ok(MAX_BATCH));
    let (station, after, limit) = match (station, after, limit) {
        (Some(Ok(s)), Some(Ok(a)), Ok(l)) => (s, a, l),
        _ => {
            warn!(selector = %query.selector(), "malformed changes query");
            let _ = query
                .reply_err("need station=ID;after=SEQ[;limit=N]".as_bytes().to_vec())
                .await;
            return;
        }
    };
    if !centre.stations.contains_key(&station) {
        warn!(%station, "changes query for an unregistered station");
        let _ = query
            .reply_err(format!("station {station} is not registered").into_bytes())
            .await;
        return;
    }
    let c = centre.clone();
    let s = station.clone();
    let built = tokio::task::spawn_blocking(move || c.batch(&s, after, limit)).await;
    match built {
        Ok(Ok(batch)) => {
            debug!(%station, after, n = batch.changes.len(), head = batch.head, "changes query answered");
            if let Err(e) = query.reply(CENTRE_CHANGES, batch.encode()).await {
                warn!(%station, error = %e, "changes reply failed");
            }
        }
        Ok(Err(e)) => {
            warn!(%station, after, error = %e, "cannot answer changes query");
            let _ = query.reply_err(e.to_string().into_bytes()).await;
        }
        Err(e) => warn!(error = %e, "changes query task failed"),
    }
}
