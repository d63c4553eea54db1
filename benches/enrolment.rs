//! Enrolment and template distribution (own harness; prints a table):
//!
//! - enrolment latency for a subject with 3 photos through the library path enrold runs per request
//!   (decode, detect, align, embed on 1 or 2 worker threads, same-person check, seal, durable commit
//!   to the centre store); HTTP parsing and the 1:N duplicate check are not included;
//! - station sync throughput: a fresh station catching up N templates (default 100 000,
//!   `--templates N`) from the centre over loopback zenoh, batches of 1000, verified, opened, stored;
//! - erase request at the centre → the station's gallery no longer holds the subject (5 runs, with N
//!   templates in both stores; includes the station's store rewrite, `docs/store.md`).
//!
//! `cargo bench -p gate-benches --bench enrolment [-- --templates N]`. Needs the test photos
//! (`scripts/setup`) and the face models (`models/`).

#[path = "../pipeline/tests/sync_common/mod.rs"]
mod sync_common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use domain::SubjectId;
use domain::seal::{self, KeyId, MasterKey};
use engine::face::{FaceChain, models_dir};
use enrolment::check::{self, Accepted};
use enrolment::photo::DecodeLimits;
use enrolment::quality::QualityConfig;
use enrolment::store::{Consent, EnrolRow, Store as CentreStore, SubjectRecord};
use sync_common::{TestCentre, TestStation};

struct Row {
    what: String,
    value: String,
    note: String,
}

fn main() -> Result<()> {
    let mut templates = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // cargo bench also passes --bench; other arguments are ignored.
        if a == "--templates" {
            templates = args
                .next()
                .context("--templates needs a number")?
                .parse()
                .context("--templates N")?;
        }
    }
    if templates == 0 {
        bail!("--templates must be at least 1");
    }
    let mut rows = Vec::new();
    enrol_latency(&mut rows)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(sync_and_erase(templates, &mut rows))?;

    println!();
    println!("| measurement | value | note |");
    println!("|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} |", r.what, r.value, r.note);
    }
    Ok(())
}

fn photo(name: &str) -> Result<Vec<u8>> {
    let dir = std::env::var_os("GATE_TESTDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata"));
    let p = dir.join("face_recognition").join(name);
    std::fs::read(&p).with_context(|| format!("{}: run scripts/setup", p.display()))
}

/// Median, min, max of `ms`.
fn spread(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0], ms[ms.len() - 1])
}

fn enrol_latency(rows: &mut Vec<Row>) -> Result<()> {
    let photos = [
        photo("obama.jpg")?,
        photo("obama2.jpg")?,
        photo("obama3.jpg")?,
    ];
    let faces = FaceChain::load(&models_dir())?;
    let q = QualityConfig::default();
    let limits = DecodeLimits::default();
    let dir = tempfile::tempdir()?;
    let store = CentreStore::open(&dir.path().join("centre.redb"))?;
    let master = MasterKey::generate(KeyId(1))?;
    let record = SubjectRecord::enrolled_now(Consent::now("2026-01"), 1, 3);
    let analyse = |i: usize| -> Result<Accepted> {
        match check::analyse_photo(&faces, i, &photos[i], limits, &q)? {
            Ok(a) => Ok(a),
            Err(r) => bail!("photo {i} refused: {r:?}"),
        }
    };
    let runs = 6;
    for workers in [1usize, 2] {
        let mut ms = Vec::new();
        for _ in 0..runs {
            let t0 = Instant::now();
            let accepted: Vec<Accepted> = if workers == 1 {
                (0..3).map(analyse).collect::<Result<_>>()?
            } else {
                // Two photos at once, then the third, as enrold's two face slots do.
                std::thread::scope(|s| {
                    let a = s.spawn(|| analyse(0));
                    let b = s.spawn(|| analyse(1));
                    let mut v = vec![
                        a.join().expect("worker thread"),
                        b.join().expect("worker thread"),
                    ];
                    v.push(analyse(2));
                    v.into_iter().collect::<Result<Vec<_>>>()
                })?
            };
            let template = match check::template_of(&accepted, &q) {
                Ok(t) => t,
                Err(r) => bail!("template refused: {r:?}"),
            };
            let subject = SubjectId::random()?;
            let (wrapped, sealed) = seal::seal_new_subject(&master, &subject, 1, &template)?;
            store.enrol(
                &EnrolRow {
                    subject,
                    record: &record,
                    wrapped: &wrapped,
                    sealed: &sealed,
                },
                "bench",
            )?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let (med, lo, hi) = spread(&mut ms);
        eprintln!("enrolment, {workers} worker(s): {med:.0} ms median ({lo:.0}–{hi:.0})");
        rows.push(Row {
            what: format!("enrolment, 3 photos, {workers} face worker(s)"),
            value: format!("{med:.0} ms median"),
            note: format!(
                "{lo:.0}–{hi:.0} ms over {runs} runs; library path (no HTTP, no 1:N check)"
            ),
        });
    }
    Ok(())
}

async fn sync_and_erase(n: usize, rows: &mut Vec<Row>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut centre = TestCentre::new(dir.path(), &["st-a"]);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.extend(centre.enrol(10_000.min(n - ids.len())));
    }
    eprintln!(
        "centre: {n} random sealed templates enrolled in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    centre.start().await;

    let t0 = Instant::now();
    let st = TestStation::start(&centre, "st-a", &dir.path().join("a.redb"), 1000).await;
    st.wait_for("full sync", Duration::from_secs(3600), |s| {
        s.syncer().gallery().len() == n
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    let size = std::fs::metadata(&st.path)?.len();
    eprintln!("station sync: {n} templates in {secs:.1} s");
    rows.push(Row {
        what: format!("station sync, {n} templates from empty"),
        value: format!("{:.0} templates/s", n as f64 / secs),
        note: format!(
            "{secs:.1} s; batches of 1000 over loopback zenoh; store {:.1} MB",
            size as f64 / 1e6
        ),
    });

    let mut ms = Vec::new();
    for id in ids.iter().take(5) {
        let t0 = Instant::now();
        centre.erase(id);
        st.wait_for("erasure", Duration::from_secs(120), |s| {
            !s.syncer().gallery().read().contains(id)
        })
        .await;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (med, lo, hi) = spread(&mut ms);
    eprintln!("erase → station gallery: {med:.0} ms median ({lo:.0}–{hi:.0})");
    rows.push(Row {
        what: format!("erase request → station gallery, {n} templates"),
        value: format!("{med:.0} ms median"),
        note: format!("{lo:.0}–{hi:.0} ms over 5 runs; includes the station store rewrite"),
    });
    st.stop().await;
    Ok(())
}
