//! The `gated` binary as a process beside a real `door-driver`:
//! - `kill -9` of gated while the door driver runs: the driver must publish its fail-safe state within
//!   the watchdog timeout (it sees gated's liveliness token vanish when the TCP session drops), and a
//!   restarted gated, with a new epoch of its own, takes the door over again;
//! - gated as `deploy/systemd/gated.service` runs it, under a stand-in for systemd's notification
//!   socket: READY=1 once it is up, the watchdog pinged from its loop, the door's state exported for
//!   the alerts, STOPPING=1 and a clean exit on SIGTERM;
//! - `kill -9` of gated between a grant and its door opening, and after the door opened: the trip
//!   is open exactly once after the restart, and the door does not open again for it.
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
    signal(child, "TERM");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
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

/// When the first gated is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// The moment it logs the open decision: the grant is committed, its door command may or may
    /// not have left. The door driver is frozen (SIGSTOP) meanwhile, so the door cannot have
    /// opened before gated dies.
    Granted,
    /// The moment the door driver reports the door open.
    DoorOpen,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_grant_and_door_open_leaves_the_trip_open_exactly_once() {
    sigkill_then_restart(KillAt::Granted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_door_opened_leaves_the_trip_open_exactly_once() {
    sigkill_then_restart(KillAt::DoorOpen).await;
}

/// kill -9 of gated around a grant (issue 17): lane L1 of the default footage (an entry lane)
/// played by a `gated run` process following an in-process centre, killed with SIGKILL at `at`;
/// then a restarted gated plays the same lane to its end. The trip is open exactly once: one
/// passage for the walker, and the restarted station refuses their second entry with
/// `double_entry`, so the door never opens twice for the one grant.
async fn sigkill_then_restart(at: KillAt) {
    use pipeline::demo::{self, FootageOptions, truth::Truth};
    use pipeline::store::Store;

    let Some(f) = common::footage() else { return };
    let lane1 = common::first_lane_only(&f);
    let truth = Truth::load(lane1.path()).unwrap();
    let lane = &truth.lanes[0];
    let walker = lane
        .walkers
        .iter()
        .find(|w| w.expected == "open")
        .expect("an enrolled walker with a valid pass");
    // The footage station's file, drivers not spawned by gated: they must outlive the killed one.
    let rig = Rig::new("demo", false);
    let door = rig.door_driver("closed");
    // The centre presents a certificate of the rig's station CA (the demo's folder is the rig's).
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(rig.certs.path(), work.path().join("certs")).unwrap();
    let centre = demo::start_centre(lane1.path(), work.path(), &FootageOptions::default())
        .await
        .expect("centre");
    let subject = centre.subjects[&walker.identity];
    let sync = common::sync_section(&centre.syncs["demo"]);
    rig.play_footage(lane1.path(), false, &sync, "");

    // First run: killed at the chosen point.
    let bus = rig.door_bus().await;
    let states = bus
        .declare_subscriber(rig.keys().door_state("L1"))
        .await
        .expect("subscribe");
    let (mut first, granted) = rig.gated_watched(&[" decision", "outcome=\"open\""]);
    let within = Duration::from_secs(120);
    let what = match at {
        KillAt::Granted => {
            wait_state(&states, within, |s| s.epoch.is_some())
                .await
                .expect("gated never took the door");
            signal(&door.0, "STOP");
            let line = tokio::time::timeout(within, granted)
                .await
                .expect("gated never granted anyone within 2 minutes")
                .expect("gated ended without granting");
            first.0.kill().expect("SIGKILL gated");
            signal(&door.0, "CONT");
            line
        }
        KillAt::DoorOpen => {
            let (st, _) = wait_state(&states, within, |s| s.flap == protocol::Flap::Open)
                .await
                .expect("the door never opened within 2 minutes");
            format!("door {:?} at position {}", st.flap, st.position)
        }
    };
    first.0.kill().expect("SIGKILL gated");
    let _ = first.0.wait();
    eprintln!("killed at {at:?}, after: {what}");

    let path = rig.store_path();
    common::assert_trip_open_once(&path, subject, "after the kill");

    // Restarted: plays the lane to its end and exits.
    let mut second = rig.gated();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = second.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "restarted gated did not finish the footage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "restarted gated: {status}");
    centre.close().await;

    common::assert_trip_open_once(&path, subject, "after the restart");
    let store = Store::open(&path).unwrap();
    let id = subject.to_string();
    let decisions: Vec<String> = store
        .journal(1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == pipeline::store::JournalKind::Decision && e.detail.contains(&id))
        .map(|(_, e)| e.detail)
        .collect();
    assert!(
        decisions
            .iter()
            .any(|d| d.contains("\"reason\":\"double_entry\"")),
        "no double_entry refusal after the restart: {decisions:?}"
    );
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d.contains("\"outcome\":\"open\""))
            .count(),
        1,
        "{decisions:?}"
    );
}
