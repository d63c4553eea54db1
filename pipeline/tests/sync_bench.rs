//! Measurements (ignored by default; run with
//! `cargo test --release -p pipeline --test sync_bench -- --ignored --nocapture`):
//! station sync throughput for N templates (`SYNC_BENCH_N`, default 100 000) from a fresh station
//! over loopback zenoh, and the time from an erase request at the centre to the station's gallery
//! update with that many templates in the store; the fare ledger's catch-up with a station's
//! passages (`ledger_sync_throughput`, `LEDGER_BENCH_N` trips, default 100 000).

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

/// The fare ledger catching up with a station that recorded N trips (`LEDGER_BENCH_N`, default
/// 100 000; an entry and an exit each) while the centre was away: from the centre's start to the
/// last passage booked, over loopback zenoh, with 1 000 enrolled subjects on day passes, so every
/// booking updates a trip and logs a change for the stations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: ~minutes for 100 000 trips"]
async fn ledger_sync_throughput() {
    use domain::tickets::{Coverage, Direction, TicketId, TicketKind};
    use pipeline::decide::gate::TicketDesk;
    protocol::logging::init("warn", protocol::logging::LogFormat::Text);
    let trips: usize = std::env::var("LEDGER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut centre = TestCentre::new(dir.path(), &["umeda"]);
    let ids = centre.enrol(1000);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let kind = TicketKind::DayPass {
        date: day,
        coverage: Coverage::Network,
    };
    let umeda = domain::StationId::new("umeda").unwrap();
    // The station's passages, made by the desk the deciders use and committed as they commit
    // them (one transaction per walker), before the centre runs.
    let store =
        std::sync::Arc::new(pipeline::store::Store::open(&dir.path().join("a.redb")).unwrap());
    let table =
        domain::tickets::FareTable::parse("fares = [150]\n[stations]\numeda = 1\n", "bench")
            .unwrap();
    let mut desk = TicketDesk::new(table, umeda.clone());
    let tickets = vec![domain::tickets::Ticket {
        id: TicketId(1),
        kind,
    }];
    let t0 = Instant::now();
    let mut at = day.and_hms_opt(5, 0, 0).unwrap();
    for i in 0..trips {
        for direction in [Direction::Entry, Direction::Exit] {
            at += chrono::Duration::milliseconds(300);
            desk.judge(
                ids[i % ids.len()],
                &tickets.clone().into(),
                None,
                direction,
                at,
            );
            let p: Vec<_> = desk
                .take_changes()
                .iter()
                .map(|c| c.passage("L1", i as u64))
                .collect();
            store.commit_passages(&p, &[]).unwrap();
        }
    }
    println!(
        "station: {} passages committed in {:.1} s",
        2 * trips,
        t0.elapsed().as_secs_f64()
    );
    drop(store);

    centre.start().await;
    let t0 = Instant::now();
    let st = TestStation::start(&centre, "umeda", &dir.path().join("a.redb"), 1000).await;
    let head = 2 * trips as u64;
    while centre.store.uplink_head(&umeda).unwrap() < head {
        assert!(t0.elapsed() < Duration::from_secs(3600), "ledger too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let totals = centre.store.ledger_totals().unwrap();
    assert_eq!(totals.passages, head);
    println!(
        "ledger: {head} passages ({trips} trips) booked in {secs:.1} s = {:.0} passages/s; conflicts {}",
        head as f64 / secs,
        totals.conflicts
    );
    st.stop().await;
}
