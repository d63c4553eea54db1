//! What durable fares add to a grant's door latency (issue 17): the station's one transaction per
//! grant (`pipeline::store::Store::commit_passages`: trip row, spent ride, passage record, decision
//! journal line; fsync), timed p50/p99 on a store that already holds `--trips N` open trips (default
//! 10 000), beside its floor measured in the same run: writing the same bytes to a plain file and
//! `fsync`ing it, the least any durable write on this disk pays.
//!
//! `cargo bench -p gate-benches --bench fare [-- --trips N --grants M]`. The store lives under
//! `target/` (the real disk, not a RAM filesystem).

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use domain::tickets::{Direction, OpenTrip, TicketId, TripRecord, Verdict};
use domain::{StationId, SubjectId};
use pipeline::store::{JournalEntry, JournalKind, Passage, Store};

fn grant(i: u64, station: &StationId) -> Result<(Passage, JournalEntry)> {
    let at = NaiveDate::from_ymd_opt(2026, 12, 4)
        .and_then(|d| d.and_hms_opt(8, 0, 0))
        .context("date")?;
    let subject = SubjectId::random()?;
    let record = TripRecord {
        subject,
        station: station.clone(),
        direction: Direction::Entry,
        at,
        service_day: at.date(),
        verdict: Verdict::Allow,
        ticket: Some(TicketId(i)),
        entry_station: None,
        fare: None,
        charged: 0,
    };
    let trip = OpenTrip {
        entry_station: station.clone(),
        entered_at: at,
        service_day: at.date(),
        ticket: TicketId(i),
    };
    let passage = Passage {
        lane: "L1".into(),
        track: i,
        subject,
        trip: Some(trip),
        spent: None,
        record,
    };
    // A decision line of the size the station writes (the Decision message as JSON).
    let line = JournalEntry {
        t_unix_ms: i,
        lane: "L1".into(),
        kind: JournalKind::Decision,
        detail: format!(
            "{{\"v\":1,\"lane\":\"L1\",\"track\":{i},\"outcome\":\"open\",\"reason\":\"granted\",\"subject\":\"{subject}\",\"similarity\":0.73,\"margin\":0.62,\"frames\":6,\"latency_ms\":92.5,\"t_unix_ms\":1796349007927}}"
        ),
    };
    Ok((passage, line))
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context(format!("{name} needs a value"))?
            .parse()
            .context(name.to_owned()),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let (trips, grants) = (arg("--trips", 10_000)?, arg("--grants", 500)?);
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target)?;
    let dir = tempfile::tempdir_in(&target)?;
    let store = Store::open(&dir.path().join("station.redb"))?;
    let station = StationId::new("umeda")?;

    // The store a busy station has: many open trips, in batches so that filling it is quick.
    let mut i = 0;
    while i < trips {
        let batch: Vec<(Passage, JournalEntry)> = (i..(i + 1000).min(trips))
            .map(|k| grant(k, &station))
            .collect::<Result<_>>()?;
        let (p, j): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        store.commit_passages(&p, &j)?;
        i += 1000;
    }

    let mut commit = Vec::new();
    let mut floor = Vec::new();
    let mut file = std::fs::File::create(dir.path().join("floor.bin"))?;
    for k in 0..grants {
        let (p, j) = grant(trips + k, &station)?;
        let bytes = serde_json::to_vec(&(&p, &j))?;
        let t = Instant::now();
        store.commit_passages(&[p], &[j])?;
        commit.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        file.write_all(&bytes)?;
        file.sync_data()?;
        floor.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (c50, c99) = percentiles(commit);
    let (f50, f99) = percentiles(floor);
    println!("durable fare commit per grant, {grants} grants on a store with {trips} open trips");
    println!("{:<44} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    println!(
        "{:<44} {c50:>9.3} {c99:>9.3}",
        "commit_passages (1 passage + 1 line)"
    );
    println!(
        "{:<44} {f50:>9.3} {f99:>9.3}",
        "floor: same bytes, write + fsync"
    );
    println!(
        "{:<44} {:>9.2} {:>9.2}",
        "ratio to the floor",
        c50 / f50,
        c99 / f99
    );
    Ok(())
}
