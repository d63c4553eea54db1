//! gated as `deploy/systemd/gated.service` runs it: a door driver listening first, gated dialling
//! it, both under a stand-in for systemd's notification socket. gated says READY=1 once it is up,
//! pings the watchdog from its loop, exports the door's state for the alerts, and on SIGTERM says
//! STOPPING=1 and exits cleanly.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use supervise::notify_socket::NotifySocket;

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            t0.elapsed() < within,
            "no exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gated_notifies_systemd_and_exports_the_door_state() {
    let gated = env!("CARGO_BIN_EXE_gated");
    let door_bin = std::path::Path::new(gated).with_file_name("door-driver");
    assert!(
        door_bin.is_file(),
        "{} missing: run through cargo test --workspace",
        door_bin.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (door_dir, gated_dir) = (dir.path().join("door"), dir.path().join("gated"));
    std::fs::create_dir_all(&door_dir).expect("mkdir");
    std::fs::create_dir_all(&gated_dir).expect("mkdir");
    let door_socket = NotifySocket::bind(&door_dir).expect("door notify socket");
    let gated_socket = NotifySocket::bind(&gated_dir).expect("gated notify socket");
    let (gp, dp, mp) = (port(), port(), port());
    let cfg = dir.path().join("station.toml");
    std::fs::write(
        &cfg,
        format!(
            "[station]\nid = \"sd\"\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 5\n\
             [zenoh]\nlisten = [\"tcp/127.0.0.1:{gp}\"]\nconnect = [\"tcp/127.0.0.1:{dp}\"]\n[store]\npath = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{mp}\"\n",
            dir.path().join("s.redb").display()
        ),
    )
    .expect("write config");

    let mut door = Command::new(&door_bin)
        .args(["--station", "sd", "--lane", "L1", "--listen"])
        .arg(format!("tcp/127.0.0.1:{dp}"))
        .env("NOTIFY_SOCKET", door_socket.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("start door-driver");
    door_socket
        .wait_for("READY=1", Duration::from_secs(10))
        .expect("door-driver READY=1");

    let mut g = Command::new(gated)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", gated_socket.path())
        .env("WATCHDOG_USEC", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gated");
    let said = gated_socket.wait_for("READY=1", Duration::from_secs(60));
    if said.is_err() {
        let _ = g.kill();
        let _ = door.kill();
    }
    let said = said.expect("gated READY=1");
    assert_eq!(
        said.len(),
        1,
        "gated said something before READY=1: {said:?}"
    );
    assert!(said[0].contains("STATUS=1 lanes on "), "{said:?}");
    for _ in 0..2 {
        gated_socket
            .wait_for("WATCHDOG=1", Duration::from_secs(2))
            .expect("gated pings its watchdog every 500 ms");
    }

    // The heartbeats bring the door out of its start-up fail-safe; the health tick (1 s) refreshes
    // the state's age.
    let t0 = Instant::now();
    let text = loop {
        let text = metrics(mp);
        if text.contains("gate_door_mode{lane=\"L1\",mode=\"normal\"} 1")
            && text.contains("gate_door_flap{lane=\"L1\",flap=\"closed\"} 1")
        {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "door state never exported as normal/closed:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.contains("gate_door_mode{lane=\"L1\",mode=\"failsafe_closed\"} 0"));
    assert!(text.contains("gate_driver_ack_timeouts_total{driver=\"door\",lane=\"L1\"}"));
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix("gate_door_state_age_seconds{lane=\"L1\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(age.is_some_and(|a| a < 2.0), "state age {age:?}:\n{text}");

    sigterm(&g);
    let status = wait_exit(&mut g, Duration::from_secs(20));
    gated_socket
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .expect("gated STOPPING=1");
    let mut log = String::new();
    if let Some(mut e) = g.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(status.success(), "gated exit {status} on SIGTERM: {log}");

    sigterm(&door);
    assert!(wait_exit(&mut door, Duration::from_secs(5)).success());
}
