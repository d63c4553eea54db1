//! Helpers of the fare tests (`fare_network.rs`, `fare_offline.rs`): a two-station fare table, the
//! test day's times, and a walker passing a station's desk as the deciders do.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use domain::tickets::{Direction, FareTable, Verdict};
use pipeline::decide::gate::TicketDesk;
use pipeline::store::Store;

use super::TestStation;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn table() -> FareTable {
    FareTable::parse(
        "fares = [150, 190]\n[stations]\numeda = 1\nnoda = 2\n",
        "test",
    )
    .unwrap()
}

pub fn at(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 5)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
}

/// Judges one walker at `desk` and commits the grant as the deciders do (`decisions.rs`).
pub fn pass(
    desk: &mut TicketDesk,
    store: &Store,
    station: &TestStation,
    id: domain::SubjectId,
    direction: Direction,
    when: NaiveDateTime,
) -> Verdict {
    let (wallet, centre) = {
        let g = station.syncer().gallery().read();
        (g.wallet(&id).unwrap().clone(), g.trip(&id).cloned())
    };
    let d = desk.judge(id, &wallet, centre.as_ref(), direction, when);
    let passages: Vec<_> = desk
        .take_changes()
        .iter()
        .map(|c| c.passage("L1", 1))
        .collect();
    store.commit_passages(&passages, &[]).unwrap();
    d.verdict
}

pub async fn until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        // Fine enough to time what it waits for (fare_network prints those times).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
