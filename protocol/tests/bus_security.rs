//! Real zenoh sessions on loopback with real certificates: who can join the station bus and what each
//! role may say on it (`docs/protocol.md`, "Bus security").
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use protocol::{BusSecurity, CertDir, Keys, Role, ZenohEndpoints, zenoh_config};
use zenoh::Session;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn station_certs(dir: &std::path::Path, name: &str) -> CertDir {
    let c = CertDir::new(dir.join(name));
    c.init("s1").unwrap();
    for r in Role::ALL {
        c.issue(r, 30).unwrap();
    }
    c
}

fn tls(c: &CertDir, role: Role, listen: Vec<String>, connect: Vec<String>) -> ZenohEndpoints {
    ZenohEndpoints {
        listen,
        connect,
        security: BusSecurity::Tls(c.tls(role).unwrap()),
    }
}

async fn open(ep: ZenohEndpoints) -> Session {
    zenoh::open(zenoh_config(&ep).unwrap()).await.unwrap()
}

/// Waits until `s` has a peer, or gives up after `within`.
async fn joined(s: &Session, within: Duration) -> bool {
    let t = tokio::time::Instant::now();
    while t.elapsed() < within {
        if s.info().peers_zid().await.next().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

struct Bus {
    _dir: tempfile::TempDir,
    certs: CertDir,
    endpoint: String,
    /// Plays the door driver: listens, subscribes to the door commands, watches gated's token.
    driver: Session,
}

async fn bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let certs = station_certs(dir.path(), "station");
    let endpoint = format!("tls/127.0.0.1:{}", free_port());
    let driver = open(tls(
        &certs,
        Role::DoorDriver,
        vec![endpoint.clone()],
        vec![],
    ))
    .await;
    Bus {
        _dir: dir,
        certs,
        endpoint,
        driver,
    }
}

fn keys() -> Keys {
    Keys::new("s1").unwrap()
}

/// Puts `open` on L1's door command from a session of `role` and says whether the driver got it.
async fn door_cmd_arrives(b: &Bus, sender: &Session) -> bool {
    let sub = b
        .driver
        .declare_subscriber(keys().door_cmd("L1"))
        .await
        .unwrap();
    // Declarations travel before data; give the subscription time to reach the sender.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        sender
            .put(keys().door_cmd("L1"), r#"{"v":2,"action":"open"}"#)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = tokio::time::timeout(Duration::from_millis(500), sub.recv_async())
        .await
        .is_ok();
    sub.undeclare().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_commands_the_door_and_no_other_role_can() {
    let b = bus().await;
    let gated = open(tls(&b.certs, Role::Gated, vec![], vec![b.endpoint.clone()])).await;
    assert!(joined(&gated, Duration::from_secs(5)).await, "gated joins");
    assert!(
        door_cmd_arrives(&b, &gated).await,
        "gated's command reaches the driver"
    );

    for role in [Role::LightDriver, Role::Operator, Role::Enrold, Role::Sim] {
        let s = open(tls(&b.certs, role, vec![], vec![b.endpoint.clone()])).await;
        assert!(joined(&s, Duration::from_secs(5)).await, "{role} joins");
        assert!(
            !door_cmd_arrives(&b, &s).await,
            "a door command from {role} must be refused"
        );
        s.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_gated_can_declare_gateds_liveliness_token() {
    let b = bus().await;
    let watch = b
        .driver
        .liveliness()
        .declare_subscriber(keys().gated_alive())
        .await
        .unwrap();
    let impostor = open(tls(
        &b.certs,
        Role::LightDriver,
        vec![],
        vec![b.endpoint.clone()],
    ))
    .await;
    assert!(joined(&impostor, Duration::from_secs(5)).await);
    let _t = impostor
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), watch.recv_async())
            .await
            .is_err(),
        "a light driver's token must not reach the door driver"
    );
    let gated = open(tls(&b.certs, Role::Gated, vec![], vec![b.endpoint.clone()])).await;
    let _g = gated
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .unwrap();
    let s = tokio::time::timeout(Duration::from_secs(5), watch.recv_async())
        .await
        .expect("gated's token arrives")
        .unwrap();
    assert_eq!(s.key_expr().as_str(), keys().gated_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_and_plain_peers_cannot_join() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();

    // Another station's CA, same role names.
    let foreign = station_certs(dir.path(), "foreign");
    let s = open(tls(&foreign, Role::Gated, vec![], vec![b.endpoint.clone()])).await;
    assert!(
        !joined(&s, Duration::from_secs(2)).await,
        "a foreign CA joins"
    );
    s.close().await.unwrap();

    // The station's own CA, but the certificate expired yesterday. Our own processes refuse to
    // start with it (below); a node that uses it anyway is refused by the listener.
    let ep = tls(&b.certs, Role::Operator, vec![], vec![b.endpoint.clone()]);
    let cfg = zenoh_config(&ep).unwrap();
    b.certs.issue_between(Role::Operator, -30, -1).unwrap();
    let e = zenoh_config(&ep).unwrap_err().to_string();
    assert!(
        e.contains("operator.pem") && e.contains("expired 1 day"),
        "{e}"
    );
    let s = zenoh::open(cfg).await.unwrap();
    assert!(
        !joined(&s, Duration::from_secs(2)).await,
        "an expired certificate joins"
    );
    s.close().await.unwrap();

    // No certificate at all: plain TCP to the TLS port.
    let plain = b.endpoint.replacen("tls/", "tcp/", 1);
    let s = open(ZenohEndpoints::insecure(vec![], vec![plain])).await;
    assert!(!joined(&s, Duration::from_secs(2)).await, "plain TCP joins");
    s.close().await.unwrap();

    // A client that shows no certificate is refused by mutual TLS; the config cannot even be built
    // without one, and names the missing file.
    let missing = CertDir::new(dir.path().join("empty"));
    let e = missing.tls(Role::Gated).unwrap_err().to_string();
    assert!(e.contains("ca.pem") && e.contains("missing"), "{e}");

    // Sanity: the listener still takes a valid peer.
    let ok = open(tls(&b.certs, Role::Gated, vec![], vec![b.endpoint.clone()])).await;
    assert!(joined(&ok, Duration::from_secs(5)).await);
}

#[test]
fn endpoints_must_match_the_security() {
    let dir = tempfile::tempdir().unwrap();
    let c = station_certs(dir.path(), "s");
    let e = zenoh_config(&tls(
        &c,
        Role::Gated,
        vec!["tcp/127.0.0.1:1".into()],
        vec![],
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("tcp/127.0.0.1:1") && e.contains("tls/"), "{e}");
    let e = zenoh_config(&ZenohEndpoints::insecure(
        vec![],
        vec!["tls/127.0.0.1:1".into()],
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("tls/127.0.0.1:1"), "{e}");
}

/// One TLS link busy in both directions at once stays up. zenoh 1.10's TLS link reads and writes
/// one rustls stream from two tasks; a write that lands while the reader is processing a record
/// fails with "handshake not complete" and closes the link, which a door driver sees as gated's
/// token going (vendor/zenoh-link-tls/PATCHED.md). Commands flow one way and states the other, as
/// on a station, only faster, so the overlap happens many times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_link_busy_both_ways_stays_up() {
    use zenoh::Wait;
    use zenoh::qos::CongestionControl;
    use zenoh::sample::SampleKind;

    let b = bus().await;
    let watch = b
        .driver
        .liveliness()
        .declare_subscriber(keys().gated_alive())
        .await
        .unwrap();
    let gated = open(tls(&b.certs, Role::Gated, vec![], vec![b.endpoint.clone()])).await;
    let _token = gated
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.recv_async())
        .await
        .expect("gated's token arrives")
        .unwrap();
    assert_eq!(first.kind(), SampleKind::Put);

    // Counted in callbacks, which never block zenoh's receiving tasks (a full channel would, and
    // then the link stalls for reasons of the test's own making).
    let counter = |session: &Session, key: String| {
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = n.clone();
        let sub = session
            .declare_subscriber(key)
            .callback(move |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .wait()
            .unwrap();
        (sub, n)
    };
    let (_commands, got_cmds) = counter(&b.driver, keys().door_cmd("L1"));
    let (_states, got_states) = counter(&gated, keys().door_state("L1"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A blocking put blocks its thread, so each sender gets one of its own.
    const N: usize = 3000;
    let send = |s: Session, key: String| {
        std::thread::spawn(move || {
            for _ in 0..N {
                s.put(&key, vec![b'x'; 4096])
                    .congestion_control(CongestionControl::Block)
                    .wait()
                    .unwrap();
            }
        })
    };
    let tx = [
        send(gated.clone(), keys().door_cmd("L1")),
        send(b.driver.clone(), keys().door_state("L1")),
    ];
    for t in tx {
        t.join().unwrap();
    }
    let load = |n: &std::sync::atomic::AtomicUsize| n.load(std::sync::atomic::Ordering::Relaxed);
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while (load(&got_cmds), load(&got_states)) != (N, N) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (c, s) = (load(&got_cmds), load(&got_states));

    // A dropped link shows as the token's DELETE (and messages lost while it was down).
    let dropped = std::iter::from_fn(|| watch.try_recv().ok().flatten())
        .filter(|s| s.kind() == SampleKind::Delete)
        .count();
    assert_eq!(dropped, 0, "the link dropped {dropped} times");
    assert_eq!(
        (c, s),
        (N, N),
        "every message arrives on a link that stays up"
    );
}
