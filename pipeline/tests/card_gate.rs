//! The card reader beside the face, whole (issue 17 item 4): `gated run`, `door-driver` and
//! `card-reader` as processes on loopback over mutual TLS with access control, and a test rig (role
//! `sim`) tapping cards on the simulated reader. A tap is judged by gated, written to the card, and
//! only then is the door opened; a card refused, or pulled away before its write completed, opens
//! nothing and is charged nothing. Needs the built binaries: run through `cargo test --workspace`.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gated_common;

use std::process::Stdio;
use std::time::Duration;

use gated_common::{Proc, Reader, Rig, port, session, tap, wait_for, wait_state};
use protocol::{CardData, CardResult, Decision, Flap, Role};

const WAIT: Duration = Duration::from_secs(20);

fn card(balance: u32) -> CardData {
    CardData {
        id: "0123456789abcdef".into(),
        balance,
        entry: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_opens_the_door_only_once_written_and_a_refused_or_pulled_card_opens_nothing() {
    let rig = Rig::new("cards", false);
    let card_port = port();
    let _door = rig.door_driver("closed");
    let _gated = {
        let mut c = rig.gated_command();
        if std::env::var_os("CARD_GATE_LOG").is_some() {
            c.stderr(Stdio::inherit())
                .env("RUST_LOG", "info,pipeline=debug");
        }
        Proc(c.spawn().expect("start gated"))
    };

    let reader = Reader::start(&rig, card_port).await;
    let (sim, states) = (&reader.sim, &reader.states);

    let keys = rig.keys();
    let door_bus = rig.door_bus().await;
    let doors = door_bus
        .declare_subscriber(keys.door_state("L1"))
        .await
        .expect("door states");
    let decisions = session(&rig, Role::Operator, rig.gated_port).await;
    let decided = decisions
        .declare_subscriber(keys.decision("L1"))
        .await
        .expect("decisions");

    // gated is up and holds the reader once the reader's state shows gated's epoch... which it
    // has only after a first verdict; wait for the door instead (gated's heartbeat claims it).
    wait_state(&doors, WAIT, |s| s.epoch.is_some())
        .await
        .expect("gated drives the door");

    // An entry: the card is written (entry recorded, nothing charged), then the door opens.
    let (first, result, took) = tap(sim, states, &rig, card(500), 5000, 0).await;
    let CardResult::Written { card: written } = result else {
        panic!("not written: {result:?}");
    };
    assert_eq!(written.balance, 500);
    assert_eq!(
        written.entry.as_ref().map(|e| e.station.as_str()),
        Some("cards")
    );
    let (_, opened) = wait_state(&doors, WAIT, |s| {
        matches!(s.flap, Flap::Opening | Flap::Open)
    })
    .await
    .expect("the door opens for the written card");
    eprintln!("tap → written {took:?}; → door opening {:?} later", opened);
    let (d, _) = wait_for::<Decision>(&decided, WAIT, |d| d.reason == "card")
        .await
        .expect("the card's decision");
    assert_eq!(d.subject, None, "a card decision names no subject");
    wait_state(&doors, WAIT, |s| s.flap == Flap::Closed)
        .await
        .expect("the door closes after the pass timeout");

    // The same card again: a trip is open on it, refused, nothing written, the door stays shut.
    let (second, result, _) = tap(sim, states, &rig, written.clone(), 5000, first).await;
    assert_eq!(result, CardResult::Shown);
    wait_for::<Decision>(&decided, WAIT, |d| d.reason == "double_entry")
        .await
        .expect("the refusal's decision");

    // A fresh card pulled away before its write completes: not written, and the door stays shut.
    let (_, result, _) = tap(sim, states, &rig, card(300), 70, second).await;
    assert!(
        matches!(result, CardResult::WriteFailed { .. }),
        "{result:?}"
    );
    wait_for::<Decision>(&decided, WAIT, |d| d.reason == "card_not_written")
        .await
        .expect("the failed write's decision");
    assert!(
        wait_state(&doors, Duration::from_secs(1), |s| {
            matches!(s.flap, Flap::Opening | Flap::Open)
        })
        .await
        .is_none(),
        "the door opened for a card that was not written"
    );
}
