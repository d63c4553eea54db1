//! Faults, measured (issue 15): the station on recorded footage in real time (paced, newest frame
//! only, as live cameras), with its in-process enrolment centre and the real `door-driver` and
//! `light-driver` processes on a TLS bus with access control; an observer holding the operator's
//! certificate watches every door's state. Each scenario injects one fault and measures what the
//! issue asks:
//!
//! - `stall`: the recogniser's tick hangs (as on a GPU hang) → every door in its safe position
//!   (goal ≤ 500 ms from the hang), back to normal when results come back, and what the hang cost
//!   in decisions;
//! - `gpu`: the GPU device is destroyed (wgpu's device-lost path) → doors safe (goal ≤ 500 ms),
//!   gated stops, and a restarted gated takes the doors back (recovery time);
//! - `camera`: one lane's recording turns to garbage mid-run → that lane degrades, the other
//!   decides every walker as the truth says;
//! - `driver`: the door driver is killed (SIGKILL) mid-run and restarted a second later, as
//!   systemd's `RestartSec=1s` does → every open decided is applied exactly once (none lost, none
//!   duplicated), counted from the drivers' own logs.
//!
//! The hang and the device loss are injected inside the tick thread (`pipeline::recognise::faults`,
//! feature `fault-injection`, which only this bench turns on).
//!
//! - `--soak MINUTES` (alone): every lane in benchmark mode, each recording repeated for the whole
//!   time, gated's and the door driver's resident memory and the device's wgpu objects sampled
//!   each minute, and every walker seen to the end scored against the truth, play after play.
//!
//! `cargo build --release --workspace && cargo bench -p gate-benches --features faults --bench
//! faults [-- --footage DIR] [--runs N] [--only stall|gpu|camera|driver] [--soak MINUTES]
//! [--out DIR]`.

#[path = "common/procs.rs"]
mod procs;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use pipeline::config::StationConfig;
use pipeline::demo::{self, FootageOptions, FootageRun, centre::DemoCentre, truth::Truth};
use pipeline::recognise::faults;
use pipeline::station::{RunOptions, RunReport};
use procs::{Killed, binary};
use protocol::{BusSecurity, CertDir, DoorMode, DoorState, Keys, Role, ZenohEndpoints, decode};
use tokio::sync::mpsc;

const STATION: &str = "demo";

/// Starts one driver as the station's units would (`deploy/systemd`), logging JSON to `log`.
fn driver(name: &str, cfg: &StationConfig, log: &Path) -> Result<Killed> {
    let listen = match name {
        "door-driver" => &cfg.drivers.door_listen,
        _ => &cfg.drivers.light_listen,
    };
    let mut c = Command::new(binary(name)?);
    c.args([
        "--station",
        STATION,
        "--listen",
        listen,
        "--log-format",
        "json",
    ]);
    for l in &cfg.lanes {
        c.args(["--lane", l.id.get_ref()]);
    }
    if name == "door-driver" {
        c.args(["--failsafe", "closed", "--watchdog-ms"])
            .arg(cfg.drivers.watchdog_ms.to_string());
    }
    c.args(cfg.zenoh.driver_security_args());
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Killed(
        c.stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?,
    ))
}

/// Every door state of every lane, with its arrival, as the operator's certificate sees them.
struct Observer {
    _session: zenoh::Session,
    rx: mpsc::UnboundedReceiver<(DoorState, Instant)>,
}

impl Observer {
    async fn open(cfg: &StationConfig, certs: &CertDir) -> Result<Self> {
        let session = zenoh::open(protocol::zenoh_config(&ZenohEndpoints {
            listen: vec![],
            connect: vec![cfg.drivers.door_listen.clone()],
            security: BusSecurity::Tls(certs.tls(Role::Operator)?),
        })?)
        .await
        .map_err(anyhow::Error::msg)?;
        let keys = Keys::new(STATION)?;
        let (tx, rx) = mpsc::unbounded_channel();
        for l in &cfg.lanes {
            let tx = tx.clone();
            session
                .declare_subscriber(keys.door_state(l.id.get_ref()))
                .callback(move |s| {
                    if let Ok(st) = decode::<DoorState>(&s.payload().to_bytes()) {
                        let _ = tx.send((st, Instant::now()));
                    }
                })
                .background()
                .await
                .map_err(anyhow::Error::msg)?;
        }
        Ok(Self {
            _session: session,
            rx,
        })
    }

    /// Forgets what arrived so far.
    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits until every lane of `lanes` has shown a state satisfying `want`; the first such
    /// arrival per lane.
    async fn until_all(
        &mut self,
        lanes: &[String],
        within: Duration,
        want: impl Fn(&DoorState) -> bool,
    ) -> Result<BTreeMap<String, Instant>> {
        let end = tokio::time::Instant::now() + within;
        let mut seen = BTreeMap::new();
        while seen.len() < lanes.len() {
            let (st, at) = tokio::time::timeout_at(end, self.rx.recv())
                .await
                .map_err(|_| anyhow!("doors {:?} not seen in time; got {:?}", lanes, seen.keys()))?
                .context("observer closed")?;
            if want(&st) {
                seen.entry(st.lane.clone()).or_insert(at);
            }
        }
        Ok(seen)
    }
}

fn normal(s: &DoorState) -> bool {
    s.mode == DoorMode::Normal && s.epoch.is_some()
}

fn safe(s: &DoorState) -> bool {
    s.mode == DoorMode::FailsafeClosed
}

/// The footage, its centre and the station file, shared by every scenario's runs.
struct Bench {
    footage: PathBuf,
    work: tempfile::TempDir,
    truth: Truth,
    centre: DemoCentre,
    certs: CertDir,
}

impl Bench {
    async fn new(footage: PathBuf) -> Result<Self> {
        let work = tempfile::tempdir()?;
        let opts = options(&HashMap::new());
        let centre = demo::start_centre(&footage, work.path(), &opts).await?;
        let truth = Truth::load(&footage)?;
        let certs = demo::demo_certs(work.path(), STATION)?;
        Ok(Self {
            footage,
            work,
            truth,
            centre,
            certs,
        })
    }

    /// A station file for one run (fresh ports, its own store), drivers started by the bench.
    fn config(&self, run: &str, sources: &HashMap<String, String>) -> Result<StationConfig> {
        self.config_paced(run, sources, true)
    }

    fn config_paced(
        &self,
        run: &str,
        sources: &HashMap<String, String>,
        paced: bool,
    ) -> Result<StationConfig> {
        let dir = self.work.path().join(run);
        std::fs::create_dir_all(&dir)?;
        // The certificates of the centre and the observer (under the bench's folder); the store
        // of this run alone.
        let mut opts = options(sources);
        opts.paced = paced;
        let mut cfg = demo::footage_config(&self.footage, &self.truth, self.work.path(), &opts)?;
        cfg.store.path = dir.join("station.redb");
        let sync = (self.centre.syncs.get(STATION)).context("the centre serves the station")?;
        cfg.sync = Some(sync.clone());
        cfg.drivers.spawn = false;
        // Generated footage sends the same people through several lanes, and the soak plays it
        // again and again: no second-entry refusals (`[decision] trips`, off for benchmarks).
        cfg.decision.trips = false;
        // gated dials the drivers' listeners itself only when it starts them.
        let drivers = [
            cfg.drivers.door_listen.clone(),
            cfg.drivers.light_listen.clone(),
        ];
        cfg.zenoh.connect.extend(drivers);
        Ok(cfg)
    }

    /// How long the footage plays.
    fn truth_seconds(&self) -> f64 {
        self.truth
            .lanes
            .iter()
            .flat_map(|l| {
                l.walkers
                    .iter()
                    .map(|w| w.last_frame as f64 / self.truth.fps)
            })
            .fold(0.0, f64::max)
    }

    fn lanes(&self) -> Vec<String> {
        self.truth.lanes.iter().map(|l| l.lane.clone()).collect()
    }

    fn scored(&self, report: RunReport) -> FootageRun {
        FootageRun {
            report,
            truth: self.truth.clone(),
            subjects: self.centre.subjects.clone(),
        }
    }
}

fn options(sources: &HashMap<String, String>) -> FootageOptions {
    FootageOptions {
        paced: true,
        spawn_drivers: false,
        sources: sources.clone(),
        ..Default::default()
    }
}

/// A station running in its own task, which notes when the station ended (not when the bench
/// gets round to awaiting it).
type Station =
    tokio::task::JoinHandle<(Result<RunReport, pipeline::station::StationError>, Instant)>;

/// `duration`: `None` plays the footage out (or until the station stops itself).
fn start(cfg: StationConfig, duration: Option<Duration>) -> Station {
    tokio::spawn(async move {
        let r = pipeline::station::run(cfg, RunOptions { duration }).await;
        (r, Instant::now())
    })
}

/// The station's report, and when it ended.
async fn finish_at(station: Station) -> Result<(RunReport, Instant)> {
    let (report, ended) = station.await?;
    Ok((report?, ended))
}

async fn finish(station: Station) -> Result<RunReport> {
    Ok(finish_at(station).await?.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Min, median and max of `v`, in `unit`.
fn summary(v: &[f64], unit: &str) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.0} / {:.0} / {:.0}{unit} (min / p50 / max, n = {})",
        s[0],
        at(0.5),
        s[s.len() - 1],
        s.len()
    )
}

/// How the decisions of a run compare with the truth, lane by lane: `right / walkers`.
fn scores(run: &FootageRun) -> String {
    let card = run.score();
    let mut by: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for w in &card.walkers {
        let e = by.entry(w.lane.as_str()).or_default();
        e.1 += 1;
        e.0 += u32::from(w.ok);
    }
    let wrong: Vec<String> = card
        .wrong()
        .map(|w| format!("{} {}: {}", w.lane, w.identity, w.why()))
        .collect();
    let mut s = by
        .iter()
        .map(|(l, (ok, n))| format!("{l} {ok}/{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if !wrong.is_empty() {
        s += &format!(" (wrong: {})", wrong.join("; "));
    }
    s += &format!(", false opens {}", card.total.false_opens);
    s
}

/// The recogniser hangs for `hang` once, 4 s into each run.
async fn stall(b: &Bench, runs: usize, hang: Duration, out: &mut String) -> Result<()> {
    let lanes = b.lanes();
    let (mut to_safe, mut to_normal) = (Vec::new(), Vec::new());
    writeln!(
        out,
        "\n## stall: the recogniser's tick hangs {} ms\n",
        hang.as_millis()
    )?;
    for run in 0..runs {
        let cfg = b.config(&format!("stall{run}"), &HashMap::new())?;
        let logs = b.work.path().join(format!("stall{run}"));
        let _door = driver("door-driver", &cfg, &logs.join("door.log"))?;
        let _light = driver("light-driver", &cfg, &logs.join("light.log"))?;
        let mut obs = Observer::open(&cfg, &b.certs).await?;
        let station = start(cfg, None);
        obs.until_all(&lanes, Duration::from_secs(60), normal)
            .await?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        obs.drain();
        faults::stall_next_tick(&lanes[0], hang);
        let safe_at = obs.until_all(&lanes, Duration::from_secs(10), safe).await?;
        let began = faults::stall_began().context("the hang never began")?;
        let normal_at = obs
            .until_all(&lanes, Duration::from_secs(10), normal)
            .await?;
        let ended = began + hang;
        let report = finish(station).await?;
        let stalls = report.recogniser_stalls;
        let s: Vec<f64> = safe_at
            .values()
            .map(|t| ms(t.duration_since(began)))
            .collect();
        let n: Vec<f64> = normal_at
            .values()
            // Signed: a door back before the hang was over would show negative.
            .map(|&t| {
                if t >= ended {
                    ms(t - ended)
                } else {
                    -ms(ended - t)
                }
            })
            .collect();
        writeln!(
            out,
            "- run {run}: hang → safe {}; hang over → normal {}; stalls seen {}; {}",
            s.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            n.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            stalls,
            scores(&b.scored(report)),
        )?;
        to_safe.extend(s);
        to_normal.extend(n);
    }
    writeln!(
        out,
        "\nhang → every door safe (per lane): {} — goal ≤ 500 ms",
        summary(&to_safe, " ms")
    )?;
    writeln!(
        out,
        "hang over → door normal again: {}",
        summary(&to_normal, " ms")
    )?;
    Ok(())
}

/// The GPU device is destroyed 4 s into each run; then a new gated takes over.
async fn gpu(b: &Bench, runs: usize, out: &mut String) -> Result<()> {
    let lanes = b.lanes();
    let (mut to_safe, mut exit, mut back) = (Vec::new(), Vec::new(), Vec::new());
    writeln!(out, "\n## gpu: the device is lost\n")?;
    for run in 0..runs {
        let name = format!("gpu{run}");
        let cfg = b.config(&name, &HashMap::new())?;
        let logs = b.work.path().join(&name);
        let _door = driver("door-driver", &cfg, &logs.join("door.log"))?;
        let _light = driver("light-driver", &cfg, &logs.join("light.log"))?;
        let mut obs = Observer::open(&cfg, &b.certs).await?;
        let station = start(cfg.clone(), None);
        obs.until_all(&lanes, Duration::from_secs(60), normal)
            .await?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        obs.drain();
        faults::lose_device(&lanes[0]);
        let safe_at = obs.until_all(&lanes, Duration::from_secs(10), safe).await?;
        let lost = faults::device_lost_at().context("the device was never destroyed")?;
        let (report, stopped) = finish_at(station).await?;
        if !report.gpu_lost {
            bail!("run {run}: the station did not report the loss");
        }
        // The supervisor's restart (systemd waits RestartSec=2s first, not counted here).
        obs.drain();
        let again = start(cfg, None);
        let normal_at = obs
            .until_all(&lanes, Duration::from_secs(60), normal)
            .await?;
        let up = normal_at.values().max().copied().unwrap_or(stopped);
        // Recovered: the restarted station plays the footage again from its start.
        let again = finish(again).await?;
        let s: Vec<f64> = safe_at
            .values()
            .map(|t| ms(t.duration_since(lost)))
            .collect();
        writeln!(
            out,
            "- run {run}: loss → safe {}; loss → gated stopped {:.0} ms; restart → doors normal {:.0} ms; \
             the restarted station on the whole footage: {}",
            s.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            ms(stopped.duration_since(lost)),
            ms(up.duration_since(stopped)),
            scores(&b.scored(again)),
        )?;
        to_safe.extend(s);
        exit.push(ms(stopped.duration_since(lost)));
        back.push(ms(up.duration_since(stopped)));
    }
    writeln!(
        out,
        "\nloss → every door safe (per lane): {} — goal ≤ 500 ms",
        summary(&to_safe, " ms")
    )?;
    writeln!(
        out,
        "loss → gated stopped (for its supervisor): {}",
        summary(&exit, " ms")
    )?;
    writeln!(
        out,
        "restarted gated → every door normal (recovery, without systemd's RestartSec): {}",
        summary(&back, " ms")
    )?;
    Ok(())
}

/// The last lane's recording turns to garbage 40 % of the way in.
async fn camera(b: &Bench, out: &mut String) -> Result<()> {
    let dead = b.truth.lanes.last().context("footage without lanes")?;
    writeln!(
        out,
        "\n## camera: lane {}'s recording turns to garbage mid-run\n",
        dead.lane
    )?;
    let mut bytes = std::fs::read(b.footage.join(&dead.file))?;
    let (from, to) = (bytes.len() * 2 / 5, bytes.len().saturating_sub(16 * 1024));
    if from >= to {
        bail!("footage file too small to garble");
    }
    let mut x = 0x9e37_79b9_u32;
    for byte in &mut bytes[from..to] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    let cut = b.work.path().join("garbled.mp4");
    std::fs::write(&cut, &bytes)?;
    let sources = HashMap::from([(dead.lane.clone(), format!("file://{}", cut.display()))]);
    let cfg = b.config("camera", &sources)?;
    let logs = b.work.path().join("camera");
    let _door = driver("door-driver", &cfg, &logs.join("door.log"))?;
    let _light = driver("light-driver", &cfg, &logs.join("light.log"))?;
    let report = finish(start(cfg, None)).await?;
    writeln!(out, "- recogniser stalls: {}", report.recogniser_stalls)?;
    for l in &report.lanes {
        writeln!(
            out,
            "- lane {}: {:?}, {} of {} frames processed",
            l.id, l.status, l.frames_processed, l.frames_in,
        )?;
    }
    writeln!(
        out,
        "- decisions against the truth: {}",
        scores(&b.scored(report))
    )?;
    Ok(())
}

/// The door driver is killed `at` into the run and restarted a second later.
async fn driver_restart(b: &Bench, runs: usize, out: &mut String) -> Result<()> {
    let lanes = b.lanes();
    writeln!(
        out,
        "\n## driver: the door driver is killed mid-run and restarted 1 s later\n"
    )?;
    let (mut grants, mut applied, mut lost, mut twice, mut resends) = (0, 0, 0, 0, 0);
    for run in 0..runs {
        let name = format!("driver{run}");
        let cfg = b.config(&name, &HashMap::new())?;
        let logs = b.work.path().join(&name);
        let door_log = logs.join("door.log");
        let mut door = driver("door-driver", &cfg, &door_log)?;
        let _light = driver("light-driver", &cfg, &logs.join("light.log"))?;
        let mut obs = Observer::open(&cfg, &b.certs).await?;
        let station = start(cfg.clone(), None);
        obs.until_all(&lanes, Duration::from_secs(60), normal)
            .await?;
        // Spread the outage over the footage from run to run.
        let at = Duration::from_secs_f64(0.5 + b.truth_seconds() * run as f64 / runs as f64);
        tokio::time::sleep(at).await;
        door.0.kill()?;
        door.0.wait()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        door = driver("door-driver", &cfg, &door_log)?;
        let report = finish(station).await?;
        drop(door);
        let resent = report.resent_opens;
        let stalls = report.recogniser_stalls;
        let opens: Vec<bool> = report
            .decisions
            .iter()
            .filter(|d| d.message.outcome == protocol::Outcome::Open)
            .map(|d| d.door_open_ms.is_some())
            .collect();
        let unacked = opens.iter().filter(|acked| !**acked).count();
        let log = std::fs::read_to_string(&door_log)?;
        let applied_here = applied_opens(&log);
        writeln!(
            out,
            "- run {run}: killed {:.1} s in; opens decided {}, re-sent to the new run {resent}, \
             applied by the drivers {}, never acknowledged {}; recogniser stalls {stalls}; {}",
            at.as_secs_f64(),
            opens.len(),
            applied_here,
            unacked,
            scores(&b.scored(report)),
        )?;
        grants += opens.len();
        applied += applied_here;
        lost += unacked;
        twice += applied_here.saturating_sub(opens.len());
        resends += resent;
    }
    writeln!(
        out,
        "\nover {runs} runs: opens decided {grants}, re-sent after the restart {resends}, applied {applied}, \
         lost {lost}, applied more than once {twice}"
    )?;
    writeln!(
        out,
        "(lost: decided opens the door never acknowledged to gated; with none lost, every decided \
         open was applied at least once, so applied = decided means none was applied twice)"
    )?;
    Ok(())
}

/// How many frames each lane's recording holds, and how many frame times one play takes with
/// the gap capture leaves before the next.
fn frames_per_play(b: &Bench) -> Result<HashMap<String, (u64, f64)>> {
    use gstreamer::prelude::*;
    let mut n = HashMap::new();
    for l in &b.truth.lanes {
        let path = b.footage.join(&l.file).canonicalize()?;
        let p = gstreamer::parse::launch(&format!(
            "uridecodebin uri=\"file://{}\" ! fakesink",
            path.display()
        ))?;
        p.set_state(gstreamer::State::Paused)?;
        let _ = p.state(gstreamer::ClockTime::from_seconds(10));
        let d = p
            .query_duration::<gstreamer::ClockTime>()
            .with_context(|| format!("{}: no duration", path.display()))?;
        p.set_state(gstreamer::State::Null)?;
        // Each play follows the last after the gap capture leaves between them.
        let gap = pipeline::capture::REPEAT_GAP.as_nanos() as f64;
        n.insert(
            l.lane.clone(),
            (
                (d.nseconds() as f64 * b.truth.fps / 1e9).round() as u64,
                (d.nseconds() as f64 + gap) * b.truth.fps / 1e9,
            ),
        );
    }
    Ok(n)
}

/// Resident memory of a process, MiB (`/proc/PID/status`).
fn rss_mib(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Every lane of the footage in benchmark mode (every frame), each recording repeated for
/// `minutes`; memory and the device's objects sampled each minute, and every walker the station
/// saw to the end scored against the truth, play after play.
async fn soak(b: &Bench, minutes: u64, out: &mut String) -> Result<()> {
    let lanes = b.lanes();
    writeln!(
        out,
        "\n## soak: {} lanes, every frame, recordings repeated for {minutes} min\n",
        lanes.len()
    )?;
    let per_play = frames_per_play(b)?;
    let mut cfg = b.config_paced("soak", &HashMap::new(), false)?;
    cfg.capture.repeat = 1_000_000;
    let logs = b.work.path().join("soak");
    let door = driver("door-driver", &cfg, &logs.join("door.log"))?;
    let _light = driver("light-driver", &cfg, &logs.join("light.log"))?;
    let door_pid = door.0.id().to_string();
    let station = start(cfg, Some(Duration::from_secs(minutes * 60)));
    writeln!(
        out,
        "| minute | gated RSS MiB | door driver RSS MiB | wgpu buffers | textures | bind groups | buffer bytes |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|")?;
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut minute = 0;
    while !station.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed() < Duration::from_secs(60 * minute) {
            continue;
        }
        let me = rss_mib("self").unwrap_or(f64::NAN);
        let g = faults::gpu_objects().unwrap_or_default();
        let line = format!(
            "| {minute} | {me:.1} | {:.1} | {} | {} | {} | {} |",
            rss_mib(&door_pid).unwrap_or(f64::NAN),
            g.buffers,
            g.textures,
            g.bind_groups,
            g.buffer_bytes
        );
        eprintln!("soak {line}");
        writeln!(out, "{line}")?;
        rss.push(me);
        minute += 1;
    }
    let mut report = finish(station).await?;
    // The truth, play after play, of what each lane processed to the end (with the scorer's slack).
    let mut truth = b.truth.clone();
    let slack = (demo::score::SLACK_MS as f64 * truth.fps / 1e3).ceil() as u64;
    let truth_fps = truth.fps;
    for l in &mut truth.lanes {
        let (frames, n) = per_play.get(&l.lane).copied().unwrap_or((1, 1.0));
        let processed = report
            .lanes
            .iter()
            .find(|r| r.id == l.lane)
            .map_or(0, |r| r.frames_processed);
        // Where the lane got to on the truth's frame clock, which counts the gaps.
        let frames = frames.max(1);
        let done = ((processed / frames) as f64 * n).round() as u64 + processed % frames;
        let mut cut = u64::MAX;
        let one: Vec<_> = l.walkers.clone();
        l.walkers.clear();
        for k in 0..=(done as f64 / n) as u64 {
            let shift = (k as f64 * n).round() as u64;
            for w in &one {
                let mut w = w.clone();
                w.first_frame += shift;
                w.last_frame += shift;
                if w.last_frame + slack < done {
                    l.walkers.push(w);
                } else {
                    cut = cut.min(w.first_frame);
                }
            }
        }
        // Decisions about walkers the run ended on are not scored (nor are those walkers).
        let cut_ms = (cut as f64 * 1e3 / truth_fps) as u64;
        report
            .decisions
            .retain(|d| d.lane != l.lane || d.at_ms < cut_ms);
    }
    let frames: u64 = report.lanes.iter().map(|l| l.frames_processed).sum();
    writeln!(
        out,
        "\n{frames} frames processed in {:.0} s ({:.2} frames/s over {} lanes); decisions {}; \
         recogniser stalls {}",
        report.elapsed.as_secs_f64(),
        frames as f64 / report.elapsed.as_secs_f64(),
        lanes.len(),
        report.decisions.len(),
        report.recogniser_stalls,
    )?;
    let run = FootageRun {
        report,
        truth,
        subjects: b.centre.subjects.clone(),
    };
    let card = run.score();
    let t = &card.total;
    writeln!(
        out,
        "walkers seen to the end: {}; right {}; not decided {}; false opens {}; opens {}/{}",
        card.walkers.len(),
        card.walkers.iter().filter(|w| w.ok).count(),
        t.not_decided,
        t.false_opens,
        t.correct_opens,
        t.expected_opens
    )?;
    // Play by play: does the station decide each play's walkers as it decided the first play's?
    // (Generated footage has walkers no chain decides right; what matters here is that nothing
    // changes over the hour.)
    let (mut plays, mut differ, mut wrong_per_play) = (0usize, 0usize, Vec::new());
    // Walkers right / seen in the first and the last third of each lane's plays.
    let (mut early, mut late) = ((0usize, 0usize), (0usize, 0usize));
    for l in &b.truth.lanes {
        let per = l.walkers.len().max(1);
        let lane: Vec<&demo::score::WalkerScore> =
            card.walkers.iter().filter(|w| w.lane == l.lane).collect();
        let chunks: Vec<Vec<(bool, &str)>> = lane
            .chunks(per)
            .filter(|c| c.len() == per)
            .map(|c| c.iter().map(|w| (w.ok, w.got.as_str())).collect())
            .collect();
        let third = chunks.len() / 3;
        for (i, c) in chunks.iter().enumerate() {
            let right = c.iter().filter(|x| x.0).count();
            if i < third {
                early = (early.0 + right, early.1 + c.len());
            } else if i >= chunks.len() - third {
                late = (late.0 + right, late.1 + c.len());
            }
            plays += 1;
            differ += usize::from(c.iter().map(|x| x.0).ne(chunks[0].iter().map(|x| x.0)));
            wrong_per_play.push(c.iter().filter(|x| !x.0).count() as f64);
        }
    }
    writeln!(
        out,
        "lane plays seen to the end: {plays}; plays whose right/wrong pattern differs from the lane's \
         first play: {differ}; wrong walkers per lane play: {}",
        summary(&wrong_per_play, "")
    )?;
    writeln!(
        out,
        "walkers right in the first third of the plays: {} / {}; in the last third: {} / {}",
        early.0, early.1, late.0, late.1
    )?;
    for w in card.walkers.iter().filter(|w| w.got.contains("a false ")) {
        writeln!(out, "- false open: {} {}: {}", w.lane, w.identity, w.why())?;
    }
    if rss.len() > 6 {
        writeln!(
            out,
            "gated RSS from minute 5 to the end: {:.1} → {:.1} MiB",
            rss[5],
            rss[rss.len() - 1]
        )?;
    }
    Ok(())
}

/// Opens the door driver applied, from its JSON log (both runs of it append to one file).
fn applied_opens(log: &str) -> usize {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let f = &v["fields"];
            f["message"] == "command applied" && f["what"] == "Open"
        })
        .count()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let footage = value("--footage")
        .map(PathBuf::from)
        .unwrap_or_else(demo::default_footage);
    let runs: usize = value("--runs").map(|v| v.parse()).transpose()?.unwrap_or(5);
    let only = value("--only");
    let out_dir = value("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/faults-bench"));
    let soak_minutes: Option<u64> = value("--soak").map(|v| v.parse()).transpose()?;
    // The soak runs alone, and only when asked for (it takes an hour by default).
    let wants = |s: &str| match (&only, soak_minutes) {
        (_, Some(_)) => s == "soak",
        (Some(o), None) => o == s,
        (None, None) => s != "soak",
    };
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,zenoh=off".into()))
        .with_writer(std::io::stderr)
        .init();
    gstreamer::init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = format!(
        "# Faults on {} (paced, TLS bus, real drivers), {}\n",
        footage.display(),
        chrono::Local::now().format("%Y-%m-%d %H:%M")
    );
    rt.block_on(async {
        let b = Bench::new(footage.clone()).await?;
        if wants("stall") {
            stall(&b, runs, Duration::from_millis(1500), &mut out).await?;
        }
        if wants("gpu") {
            gpu(&b, runs, &mut out).await?;
        }
        if wants("camera") {
            camera(&b, &mut out).await?;
        }
        if wants("driver") {
            driver_restart(&b, runs, &mut out).await?;
        }
        if wants("soak") {
            soak(&b, soak_minutes.unwrap_or(60), &mut out).await?;
        }
        b.centre.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    print!("{out}");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("faults.md"), &out)?;
    Ok(())
}
