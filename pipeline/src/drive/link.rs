//! The zenoh side of gated: one session, a liveliness token the drivers watch, publishers for
//! commands and events, subscribers for driver states and the operator queryable.

use std::sync::atomic::{AtomicU64, Ordering};

use protocol::{
    ArchColour, CtlRequest, DoorAction, DoorCommand, DoorState, Health, Keys, LaneEvent,
    LightCommand, LightState, Message, VERSION, decode, encode,
};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};
use zenoh::Wait;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("zenoh: {what}")]
    Zenoh {
        what: &'static str,
        #[source]
        source: zenoh::Error,
    },
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
}

fn zerr(what: &'static str) -> impl FnOnce(zenoh::Error) -> LinkError {
    move |source| LinkError::Zenoh { what, source }
}

/// Why an operator request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CtlRequestError {
    #[error("ctl query without payload")]
    NoPayload,
    #[error(transparent)]
    Malformed(#[from] protocol::ProtocolError),
}

/// What the subscribers hand to the station loop.
pub enum Incoming {
    Door(String, DoorState),
    Light(String, LightState),
    Ctl(zenoh::query::Query, Result<CtlRequest, CtlRequestError>),
    /// A payload that failed to decode: key and reason (already logged).
    Malformed(String, String),
}

pub struct Link {
    pub session: zenoh::Session,
    pub keys: Keys,
    seq: AtomicU64,
    _token: zenoh::liveliness::LivelinessToken,
}

impl Link {
    pub async fn open(
        keys: Keys,
        endpoints: &protocol::ZenohEndpoints,
        incoming: UnboundedSender<Incoming>,
    ) -> Result<Self, LinkError> {
        let session = zenoh::open(protocol::zenoh_config(endpoints)?)
            .await
            .map_err(zerr("open session"))?;
        let token = session
            .liveliness()
            .declare_token(keys.gated_alive())
            .await
            .map_err(zerr("liveliness token"))?;
        // Sequence numbers start from the wall clock so a restarted gated never reuses one that a
        // driver has already applied (drivers ignore seq <= the last applied as replays).
        let seq0 = protocol::unix_ms() * 1000;
        let link = Self {
            session,
            keys,
            seq: AtomicU64::new(seq0),
            _token: token,
        };
        link.subscribe::<DoorState>(link.keys.all_door_states(), incoming.clone(), |k, s| {
            Incoming::Door(k, s)
        })
        .await?;
        link.subscribe::<LightState>(link.keys.all_light_states(), incoming.clone(), |k, s| {
            Incoming::Light(k, s)
        })
        .await?;
        let q = link
            .session
            .declare_queryable(link.keys.ctl())
            .await
            .map_err(zerr("ctl queryable"))?;
        tokio::spawn(async move {
            while let Ok(query) = q.recv_async().await {
                let req = match query.payload() {
                    Some(p) => decode::<CtlRequest>(&p.to_bytes()).map_err(CtlRequestError::from),
                    None => Err(CtlRequestError::NoPayload),
                };
                if incoming.send(Incoming::Ctl(query, req)).is_err() {
                    break;
                }
            }
        });
        Ok(link)
    }

    async fn subscribe<M: Message + Send + 'static>(
        &self,
        key: String,
        tx: UnboundedSender<Incoming>,
        wrap: fn(String, M) -> Incoming,
    ) -> Result<(), LinkError> {
        let sub = self
            .session
            .declare_subscriber(key)
            .await
            .map_err(zerr("subscribe"))?;
        let keys = self.keys.clone();
        tokio::spawn(async move {
            while let Ok(sample) = sub.recv_async().await {
                let key = sample.key_expr().as_str().to_owned();
                let msg = match decode::<M>(&sample.payload().to_bytes()) {
                    Ok(m) => match keys.lane_of(&key) {
                        Some(lane) => wrap(lane.to_owned(), m),
                        None => Incoming::Malformed(key, "key names no lane".into()),
                    },
                    Err(e) => {
                        warn!(%key, error = %e, "dropping malformed message");
                        Incoming::Malformed(key, e.to_string())
                    }
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub async fn door(&self, lane: &str, action: DoorAction) -> Result<u64, LinkError> {
        let seq = self.next_seq();
        let cmd = DoorCommand {
            pass_timeout_ms: None,
            ..DoorCommand::new(seq, action)
        };
        self.session
            .put(self.keys.door_cmd(lane), encode(&cmd))
            .await
            .map_err(zerr("door command"))?;
        debug!(lane, ?action, seq, "door command");
        Ok(seq)
    }

    pub async fn light(
        &self,
        lane: &str,
        arch: Option<ArchColour>,
        illumination: Option<u8>,
    ) -> Result<u64, LinkError> {
        let seq = self.next_seq();
        let cmd = LightCommand {
            v: VERSION,
            seq,
            arch,
            illumination,
        };
        self.session
            .put(self.keys.light_cmd(lane), encode(&cmd))
            .await
            .map_err(zerr("light command"))?;
        Ok(seq)
    }

    pub async fn event(&self, ev: &LaneEvent) -> Result<(), LinkError> {
        self.session
            .put(self.keys.lane_event(&ev.lane), encode(ev))
            .await
            .map_err(zerr("lane event"))
    }

    pub async fn decision(&self, d: &protocol::Decision) -> Result<(), LinkError> {
        self.session
            .put(self.keys.decision(&d.lane), encode(d))
            .await
            .map_err(zerr("decision"))
    }

    pub async fn health(&self, h: &Health) -> Result<(), LinkError> {
        self.session
            .put(self.keys.health(), encode(h))
            .await
            .map_err(zerr("health"))
    }

    /// Closes the session now (drops the liveliness token), e.g. on shutdown.
    pub fn close(self) {
        let _ = self.session.close().wait();
    }
}
