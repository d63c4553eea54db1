//! kill -9 of `enrold` during a batch of enrolments, then restart: every acknowledged enrolment is
//! there, nothing is half-written, and the audit log and change sequence match the subjects.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use domain::SubjectId;
use enrolment::store::{AuditKind, ChangeKind, Store};

#[test]
fn acknowledged_enrolments_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    // The same face is enrolled again and again: switch the 1:N check off for this test.
    prepare(tmp.path(), "[quality]\nduplicate_cosine = 2.0\n");
    let o = image::load_from_memory(&photo("obama.jpg"))
        .unwrap()
        .to_rgb8();
    let small = jpeg(&image::imageops::resize(
        &o,
        o.width() / 2,
        o.height() / 2,
        image::imageops::FilterType::Triangle,
    ));

    let mut srv = Server::start(tmp.path());
    let addr = srv.addr;
    let acked = Arc::new(Mutex::new(Vec::<SubjectId>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (acked, stop, small) = (acked.clone(), stop.clone(), small.clone());
            std::thread::spawn(move || {
                let (ct, body) = multipart(&[&small]);
                while !stop.load(Ordering::SeqCst) {
                    // A connection the kill cuts off yields no status: not acknowledged.
                    let head = format!(
                        "POST /subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let r = try_raw(addr, head.as_bytes(), &body);
                    match r {
                        Some(r) if r.status == 201 => {
                            let id =
                                SubjectId::parse(r.json()["subject"].as_str().unwrap()).unwrap();
                            acked.lock().unwrap().push(id);
                        }
                        Some(r) => panic!("enrolment failed: {} {:?}", r.status, r.body),
                        None => break,
                    }
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 5 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Somewhere inside the next request (analysis ~0.4 s, commit a few ms).
    std::thread::sleep(Duration::from_millis(230));
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let acked: BTreeSet<SubjectId> = acked.lock().unwrap().iter().copied().collect();
    eprintln!("{} enrolments acknowledged before SIGKILL", acked.len());

    // The store after the crash (redb repairs on open if needed).
    let db = tmp.path().join("centre.redb");
    {
        let store = Store::open(&db).unwrap();
        let sealed = store.sealed_all().unwrap(); // every template has its key (else an error)
        let with_template: BTreeSet<SubjectId> = sealed.iter().map(|(s, _, _)| *s).collect();
        let keys: BTreeSet<SubjectId> = store
            .wrapped_keys()
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(with_template, keys);
        for s in &with_template {
            assert!(
                store.subject(s).unwrap().is_some(),
                "{s}: template without a record"
            );
        }
        eprintln!("{} enrolments committed", with_template.len());
        assert!(
            acked.is_subset(&with_template),
            "an acknowledged enrolment is missing"
        );
        assert!(
            with_template.len() <= acked.len() + 2,
            "more than the in-flight requests committed"
        );
        let audit: Vec<SubjectId> = store
            .audit(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == AuditKind::Enrol)
            .filter_map(|(_, e)| e.subject)
            .collect();
        assert_eq!(audit.len(), with_template.len());
        assert_eq!(
            audit.iter().copied().collect::<BTreeSet<_>>(),
            with_template
        );
        let changes = store.changes(0, 1000).unwrap();
        assert!(changes.iter().all(|c| c.kind == ChangeKind::Upsert));
        assert_eq!(
            changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (1..=changes.len() as u64).collect::<Vec<_>>()
        );
        assert_eq!(
            changes.iter().map(|c| c.subject).collect::<BTreeSet<_>>(),
            with_template
        );
    }

    // Restart: the service opens every template (gallery) and serves each acknowledged subject.
    let srv = Server::start(tmp.path());
    let health = request(srv.addr, "GET", "/healthz", None, &[], b"").json();
    assert!(health["subjects"].as_u64().unwrap() >= acked.len() as u64);
    for s in &acked {
        assert_eq!(srv.get(&format!("/subjects/{s}")).status, 200);
    }
    let r = srv.enrol(&[&small]);
    assert_eq!(r.status, 201);
}
