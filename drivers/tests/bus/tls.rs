//! The built `door-driver` on a TLS bus with access control (issue 15 items 1 and 2): gated's
//! certificate commands the door; a node holding another role's valid certificate can neither open
//! it nor pose as gated, and gated keeps control throughout.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use protocol::{BusSecurity, CertDir, DoorAction, DoorMode, DoorState, Flap, Role};

use crate::harness::{FakeGated, SECOND, STATION, keys, peer_as, random_epoch, take_l1, wait_for};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_endpoint() -> String {
    crate::harness::free_endpoint().replacen("tcp/", "tls/", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tls_only_gateds_certificate_commands_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertDir::new(dir.path().join("certs"));
    certs.ensure_all(STATION).unwrap();
    let as_role = |r| BusSecurity::Tls(certs.tls(r).unwrap());
    let ep = tls_endpoint();
    let _driver = Killed(
        Command::new(env!("CARGO_BIN_EXE_door-driver"))
            .args(["--station", STATION, "--lane", "L1", "--listen", &ep])
            .args(["--failsafe", "closed", "--watchdog-ms", "1000"])
            .args(["--certs", &certs.path().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let gated = FakeGated::on(peer_as(&ep, as_role(Role::Gated)).await, random_epoch()).await;
    let (gated, states) = take_l1(gated).await;
    let epoch = gated.epoch();

    // A light driver's certificate: valid on this station, wrong role. It copies gated's epoch and
    // stamps the far future, the lock-out of the outside test; then poses as gated and leaves.
    let intruder = peer_as(&ep, as_role(Role::LightDriver)).await;
    let now = gated.driver_now(crate::harness::Kind::Door).await;
    for seq in [u64::MAX - 1, 1 << 40] {
        let cmd = protocol::DoorCommand::new(
            protocol::Stamp {
                epoch,
                seq,
                deadline_ms: now + 300,
            },
            DoorAction::HoldOpen,
        );
        intruder
            .put(keys().door_cmd("L1"), protocol::encode(&cmd))
            .await
            .unwrap();
    }
    let token = intruder
        .liveliness()
        .declare_token(keys().gated_alive())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.undeclare().await.unwrap();
    intruder.close().await.unwrap();

    // For 1.5 s the flap stays shut, in gated's hands, in normal mode.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), states.recv_async()).await
        {
            let s: DoorState = protocol::decode(&s.payload().to_bytes()).unwrap();
            assert_eq!(s.flap, Flap::Closed, "the intruder moved the flap: {s:?}");
            assert_eq!(
                s.mode,
                DoorMode::Normal,
                "the intruder changed the mode: {s:?}"
            );
            assert_eq!(s.epoch, Some(epoch), "{s:?}");
            assert!(s.ack_seq < 1 << 40, "the intruder's seq was taken: {s:?}");
        }
    }

    // gated's next command is obeyed.
    let seq = gated.door("L1", DoorAction::Open).await;
    wait_for::<DoorState>(&states, 5 * SECOND, "gated's open obeyed", |s| {
        s.ack_seq >= seq && s.flap != Flap::Closed
    })
    .await;
    gated.close().await;
}
