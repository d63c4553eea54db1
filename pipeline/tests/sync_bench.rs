//! Measurements (ignored by default; run with
//! `cargo test --release -p pipeline --test sync_bench -- --ignored --nocapture`):
//! station sync throughput for N templates (`SYNC_BENCH_N`, default 100 000) from a fresh station
//! over loopback zenoh, and the time from an erase request at the centre to the station's gallery
//! update with that many templates in the store.

mod sync_common;

use std::time::{Duration, Instant};

use sync_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: ~1 min for 100 000 templates"]
async fn sync_throughput_and_erase_latency() {
    let n: usize = std::env::var("SYNC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["st-a"]);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n.div_ceil(10_000) {
        ids.extend(centre.enrol(10_000.min(n - ids.len())));
    }
    println!(
        "centre: {n} random sealed templates enrolled in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    centre.start().await;

    let t0 = Instant::now();
    let st = TestStation::start(&centre, "st-a", &dir.path().join("a.redb"), 1000).await;
    st.wait_for("full sync", Duration::from_secs(1800), |s| {
        s.syncer().gallery().len() == n
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "station sync: {n} templates in {secs:.1} s = {:.0} templates/s (batches of 1000, loopback)",
        n as f64 / secs
    );
    let size = std::fs::metadata(&st.path).unwrap().len();
    println!("station store: {:.1} MB", size as f64 / 1e6);

    let mut times = Vec::new();
    for id in ids.iter().take(5) {
        let t0 = Instant::now();
        centre.erase(id);
        st.wait_for("erasure", Duration::from_secs(60), |s| {
            !s.syncer().gallery().read().contains(id)
        })
        .await;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "erase request → station gallery updated, {n} templates in the stores (ms, 5 runs): {:?}",
        times.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>()
    );
    st.stop().await;
}
