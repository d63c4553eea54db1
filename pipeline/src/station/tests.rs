//! The station's answers to a recogniser that hangs and a GPU device that is lost (issue 15,
//! "Faults"), on a real station: a test-pattern lane, the drivers it starts as processes, the TLS
//! bus, and an observer holding the operator's certificate that watches the door. The faults are
//! injected inside the tick thread (`recognise::faults`).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use protocol::{
    BusSecurity, CertDir, DoorMode, DoorState, JournalQuery, Keys, Role, ZenohEndpoints, decode,
};

use super::{RunOptions, RunReport};
use crate::config::StationConfig;
use crate::recognise::faults;

fn port() -> u16 {
    crate::demo::free_port().expect("free port")
}

/// A live (paced) one-lane station with its own drivers; `lane` names the lane, so that each
/// test's injection reaches only its own station.
fn station(dir: &std::path::Path, lane: &str) -> (StationConfig, CertDir) {
    let certs = CertDir::new(dir.join("certs"));
    certs.ensure_all("faults").expect("certificates");
    let toml = format!(
        "[station]\nid = \"faults\"\n[capture]\nmode = \"realtime\"\n\
         [[lane]]\nid = \"{lane}\"\nrole = \"entry\"\nsource = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 10\n\
         [recognise]\nstall_ms = 300\n\
         [drivers]\nspawn = true\ndoor_listen = \"tls/127.0.0.1:{}\"\nlight_listen = \"tls/127.0.0.1:{}\"\n\
         [zenoh]\nlisten = [\"tls/127.0.0.1:{}\"]\ncerts = {:?}\n\
         [store]\npath = {:?}\n[metrics]\nenabled = false\n",
        port(),
        port(),
        port(),
        certs.path().display().to_string(),
        dir.join("s.redb").display().to_string(),
    );
    (
        StationConfig::parse(&toml, "test station").expect("config"),
        certs,
    )
}

/// The door states of `lane`, as the operator sees them on the door driver's listener.
async fn observe(
    cfg: &StationConfig,
    certs: &CertDir,
    lane: &str,
) -> (
    zenoh::Session,
    zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
) {
    let session = zenoh::open(
        protocol::zenoh_config(&ZenohEndpoints {
            listen: vec![],
            connect: vec![cfg.drivers.door_listen.clone()],
            security: BusSecurity::Tls(certs.tls(Role::Operator).expect("certificate")),
        })
        .expect("zenoh config"),
    )
    .await
    .expect("observer");
    let states = session
        .declare_subscriber(Keys::new("faults").expect("keys").door_state(lane))
        .await
        .expect("subscribe");
    (session, states)
}

async fn until(
    states: &zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    within: Duration,
    want: impl Fn(&DoorState) -> bool,
) -> Option<Instant> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(100), states.recv_async()).await
            && let Ok(st) = decode::<DoorState>(&s.payload().to_bytes())
            && want(&st)
        {
            return Some(Instant::now());
        }
    }
    None
}

fn normal(s: &DoorState) -> bool {
    s.mode == DoorMode::Normal && s.epoch.is_some()
}

fn lane_events(path: &std::path::Path) -> Vec<String> {
    let q = JournalQuery {
        kind: Some("lane_event".into()),
        limit: 100,
        ..Default::default()
    };
    crate::store::query_journal_file(path, &q)
        .expect("journal")
        .into_iter()
        .map(|l| l.detail)
        .collect()
}

async fn run(cfg: StationConfig, seconds: u64) -> tokio::task::JoinHandle<RunReport> {
    tokio::spawn(async move {
        super::run(
            cfg,
            RunOptions {
                duration: Some(Duration::from_secs(seconds)),
            },
        )
        .await
        .expect("station")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_recogniser_sends_the_doors_safe_until_it_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, certs) = station(dir.path(), "HANG");
    let store = cfg.store.path.clone();
    let (_obs, states) = observe(&cfg, &certs, "HANG").await;
    let station = run(cfg, 12).await;
    until(&states, Duration::from_secs(20), normal)
        .await
        .expect("the station never took the door");
    // Results flowing (the watch arms on the first), then a hang well past stall_ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    faults::stall_next_tick("HANG", Duration::from_millis(1500));
    let safe = until(&states, Duration::from_secs(5), |s| {
        s.mode == DoorMode::FailsafeClosed
    })
    .await
    .expect("the door never went to its safe position");
    let began = faults::stall_began().expect("the hang began");
    eprintln!("hang → door safe: {:?}", safe.duration_since(began));
    until(&states, Duration::from_secs(5), normal)
        .await
        .expect("the door never came back to normal");
    let report = station.await.unwrap();
    assert_eq!(report.recogniser_stalls, 1);
    let events = lane_events(&store);
    for want in ["recogniser stalled", "recogniser resumed"] {
        assert!(
            events.iter().any(|e| e.contains(want)),
            "{want}: {events:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_device_sends_the_doors_safe_and_stops_the_station() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, certs) = station(dir.path(), "LOST");
    let store = cfg.store.path.clone();
    let (_obs, states) = observe(&cfg, &certs, "LOST").await;
    let started = Instant::now();
    let station = run(cfg, 60).await;
    until(&states, Duration::from_secs(20), normal)
        .await
        .expect("the station never took the door");
    tokio::time::sleep(Duration::from_secs(1)).await;
    faults::lose_device("LOST");
    until(&states, Duration::from_secs(5), |s| {
        s.mode == DoorMode::FailsafeClosed
    })
    .await
    .expect("the door never went to its safe position");
    let report = station.await.unwrap();
    assert!(report.gpu_lost);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the station ran on after losing its device"
    );
    let events = lane_events(&store);
    assert!(events.iter().any(|e| e.contains("GPU lost")), "{events:#?}");
}
