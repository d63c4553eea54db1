//! Both driver binaries under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): READY=1 once
//! their loop runs, WATCHDOG=1 from that loop at half `WATCHDOG_USEC`, STOPPING=1 on SIGTERM, and
//! no pings for a watchdog that belongs to another process (a driver gated spawned itself).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use supervise::notify_socket::NotifySocket;

fn free_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = l.local_addr().expect("local addr").port();
    format!("tcp/127.0.0.1:{port}")
}

fn start(bin: &str, socket: &NotifySocket, watchdog_pid: Option<&str>) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["--station", "sd", "--lane", "L1", "--listen"])
        .arg(free_endpoint())
        .arg("--insecure")
        .env("NOTIFY_SOCKET", socket.path())
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match watchdog_pid {
        Some(pid) => cmd.env("WATCHDOG_PID", pid),
        None => cmd.env_remove("WATCHDOG_PID"),
    };
    cmd.spawn().expect("start the driver")
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the driver") {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "SIGTERM ignored");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drivers_notify_ready_ping_the_watchdog_and_say_stopping() {
    for bin in [
        env!("CARGO_BIN_EXE_door-driver"),
        env!("CARGO_BIN_EXE_light-driver"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = NotifySocket::bind(dir.path()).expect("notify socket");
        let child = start(bin, &socket, None);
        let first = socket
            .wait_for("READY=1", Duration::from_secs(10))
            .expect(bin);
        assert_eq!(
            first.len(),
            1,
            "{bin}: said something before READY=1: {first:?}"
        );
        // Pings every 100 ms: three within a second, or the loop is not pinging.
        for _ in 0..3 {
            socket
                .wait_for("WATCHDOG=1", Duration::from_secs(1))
                .expect(bin);
        }
        let status = terminate(child);
        socket
            .wait_for("STOPPING=1", Duration::from_secs(1))
            .expect(bin);
        assert!(status.success(), "{bin}: {status}");
    }
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = NotifySocket::bind(dir.path()).expect("notify socket");
    let child = start(env!("CARGO_BIN_EXE_door-driver"), &socket, Some("1"));
    socket
        .wait_for("READY=1", Duration::from_secs(10))
        .expect("READY=1");
    let next = socket.recv(Duration::from_millis(500)).expect("recv");
    assert_eq!(next, None, "pinged a watchdog that is not its own");
    assert!(terminate(child).success());
}
