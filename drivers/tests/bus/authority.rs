//! Command authority on the bus (issue 15): replayed, stale, foreign-epoch and hostile-seq commands
//! from another peer are rejected and counted, never feed the watchdog, and never take a lane from
//! the gated that holds it; a restarted gated (new epoch) takes over after fail-safe; a forged
//! liveliness token reopens nothing. What an eavesdropper would record is the bytes gated put
//! (`FakeGated::door_recorded`): peers that only dial the driver do not hear each other here.

use std::time::Duration;

use crate::harness::{
    Driver, FakeGated, Kind, PROMPT, SECOND, STATION, Sub, door_driver, finish, free_endpoint,
    keys, peer_hearing, put, random_epoch, subscribe, take_l1, wait_for,
};
use drivers::{BusArgs, FailsafePosition, LightDriverSettings, run_light_driver};
use protocol::{
    ArchColour, COMMAND_TTL_MS, DoorAction, DoorCommand, DoorMode, DoorState, Epoch, LightCommand,
    LightState, Stamp, encode,
};

/// A door command as another peer writes it.
fn door_cmd(epoch: Epoch, seq: u64, deadline_ms: u64, action: DoorAction) -> Vec<u8> {
    encode(&DoorCommand::new(
        Stamp {
            epoch,
            seq,
            deadline_ms,
        },
        action,
    ))
}

/// A door driver serving L1 (fail-safe closed) on a fresh endpoint.
fn door_l1() -> (String, Driver) {
    let ep = free_endpoint();
    let driver = door_driver(&ep, &["L1"], FailsafePosition::Closed);
    (ep, driver)
}

/// A gated in control of L1 (token, heartbeats) and the state subscription.
async fn gated_in_control(ep: &str) -> (FakeGated, Sub) {
    take_l1(FakeGated::connect(ep).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_door_commands_are_rejected_counted_and_gated_keeps_control() {
    let (ep, driver) = door_l1();
    let attacker = peer_hearing(&ep, &keys().door_state("L1")).await;
    let (gated, states) = gated_in_control(&ep).await;
    let epoch = gated.epoch();
    let key = keys().door_cmd("L1");

    let (hold, hold_bytes) = gated.door_recorded("L1", DoorAction::HoldOpen).await;
    wait_for::<DoorState>(&states, PROMPT, "held open", |s| {
        s.ack_seq >= hold && s.mode == DoorMode::HeldOpen
    })
    .await;
    let release = gated.door("L1", DoorAction::Release).await;
    wait_for::<DoorState>(&states, PROMPT, "released", |s| {
        s.ack_seq >= release && s.mode == DoorMode::Normal
    })
    .await;

    // The pin of issue 15: hold_open with seq u64::MAX, in gated's own epoch, before its deadline.
    let now = gated.driver_now(Kind::Door).await;
    put(
        &attacker,
        &key,
        door_cmd(epoch, u64::MAX, now + 500, DoorAction::HoldOpen),
    )
    .await;
    // The recorded hold_open again while it would still be in time (an old seq), and after its
    // deadline (the bytes exactly as recorded).
    put(
        &attacker,
        &key,
        door_cmd(epoch, hold, now + 500, DoorAction::HoldOpen),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(COMMAND_TTL_MS + 300)).await;
    put(&attacker, &key, hold_bytes).await;
    // Another epoch while gated holds the lane, and deadlines far out either way.
    let now = gated.driver_now(Kind::Door).await;
    put(
        &attacker,
        &key,
        door_cmd(random_epoch(), 1, now + 500, DoorAction::HoldOpen),
    )
    .await;
    put(
        &attacker,
        &key,
        door_cmd(epoch, 0, u64::MAX, DoorAction::HoldOpen),
    )
    .await;
    put(
        &attacker,
        &key,
        door_cmd(epoch, release + 1, 0, DoorAction::HoldOpen),
    )
    .await;

    let (s, _) = wait_for::<DoorState>(&states, 3 * SECOND, "every rejection counted", |s| {
        assert_ne!(
            s.mode,
            DoorMode::HeldOpen,
            "a rejected command acted: {s:?}"
        );
        let r = s.rejected;
        r.future >= 2 && r.replay >= 1 && r.stale >= 2 && r.epoch >= 1
    })
    .await;
    eprintln!("rejected: {:?}", s.rejected);
    assert_eq!((s.mode, s.epoch), (DoorMode::Normal, Some(epoch)));
    assert!(
        s.ack_seq > release && s.ack_seq < release + 100,
        "{}",
        s.ack_seq
    );

    // gated's next command still gets in and the door follows it.
    let seq = gated.door("L1", DoorAction::HoldClosed).await;
    let (s, _) =
        wait_for::<DoorState>(&states, PROMPT, "gated's hold_closed", |s| s.ack_seq >= seq).await;
    assert_eq!((s.mode, s.epoch), (DoorMode::HeldClosed, Some(epoch)));

    finish(gated, attacker, driver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_commands_do_not_keep_the_door_out_of_failsafe() {
    let (ep, driver) = door_l1();
    let attacker = peer_hearing(&ep, &keys().door_state("L1")).await;
    let (mut gated, states) = gated_in_control(&ep).await;
    let epoch = gated.epoch();
    let (held, held_bytes) = gated.door_recorded("L1", DoorAction::HoldOpen).await;
    wait_for::<DoorState>(&states, PROMPT, "held open", |s| {
        s.mode == DoorMode::HeldOpen
    })
    .await;

    // gated hangs (token kept, no more commands) while another peer keeps sending what it can
    // without gated's help: the pin, replays of what it recorded, stale copies, and hostile claims.
    gated.stop_heartbeats();
    let flood = {
        let attacker = attacker.clone();
        let key = keys().door_cmd("L1");
        let now0 = gated.driver_now(Kind::Door).await;
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            loop {
                let now = now0 + start.elapsed().as_millis() as u64;
                for bytes in [
                    door_cmd(epoch, u64::MAX, now + 500, DoorAction::HoldOpen),
                    door_cmd(epoch, held, now + 500, DoorAction::HoldOpen),
                    door_cmd(random_epoch(), u64::MAX, now + 500, DoorAction::HoldOpen),
                    held_bytes.clone(),
                ] {
                    if attacker.put(&key, bytes).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (s, _) = wait_for::<DoorState>(&states, 5 * SECOND, "fail-safe despite the flood", |s| {
        s.mode == DoorMode::FailsafeClosed
    })
    .await;
    assert!(s.reason.contains("watchdog"), "{}", s.reason);
    // It stays there while the flood goes on.
    let until = std::time::Instant::now() + SECOND;
    while std::time::Instant::now() < until {
        let (s, _) = wait_for::<DoorState>(&states, PROMPT, "a state", |_| true).await;
        assert_eq!(s.mode, DoorMode::FailsafeClosed, "{s:?}");
    }
    let (s, _) = wait_for::<DoorState>(&states, PROMPT, "counters", |_| true).await;
    assert!(
        s.rejected.future >= 10 && s.rejected.replay + s.rejected.stale >= 10,
        "{:?}",
        s.rejected
    );

    // gated comes back in its own epoch and takes the lane out of fail-safe.
    gated.start_heartbeats(&["L1"]);
    let (s, _) = wait_for::<DoorState>(&states, 3 * SECOND, "gated back", |s| {
        s.mode == DoorMode::Normal
    })
    .await;
    assert_eq!(s.epoch, Some(epoch));
    flood.abort();

    finish(gated, attacker, driver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_takes_over_only_after_failsafe() {
    let (ep, driver) = door_l1();
    let (mut first, states) = gated_in_control(&ep).await;

    // A second gated (a restart while the first hangs with its token) is refused while the first
    // is in control …
    let mut second = FakeGated::connect(&ep).await;
    second.declare_alive().await;
    second.start_heartbeats(&["L1"]);
    wait_for::<DoorState>(&states, 3 * SECOND, "the second refused", |s| {
        assert_eq!(s.epoch, Some(first.epoch()));
        s.rejected.epoch >= 2
    })
    .await;
    // … and takes over once the silent first one's watchdog has put the lane in fail-safe.
    first.stop_heartbeats();
    let (s, _) = wait_for::<DoorState>(&states, 5 * SECOND, "the second in control", |s| {
        s.mode == DoorMode::Normal && s.epoch == Some(second.epoch())
    })
    .await;
    assert!(s.ack_seq < 50, "the new epoch counts from 1: {}", s.ack_seq);

    // The first one's commands are another epoch's now.
    let before = s.rejected.epoch;
    first.door("L1", DoorAction::HoldOpen).await;
    let (s, _) = wait_for::<DoorState>(&states, 2 * SECOND, "the first refused", |s| {
        s.rejected.epoch > before
    })
    .await;
    assert_eq!((s.mode, s.epoch), (DoorMode::Normal, Some(second.epoch())));

    first.close().await;
    second.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_liveliness_token_does_not_reopen_the_replay_window() {
    let (ep, driver) = door_l1();
    let attacker = peer_hearing(&ep, &keys().door_state("L1")).await;
    let (gated, _) = gated_in_control(&ep).await;
    // Watched from the attacker's session: gated's goes away in the middle of the test.
    let states = subscribe(&attacker, &keys().door_state("L1")).await;
    let epoch = gated.epoch();
    let key = keys().door_cmd("L1");
    let (hold, hold_bytes) = gated.door_recorded("L1", DoorAction::HoldOpen).await;
    let release = gated.door("L1", DoorAction::Release).await;
    wait_for::<DoorState>(&states, PROMPT, "released", |s| {
        s.ack_seq >= release && s.mode == DoorMode::Normal
    })
    .await;

    // Another peer declares gated's token and withdraws it while gated runs: nothing changes.
    let forged = attacker
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .expect("forged token");
    tokio::time::sleep(Duration::from_millis(200)).await;
    forged.undeclare().await.expect("undeclare");
    let until = std::time::Instant::now() + SECOND;
    while std::time::Instant::now() < until {
        let (s, _) = wait_for::<DoorState>(&states, PROMPT, "a state", |_| true).await;
        assert_eq!((s.mode, s.epoch), (DoorMode::Normal, Some(epoch)), "{s:?}");
    }

    // gated goes away; the forged token comes "back"; the lane's epoch and sequence stay as they
    // were, so neither the recorded hold_open nor a copy stamped in time is admitted.
    gated.close().await;
    let (s, _) = wait_for::<DoorState>(&states, 3 * SECOND, "fail-safe", |s| {
        s.mode == DoorMode::FailsafeClosed
    })
    .await;
    let last = s.ack_seq;
    let _forged = attacker
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .expect("forged token");
    wait_for::<DoorState>(&states, 2 * SECOND, "token seen", |s| {
        s.reason == "no command from gated yet"
    })
    .await;
    // The driver's clock as its latest state reads it: deadlines stamped on it are in time.
    let (s, _) = wait_for::<DoorState>(&states, PROMPT, "a clock", |_| true).await;
    let now = s.clock_ms;
    put(
        &attacker,
        &key,
        door_cmd(epoch, hold, now + 500, DoorAction::HoldOpen),
    )
    .await;
    put(
        &attacker,
        &key,
        door_cmd(epoch, 1, now + 500, DoorAction::HoldOpen),
    )
    .await;
    put(&attacker, &key, hold_bytes).await;
    let (s, _) = wait_for::<DoorState>(&states, 2 * SECOND, "rejections counted", |s| {
        s.rejected.replay >= 2 && s.rejected.stale >= 1
    })
    .await;
    assert_eq!(s.mode, DoorMode::FailsafeClosed, "{s:?}");
    assert_eq!((s.epoch, s.ack_seq), (Some(epoch), last));

    attacker.close().await.expect("close attacker");
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_light_commands_are_rejected_and_the_lamps_follow_gated() {
    let ep = free_endpoint();
    let settings = LightDriverSettings::new(BusArgs::insecure(STATION, &["L1"], &[&ep]));
    let driver = Driver::spawn(|stop| run_light_driver(settings, stop));
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().light_state("L1")).await;
    gated.declare_alive().await;
    let epoch = gated.epoch();
    let first = gated.light("L1", Some(ArchColour::Welcome), Some(40)).await;
    wait_for::<LightState>(&states, 3 * SECOND, "welcome", |s| {
        s.ack_seq == first && s.epoch == Some(epoch)
    })
    .await;

    let attacker = peer_hearing(&ep, &keys().light_state("L1")).await;
    let key = keys().light_cmd("L1");
    let now = gated.driver_now(Kind::Light).await;
    let cmd = |epoch, seq, deadline_ms| {
        let stamp = Stamp {
            epoch,
            seq,
            deadline_ms,
        };
        encode(&LightCommand::new(
            stamp,
            Some(ArchColour::Alarm),
            Some(100),
        ))
    };
    for bytes in [
        cmd(epoch, u64::MAX, now + 500),
        cmd(epoch, first, now + 500),
        cmd(random_epoch(), 1, now + 500),
        cmd(epoch, first + 1, 0),
    ] {
        put(&attacker, &key, bytes).await;
    }
    let (s, _) = wait_for::<LightState>(&states, 3 * SECOND, "rejections counted", |s| {
        assert_ne!(s.arch, ArchColour::Alarm, "a rejected command acted: {s:?}");
        let r = s.rejected;
        (r.future, r.replay, r.epoch, r.stale) == (1, 1, 1, 1)
    })
    .await;
    assert_eq!((s.ack_seq, s.target), (first, 40));

    let next = gated.light("L1", Some(ArchColour::Stop), None).await;
    let (s, _) =
        wait_for::<LightState>(&states, PROMPT, "gated's next", |s| s.ack_seq == next).await;
    assert_eq!((s.arch, s.epoch), (ArchColour::Stop, Some(epoch)));

    finish(gated, attacker, driver).await;
}
