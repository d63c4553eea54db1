//! The zenoh side of gated: one session, a liveliness token the drivers watch, publishers for
//! commands and events, subscribers for driver states and the operator queryable. Commands arrive
//! here stamped (`claim`); the link only puts them on the bus.

use std::time::Instant;

use protocol::{
    CardCommand, CardState, CtlRequest, DoorCommand, DoorState, Health, Keys, LaneEvent,
    LightCommand, LightState, Message, decode, encode,
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
    /// Deadlines are written on the driver's clock, which only its states tell.
    #[error("no state from the {driver} driver of lane {lane} yet: its clock is unknown")]
    NotHeard { driver: &'static str, lane: String },
    #[error("no randomness from the operating system for an epoch")]
    Random(#[source] getrandom::Error),
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

/// What the subscribers hand to the station loop. A driver's state comes with the moment it
/// arrived: gated reads the driver's clock from it, and the station loop may take it up later.
pub enum Incoming {
    Door(String, DoorState, Instant),
    Light(String, LightState, Instant),
    Card(String, CardState, Instant),
    Ctl(zenoh::query::Query, Result<CtlRequest, CtlRequestError>),
    /// A payload that failed to decode: key and reason (already logged).
    Malformed(String, String),
}

pub struct Link {
    pub session: zenoh::Session,
    pub keys: Keys,
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
        let link = Self {
            session,
            keys,
            _token: token,
        };
        link.subscribe::<DoorState>(
            link.keys.all_door_states(),
            incoming.clone(),
            Incoming::Door,
        )
        .await?;
        link.subscribe::<LightState>(
            link.keys.all_light_states(),
            incoming.clone(),
            Incoming::Light,
        )
        .await?;
        link.subscribe::<CardState>(
            link.keys.all_card_states(),
            incoming.clone(),
            Incoming::Card,
        )
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
        wrap: fn(String, M, Instant) -> Incoming,
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
                        Some(lane) => wrap(lane.to_owned(), m, Instant::now()),
                        None => Incoming::Malformed(key, "key names no lane".into()),
                    },
                    Err(e) => {
                        // `quiet`: serde quotes the value it choked on, a card number perhaps.
                        let e = protocol::quiet(&e);
                        warn!(%key, error = %e, "dropping malformed message");
                        Incoming::Malformed(key, e)
                    }
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    pub async fn door(&self, lane: &str, cmd: &DoorCommand) -> Result<(), LinkError> {
        self.session
            .put(self.keys.door_cmd(lane), encode(cmd))
            .await
            .map_err(zerr("door command"))?;
        debug!(lane, action = ?cmd.action, seq = cmd.seq, "door command");
        Ok(())
    }

    pub async fn light(&self, lane: &str, cmd: &LightCommand) -> Result<(), LinkError> {
        self.session
            .put(self.keys.light_cmd(lane), encode(cmd))
            .await
            .map_err(zerr("light command"))
    }

    pub async fn card(&self, lane: &str, cmd: &CardCommand) -> Result<(), LinkError> {
        self.session
            .put(self.keys.card_cmd(lane), encode(cmd))
            .await
            .map_err(zerr("card command"))
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
