//! The `gated` binary as a process beside a real `door-driver`:
//! - `kill -9` of gated while the door driver runs: the driver must publish its fail-safe state within
//!   the watchdog timeout (it sees gated's liveliness token vanish when the TCP session drops), and a
//!   restarted gated, with a new epoch of its own, takes the door over again;
//! - gated as `deploy/systemd/gated.service` runs it, under a stand-in for systemd's notification
//!   socket: READY=1 once it is up, the watchdog pinged from its loop, the door's state exported for
//!   the alerts, STOPPING=1 and a clean exit on SIGTERM.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gated_common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::get;
use gated_common::{Proc, Rig, wait_state};
use protocol::DoorMode;
use supervise::notify_socket::NotifySocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_gated_puts_door_in_failsafe_and_a_restart_takes_over() {
    let rig = Rig::new("k9", false);
    let _door = rig.door_driver("open");
    let observer = rig.door_bus().await;
    let sub = observer
        .declare_subscriber(rig.keys().door_state("L1"))
        .await
        .expect("subscribe");

    let mut g = rig.gated();
    let normal = wait_state(&sub, Duration::from_secs(20), |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    let (first, _) =
        normal.expect("door never left its start-up fail-safe: gated's heartbeats did not arrive");
    assert!(first.epoch.is_some(), "{first:?}");

    g.0.kill().expect("SIGKILL gated");
    let killed = Instant::now();
    let _ = g.0.wait();
    let after = wait_state(&sub, Duration::from_secs(3), |s| {
        s.mode == DoorMode::FailsafeOpen
    })
    .await
    .map(|_| killed.elapsed());
    let after = after.expect("door driver never published failsafe_open after gated was killed");
    eprintln!("fail-safe published {after:?} after SIGKILL");
    assert!(
        after < Duration::from_millis(1000),
        "fail-safe took {after:?}, watchdog is 1 s"
    );

    // The restarted gated speaks a new epoch; the lane, in fail-safe, admits it.
    let _g = rig.gated();
    let back = wait_state(&sub, Duration::from_secs(20), |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    let (second, _) = back.expect("the restarted gated never took the door over");
    assert!(
        second.epoch.is_some() && second.epoch != first.epoch,
        "{second:?}"
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
    let rig = Rig::new("sd", true);
    let (door_dir, gated_dir) = (rig.dir.path().join("door"), rig.dir.path().join("gated"));
    std::fs::create_dir_all(&door_dir).expect("mkdir");
    std::fs::create_dir_all(&gated_dir).expect("mkdir");
    let door_socket = NotifySocket::bind(&door_dir).expect("door notify socket");
    let gated_socket = NotifySocket::bind(&gated_dir).expect("gated notify socket");
    let mp = rig.metrics_port.expect("metrics port");

    let mut door = Proc(
        rig.door_command()
            .env("NOTIFY_SOCKET", door_socket.path())
            .spawn()
            .expect("start door-driver"),
    );
    door_socket
        .wait_for("READY=1", Duration::from_secs(10))
        .expect("door-driver READY=1");

    let mut g = Proc(
        rig.gated_command()
            .env("NOTIFY_SOCKET", gated_socket.path())
            .env("WATCHDOG_USEC", "1000000")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gated"),
    );
    // On failure the processes go with `Proc`'s drop.
    let said = gated_socket
        .wait_for("READY=1", Duration::from_secs(60))
        .expect("gated READY=1");
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

    sigterm(&g.0);
    let status = wait_exit(&mut g.0, Duration::from_secs(20));
    gated_socket
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .expect("gated STOPPING=1");
    let mut log = String::new();
    if let Some(mut e) = g.0.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(status.success(), "gated exit {status} on SIGTERM: {log}");

    sigterm(&door.0);
    assert!(wait_exit(&mut door.0, Duration::from_secs(5)).success());
}
