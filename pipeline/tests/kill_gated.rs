//! `kill -9` of gated while the door driver runs: the driver must publish its fail-safe state within
//! the watchdog timeout (it sees gated's liveliness token vanish when the TCP session drops).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use protocol::{DoorMode, DoorState, Keys, ZenohEndpoints, decode};

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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
    let gated = env!("CARGO_BIN_EXE_gated");
    let door_bin = std::path::Path::new(gated).with_file_name("door-driver");
    assert!(
        door_bin.is_file(),
        "{} missing: run through cargo test --workspace",
        door_bin.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (gp, dp) = (port(), port());
    let cfg = dir.path().join("station.toml");
    std::fs::write(
        &cfg,
        format!(
            "[station]\nid = \"k9\"\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 5\n\
             [zenoh]\nlisten = [\"tcp/127.0.0.1:{gp}\"]\nconnect = [\"tcp/127.0.0.1:{dp}\"]\n[store]\npath = \"{}\"\n[metrics]\nenabled = false\n",
            dir.path().join("s.redb").display()
        ),
    )
    .expect("write config");
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

    let mut g = Command::new(gated)
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
