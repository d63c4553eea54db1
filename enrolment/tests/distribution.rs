//! End to end: the real `enrold` binary with `[distribution]` on, keys made by `enrold keys init` and
//! `enrold keys centre-init`, a station key pair from the library. A zenoh client built the way a
//! station builds one (`protocol::keys`: the station's templates key, the centre's liveliness token,
//! the catch-up queryable; `protocol::zenoh_config`) receives the signed upsert for a subject enrolled over HTTP, verifies it
//! under the printed centre key and opens the template with the station key; `DELETE` then brings the
//! erase. `docs/protocol.md`, "Template distribution".
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::*;
use domain::StationId;
use domain::changes::{
    CentreSigningKey, CentreVerifyingKey, ChangeBatch, SignedChange, VerifiedChange, VerifiedOp,
    public_from_hex, public_to_hex,
};
use domain::seal::{self, CentrePublicKey, KeyId, StationSecretKey};
use protocol::keys::{CENTRE_ALIVE, CENTRE_CHANGES, centre_templates};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `enrold ARGS` to success; returns its stdout.
fn enrold_ok(args: &[&str], dir: &Path) -> String {
    let out = enrold().args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "enrold {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `name = "hex"` from `enrold keys centre-init`'s output.
fn printed(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{name} not in {stdout:?}"))
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// gated's session at the station: its certificate from the same CA as enrold's.
fn station_session(port: u16, certs: &protocol::CertDir) -> zenoh::Config {
    protocol::zenoh_config(&protocol::ZenohEndpoints {
        listen: vec![],
        connect: vec![format!("tls/127.0.0.1:{port}")],
        security: protocol::BusSecurity::Tls(certs.tls(protocol::Role::Gated).unwrap()),
    })
    .unwrap()
}

struct Station {
    id: StationId,
    key: StationSecretKey,
    centre_sign: CentreVerifyingKey,
    centre_x: CentrePublicKey,
}

impl Station {
    fn verify(&self, payload: &[u8]) -> VerifiedChange {
        SignedChange::decode(payload)
            .unwrap()
            .verify(&self.centre_sign, &self.id)
            .unwrap()
    }

    /// Opens an upsert's template with the station key; returns it.
    fn open(&self, op: &VerifiedOp) -> [f32; 128] {
        let VerifiedOp::Upsert {
            subject,
            template_version,
            sealed,
            wrapped,
            ..
        } = op
        else {
            panic!("not an upsert: {op:?}");
        };
        let dk =
            seal::open_from_centre(&self.key, &self.id, &self.centre_x, subject, wrapped).unwrap();
        *seal::open_template(&dk, subject, *template_version, sealed).unwrap()
    }
}

#[test]
fn enrolled_subject_reaches_a_station_signed_and_sealed_then_its_erase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    enrold_ok(
        &[
            "keys",
            "init",
            "--out",
            dir.join("master.key").to_str().unwrap(),
        ],
        dir,
    );
    let printed_keys = enrold_ok(
        &["keys", "centre-init", "--dir", dir.to_str().unwrap()],
        dir,
    );
    let station_key = StationSecretKey::generate(KeyId(3)).unwrap();
    let station = Station {
        id: StationId::new("umeda-01").unwrap(),
        centre_sign: CentreVerifyingKey::from_hex(&printed(&printed_keys, "centre_ed25519"))
            .unwrap(),
        centre_x: CentrePublicKey(
            public_from_hex(&printed(&printed_keys, "centre_x25519")).unwrap(),
        ),
        key: station_key,
    };
    let port = free_port();
    let certs = protocol::CertDir::new(dir.join("certs"));
    certs.ensure_all("umeda-01").unwrap();
    let distribution = format!(
        "[distribution]\nlisten = [\"tls/127.0.0.1:{port}\"]\ncerts = {:?}\nsigning_key_file = {:?}\n\
         x25519_key_file = {:?}\n\n[[distribution.station]]\nid = \"umeda-01\"\nkey_id = 3\n\
         public_key = \"{}\"\n",
        certs.path(),
        dir.join("centre-sign.key"),
        dir.join("centre-x25519.key"),
        public_to_hex(&station.key.public_key().key)
    );
    // `prepare` keeps the master key made by `enrold keys init` (it only writes one when absent).
    prepare(dir, &distribution);
    let srv = Server::start(dir);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let session = rt
        .block_on(async { zenoh::open(station_session(port, &certs)).await })
        .unwrap();
    let sub = rt
        .block_on(async {
            session
                .declare_subscriber(centre_templates(station.id.as_str()))
                .await
        })
        .unwrap();
    // The centre's liveliness token is seen: the session is connected.
    let alive = rt
        .block_on(async {
            session
                .liveliness()
                .declare_subscriber(CENTRE_ALIVE)
                .history(true)
                .await
        })
        .unwrap();
    rt.block_on(async { tokio::time::timeout(WAIT, alive.recv_async()).await })
        .expect("centre liveliness token within 20 s")
        .unwrap();
    // Give the subscription time to reach the centre before the change is published.
    std::thread::sleep(Duration::from_millis(500));

    let obama = photo("obama.jpg");
    let r = srv.enrol(&[&obama]);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let subject = r.json()["subject"].as_str().unwrap().to_string();

    let recv = |what: &str| -> Vec<u8> {
        rt.block_on(async { tokio::time::timeout(WAIT, sub.recv_async()).await })
            .unwrap_or_else(|_| panic!("no live {what} within 20 s"))
            .unwrap()
            .payload()
            .to_bytes()
            .into_owned()
    };

    // Live: the signed upsert, verified and opened as a station does.
    let live_bytes = recv("upsert");
    let live = station.verify(&live_bytes);
    assert_eq!(live.seq, 1);
    assert_eq!(live.op.subject().to_string(), subject);
    let template = station.open(&live.op);
    let norm: f32 = template.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "a unit-length embedding, norm {norm}"
    );
    // The same message is refused under another station's name or another centre key.
    let signed = SignedChange::decode(&live_bytes).unwrap();
    assert!(
        signed
            .verify(&station.centre_sign, &StationId::new("namba").unwrap())
            .is_err()
    );
    let wrong = CentreSigningKey::generate().unwrap().verifying_key();
    assert!(signed.verify(&wrong, &station.id).is_err());

    // Catch-up (the queryable) from 0 returns the same change.
    let batch = query(&rt, &session, &station.id, 0);
    assert_eq!((batch.after, batch.head, batch.changes.len()), (0, 1, 1));
    let caught = station.verify(&batch.changes[0].encode());
    assert_eq!(caught.seq, 1);
    assert_eq!(station.open(&caught.op), template);

    // Erase: DELETE, then the live erase.
    assert_eq!(srv.delete(&format!("/subjects/{subject}")).status, 204);
    let erase = station.verify(&recv("erase"));
    assert_eq!(erase.seq, 2);
    assert_eq!(
        erase.op,
        VerifiedOp::Erase {
            subject: live.op.subject()
        }
    );
    // A late station catching up from 0 gets the upsert as a tombstone (an erase) and the erase.
    let late = query(&rt, &session, &station.id, 0);
    assert_eq!(late.head, 2);
    let ops: Vec<_> = late
        .changes
        .iter()
        .map(|c| station.verify(&c.encode()))
        .collect();
    assert_eq!(ops.len(), 2);
    assert!(
        ops.iter()
            .all(|c| matches!(c.op, VerifiedOp::Erase { subject: s } if s == live.op.subject())),
        "{ops:?}"
    );
    assert_eq!(ops.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2]);

    drop(sub);
    drop(alive);
    rt.block_on(async { session.close().await }).unwrap();
    srv.stop();
}

fn query(
    rt: &tokio::runtime::Runtime,
    session: &zenoh::Session,
    station: &StationId,
    after: u64,
) -> ChangeBatch {
    rt.block_on(async {
        let replies = session
            .get(format!(
                "{CENTRE_CHANGES}?station={station};after={after};limit=1000"
            ))
            .timeout(WAIT)
            .await
            .unwrap();
        let reply = replies.recv_async().await.expect("a reply from the centre");
        let bytes = reply
            .result()
            .unwrap_or_else(|e| panic!("{:?}", e.payload().to_bytes()))
            .payload()
            .to_bytes()
            .into_owned();
        let b = ChangeBatch::decode(&bytes).unwrap();
        assert_eq!((&b.station, b.after), (station, after));
        b
    })
}
