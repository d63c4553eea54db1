//! The live lane view on a real gated (test-pattern lanes through GStreamer, both drivers as child
//! processes on the mutual-TLS bus): the operator's door action answers only with the driver's
//! acknowledgement and is refused without the token, and a real headless Chromium (Debian's
//! `chromium-headless-shell`, which scripts/setup installs) renders one tile per lane from the
//! event stream, showing what the door did. The screenshot is kept in the test's folder, and its
//! path is printed.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;

use common::{Ports, browse, chromium, get, two_lane_station};
use pipeline::config::StationConfig;
use pipeline::station::{RunOptions, run};

const TOKEN: &str = "view-test-token-0123456789abcdef0123";

/// The whole response to a POST with a JSON body and optional bearer token.
fn post(addr: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// The first `n` bytes of the event stream (it never ends on its own).
fn events(addr: &str, n: usize) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    String::from_utf8_lossy(&buf[..got]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_view_shows_each_lane_and_acts_only_for_the_operator() {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::free();
    let certs = protocol::CertDir::new(dir.path().join("certs"));
    certs.ensure_all("view").expect("certificates");
    let token_file = dir.path().join("operator.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let toml = two_lane_station(
        "view",
        "test:pattern=gradient",
        certs.path(),
        dir.path(),
        &ports,
        &format!("operator_token_file = \"{}\"", token_file.display()),
    );
    let cfg = StationConfig::parse(&toml, "view.toml").expect("config");
    let station = tokio::spawn(run(
        cfg,
        RunOptions {
            duration: Some(Duration::from_secs(25)),
        },
    ));
    let addr = format!("127.0.0.1:{}", ports.http);
    let blocking = |f: Box<dyn FnOnce() -> String + Send>| async move {
        tokio::task::spawn_blocking(f).await.expect("task")
    };
    // Until both doors obey gated: readiness says so.
    let mut ready = String::new();
    for _ in 0..40 {
        let a = addr.clone();
        // Connection refused until gated has bound its listener.
        ready = blocking(Box::new(move || match TcpStream::connect(&a) {
            Ok(_) => get(&a, "/readyz"),
            Err(e) => e.to_string(),
        }))
        .await;
        if ready.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let a = addr.clone();
    let page = blocking(Box::new(move || get(&a, "/"))).await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("new EventSource(\"/events\")"),
        "{page}"
    );
    let a = addr.clone();
    let stream = blocking(Box::new(move || events(&a, 600))).await;
    assert!(
        stream.contains("text/event-stream") && stream.contains("event: station"),
        "{stream}"
    );
    assert!(stream.contains("\"lane\":\"L1\""), "{stream}");

    // Actions: only with the token, only well-formed, only on a lane of this station.
    let act = |token: Option<&'static str>, lane: &'static str, body: &'static str| {
        let a = addr.clone();
        blocking(Box::new(move || {
            post(&a, &format!("/lanes/{lane}/door"), token, body)
        }))
    };
    let hold = r#"{"action":"hold_open"}"#;
    let r = act(None, "L1", hold).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = act(Some("view-test-token-0123456789abcdef0124"), "L1", hold).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = act(Some(TOKEN), "L1", r#"{"action":"fly"}"#).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = act(Some(TOKEN), "L9", hold).await;
    assert!(r.starts_with("HTTP/1.1 409") && r.contains("L9"), "{r}");
    let r = act(Some(TOKEN), "L1", r#"{"action":"heartbeat"}"#).await;
    assert!(r.starts_with("HTTP/1.1 409"), "{r}");
    // Acknowledged: the answer carries the driver's state naming gated's command.
    let r = act(Some(TOKEN), "L1", hold).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("\"mode\":\"held_open\"") && r.contains("acknowledged by L1"),
        "{r}"
    );
    eprintln!("hold_open: {}", r.lines().last().unwrap_or_default());

    // The browser: a tile per lane, the held door, the arch, frames counted; and a screenshot.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let profile = dir.path().join("chromium");
    let url = format!("http://{addr}/");
    let (b, p, u) = (browser.clone(), profile.clone(), url.clone());
    let dom = blocking(Box::new(move || browse(&b, &p, &["--dump-dom"], &u))).await;
    for want in [
        "data-lane=\"L1\"",
        "data-lane=\"L2\"",
        "held_open",
        "fps processed",
        "station view",
    ] {
        assert!(dom.contains(want), "the page lacks {want}:\n{dom}");
    }
    let shot = dir.path().join("lane-view.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let (b, p, u) = (browser.clone(), profile.clone(), url.clone());
    blocking(Box::new(move || browse(&b, &p, &[&shot_arg], &u))).await;
    let img = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    // Not a blank page: the header's dark band and the white tiles on the grey ground.
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        img.width() == 1100 && colours.len() > 20,
        "{}×{} with {} colours",
        img.width(),
        img.height(),
        colours.len()
    );
    let kept = std::env::temp_dir().join("gate-lane-view.png");
    std::fs::copy(&shot, &kept).expect("keep the screenshot");
    eprintln!("screenshot: {}", kept.display());

    let r = act(Some(TOKEN), "L1", r#"{"action":"release"}"#).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"mode\":\"normal\""),
        "{r}"
    );
    station.abort();
}
