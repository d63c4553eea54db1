//! Fares across two whole stations (issue 17): two `gated` processes, the built binary as
//! deployed, each with its camera (a recorded lane played through GStreamer), its recogniser on
//! wgpu and the door drivers it starts, following one enrolment centre (template distribution and
//! fare ledger, in the test process, over zenoh with mutual TLS on loopback). A walker holding a
//! single ride enters at umeda and leaves at noda: the centre's ledger books both passages and the
//! fare between the stations, and closes the trip; the ride is spent, and umeda refuses it when the
//! same walker comes back. Between the runs nothing but the centre carries what happened.
//!
//! The fare checks of `fare_network.rs` run on the stations' parts with the walkers fed directly;
//! here the same passenger is seen by cameras. Needs the footage and models made by
//! `scripts/setup` (skipped without them, like `gate_footage.rs`).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gated_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use domain::StationId;
use domain::tickets::{Direction, FareTable, RideValue, TicketKind};
use pipeline::demo::centre::DemoCentre;
use pipeline::demo::{self, FootageOptions, truth::Truth};
use pipeline::store::{JournalKind, Store};

const FARES: &str = "fares = [150, 190]\n[stations]\numeda = 1\nnoda = 2\n";

/// One station's run of the recorded lane: its own folder (store, station file, log), the
/// network's one certificate authority.
struct Station {
    id: &'static str,
    dir: PathBuf,
}

impl Station {
    fn new(work: &Path, id: &'static str) -> Self {
        let dir = work.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(work.join("certs"), dir.join("certs")).unwrap();
        Self { id, dir }
    }

    /// Writes the station file for the lane in `role` and runs `gated run` on it until the
    /// recording has played out (gated then waits for the centre to book its passages).
    fn run(&self, footage: &Path, centre: &DemoCentre, fares: &Path, exit: bool, run: usize) {
        let truth = Truth::load(footage).unwrap();
        let opts = FootageOptions {
            station: Some(self.id.into()),
            exits: match exit {
                true => truth.lanes.iter().map(|l| l.lane.clone()).collect(),
                false => Vec::new(),
            },
            spawn_drivers: true,
            extra_toml: format!(
                "[decision]\nfare_table = {:?}\n",
                fares.display().to_string()
            ),
            ..Default::default()
        };
        // A long drain: the run must end with every passage booked, however slow the machine.
        let mut sync = centre.syncs[self.id].clone();
        sync.drain_ms = 30_000;
        let toml = demo::footage_toml(footage, &truth, &self.dir, &opts).unwrap()
            + &common::sync_section(&sync);
        let config = self.dir.join("station.toml");
        std::fs::write(&config, toml).unwrap();
        let log = self.dir.join(format!("gated-{run}.log"));
        let mut child = gated_common::Proc(
            Command::new(env!("CARGO_BIN_EXE_gated"))
                .args(["run", "--config"])
                .arg(&config)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start gated"),
        );
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = child.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(240),
                "{} run {run}: gated did not play the lane out; log {}",
                self.id,
                log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "{} run {run}: {status}\n{text}", self.id);
        assert!(
            text.contains("the centre's ledger has booked every passage"),
            "{} run {run}: stopped before the centre booked its passages\n{text}",
            self.id
        );
        eprintln!(
            "{} run {run} ({}) took {:.1} s",
            self.id,
            if exit { "exit" } else { "entry" },
            t0.elapsed().as_secs_f64()
        );
        for l in text.lines().filter(|l| {
            l.contains("played out") || l.contains("booked every") || l.contains(" decision")
        }) {
            eprintln!("  {l}");
        }
    }

    /// The (outcome, reason) of every decision this station journalled for `subject`.
    fn decisions(&self, subject: domain::SubjectId) -> Vec<(String, String)> {
        let store = Store::open(&self.dir.join("station.redb")).unwrap();
        let id = subject.to_string();
        store
            .journal(1, 100_000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == JournalKind::Decision)
            .map(|(_, e)| serde_json::from_str::<protocol::Decision>(&e.detail).unwrap())
            .filter(|d| d.subject.as_deref() == Some(id.as_str()))
            .map(|d| (format!("{:?}", d.outcome).to_lowercase(), d.reason))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ride_entered_at_one_station_is_paid_and_closed_at_the_other_and_then_spent_everywhere() {
    let Some(f) = common::footage() else { return };
    let lane1 = common::first_lane_only(&f);
    let footage = lane1.path();
    let truth = Truth::load(footage).unwrap();
    let walker = truth.lanes[0]
        .walkers
        .iter()
        .find(|w| w.expected == "open")
        .expect("an enrolled walker with a valid pass");

    let work = tempfile::tempdir().unwrap();
    let centre = demo::start_network_centre(footage, work.path(), &["umeda", "noda"])
        .await
        .expect("centre");
    let (umeda, noda) = (
        StationId::new("umeda").unwrap(),
        StationId::new("noda").unwrap(),
    );
    let fares = work.path().join("fares.toml");
    std::fs::write(&fares, FARES).unwrap();
    let table = FareTable::parse(FARES, "test").unwrap();

    // The walker's pass is swapped for one single ride from umeda, worth the fare to noda.
    let id = centre.subjects[&walker.identity];
    for t in centre.store.tickets(&id).unwrap().unwrap() {
        assert!(centre.store.unlink_ticket(&id, t.id, "test").unwrap());
    }
    let today = table.service_day(chrono::Local::now().naive_local());
    let ride = TicketKind::SingleRide {
        origin: umeda.clone(),
        valid_on: today,
        value: RideValue::Fare(190),
        used: false,
    };
    let (ride, _) = centre.store.link_ticket(&id, &ride, "test").unwrap();

    let a = Station::new(work.path(), "umeda");
    let b = Station::new(work.path(), "noda");

    // In at umeda.
    a.run(footage, &centre, &fares, false, 1);
    assert_eq!(a.decisions(id), [("open".into(), "granted".into())]);
    let (open, _) = centre.store.trips(&id, 0, 10).unwrap().unwrap();
    let open = open.expect("the centre knows the trip umeda opened");
    assert_eq!(open.entry_station, umeda);

    // Out at noda, which learnt of the entry from the centre only.
    b.run(footage, &centre, &fares, true, 1);
    assert_eq!(b.decisions(id), [("open".into(), "granted".into())]);
    let entry = centre.store.ledger(&umeda, 1, 10).unwrap();
    let exit = centre.store.ledger(&noda, 1, 10).unwrap();
    assert_eq!(entry.len(), 1, "{entry:?}");
    assert_eq!(exit.len(), 1, "{exit:?}");
    let (entry, exit) = (&entry[0].1, &exit[0].1);
    assert_eq!(
        (entry.record.subject, entry.record.direction),
        (id, Direction::Entry)
    );
    assert_eq!(
        (exit.record.subject, exit.record.direction),
        (id, Direction::Exit)
    );
    assert_eq!(exit.record.entry_station.as_ref(), Some(&umeda));
    assert_eq!(exit.record.fare, Some(190), "the fare umeda → noda");
    assert_eq!(exit.spent, Some(ride.id), "the exit spent the ride");
    assert!(entry.conflict.is_none() && exit.conflict.is_none());
    let (open, trips) = centre.store.trips(&id, 0, 10).unwrap().unwrap();
    assert!(open.is_none(), "the trip is closed at the centre");
    assert_eq!(trips.len(), 2);
    let kept = Store::open(&b.dir.join("station.redb")).unwrap();
    assert!(
        !kept.fare_state().unwrap().open_trips.contains_key(&id),
        "noda keeps no open trip"
    );
    drop(kept);

    // Back at umeda: the trip it opened was closed elsewhere, and the ride is spent.
    a.run(footage, &centre, &fares, false, 2);
    assert_eq!(
        a.decisions(id),
        [
            ("open".into(), "granted".into()),
            ("closed".into(), "already_used".into())
        ]
    );
    let totals = centre.store.ledger_totals().unwrap();
    assert_eq!((totals.passages, totals.conflicts), (2, 0));
    centre.close().await;
}
