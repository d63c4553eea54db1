//! The built `door-driver` binary: flags, state on the bus, clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use protocol::{DoorMode, DoorState};

use crate::harness::{STATION, free_endpoint, keys, peer, subscribe, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_driver_binary_serves_and_exits_cleanly_on_sigterm() {
    let ep = free_endpoint();
    let mut child = Command::new(env!("CARGO_BIN_EXE_door-driver"))
        .args([
            "--station",
            STATION,
            "--lane",
            "L1",
            "--listen",
            ep.as_str(),
            "--failsafe",
            "open",
            "--watchdog-ms",
            "500",
            "--insecure",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start door-driver");
    let observer = peer(&ep).await;
    let states = subscribe(&observer, &keys().door_state("L1")).await;
    let (s, _) = wait_for::<DoorState>(
        &states,
        Duration::from_secs(5),
        "state from the binary",
        |_| true,
    )
    .await;
    assert_eq!(s.mode, DoorMode::FailsafeOpen);

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for door-driver") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "door-driver ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let out = child.wait_with_output().expect("door-driver output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("door driver stopping"), "{log}");
    observer.close().await.expect("close observer");
}

#[test]
fn binaries_refuse_bad_flags() {
    let (door, light) = (
        env!("CARGO_BIN_EXE_door-driver"),
        env!("CARGO_BIN_EXE_light-driver"),
    );
    for (bin, args) in [
        (
            door,
            "--station s --lane a/b --listen tcp/127.0.0.1:1 --insecure",
        ),
        (door, "--station s --lane L1 --failsafe maybe --insecure"),
        (light, "--station s --lane L1 --insecure"),
        // Neither certificates nor an explicit --insecure: no silent plain TCP.
        (door, "--station s --lane L1 --listen tls/127.0.0.1:1"),
        // A certificate folder without the door driver's certificate.
        (
            door,
            "--station s --lane L1 --listen tls/127.0.0.1:1 --certs /nonexistent",
        ),
    ] {
        let args: Vec<&str> = args.split(' ').collect();
        let out = Command::new(bin).args(&args).output().expect("run driver");
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(!out.stderr.is_empty(), "{args:?}: no explanation");
    }
}
