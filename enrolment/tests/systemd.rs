//! `enrold serve` under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): READY=1 once it
//! listens, WATCHDOG=1 only after its own `/healthz` answered, STOPPING=1 on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use supervise::notify_socket::NotifySocket;

#[test]
fn enrold_notifies_ready_pings_after_its_healthz_and_says_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    prepare(tmp.path(), "");
    let socket = NotifySocket::bind(tmp.path()).unwrap();
    let mut child = enrold()
        .args(["serve", "--config"])
        .arg(tmp.path().join("enrold.toml"))
        .env("NOTIFY_SOCKET", socket.path())
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    let said = socket.wait_for("READY=1", Duration::from_secs(30)).unwrap();
    assert_eq!(said, [format!("READY=1\nSTATUS=listening on {addr}\n")]);
    for _ in 0..3 {
        socket
            .wait_for("WATCHDOG=1", Duration::from_secs(1))
            .unwrap();
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "SIGTERM ignored");
        std::thread::sleep(Duration::from_millis(20));
    };
    socket
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .unwrap();
    assert!(status.success(), "{status}");
}
