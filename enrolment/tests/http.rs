//! The enrolment service over real HTTP on loopback, with a real redb file: enrolment and every
//! refusal reason, tickets, erasure with a raw scan of the store file, auth, limits, OpenAPI.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use domain::SubjectId;
use enrolment::store::{AuditKind, ChangeKind, Store};
use serde_json::json;

fn codes(r: &Response) -> Vec<(Option<u64>, String)> {
    r.json()["rejections"]
        .as_array()
        .unwrap_or_else(|| panic!("no rejections: {:?}", r.json()))
        .iter()
        .map(|x| (x["photo"].as_u64(), x["code"].as_str().unwrap().to_string()))
        .collect()
}

/// A 30000×30000 PNG of which only the signature and IHDR exist.
fn header_only_png() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&30000u32.to_be_bytes());
    ihdr.extend_from_slice(&30000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut crc = 0xffff_ffffu32;
    for &b in &ihdr {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&(!crc).to_be_bytes());
    v
}

#[test]
fn enrol_refuse_link_erase_and_scan_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    // More requests than the default burst of 20: the limits have their own test below.
    prepare(tmp.path(), "[rate]\nburst = 40.0\n");
    let srv = Server::start(tmp.path());

    // Two photos of Obama → one subject.
    let t = std::time::Instant::now();
    let r = srv.enrol(&[&photo("obama.jpg"), &photo("obama2.jpg")]);
    assert_eq!(r.status, 201, "{:?}", r.json());
    eprintln!("obama (2 photos): {:?} {}", t.elapsed(), r.json());
    let obama = r.json()["subject"].as_str().unwrap().to_string();
    let r = srv.enrol(&[&photo("biden.jpg")]);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let biden = r.json()["subject"].as_str().unwrap().to_string();

    // 1:N: a third Obama photo as a new subject.
    let r = srv.enrol(&[&photo("obama3.jpg")]);
    assert_eq!(r.status, 422);
    assert_eq!(codes(&r), vec![(None, "already_enrolled".into())]);
    // Two people in one request.
    let r = srv.enrol(&[&photo("obama.jpg"), &photo("biden.jpg")]);
    assert_eq!(codes(&r), vec![(Some(1), "different_people".into())]);
    // A group photo.
    let sample1 = std::fs::read(testdata("face-api", "sample1.jpg")).unwrap();
    let r = srv.enrol(&[&sample1]);
    assert_eq!(codes(&r), vec![(Some(0), "multiple_faces".into())]);

    // Five bad photos in one request: each gets its own reason.
    let o = image::load_from_memory(&photo("obama.jpg"))
        .unwrap()
        .to_rgb8();
    let tiny = jpeg(&image::imageops::resize(
        &o,
        o.width() / 8,
        o.height() / 8,
        image::imageops::FilterType::Triangle,
    ));
    let blurred = jpeg(&image::imageops::fast_blur(&o, 8.0));
    let random: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let full = photo("obama.jpg");
    let truncated = full[..full.len() / 2].to_vec();
    let t = std::time::Instant::now();
    let r = srv.enrol(&[&tiny, &blurred, &random, &truncated, &header_only_png()]);
    eprintln!("5 bad photos: {:?}", t.elapsed());
    assert_eq!(r.status, 422);
    let mut got = codes(&r);
    got.sort();
    let want: Vec<(Option<u64>, String)> = [
        "face_too_small",
        "blurred",
        "unsupported_format",
        "truncated",
        "too_many_pixels",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| (Some(i as u64), c.to_string()))
    .collect();
    assert_eq!(got, want, "{}", r.json());

    // Tickets.
    let pass = json!({"kind": {"type": "commuter_pass", "from": "2026-04-01", "to": "2026-09-30",
                               "coverage": {"zones": [1, 2]}}});
    let r = srv.post_json(&format!("/subjects/{obama}/tickets"), &pass);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let ticket = r.json()["id"].as_u64().unwrap();
    let ride = json!({"kind": {"type": "single_ride", "origin": "umeda", "valid_on": "2026-04-02",
                               "value": {"fare": 190}, "used": false}});
    assert_eq!(
        srv.post_json(&format!("/subjects/{obama}/tickets"), &ride)
            .status,
        201
    );
    let list = srv.get(&format!("/subjects/{obama}/tickets")).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"].as_u64(), Some(ticket));
    assert_eq!(list[0]["kind"], pass["kind"]);
    let bad = json!({"kind": {"type": "season_ticket"}});
    assert_eq!(
        srv.post_json(&format!("/subjects/{obama}/tickets"), &bad)
            .status,
        400
    );
    let second = list[1]["id"].as_u64().unwrap();
    assert_eq!(
        srv.delete(&format!("/subjects/{obama}/tickets/{second}"))
            .status,
        204
    );
    assert_eq!(
        srv.delete(&format!("/subjects/{obama}/tickets/{second}"))
            .status,
        404
    );
    let trips = srv.get(&format!("/subjects/{obama}/trips")).json();
    assert_eq!(trips, json!({"open_trip": null, "trips": []}));
    let subject = srv.get(&format!("/subjects/{obama}")).json();
    assert_eq!(subject["photos"], 2);
    assert_eq!(subject["consent"]["policy_version"], "2026-01");

    // A payment account (post-pay): linked, shown, unlinked; no charges before any passage.
    let account = format!("/subjects/{biden}/account");
    // A card number is refused (so is anything outside the token alphabet: the store's tests).
    let r = srv.put_json(&account, &json!({"reference": "4111111111111111"}));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("bad_account"))
    );
    let r = srv.delete(&account);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("no_account"))
    );
    let nobody = "0123456789abcdef0123456789abcdef";
    let r = srv.put_json(
        &format!("/subjects/{nobody}/account"),
        &json!({"reference": "psp:acct_7Hx2"}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("no_subject"))
    );
    for _ in 0..2 {
        let r = srv.put_json(&account, &json!({"reference": "psp:acct_7Hx2"}));
        assert_eq!(r.status, 204, "linking the same account twice is one link");
    }
    let shown = srv.get(&format!("/subjects/{biden}")).json();
    assert_eq!(shown["account"]["reference"], "psp:acct_7Hx2");
    assert_eq!(srv.delete(&account).status, 204);
    let shown = srv.get(&format!("/subjects/{biden}")).json();
    assert!(shown.get("account").is_none(), "{shown}");
    assert_eq!(srv.get("/charges").json(), json!([]));
    // The ledger's rows, by station, for the operator's review (none booked here).
    assert_eq!(srv.get("/stations/umeda/ledger").json(), json!([]));
    let r = srv.get("/stations/um*da/ledger");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("bad_station"))
    );
    srv.stop();

    // The sealed template and wrapped key are in the file now (so the scan below can see them).
    let db = tmp.path().join("centre.redb");
    let id = SubjectId::parse(&obama).unwrap();
    let (wrapped, sealed) = {
        let store = Store::open(&db).unwrap();
        let (_, w, s) = store
            .sealed_all()
            .unwrap()
            .into_iter()
            .find(|(s, _, _)| *s == id)
            .unwrap();
        (w, s)
    };
    assert!(file_contains(&db, sealed.as_bytes()));
    assert!(file_contains(&db, wrapped.as_bytes()));

    // Restart (persisted), erase.
    let srv = Server::start(tmp.path());
    assert_eq!(srv.get(&format!("/subjects/{obama}")).status, 200);
    assert_eq!(srv.delete(&format!("/subjects/{obama}")).status, 204);
    for p in ["", "/tickets", "/trips"] {
        let r = srv.get(&format!("/subjects/{obama}{p}"));
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (404, Some("no_subject"))
        );
    }
    assert_eq!(srv.delete(&format!("/subjects/{obama}")).status, 404);
    assert_eq!(srv.get(&format!("/subjects/{biden}")).status, 200);
    // Erased from the gallery too: Obama can enrol again.
    let r = srv.enrol(&[&photo("obama3.jpg")]);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let changes = srv.get("/changes").json();
    let kinds: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "upsert", "upsert", "tickets", "tickets", "tickets", "tickets", "tickets", "erase",
            "upsert"
        ]
    );
    srv.stop();

    let store = Store::open(&db).unwrap();
    assert!(store.subject(&id).unwrap().is_none());
    assert!(store.tickets(&id).unwrap().is_none());
    assert!(store.sealed_all().unwrap().iter().all(|(s, _, _)| *s != id));
    assert!(store.wrapped_keys().unwrap().iter().all(|(s, _)| *s != id));
    let audit: Vec<(AuditKind, Option<SubjectId>)> = store
        .audit(0, 100)
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.kind, e.subject))
        .collect();
    assert!(audit.contains(&(AuditKind::Erase, Some(id))));
    assert_eq!(
        audit.iter().filter(|(k, _)| *k == AuditKind::Enrol).count(),
        3
    );
    let erase = store.changes(0, 100).unwrap();
    assert_eq!(erase[7].kind, ChangeKind::Erase);
    let accounts: Vec<String> = store
        .audit(0, 100)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == AuditKind::Account)
        .map(|(_, e)| e.detail)
        .collect();
    assert_eq!(
        accounts,
        ["payment account linked", "payment account unlinked"]
    );
    drop(store);
    assert!(
        !file_contains(&db, sealed.as_bytes()),
        "sealed template bytes left in the store file"
    );
    assert!(
        !file_contains(&db, wrapped.as_bytes()),
        "wrapped data key bytes left in the store file"
    );
}

#[test]
fn auth_limits_rate_and_openapi() {
    let tmp = tempfile::tempdir().unwrap();
    prepare(
        tmp.path(),
        "[limits]\nmax_body_bytes = 1048576\nmax_photo_bytes = 524288\n\n[rate]\nper_minute = 6.0\nburst = 16.0\nfailed_auth_per_minute = 3.0\n",
    );
    let srv = Server::start(tmp.path());
    let a = srv.addr;
    let none = request(a, "GET", "/changes", None, &[], b"");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert_eq!(none.json()["code"], "unauthorized");
    let wrong = request(
        a,
        "GET",
        "/changes",
        Some("test-token-0123456789abcdeX"),
        &[],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        request(a, "GET", "/changes", Some("short"), &[], b"").status,
        401
    );
    // Failed authentications are rate limited per peer: 3 per minute.
    let r = request(a, "GET", "/changes", Some("nope"), &[], b"");
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);

    // OpenAPI: parses, and every documented operation is routed (no 404 `no_route`, no 405).
    let doc = request(a, "GET", "/openapi.json", None, &[], b"").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let id = "00".repeat(16);
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            ops += 1;
            let p = path.replace("{id}", &id).replace("{ticket}", "1");
            let r = request(a, &method.to_uppercase(), &p, Some(TOKEN), &[], b"");
            let code = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["code"].as_str().map(String::from));
            assert!(
                r.status != 405 && code.as_deref() != Some("no_route"),
                "{method} {path}: {} {code:?}",
                r.status
            );
        }
    }
    assert_eq!(ops, 15);
    // Generated from the handlers: the types they send and take, and the guard's own answers.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "TicketKind",
        "Coverage",
        "Ticket",
        "Error",
        "Subject",
        "Enrolled",
        "Trips",
        "AccountBody",
        "ChargeLine",
        "LedgerLine",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    let link = &doc["paths"]["/subjects/{id}/tickets"]["post"];
    assert!(link["responses"]["401"].is_object() && link["responses"]["429"].is_object());
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    assert_eq!(srv.get("/no/such/thing").json()["code"], "no_route");

    // Declared body over the limit: refused before it is read.
    let head = format!(
        "POST /subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        25 << 20
    );
    let r = raw(a, head.as_bytes(), &[0u8; 4096]);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("body_too_large"))
    );
    // One photo over the per-photo limit, body under the total limit.
    let big = vec![0xffu8; 600 << 10];
    let r = srv.enrol(&[&big]);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("photo_too_large"))
    );
    // A chunked body (no Content-Length) over the total limit.
    let (ct, body) = multipart(&[
        &vec![1u8; 400 << 10],
        &vec![2u8; 400 << 10],
        &vec![3u8; 400 << 10],
    ]);
    let mut chunked = Vec::new();
    for c in body.chunks(64 << 10) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let r = raw(a, head.as_bytes(), &chunked);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let r = srv.enrol(&[]);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("no_photos"))
    );

    // The client's bucket (burst 16) is spent by now: 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let r = srv.get("/changes");
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("rate limit reached");
    assert_eq!(r.json()["code"], "rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
}

#[test]
fn plain_http_is_refused_and_a_station_without_tls_must_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    prepare(tmp.path(), "");
    let srv = Server::start(tmp.path());
    assert_eq!(srv.get("/healthz").status, 200, "HTTPS with the test CA");

    // Plain HTTP to the HTTPS port: no HTTP answer, nothing served.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(srv.stop().code(), Some(0));

    // A configuration with neither [tls] nor insecure_http is refused, and says why.
    let cfg = tmp.path().join("enrold.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("[tls]").unwrap();
    let end = text.find("[keys]").unwrap();
    std::fs::write(&cfg, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let out = common::enrold()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no [tls]"), "{err}");
}
