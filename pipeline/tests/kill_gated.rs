//! `kill -9` of gated while the door driver runs: the driver must publish its fail-safe state within
//! the watchdog timeout (it sees gated's liveliness token vanish when the TCP session drops), and a
//! restarted gated, with a new epoch of its own, takes the door over again.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gated_common;

use std::time::{Duration, Instant};

use gated_common::{Rig, wait_state};
use protocol::DoorMode;

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
