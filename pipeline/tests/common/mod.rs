//! Helpers of the tests that run a station and talk to it over loopback.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use pipeline::demo;

/// A loopback port free a moment ago.
pub fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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
