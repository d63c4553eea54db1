//! Helpers of the tests that run a station and talk to it over loopback.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline::demo;

/// A loopback port to listen on (`demo::free_port`).
pub fn port() -> u16 {
    demo::free_port().expect("free port")
}

/// The whole HTTP response (status line, headers, body) of `GET path`.
pub fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to exporter");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// The default footage, or `None` (with a line saying so) where scripts/setup has not made it or
/// fetched the models: the tests that need them return early there.
pub fn footage() -> Option<PathBuf> {
    let f = demo::default_footage();
    let models = pipeline::recognise::default_models();
    if !f.join("truth.json").is_file() || !pipeline::recognise::models_present(&models) {
        eprintln!(
            "skipped: no footage at {} or no models (scripts/setup makes both; CI runs it)",
            f.display()
        );
        return None;
    }
    Some(f)
}

/// The footage with only its first lane (the enrolled walker, an unknown one, an expired pass):
/// truth.json rewritten, the video linked.
pub fn first_lane_only(f: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.join("truth.json")).unwrap()).unwrap();
    let lanes = truth["lanes"].as_array_mut().unwrap();
    lanes.truncate(1);
    let file = lanes[0]["file"].as_str().unwrap().to_owned();
    std::os::unix::fs::symlink(
        f.join(&file).canonicalize().unwrap(),
        dir.path().join(&file),
    )
    .unwrap();
    std::fs::write(dir.path().join("truth.json"), truth.to_string()).unwrap();
    dir
}

/// The station store at `path` (no process holding it) has exactly one passage of `subject`, and
/// their trip is open: a grant kept once.
pub fn assert_trip_open_once(path: &Path, subject: domain::SubjectId, what: &str) {
    let store = pipeline::store::Store::open(path).unwrap();
    let passages = store.passages(1, 10_000).unwrap();
    let theirs = passages
        .iter()
        .filter(|(_, p)| p.subject == subject)
        .count();
    assert_eq!(theirs, 1, "{what}: {passages:?}");
    let trips = store.fare_state().unwrap().open_trips;
    assert!(trips.contains_key(&subject), "{what}: no open trip");
}

/// `[sync]` of a station file, as `gated run --config` reads it.
pub fn sync_section(sync: &pipeline::sync::SyncConfig) -> String {
    let mut t = toml::Table::new();
    t.insert("sync".into(), toml::Value::try_from(sync).unwrap());
    toml::to_string(&t).unwrap()
}

/// Debian's headless Chromium, which scripts/setup installs.
pub fn chromium() -> PathBuf {
    ["chromium-headless-shell", "chromium"]
        .iter()
        .map(|b| Path::new("/usr/bin").join(b))
        .find(|p| p.is_file())
        .expect("no Chromium in /usr/bin: scripts/setup installs chromium-headless-shell")
}

/// Runs headless Chromium on `url` with `args`; its stdout. It dumps or shoots the page once it has
/// loaded: the tiles drawn from the snapshot the page is served with (the event stream that updates
/// them stays open, so waiting for it to go quiet would wait forever).
pub fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1100,700",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loopback ports of a test station: gated's bus, both drivers' buses, the HTTP listener.
pub struct Ports {
    pub gated: u16,
    pub door: u16,
    pub light: u16,
    pub http: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            gated: port(),
            door: port(),
            light: port(),
            http: port(),
        }
    }
}

/// A station file `id` with two test-pattern lanes (L1 entry, a ball; L2 exit, `l2_source`), 160×120
/// at 10 fps, both drivers spawned on the mutual-TLS bus (`certs`), the store in `dir`; `extra`
/// (sections or `[metrics]` keys) is appended after `[metrics] listen`.
pub fn two_lane_station(
    id: &str,
    l2_source: &str,
    certs: &Path,
    dir: &Path,
    p: &Ports,
    extra: &str,
) -> String {
    format!(
        r#"
[station]
id = "{id}"
[[lane]]
id = "L1"
role = "entry"
source = "test:pattern=ball"
width = 160
height = 120
fps = 10
[[lane]]
id = "L2"
role = "exit"
source = "{l2_source}"
width = 160
height = 120
fps = 10
[zenoh]
listen = ["tls/127.0.0.1:{}"]
certs = "{}"
[drivers]
spawn = true
door_listen = "tls/127.0.0.1:{}"
light_listen = "tls/127.0.0.1:{}"
failsafe = "closed"
watchdog_ms = 1000
[store]
path = "{}"
[metrics]
listen = "127.0.0.1:{}"
{extra}
"#,
        p.gated,
        certs.display(),
        p.door,
        p.light,
        dir.join("station.redb").display(),
        p.http,
    )
}
