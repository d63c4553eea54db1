//! What the tests share: free ports, a driver running on the test's runtime, a fake gated.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drivers::DriverError;
use protocol::{
    DoorAction, DoorCommand, Keys, Message, ZenohEndpoints, decode, encode, zenoh_config,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zenoh::Session;
use zenoh::handlers::FifoChannelHandler;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;

pub const STATION: &str = "test_station";

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

/// A zenoh peer that dials `endpoint`, like gated does.
pub async fn peer(endpoint: &str) -> Session {
    let ep = ZenohEndpoints {
        listen: vec![],
        connect: vec![endpoint.to_owned()],
    };
    zenoh::open(zenoh_config(&ep).expect("config"))
        .await
        .expect("open zenoh session")
}

/// Plays gated: holds the liveliness token, numbers its commands, can send heartbeats.
pub struct FakeGated {
    pub session: Session,
    seq: Arc<AtomicU64>,
    token: Option<LivelinessToken>,
    heartbeats: Option<JoinHandle<()>>,
}

impl FakeGated {
    pub async fn connect(endpoint: &str) -> Self {
        Self {
            session: peer(endpoint).await,
            seq: Arc::new(AtomicU64::new(0)),
            token: None,
            heartbeats: None,
        }
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
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.put(
            &keys().door_cmd(lane),
            encode(&DoorCommand::new(seq, action)),
        )
        .await;
        seq
    }

    pub async fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        self.session.put(key, bytes.into()).await.expect("put");
    }

    /// Heartbeats to `lanes` every 200 ms until [`FakeGated::stop_heartbeats`] or the session closes.
    pub fn start_heartbeats(&mut self, lanes: &[&str]) {
        let session = self.session.clone();
        let seq = self.seq.clone();
        let keys: Vec<String> = lanes.iter().map(|l| keys().door_cmd(l)).collect();
        self.heartbeats = Some(tokio::spawn(async move {
            loop {
                for k in &keys {
                    let s = seq.fetch_add(1, Ordering::SeqCst) + 1;
                    if session
                        .put(k, encode(&DoorCommand::new(s, DoorAction::Heartbeat)))
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
