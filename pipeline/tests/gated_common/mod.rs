//! Test harness for gated and its door driver as processes (the built binaries) on loopback, over
//! mutual TLS with access control as deployed: a station file for one test lane, the station's
//! certificates, the processes (killed when dropped, also when a test fails), and a session on the
//! door driver's bus; a station file that plays recorded footage instead; the card reader's
//! process and taps. Used by `gated_process.rs`, `door_disagreement.rs`, `card_gate.rs`,
//! `card_face.rs` and `fare_stations.rs`.
#![allow(dead_code)]
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::{
    BusSecurity, CardData, CardPresent, CardResult, CardState, CertDir, DoorState, Keys, Role,
    VERSION, ZenohEndpoints, decode, encode,
};
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;

pub fn port() -> u16 {
    pipeline::demo::free_port().expect("free port")
}

/// A child process that is killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One station with one test-pattern lane `L1`: gated's station file and ports, and its door
/// driver's.
pub struct Rig {
    pub station: &'static str,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub certs: CertDir,
    pub gated_port: u16,
    pub door_port: u16,
    pub metrics_port: Option<u16>,
}

impl Rig {
    pub fn new(station: &'static str, metrics: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (gated_port, door_port) = (port(), port());
        let metrics_port = metrics.then(port);
        let metrics = match metrics_port {
            Some(p) => format!("listen = \"127.0.0.1:{p}\""),
            None => "enabled = false".into(),
        };
        let config = dir.path().join("station.toml");
        let certs = CertDir::new(dir.path().join("certs"));
        certs.ensure_all(station).expect("certificates");
        std::fs::write(
            &config,
            format!(
                "[station]\nid = \"{station}\"\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 5\n\
                 [zenoh]\nlisten = [\"tls/127.0.0.1:{gated_port}\"]\nconnect = [\"tls/127.0.0.1:{door_port}\"]\ncerts = \"{}\"\n[store]\npath = \"{}\"\n[metrics]\n{metrics}\n",
                certs.path().display(),
                dir.path().join("s.redb").display()
            ),
        )
        .expect("write config");
        Self {
            station,
            dir,
            config,
            certs,
            gated_port,
            door_port,
            metrics_port,
        }
    }

    /// Rewrites the station file: lane L1 plays the recorded lane of `footage` (one lane, its
    /// truth's first), processed frame by frame or, `realtime`, at its own speed as a live camera;
    /// the store in the rig's folder; `sync` (a `[sync]` section) follows a centre; `extra` is
    /// appended (e.g. `[decision]`). Ports and certificates stay the rig's.
    pub fn play_footage(&self, footage: &Path, realtime: bool, sync: &str, extra: &str) {
        use pipeline::config::LaneRole;
        use pipeline::demo::{footage_source, lane_toml, truth::Truth};
        let truth = Truth::load(footage).expect("truth");
        let lane = &truth.lanes[0];
        let source = footage_source(footage, lane).expect("footage file");
        let toml = format!(
            "[station]\nid = {:?}\n[capture]\nmode = \"{}\"\n{}\
             [zenoh]\nlisten = [\"tls/127.0.0.1:{}\"]\nconnect = [\"tls/127.0.0.1:{}\"]\ncerts = {:?}\n\
             [store]\npath = {:?}\n[metrics]\nenabled = false\n{sync}{extra}",
            self.station,
            if realtime { "realtime" } else { "benchmark" },
            lane_toml(&truth, lane, &source, LaneRole::Entry),
            self.gated_port,
            self.door_port,
            self.certs.path().display().to_string(),
            self.dir.path().join("s.redb").display().to_string(),
        );
        std::fs::write(&self.config, toml).expect("write config");
    }

    /// The store of the rig's station file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("s.redb")
    }

    pub fn keys(&self) -> Keys {
        Keys::new(self.station).expect("keys")
    }

    /// `gated ctl`'s session: the operator's certificate, dialling gated.
    pub fn operator(&self) -> ZenohEndpoints {
        ZenohEndpoints {
            listen: vec![],
            connect: vec![format!("tls/127.0.0.1:{}", self.gated_port)],
            security: self.security(Role::Operator),
        }
    }

    pub fn security(&self, role: Role) -> BusSecurity {
        BusSecurity::Tls(self.certs.tls(role).expect("certificate"))
    }

    /// `door-driver` (built beside gated) serving L1 with this fail-safe position.
    pub fn door_driver(&self, failsafe: &str) -> Proc {
        let mut cmd = self.door_command();
        cmd.args(["--failsafe", failsafe, "--watchdog-ms", "1000"]);
        Proc(cmd.spawn().expect("start door-driver"))
    }

    /// The command that starts `door-driver` serving L1 with its default settings (more arguments
    /// and the environment are the caller's).
    pub fn door_command(&self) -> Command {
        let door_bin =
            std::path::Path::new(env!("CARGO_BIN_EXE_gated")).with_file_name("door-driver");
        assert!(
            door_bin.is_file(),
            "{} missing: run through cargo test --workspace",
            door_bin.display()
        );
        let mut cmd = Command::new(&door_bin);
        cmd.args(["--station", self.station, "--lane", "L1", "--listen"])
            .arg(format!("tls/127.0.0.1:{}", self.door_port))
            .arg("--certs")
            .arg(self.certs.path())
            .stderr(Stdio::null());
        cmd
    }

    pub fn gated(&self) -> Proc {
        Proc(self.gated_command().spawn().expect("start gated"))
    }

    /// The command that starts `gated run` on the rig's station file, output discarded (the
    /// caller may change that and the environment).
    pub fn gated_command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gated"));
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .stderr(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// `gated run` on the rig's station file logging at info, and the first line of its log that
    /// holds every one of `needles`. Its log is read to the end, so gated never blocks on a full
    /// pipe.
    pub fn gated_watched(
        &self,
        needles: &'static [&'static str],
    ) -> (Proc, tokio::sync::oneshot::Receiver<String>) {
        use std::io::{BufRead, BufReader};
        let mut gated = Proc(
            self.gated_command()
                .env("RUST_LOG", "pipeline=info")
                .env("NO_COLOR", "1")
                .stderr(Stdio::piped())
                .spawn()
                .expect("start gated"),
        );
        let err = gated.0.stderr.take().expect("piped stderr");
        let (tx, line) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut tx = Some(tx);
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if needles.iter().all(|n| l.contains(n))
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(l);
                }
            }
        });
        (gated, line)
    }

    /// A session on the door driver's bus, as a maintenance tool would have (the operator's
    /// certificate: it may read the door's state, not command it).
    pub async fn door_bus(&self) -> zenoh::Session {
        self.door_bus_as(Role::Operator).await
    }

    /// A session on the door driver's bus holding `role`'s certificate.
    pub async fn door_bus_as(&self, role: Role) -> zenoh::Session {
        let ep = ZenohEndpoints {
            listen: vec![],
            connect: vec![format!("tls/127.0.0.1:{}", self.door_port)],
            security: self.security(role),
        };
        zenoh::open(protocol::zenoh_config(&ep).expect("cfg"))
            .await
            .expect("door bus session")
    }

    /// `/metrics` of the running gated.
    pub async fn metrics(&self) -> String {
        let addr = format!("127.0.0.1:{}", self.metrics_port.expect("metrics enabled"));
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
                return String::new();
            };
            let _ = write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .expect("scrape task")
    }
}

pub type States = Subscriber<FifoChannelHandler<Sample>>;

/// The first door state on `sub` satisfying `pred` within `within`, and how long it took.
pub async fn wait_state(
    sub: &States,
    within: Duration,
    mut pred: impl FnMut(&DoorState) -> bool,
) -> Option<(DoorState, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(100), sub.recv_async()).await
            && let Ok(st) = decode::<DoorState>(&s.payload().to_bytes())
            && pred(&st)
        {
            return Some((st, t0.elapsed()));
        }
    }
    None
}

// The card reader's side (card_gate.rs, card_face.rs).

/// How long a tap may take to get its outcome.
const WAIT: Duration = Duration::from_secs(20);

pub fn card_reader(rig: &Rig, card_port: u16) -> Proc {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_gated")).with_file_name("card-reader");
    assert!(
        bin.is_file(),
        "{} missing: run through cargo test --workspace",
        bin.display()
    );
    let child = Command::new(&bin)
        .args(["--station", rig.station, "--lane", "L1", "--listen"])
        .arg(format!("tls/127.0.0.1:{card_port}"))
        .arg("--connect")
        .arg(format!("tls/127.0.0.1:{}", rig.gated_port))
        .arg("--certs")
        .arg(rig.certs.path())
        // gated's answer must come in time on a loaded two-core machine too: the tests judge
        // what it answers, not how fast (the default 800 ms is a passenger's patience).
        .args(["--verdict-timeout-ms", "3000"])
        .stderr(match std::env::var_os("CARD_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        })
        .spawn()
        .expect("start card-reader");
    Proc(child)
}

pub async fn session(rig: &Rig, role: Role, port: u16) -> zenoh::Session {
    let ep = ZenohEndpoints {
        listen: vec![],
        connect: vec![format!("tls/127.0.0.1:{port}")],
        security: rig.security(role),
    };
    zenoh::open(protocol::zenoh_config(&ep).expect("cfg"))
        .await
        .expect("session")
}

pub type Sub = Subscriber<FifoChannelHandler<Sample>>;

/// The first message of type `M` on `sub` satisfying `pred` within `within`.
pub async fn wait_for<M: protocol::Message>(
    sub: &Sub,
    within: Duration,
    mut pred: impl FnMut(&M) -> bool,
) -> Option<(M, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(100), sub.recv_async()).await
            && let Ok(m) = decode::<M>(&s.payload().to_bytes())
            && pred(&m)
        {
            return Some((m, t0.elapsed()));
        }
    }
    None
}

/// Taps `card` for `hold_ms` and returns the reader's outcome of that tap, and the time from the tap
/// to it.
pub async fn tap(
    sim: &zenoh::Session,
    states: &Sub,
    rig: &Rig,
    card: CardData,
    hold_ms: u32,
    after: u64,
) -> (u64, CardResult, Duration) {
    let t0 = Instant::now();
    sim.put(
        rig.keys().card_sim("L1"),
        encode(&CardPresent {
            v: VERSION,
            card,
            hold_ms,
        }),
    )
    .await
    .expect("tap");
    let (st, _) = wait_for::<CardState>(states, WAIT, |s| {
        s.outcome.as_ref().is_some_and(|o| o.tap > after)
    })
    .await
    .expect("an outcome of the tap");
    let o = st.outcome.expect("outcome");
    (o.tap, o.result, t0.elapsed())
}

/// A `card-reader` process on `port` and the test's two sessions on it: the state watched with
/// gated's role (only gated may read it: it carries card numbers) and the rig that taps cards.
pub struct Reader {
    _proc: Proc,
    pub states: Sub,
    pub sim: zenoh::Session,
    _monitor: zenoh::Session,
}

impl Reader {
    /// Started after gated, which it dials; up long before gated has its gallery.
    pub async fn start(rig: &Rig, port: u16) -> Self {
        let proc = card_reader(rig, port);
        let monitor = session(rig, Role::Gated, port).await;
        let states = monitor
            .declare_subscriber(rig.keys().card_state("L1"))
            .await
            .expect("card states");
        let sim = session(rig, Role::Sim, port).await;
        wait_for::<CardState>(&states, WAIT, |_| true)
            .await
            .expect("the reader publishes");
        Self {
            _proc: proc,
            states,
            sim,
            _monitor: monitor,
        }
    }
}
