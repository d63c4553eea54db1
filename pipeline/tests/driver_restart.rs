//! A door driver that restarts comes back in fail-safe with no grant and no hold (issue 15,
//! "Faults"): gated sees the new run from its clock and re-sends what the old run never
//! acknowledged. An operator `open` sent while the driver is down reaches the new run, once; a
//! hold the old run held is held again by the new one. The built `gated` and `door-driver` on the
//! TLS bus, killed and started as systemd would.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gated_common;

use std::time::Duration;

use gated_common::{Rig, wait_state};
use protocol::{DoorAction, DoorMode, Flap};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_door_driver_gets_the_open_and_the_hold_it_missed() {
    let rig = Rig::new("rst", true);
    let door = rig.door_driver("closed");
    let _gated = rig.gated();
    let keys = rig.keys();
    let bus = rig.door_bus().await;
    let states = bus
        .declare_subscriber(keys.door_state("L1"))
        .await
        .expect("subscribe");
    let (first, _) = wait_state(&states, Duration::from_secs(30), |s| {
        s.mode == DoorMode::Normal && s.epoch.is_some()
    })
    .await
    .expect("gated never took the door");
    bus.close().await.expect("close");

    // The driver dies; an open goes out while it is down (nobody acknowledges it).
    drop(door);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = pipeline::ctl::door(
        rig.station,
        &rig.operator(),
        "L1",
        DoorAction::Open,
        Duration::from_millis(300),
    )
    .await;
    assert!(sent.is_err(), "a dead driver acknowledged: {sent:?}");

    // The new run opens for it, once, in gated's epoch.
    let door = rig.door_driver("closed");
    let bus = rig.door_bus().await;
    let states = bus
        .declare_subscriber(keys.door_state("L1"))
        .await
        .expect("subscribe");
    let (opened, _) = wait_state(&states, WAIT, |s| {
        s.epoch.is_some() && matches!(s.flap, Flap::Opening | Flap::Open)
    })
    .await
    .expect("the new run of the driver never opened for the missed open");
    assert_ne!(
        opened.clock_ms / 1000,
        first.clock_ms / 1000,
        "the same run of the driver?"
    );
    let text = rig.metrics().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("gate_door_opens_resent_total{") && l.ends_with(" 1")),
        "{text}"
    );

    // A hold survives the next restart the same way.
    let (reply, _) = pipeline::ctl::door(
        rig.station,
        &rig.operator(),
        "L1",
        DoorAction::HoldOpen,
        WAIT,
    )
    .await
    .expect("hold acknowledged");
    assert!(reply.ok, "{}", reply.message);
    bus.close().await.expect("close");
    drop(door);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _door = rig.door_driver("closed");
    let bus = rig.door_bus().await;
    let states = bus
        .declare_subscriber(keys.door_state("L1"))
        .await
        .expect("subscribe");
    wait_state(&states, WAIT, |s| {
        s.epoch.is_some() && s.mode == DoorMode::HeldOpen
    })
    .await
    .expect("the new run of the driver never held the door open again");
    bus.close().await.expect("close");
}
