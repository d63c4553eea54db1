//! enrold's `/metrics` on its own loopback listener: every metric described from the start, requests
//! counted by route template (never by a path that carries a subject id), refusals of the token
//! check counted, and the gallery size and change head read at scrape time.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use common::*;

fn scrape(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the series whose line starts with `name{` and holds every label in `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let series = l.rsplit_once(' ').map_or(*l, |(s, _)| s);
            series == name
                || (series.starts_with(&format!("{name}{{"))
                    && labels.iter().all(|x| series.contains(x)))
        })
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

/// The ledger's labelled series, born when the distribution starts (one per registered station
/// and reason): these enrold runs have no `[distribution]`.
const LEDGER: [&str; 4] = [
    enrolment::metrics::LEDGER_PASSAGES,
    enrolment::metrics::LEDGER_CONFLICTS,
    enrolment::metrics::UPLINK_REFUSED,
    enrolment::metrics::UPLINK_STORE_CHANGES,
];

#[test]
fn enrold_exports_its_metrics_described_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    prepare(
        tmp.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let srv = Server::start(tmp.path());
    let addr = format!("127.0.0.1:{port}");

    let text = scrape(&addr, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // The labelled series are born with their first request; the others exist from the start.
    let help = |text: &str, m: &enrolment::metrics::Metric| {
        text.contains(&format!("# HELP {} {}", m.name, m.help))
    };
    for m in enrolment::metrics::ALL {
        let labelled = [
            enrolment::metrics::REQUESTS,
            enrolment::metrics::REQUEST_SECONDS,
        ];
        assert!(
            labelled.contains(&m.name) || LEDGER.contains(&m.name) || help(&text, m),
            "no HELP for {}:\n{text}",
            m.name
        );
    }
    assert_eq!(
        value(&text, "enrold_auth_failures_total", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value(&text, "enrold_subjects", &[]), Some(0.0), "{text}");
    assert_eq!(
        value(&text, "enrold_changes_head_seq", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(scrape(&addr, "/").starts_with("HTTP/1.1 404"));

    // Refused without a token, then an enrolment and a lookup with one.
    let r = request(srv.addr, "GET", "/changes", None, &[], b"");
    assert_eq!(r.status, 401);
    let r = srv.enrol(&[&photo("obama.jpg")]);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["subject"].as_str().unwrap().to_owned();
    assert_eq!(srv.get(&format!("/subjects/{id}")).status, 200);

    let text = scrape(&addr, "/metrics");
    assert_eq!(
        value(&text, "enrold_auth_failures_total", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "enrold_subjects", &[]), Some(1.0), "{text}");
    assert!(
        value(&text, "enrold_changes_head_seq", &[]).unwrap() >= 1.0,
        "{text}"
    );
    for (route, method, status) in [
        ("/changes", "GET", "401"),
        ("/subjects", "POST", "201"),
        ("/subjects/{id}", "GET", "200"),
    ] {
        let labels = [
            &format!("route=\"{route}\"")[..],
            &format!("method=\"{method}\""),
            &format!("status=\"{status}\""),
        ];
        assert_eq!(
            value(&text, "enrold_requests_total", &labels),
            Some(1.0),
            "{route} {method} {status}:\n{text}"
        );
    }
    assert!(
        text.contains("enrold_request_seconds_bucket{route=\"/subjects\",le=\"5\"}"),
        "{text}"
    );
    for m in enrolment::metrics::ALL {
        assert!(
            LEDGER.contains(&m.name) || help(&text, m),
            "no HELP for {}:\n{text}",
            m.name
        );
    }
    // Counted by template: the subject's id never reaches the metrics.
    assert!(!text.contains(&id), "{text}");
    srv.stop();
}
