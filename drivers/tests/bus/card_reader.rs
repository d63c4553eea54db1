//! The card reader on the bus: a simulated tap read and published, gated's stamped verdict written
//! to the card, a card taken away before its write, malformed taps dropped; the built binary's log
//! never names a card.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drivers::card::WRITE_REMOVED;
use drivers::{BusArgs, CardReaderSettings, run_card_reader};
use protocol::{
    CardData, CardEntry, CardPresent, CardResult, CardState, CardVerdict, VERSION, encode,
};

use crate::harness::{
    Driver, FakeGated, PROMPT, SECOND, STATION, free_endpoint, keys, subscribe, wait_for,
};

/// A card reader with the default timing (read 60 ms, write 40 ms, verdict timeout 800 ms).
fn card_reader(endpoint: &str, lanes: &[&str]) -> Driver {
    let settings = CardReaderSettings::new(BusArgs::insecure(STATION, lanes, &[endpoint]));
    Driver::spawn(|stop| run_card_reader(settings, stop))
}

fn card(id: &str, balance: u32) -> CardData {
    CardData {
        id: id.into(),
        balance,
        entry: None,
    }
}

fn present(card: CardData, hold_ms: u32) -> Vec<u8> {
    encode(&CardPresent {
        v: VERSION,
        card,
        hold_ms,
    })
}

fn entry() -> Option<CardEntry> {
    Some(CardEntry {
        station: STATION.into(),
        at_unix_ms: protocol::unix_ms(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_is_written_and_a_card_taken_away_too_early_is_left_unchanged() {
    let ep = free_endpoint();
    let driver = card_reader(&ep, &["L1"]);
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().card_state("L1")).await;
    gated.declare_alive().await;
    let (s, _) = wait_for::<CardState>(&states, 3 * SECOND, "first card state", |_| true).await;
    assert_eq!((s.tap, s.outcome, s.ack_seq), (None, None, 0));

    let first = card("0123456789abcdef", 1_000);
    gated
        .put(&keys().card_sim("L1"), present(first.clone(), 2_000))
        .await;
    let (s, took) = wait_for::<CardState>(&states, PROMPT, "the tap", |s| s.tap.is_some()).await;
    let tap = s.tap.expect("tap");
    assert_eq!((tap.seq, &tap.card), (1, &first));
    assert_eq!(s.outcome, None);
    eprintln!("card presented -> tap published after {took:?} (60 ms read)");

    let (seq, recorded) = gated
        .card_recorded(
            "L1",
            1,
            &first.id,
            CardVerdict::Write {
                balance: 810,
                charged: 190,
                entry: entry(),
            },
        )
        .await;
    let (s, took) =
        wait_for::<CardState>(&states, PROMPT, "the outcome", |s| s.outcome.is_some()).await;
    eprintln!("write verdict -> outcome after {took:?} (40 ms write)");
    assert_eq!((s.ack_seq, s.epoch), (seq, Some(gated.epoch())));
    let outcome = s.outcome.expect("outcome");
    assert_eq!(outcome.tap, 1);
    let CardResult::Written { card: written } = outcome.result else {
        panic!("not written: {outcome:?}");
    };
    assert_eq!(
        (
            written.id.as_str(),
            written.balance,
            written.entry.is_some()
        ),
        (first.id.as_str(), 810, true)
    );

    // The recorded verdict again: rejected and counted, nothing else changes.
    gated.put(&keys().card_cmd("L1"), recorded).await;
    let (s, _) = wait_for::<CardState>(&states, PROMPT, "the replay counted", |s| {
        s.rejected.replay + s.rejected.stale >= 1
    })
    .await;
    assert_eq!(s.ack_seq, seq);
    assert!(
        matches!(
            s.outcome.map(|o| o.result),
            Some(CardResult::Written { .. })
        ),
        "the replay changed the outcome"
    );

    // A second card, held 150 ms: read, but gone by the time the write verdict comes.
    let second = card("fedcba9876543210", 500);
    gated
        .put(&keys().card_sim("L1"), present(second.clone(), 150))
        .await;
    let (s, _) = wait_for::<CardState>(&states, PROMPT, "the second tap", |s| {
        s.tap.as_ref().is_some_and(|t| t.seq == 2)
    })
    .await;
    assert_eq!(s.tap.map(|t| t.card), Some(second.clone()));
    assert_eq!(s.outcome, None, "the first tap's outcome went with it");
    // Gone at 150 ms after the presentation, which the tap's publication (60 ms in) follows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (seq, _) = gated
        .card_recorded(
            "L1",
            2,
            &second.id,
            CardVerdict::Write {
                balance: 310,
                charged: 190,
                entry: entry(),
            },
        )
        .await;
    let (s, _) = wait_for::<CardState>(&states, PROMPT, "the second outcome", |s| {
        s.outcome.as_ref().is_some_and(|o| o.tap == 2)
    })
    .await;
    assert_eq!(s.ack_seq, seq);
    assert_eq!(
        s.outcome.map(|o| o.result),
        Some(CardResult::WriteFailed {
            reason: WRITE_REMOVED.into()
        })
    );

    gated.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_taps_are_dropped_and_the_reader_keeps_working() {
    let ep = free_endpoint();
    let driver = card_reader(&ep, &["L1"]);
    let gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().card_state("L1")).await;
    wait_for::<CardState>(&states, 3 * SECOND, "first card state", |_| true).await;

    let k = keys();
    let garbage: [&[u8]; 8] = [
        b"not json",
        b"",
        br#"{"v":1,"card":{"id":"not-a-card","balance":5},"hold_ms":500}"#,
        br#"{"v":1,"card":{"id":1234567890123456,"balance":5},"hold_ms":500}"#,
        br#"{"v":1,"card":{"id":"0123456789abcdef","balance":99999},"hold_ms":500}"#,
        br#"{"v":1,"card":{"id":"0123456789abcdef","balance":5},"hold_ms":0}"#,
        br#"{"v":1,"card":{"id":"0123456789abcdef","balance":5},"hold_ms":500,"x":1}"#,
        br#"{"v":2,"card":{"id":"0123456789abcdef","balance":5},"hold_ms":500}"#,
    ];
    for bytes in garbage {
        gated.put(&k.card_sim("L1"), bytes).await;
    }
    gated.put(&k.card_cmd("L1"), &b"{\"v\":2}"[..]).await;
    // A lane this reader does not serve.
    gated
        .put(&k.card_sim("L9"), present(card("0123456789abcdef", 5), 500))
        .await;

    let valid = card("00112233445566778899", 20_000);
    gated
        .put(&k.card_sim("L1"), present(valid.clone(), 500))
        .await;
    let (s, _) = wait_for::<CardState>(&states, PROMPT, "the valid tap", |s| s.tap.is_some()).await;
    assert_eq!(
        s.tap.map(|t| (t.seq, t.card)),
        Some((1, valid)),
        "none of the garbage was tapped"
    );
    assert!(driver.is_running());

    gated.close().await;
    driver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_reader_logs_taps_without_the_card_id() {
    let ep = free_endpoint();
    let mut child = Command::new(env!("CARGO_BIN_EXE_card-reader"))
        .args(["--station", STATION, "--lane", "L1", "--listen", &ep])
        // Long enough for tap 1's verdict on a loaded machine; tap 2's wait (5 s) covers it.
        .args(["--insecure", "--verdict-timeout-ms", "2000"])
        .env("RUST_LOG", "info,drivers=trace,protocol=trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start card-reader");
    let mut gated = FakeGated::connect(&ep).await;
    let states = subscribe(&gated.session, &keys().card_state("L1")).await;
    gated.declare_alive().await;
    wait_for::<CardState>(&states, 5 * SECOND, "state from the binary", |_| true).await;

    // All digits, so that it can be sent as a JSON number too.
    let id = "3141592653589793";
    let sim = keys().card_sim("L1");
    gated.put(&sim, present(card(id, 1_000), 2_000)).await;
    wait_for::<CardState>(&states, PROMPT, "tap 1", |s| s.tap.is_some()).await;
    gated
        .card_recorded(
            "L1",
            1,
            id,
            CardVerdict::Write {
                balance: 900,
                charged: 100,
                entry: entry(),
            },
        )
        .await;
    wait_for::<CardState>(&states, PROMPT, "written", |s| {
        matches!(
            s.outcome.as_ref().map(|o| &o.result),
            Some(CardResult::Written { .. })
        )
    })
    .await;
    // Tap 1 has its outcome, so the card is read again; nobody answers this time.
    gated.put(&sim, present(card(id, 900), 2_000)).await;
    wait_for::<CardState>(&states, PROMPT, "tap 2 timed out", |s| {
        s.outcome
            .as_ref()
            .is_some_and(|o| o.tap == 2 && o.result == CardResult::TimedOut)
    })
    .await;
    // Malformed taps whose decoding errors would quote the id.
    for bytes in [
        format!(r#"{{"v":1,"card":{{"id":{id},"balance":5}},"hold_ms":100}}"#),
        format!(r#"{{"v":1,"card":{{"id":"ab","balance":"{id}"}},"hold_ms":100}}"#),
        format!(r#"{{"v":1,"{id}":1}}"#),
    ] {
        gated.put(&sim, bytes).await;
    }
    gated.put(&sim, present(card(id, 900), 2_000)).await;
    wait_for::<CardState>(&states, PROMPT, "tap 3", |s| {
        s.tap.as_ref().is_some_and(|t| t.seq == 3)
    })
    .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let start = Instant::now();
    while child.try_wait().expect("wait for card-reader").is_none() {
        assert!(start.elapsed() < 5 * SECOND, "card-reader ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().expect("card-reader output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}: {log}", out.status);
    for line in [
        "card reader up",
        "card tapped",
        "card written",
        "tap timed out",
        "dropping malformed payload",
        "card reader stopping",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    assert!(!log.contains(id), "the card id is in the log:\n{log}");
    gated.close().await;
}
