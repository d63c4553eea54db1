//! What the tests share: free ports, a driver running on the test's runtime, a fake gated.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drivers::{BusArgs, DoorDriverSettings, DriverError, FailsafePosition, run_door_driver};
use protocol::{
    ArchColour, BusSecurity, COMMAND_TTL_MS, CardCommand, CardState, CardVerdict, DoorAction,
    DoorCommand, DoorMode, DoorState, Epoch, Keys, LightCommand, LightState, Message, Stamp,
    ZenohEndpoints, decode, encode, zenoh_config,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zenoh::Session;
use zenoh::handlers::FifoChannelHandler;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;

pub const STATION: &str = "test_station";
pub const SECOND: Duration = Duration::from_secs(1);
/// How long a test waits for what should follow at once (an acknowledgement, a state). Generous on
/// purpose: it bounds a hang, it is not a timing claim (those are measured in `benches/`), and a
/// loaded CI machine can take over a second to schedule two processes and a zenoh link.
pub const PROMPT: Duration = Duration::from_secs(5);

pub fn keys() -> Keys {
    Keys::new(STATION).expect("station id")
}

/// A loopback endpoint on a port that was free a moment ago.
pub fn free_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = l.local_addr().expect("local addr").port();
    format!("tcp/127.0.0.1:{port}")
}

/// A driver future running on the test's runtime until [`Driver::stop`].
pub struct Driver {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), DriverError>>,
}

impl Driver {
    pub fn spawn<F>(
        run: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
    ) -> Self
    where
        F: Future<Output = Result<(), DriverError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        Self {
            stop: Some(tx),
            handle: tokio::spawn(run(shutdown)),
        }
    }

    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let r = tokio::time::timeout(Duration::from_secs(5), &mut self.handle).await;
        r.expect("driver stops within 5 s")
            .expect("driver task")
            .expect("driver ends without error");
    }
}

/// A door driver with a simulated flap per lane, listening on `endpoint`.
pub fn door_driver(endpoint: &str, lanes: &[&str], failsafe: FailsafePosition) -> Driver {
    let settings = DoorDriverSettings {
        failsafe,
        ..DoorDriverSettings::new(BusArgs::insecure(STATION, lanes, &[endpoint]))
    };
    Driver::spawn(|stop| run_door_driver(settings, stop))
}

/// A zenoh peer that dials `endpoint`, like gated does (plain TCP).
pub async fn peer(endpoint: &str) -> Session {
    peer_as(endpoint, BusSecurity::Insecure).await
}

/// A zenoh peer that dials `endpoint` with `security` (a role's certificate on a TLS bus).
pub async fn peer_as(endpoint: &str, security: BusSecurity) -> Session {
    let ep = ZenohEndpoints {
        listen: vec![],
        connect: vec![endpoint.to_owned()],
        security,
    };
    zenoh::open(zenoh_config(&ep).expect("config"))
        .await
        .expect("open zenoh session")
}

/// Which driver a command goes to (each has its own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Door,
    Light,
    Card,
}

/// What stamps a fake gated's commands: its epoch, a seq per driver lane, and each driver's clock
/// as its latest state reported it.
struct Stamper {
    epoch: Epoch,
    seqs: Mutex<HashMap<(Kind, String), u64>>,
    clocks: Mutex<HashMap<Kind, (u64, Instant)>>,
}

impl Stamper {
    fn heard(&self, kind: Kind, clock_ms: u64) {
        self.clocks
            .lock()
            .unwrap()
            .insert(kind, (clock_ms, Instant::now()));
    }

    /// The driver's clock now, as far as its last state tells.
    fn driver_now(&self, kind: Kind) -> Option<u64> {
        let (ms, at) = *self.clocks.lock().unwrap().get(&kind)?;
        Some(ms + at.elapsed().as_millis() as u64)
    }

    fn next(&self, kind: Kind, lane: &str) -> Option<Stamp> {
        let deadline_ms = self.driver_now(kind)? + COMMAND_TTL_MS;
        let mut seqs = self.seqs.lock().unwrap();
        let seq = seqs.entry((kind, lane.to_owned())).or_insert(0);
        *seq += 1;
        Some(Stamp {
            epoch: self.epoch,
            seq: *seq,
            deadline_ms,
        })
    }
}

pub fn random_epoch() -> Epoch {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("randomness");
    Epoch::from_bytes(b)
}

/// Plays gated: holds the liveliness token, numbers its commands per driver lane within its epoch,
/// stamps them with deadlines on the driver's clock, can send heartbeats.
pub struct FakeGated {
    pub session: Session,
    stamper: Arc<Stamper>,
    token: Option<LivelinessToken>,
    heartbeats: Option<JoinHandle<()>>,
    _states: Vec<Subscriber<()>>,
}

impl FakeGated {
    pub async fn connect(endpoint: &str) -> Self {
        Self::with_epoch(endpoint, random_epoch()).await
    }

    pub async fn with_epoch(endpoint: &str, epoch: Epoch) -> Self {
        Self::on(peer(endpoint).await, epoch).await
    }

    /// Plays gated on a session already open (e.g. with gated's certificate).
    pub async fn on(session: Session, epoch: Epoch) -> Self {
        let stamper = Arc::new(Stamper {
            epoch,
            seqs: Mutex::new(HashMap::new()),
            clocks: Mutex::new(HashMap::new()),
        });
        let k = keys();
        let mut states = Vec::new();
        for (kind, key) in [
            (Kind::Door, k.all_door_states()),
            (Kind::Light, k.all_light_states()),
            (Kind::Card, k.all_card_states()),
        ] {
            let st = stamper.clone();
            let sub = session
                .declare_subscriber(key)
                .callback(move |s| {
                    let bytes = s.payload().to_bytes();
                    let clock = match kind {
                        Kind::Door => decode::<DoorState>(&bytes).map(|m| m.clock_ms),
                        Kind::Light => decode::<LightState>(&bytes).map(|m| m.clock_ms),
                        Kind::Card => decode::<CardState>(&bytes).map(|m| m.clock_ms),
                    };
                    if let Ok(ms) = clock {
                        st.heard(kind, ms);
                    }
                })
                .await
                .expect("subscribe to driver states");
            states.push(sub);
        }
        Self {
            session,
            stamper,
            token: None,
            heartbeats: None,
            _states: states,
        }
    }

    pub fn epoch(&self) -> Epoch {
        self.stamper.epoch
    }

    /// The driver's clock now; waits for its first state.
    pub async fn driver_now(&self, kind: Kind) -> u64 {
        let start = Instant::now();
        loop {
            if let Some(ms) = self.stamper.driver_now(kind) {
                return ms;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no {kind:?} driver state within 5 s: its clock is unknown"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next stamp for `lane` of that driver; waits for the driver's first state.
    pub async fn stamp(&self, kind: Kind, lane: &str) -> Stamp {
        self.driver_now(kind).await;
        self.stamper.next(kind, lane).expect("clock known")
    }

    pub async fn declare_alive(&mut self) {
        let t = self
            .session
            .liveliness()
            .declare_token(keys().gated_alive())
            .await
            .expect("liveliness token");
        self.token = Some(t);
    }

    pub async fn door(&self, lane: &str, action: DoorAction) -> u64 {
        self.door_recorded(lane, action).await.0
    }

    /// Sends a door command and returns its seq and its bytes exactly as they went on the bus:
    /// what an eavesdropper would have recorded.
    pub async fn door_recorded(&self, lane: &str, action: DoorAction) -> (u64, Vec<u8>) {
        let stamp = self.stamp(Kind::Door, lane).await;
        let bytes = encode(&DoorCommand::new(stamp, action));
        self.put(&keys().door_cmd(lane), bytes.clone()).await;
        (stamp.seq, bytes)
    }

    pub async fn light(
        &self,
        lane: &str,
        arch: Option<ArchColour>,
        illumination: Option<u8>,
    ) -> u64 {
        let stamp = self.stamp(Kind::Light, lane).await;
        self.put(
            &keys().light_cmd(lane),
            encode(&LightCommand::new(stamp, arch, illumination)),
        )
        .await;
        stamp.seq
    }

    /// Sends a verdict for `tap` of card `card` and returns its seq and its bytes as they went on the bus.
    pub async fn card_recorded(
        &self,
        lane: &str,
        tap: u64,
        card: &str,
        verdict: CardVerdict,
    ) -> (u64, Vec<u8>) {
        let stamp = self.stamp(Kind::Card, lane).await;
        let bytes = encode(&CardCommand::new(stamp, tap, card.into(), verdict));
        self.put(&keys().card_cmd(lane), bytes.clone()).await;
        (stamp.seq, bytes)
    }

    pub async fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        self.session.put(key, bytes.into()).await.expect("put");
    }

    /// Heartbeats to `lanes` every 200 ms until [`FakeGated::stop_heartbeats`] or the session closes.
    pub fn start_heartbeats(&mut self, lanes: &[&str]) {
        let session = self.session.clone();
        let stamper = self.stamper.clone();
        let lanes: Vec<String> = lanes.iter().map(|l| (*l).to_owned()).collect();
        self.heartbeats = Some(tokio::spawn(async move {
            loop {
                for lane in &lanes {
                    // Until the driver's first state, its clock is unknown and nothing can be sent.
                    let Some(stamp) = stamper.next(Kind::Door, lane) else {
                        continue;
                    };
                    let cmd = DoorCommand::new(stamp, DoorAction::Heartbeat);
                    if session
                        .put(keys().door_cmd(lane), encode(&cmd))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    pub fn stop_heartbeats(&mut self) {
        if let Some(h) = self.heartbeats.take() {
            h.abort();
        }
    }

    /// Vanishes like a crashed or stopped gated: heartbeats stop, the token goes with the session.
    pub async fn close(mut self) {
        self.stop_heartbeats();
        self.session.close().await.expect("close gated session");
    }
}

/// `gated` takes L1 (token, heartbeats) and is obeyed in normal mode; with the state subscription.
pub async fn take_l1(mut gated: FakeGated) -> (FakeGated, Sub) {
    let states = subscribe(&gated.session, &keys().door_state("L1")).await;
    gated.declare_alive().await;
    gated.start_heartbeats(&["L1"]);
    let epoch = gated.epoch();
    wait_for::<DoorState>(&states, 10 * SECOND, "normal under gated", |s| {
        s.mode == DoorMode::Normal && s.epoch == Some(epoch)
    })
    .await;
    (gated, states)
}

/// Another peer on the driver's bus, once it hears the driver (a state on `state_key`): `peer`
/// returns before its link is up, and what it puts until then goes nowhere.
pub async fn peer_hearing(endpoint: &str, state_key: &str) -> Session {
    let session = peer(endpoint).await;
    let states = subscribe(&session, state_key).await;
    tokio::time::timeout(3 * SECOND, states.recv_async())
        .await
        .expect("the driver heard within 3 s")
        .expect("subscriber open");
    session
}

/// Ends a scene: gated and the other peer leave, the driver stops cleanly.
pub async fn finish(gated: FakeGated, other: Session, driver: Driver) {
    gated.close().await;
    other.close().await.expect("close the other peer");
    driver.stop().await;
}

/// Puts `bytes` on `key` from any session (another peer than gated, in the authority tests).
pub async fn put(session: &Session, key: &str, bytes: Vec<u8>) {
    session.put(key, bytes).await.expect("put");
}

pub type Sub = Subscriber<FifoChannelHandler<Sample>>;

pub async fn subscribe(session: &Session, key: &str) -> Sub {
    session
        .declare_subscriber(key.to_owned())
        .await
        .expect("subscribe")
}

/// The first message on `sub` satisfying `pred` within `limit`, and how long it took to arrive.
pub async fn wait_for<M: Message + std::fmt::Debug>(
    sub: &Sub,
    limit: Duration,
    what: &str,
    mut pred: impl FnMut(&M) -> bool,
) -> (M, Duration) {
    let start = Instant::now();
    let mut last = None;
    loop {
        let left = limit.saturating_sub(start.elapsed());
        let sample = match tokio::time::timeout(left, sub.recv_async()).await {
            Ok(s) => s.expect("subscriber open"),
            Err(_) => panic!("no {what} within {limit:?}; last message: {last:?}"),
        };
        let msg: M = decode(&sample.payload().to_bytes()).expect("driver publishes valid payloads");
        if pred(&msg) {
            return (msg, start.elapsed());
        }
        last = Some(msg);
    }
}
