//! Enrolment latency for a subject with 3 photos, client-observed over loopback HTTP (decode, detect,
//! align, embed, seal, durable commit). Ignored by default (a measurement, not a check):
//! `cargo test --release -p enrolment --test latency -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::*;

#[test]
#[ignore]
fn enrol_latency_three_photos() {
    let photos = [photo("obama.jpg"), photo("obama2.jpg"), photo("obama3.jpg")];
    let refs: Vec<&[u8]> = photos.iter().map(|p| p.as_slice()).collect();
    for workers in [1, 2] {
        let tmp = tempfile::tempdir().unwrap();
        prepare(tmp.path(), "[quality]\nduplicate_cosine = 2.0\n");
        let cfg = tmp.path().join("enrold.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("workers = 2", &format!("workers = {workers}")),
        )
        .unwrap();
        let srv = Server::start(tmp.path());
        let mut ms: Vec<f64> = (0..6)
            .map(|_| {
                let t = Instant::now();
                let r = srv.enrol(&refs);
                assert_eq!(r.status, 201, "{:?}", r.json());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        eprintln!(
            "workers = {workers}: 3-photo enrolment {:.0} ms median, {:.0}–{:.0} ms (6 runs)",
            ms[3], ms[0], ms[5]
        );
    }
}
