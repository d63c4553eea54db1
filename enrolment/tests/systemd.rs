//! `enrold serve` under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): READY=1 once it
//! listens, WATCHDOG=1 only after its own `/healthz` answered, STOPPING=1 on SIGTERM.

mod common;

use std::time::Duration;

use common::*;
use supervise::notify_socket::NotifySocket;

#[test]
fn enrold_notifies_ready_pings_after_its_healthz_and_says_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    prepare(tmp.path(), "");
    let socket = NotifySocket::bind(tmp.path()).unwrap();
    let srv = Server::start_with(
        tmp.path(),
        &[
            ("NOTIFY_SOCKET", socket.path().as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
        ],
    );
    let addr = srv.addr;

    let said = socket.wait_for("READY=1", Duration::from_secs(30)).unwrap();
    assert_eq!(said, [format!("READY=1\nSTATUS=listening on {addr}\n")]);
    for _ in 0..3 {
        socket
            .wait_for("WATCHDOG=1", Duration::from_secs(1))
            .unwrap();
    }

    let status = srv.stop();
    socket
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .unwrap();
    assert!(status.success(), "{status}");
}
