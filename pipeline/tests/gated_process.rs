//! The `gated` binary as a process beside a real `door-driver`:
//! - `kill -9` of gated while the door driver runs: the driver must publish its fail-safe state
//!   within the watchdog timeout (it sees gated's liveliness token vanish when the TCP session
//!   drops);
//! - gated as `deploy/systemd/gated.service` runs it, under a stand-in for systemd's notification
//!   socket: READY=1 once it is up, the watchdog pinged from its loop, the door's state exported for
//!   the alerts, STOPPING=1 and a clean exit on SIGTERM.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{get, port};
use protocol::{DoorMode, DoorState, Keys, ZenohEndpoints, decode};
use supervise::notify_socket::NotifySocket;

/// gated and the door driver beside it.
fn binaries() -> (PathBuf, PathBuf) {
    let gated = PathBuf::from(env!("CARGO_BIN_EXE_gated"));
    let door = gated.with_file_name("door-driver");
    assert!(
        door.is_file(),
        "{} missing: run through cargo test --workspace",
        door.display()
    );
    (gated, door)
}

/// A one-lane station file in `dir` that dials the door driver on `door_port`; `metrics` is the
/// body of its `[metrics]` section.
fn station_file(dir: &Path, station: &str, door_port: u16, metrics: &str) -> PathBuf {
    let cfg = dir.join("station.toml");
    std::fs::write(
        &cfg,
        format!(
            "[station]\nid = \"{station}\"\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 5\n\
             [zenoh]\nlisten = [\"tcp/127.0.0.1:{}\"]\nconnect = [\"tcp/127.0.0.1:{door_port}\"]\n[store]\npath = \"{}\"\n[metrics]\n{metrics}\n",
            port(),
            dir.join("s.redb").display()
        ),
    )
    .expect("write config");
    cfg
}

async fn wait_mode(
    sub: &zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    want: DoorMode,
    within: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(100), sub.recv_async()).await
            && let Ok(st) = decode::<DoorState>(&s.payload().to_bytes())
            && st.mode == want
        {
            return Some(t0.elapsed());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_gated_puts_door_in_failsafe() {
    let (gated, door_bin) = binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let dp = port();
    let cfg = station_file(dir.path(), "k9", dp, "enabled = false");
    let mut door = Command::new(&door_bin)
        .args([
            "--station",
            "k9",
            "--lane",
            "L1",
            "--listen",
            &format!("tcp/127.0.0.1:{dp}"),
            "--failsafe",
            "open",
            "--watchdog-ms",
            "1000",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("start door-driver");
    let observer = zenoh::open(
        protocol::zenoh_config(&ZenohEndpoints {
            listen: vec![],
            connect: vec![format!("tcp/127.0.0.1:{dp}")],
        })
        .expect("cfg"),
    )
    .await
    .expect("observer");
    let sub = observer
        .declare_subscriber(Keys::new("k9").expect("keys").door_state("L1"))
        .await
        .expect("subscribe");

    let mut g = Command::new(&gated)
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start gated");
    let normal = wait_mode(&sub, DoorMode::Normal, Duration::from_secs(20)).await;
    assert!(
        normal.is_some(),
        "door never left its start-up fail-safe: gated's heartbeats did not arrive"
    );

    g.kill().expect("SIGKILL gated");
    let killed = Instant::now();
    let _ = g.wait();
    let after = wait_mode(&sub, DoorMode::FailsafeOpen, Duration::from_secs(3))
        .await
        .map(|_| killed.elapsed());
    let _ = door.kill();
    let _ = door.wait();
    let after = after.expect("door driver never published failsafe_open after gated was killed");
    eprintln!("fail-safe published {after:?} after SIGKILL");
    assert!(
        after < Duration::from_millis(1000),
        "fail-safe took {after:?}, watchdog is 1 s"
    );
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            t0.elapsed() < within,
            "no exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gated_notifies_systemd_and_exports_the_door_state() {
    let (gated, door_bin) = binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let (door_dir, gated_dir) = (dir.path().join("door"), dir.path().join("gated"));
    std::fs::create_dir_all(&door_dir).expect("mkdir");
    std::fs::create_dir_all(&gated_dir).expect("mkdir");
    let door_socket = NotifySocket::bind(&door_dir).expect("door notify socket");
    let gated_socket = NotifySocket::bind(&gated_dir).expect("gated notify socket");
    let (dp, mp) = (port(), port());
    let cfg = station_file(
        dir.path(),
        "sd",
        dp,
        &format!("listen = \"127.0.0.1:{mp}\""),
    );

    let mut door = Command::new(&door_bin)
        .args(["--station", "sd", "--lane", "L1", "--listen"])
        .arg(format!("tcp/127.0.0.1:{dp}"))
        .env("NOTIFY_SOCKET", door_socket.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("start door-driver");
    door_socket
        .wait_for("READY=1", Duration::from_secs(10))
        .expect("door-driver READY=1");

    let mut g = Command::new(&gated)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", gated_socket.path())
        .env("WATCHDOG_USEC", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gated");
    let said = gated_socket.wait_for("READY=1", Duration::from_secs(60));
    if said.is_err() {
        let _ = g.kill();
        let _ = door.kill();
    }
    let said = said.expect("gated READY=1");
    assert_eq!(
        said.len(),
        1,
        "gated said something before READY=1: {said:?}"
    );
    assert!(said[0].contains("STATUS=1 lanes on "), "{said:?}");
    for _ in 0..2 {
        gated_socket
            .wait_for("WATCHDOG=1", Duration::from_secs(2))
            .expect("gated pings its watchdog every 500 ms");
    }

    // The heartbeats bring the door out of its start-up fail-safe; the health tick (1 s) refreshes
    // the state's age.
    let t0 = Instant::now();
    let text = loop {
        let text = get(&format!("127.0.0.1:{mp}"), "/metrics");
        if text.contains("gate_door_mode{lane=\"L1\",mode=\"normal\"} 1")
            && text.contains("gate_door_flap{lane=\"L1\",flap=\"closed\"} 1")
        {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "door state never exported as normal/closed:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.contains("gate_door_mode{lane=\"L1\",mode=\"failsafe_closed\"} 0"));
    assert!(text.contains("gate_driver_ack_timeouts_total{driver=\"door\",lane=\"L1\"}"));
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix("gate_door_state_age_seconds{lane=\"L1\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(age.is_some_and(|a| a < 2.0), "state age {age:?}:\n{text}");

    sigterm(&g);
    let status = wait_exit(&mut g, Duration::from_secs(20));
    gated_socket
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .expect("gated STOPPING=1");
    let mut log = String::new();
    if let Some(mut e) = g.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(status.success(), "gated exit {status} on SIGTERM: {log}");

    sigterm(&door);
    assert!(wait_exit(&mut door, Duration::from_secs(5)).success());
}
