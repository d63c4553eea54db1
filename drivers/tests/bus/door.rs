//! The door driver on the bus: commands, sim inputs, malformed payloads, fail-safe and emergency.

use std::time::{Duration, Instant};

use drivers::FailsafePosition;
use protocol::{DoorAction, DoorMode, DoorSim, DoorState, Emergency, Flap, VERSION, encode};

use crate::harness::{
    FakeGated, PROMPT, SECOND, door_driver, free_endpoint, keys, peer, subscribe, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_is_acknowledged_and_the_flap_opens_then_closes_after_passage() {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1", "L2"], FailsafePosition::Closed);
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().door_state("L1")).await;

    // The driver was up before gated: fail-safe, saying why.
    let (s, _) = wait_for::<DoorState>(&states, 3 * SECOND, "first door state", |_| true).await;
    assert_eq!(
        (s.mode, s.flap, s.ack_seq),
        (DoorMode::FailsafeClosed, Flap::Closed, 0)
    );
    assert_eq!(s.reason, "no command from gated yet");

    gated.start_heartbeats(&["L1"]);
    wait_for::<DoorState>(&states, PROMPT, "normal mode", |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    let seq = gated.door("L1", DoorAction::Open).await;
    // The ack is published at once, before the next control tick starts the motor.
    let (s, t_ack) = wait_for::<DoorState>(&states, PROMPT, "ack", |s| s.ack_seq >= seq).await;
    assert_eq!(s.mode, DoorMode::Normal);
    let (s, t_open) =
        wait_for::<DoorState>(&states, PROMPT, "flap open", |s| s.flap == Flap::Open).await;
    assert_eq!((s.mode, s.position), (DoorMode::Normal, 1.0));
    eprintln!("ack after {t_ack:?}, open {t_open:?} later (300 ms stroke)");

    let sim = DoorSim {
        v: VERSION,
        obstructed: None,
        passage: true,
        jammed: None,
    };
    gated.put(&keys().door_sim("L1"), encode(&sim)).await;
    let (_, t_closed) =
        wait_for::<DoorState>(&states, 2 * SECOND, "closed", |s| s.flap == Flap::Closed).await;
    // 300 ms clearance + 300 ms stroke.
    assert!(
        t_closed >= Duration::from_millis(550),
        "closed after {t_closed:?}"
    );

    gated.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_vanishing_puts_the_door_in_failsafe_closed_within_the_watchdog() {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1"], FailsafePosition::Closed);
    let observer = peer(&ep).await;
    let states = subscribe(&observer, &keys().door_state("L1")).await;
    let mut gated = FakeGated::connect(&ep).await;
    gated.declare_alive().await;
    gated.start_heartbeats(&["L1"]);
    wait_for::<DoorState>(&states, 3 * SECOND, "normal mode", |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    gated.door("L1", DoorAction::HoldOpen).await;
    wait_for::<DoorState>(&states, PROMPT, "held open", |s| s.flap == Flap::Open).await;

    let closing = Instant::now();
    gated.close().await;
    let (s, _) = wait_for::<DoorState>(&states, Duration::from_millis(1500), "fail-safe", |s| {
        s.mode != DoorMode::HeldOpen
    })
    .await;
    let took = closing.elapsed();
    assert!(
        took <= Duration::from_millis(1500),
        "fail-safe after {took:?}"
    );
    eprintln!(
        "gated session closed -> {:?} after {took:?} ({})",
        s.mode, s.reason
    );
    assert_eq!(s.mode, DoorMode::FailsafeClosed);
    assert!(
        s.reason == "gated liveliness token lost" || s.reason.contains("watchdog"),
        "{}",
        s.reason
    );
    wait_for::<DoorState>(&states, PROMPT, "flap closed", |s| s.flap == Flap::Closed).await;

    // A new gated brings the lane back to normal with its first command: a new epoch, its seq
    // counted from 1.
    let old_epoch = s.epoch;
    let mut gated = FakeGated::connect(&ep).await;
    gated.declare_alive().await;
    gated.start_heartbeats(&["L1"]);
    let (s, _) = wait_for::<DoorState>(&states, 3 * SECOND, "normal again", |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    assert!(s.reason.is_empty(), "{}", s.reason);
    assert_eq!(s.epoch, Some(gated.epoch()));
    assert_ne!(s.epoch, old_epoch);
    assert!(s.ack_seq <= 3, "the new epoch counts from 1: {}", s.ack_seq);
    gated.close().await;
    observer.close().await.expect("close observer");
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_gated_trips_the_watchdog_into_failsafe_open() {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1"], FailsafePosition::Open);
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().door_state("L1")).await;
    gated.declare_alive().await;
    gated.start_heartbeats(&["L1"]);
    wait_for::<DoorState>(&states, 3 * SECOND, "normal", |s| {
        s.mode == DoorMode::Normal && s.flap == Flap::Closed
    })
    .await;

    // Token still held, but no more commands: only the watchdog can notice.
    gated.stop_heartbeats();
    let (s, took) = wait_for::<DoorState>(&states, Duration::from_millis(1500), "fail-safe", |s| {
        s.mode != DoorMode::Normal
    })
    .await;
    eprintln!(
        "heartbeats stopped -> {:?} after {took:?} ({})",
        s.mode, s.reason
    );
    assert_eq!(s.mode, DoorMode::FailsafeOpen);
    assert!(s.reason.contains("watchdog"), "{}", s.reason);
    assert!(
        took >= Duration::from_millis(750),
        "fail-safe after only {took:?}"
    );
    wait_for::<DoorState>(&states, PROMPT, "evacuation position", |s| {
        s.flap == Flap::Open
    })
    .await;

    gated.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_dropped_and_the_driver_keeps_working() {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1"], FailsafePosition::Closed);
    let gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().door_state("L1")).await;
    wait_for::<DoorState>(&states, 3 * SECOND, "first state", |_| true).await;

    let k = keys();
    let garbage: [&[u8]; 5] = [
        b"not json",
        br#"{"v":2,"seq":50,"action":"open"}"#,
        br#"{"v":1,"seq":50,"action":"open","extra":1}"#,
        br#"{"v":1,"seq":50,"action":"fly"}"#,
        b"",
    ];
    for bytes in garbage {
        gated.put(&k.door_cmd("L1"), bytes).await;
    }
    gated
        .put(&k.door_sim("L1"), &b"{\"v\":1,\"passage\":\"yes\"}"[..])
        .await;
    gated.put(&k.emergency(), &b"{\"v\":1}"[..]).await;
    // A lane this driver does not serve.
    gated.door("L9", DoorAction::HoldOpen).await;

    let seq = gated.door("L1", DoorAction::Open).await;
    let (s, _) = wait_for::<DoorState>(&states, PROMPT, "ack of the valid command", |s| {
        s.ack_seq == seq
    })
    .await;
    assert_eq!(
        s.mode,
        DoorMode::Normal,
        "none of the garbage was acted on: {s:?}"
    );
    wait_for::<DoorState>(&states, PROMPT, "flap open", |s| s.flap == Flap::Open).await;
    assert!(driver.is_running());

    gated.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_opens_every_door_over_hold_closed_and_failsafe() {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1", "L2"], FailsafePosition::Closed);
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().all_door_states()).await;
    let l2 = subscribe(&gated.session, &keys().door_state("L2")).await;
    wait_for::<DoorState>(&l2, 3 * SECOND, "first state", |_| true).await;
    // L1 held closed by gated, L2 left in fail-safe closed (never commanded).
    gated.start_heartbeats(&["L1"]);
    gated.door("L1", DoorAction::HoldClosed).await;
    wait_for::<DoorState>(&states, PROMPT, "L1 held closed", |s| {
        s.lane == "L1" && s.mode == DoorMode::HeldClosed
    })
    .await;

    gated
        .put(
            &keys().emergency(),
            encode(&Emergency {
                v: VERSION,
                active: true,
            }),
        )
        .await;
    let mut open = std::collections::BTreeSet::new();
    let (_, took) = wait_for::<DoorState>(&states, 2 * SECOND, "every flap open", |s| {
        if s.mode == DoorMode::Emergency && s.flap == Flap::Open {
            open.insert(s.lane.clone());
        }
        open.len() == 2
    })
    .await;
    eprintln!("emergency -> both flaps open after {took:?}");

    gated
        .put(
            &keys().emergency(),
            encode(&Emergency {
                v: VERSION,
                active: false,
            }),
        )
        .await;
    let (s, _) =
        wait_for::<DoorState>(&l2, PROMPT, "L2 back", |s| s.mode != DoorMode::Emergency).await;
    assert_eq!(s.mode, DoorMode::FailsafeClosed);
    wait_for::<DoorState>(&states, 2 * SECOND, "L1 closed again", |s| {
        s.lane == "L1" && s.mode == DoorMode::HeldClosed && s.flap == Flap::Closed
    })
    .await;

    gated.close().await;
    driver.stop().await;
}
