//! The light driver on the bus: set-points, ramp reporting, losing gated.

use std::time::{Duration, Instant};

use drivers::{BusArgs, LightDriverSettings, run_light_driver};
use protocol::{ArchColour, LightState};

use crate::harness::{Driver, FakeGated, STATION, free_endpoint, keys, peer, subscribe, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_ramps_reports_and_idles_when_gated_goes() {
    let ep = free_endpoint();
    let settings = LightDriverSettings::new(BusArgs::insecure(STATION, &["L1"], &[&ep]));
    let driver = Driver::spawn(|stop| run_light_driver(settings, stop));
    let observer = peer(&ep).await;
    let states = subscribe(&observer, &keys().light_state("L1")).await;
    let mut gated = FakeGated::connect(&ep).await;
    gated.declare_alive().await;
    let (s, _) =
        wait_for::<LightState>(&states, Duration::from_secs(3), "first state", |_| true).await;
    assert_eq!((s.arch, s.target, s.level), (ArchColour::Idle, 0, 0.0));

    let seq = gated
        .light("L1", Some(ArchColour::Welcome), Some(100))
        .await;
    let (s, _) = wait_for::<LightState>(&states, Duration::from_secs(1), "ack", |s| {
        s.ack_seq == seq && s.epoch == Some(gated.epoch())
    })
    .await;
    assert_eq!((s.arch, s.target), (ArchColour::Welcome, 100));
    let mut updates = 0;
    let (_, took) = wait_for::<LightState>(&states, Duration::from_secs(2), "full light", |s| {
        updates += 1;
        s.level == 100.0
    })
    .await;
    eprintln!("0 -> 100 % at 200 %/s: {took:?} after the ack, {updates} state messages");
    assert!(
        took >= Duration::from_millis(350),
        "ramp too fast: {took:?}"
    );
    assert!(
        updates >= 6,
        "expected a state every ~50 ms while ramping, got {updates}"
    );

    // Steady: still republished about every second for late subscribers.
    let (_, gap) =
        wait_for::<LightState>(&states, Duration::from_secs(2), "periodic state", |_| true).await;
    assert!(
        gap >= Duration::from_millis(500),
        "steady state republished after {gap:?}"
    );

    let closing = Instant::now();
    gated.close().await;
    let (s, _) = wait_for::<LightState>(&states, Duration::from_millis(1500), "idle arch", |s| {
        s.arch == ArchColour::Idle
    })
    .await;
    let took = closing.elapsed();
    eprintln!("gated gone -> arch idle after {took:?}");
    assert_eq!((s.target, s.level), (100, 100.0), "illumination is kept");

    observer.close().await.expect("close observer");
    driver.stop().await;
}
