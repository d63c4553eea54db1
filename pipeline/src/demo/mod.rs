//! `gated demo`: the station on recorded footage (`testdata/footage/default`, made by
//! `gate-calibrate footage` during setup): two lanes of walkers, an enrolment centre with their
//! templates and passes (`centre`), drivers started as child processes. Enrolled walkers are let
//! through, unknown ones refused, an expired pass refused with its reason, and a walker followed
//! closely by a second person raises the tailgating alarm. A table compares what the station decided
//! with the footage's ground truth, walker by walker (✓/✗).
//!
//! By default the footage plays in real time (`paced`: newest frame only, as live cameras), so a
//! station too slow for its lanes shows it; `gated demo --every-frame` processes every frame as fast
//! as it can (benchmark mode).

pub mod centre;
pub mod example;
pub mod score;
pub mod truth;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::info;

use crate::config::{ConfigError, LaneRole, StationConfig};
use crate::station::{RunOptions, RunReport, StationError};
use crate::table;
use centre::{CentreError, DemoCentre, Enrolee};
use truth::{Truth, TruthError};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("no free loopback port")]
    Port(#[source] std::io::Error),
    #[error("footage {}", path.display())]
    Footage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Truth(#[from] TruthError),
    #[error("footage station")]
    Config(#[source] ConfigError),
    #[error(transparent)]
    Centre(#[from] CentreError),
    #[error(transparent)]
    Station(#[from] StationError),
    #[error("demo certificates")]
    Certs(#[from] protocol::CertError),
    #[error("station {0} is not registered at the demo centre")]
    NotRegistered(String),
}

/// A loopback TCP port to listen on (the demo's and the tests' processes): free a moment ago, and
/// never one this process handed out before. Drawn from 20000–31999, below Linux's ephemeral range
/// (32768 up): a port the kernel handed out for `:0` and then released can be taken by any outgoing
/// connection's local end before the listener binds it (zenoh sessions make many), which once left a
/// test's gated unable to listen. Falls back to the kernel's choice when nothing there is free.
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..256 {
        let mut b = [0u8; 2];
        if getrandom::fill(&mut b).is_err() {
            break;
        }
        let p = 20_000 + u16::from_le_bytes(b) % 12_000;
        if !given.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            given.insert(p);
            return Ok(p);
        }
    }
    let p = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    given.insert(p);
    Ok(p)
}

/// Where `gated demo` finds its footage: `$GATE_FOOTAGE`, else the workspace's
/// `testdata/footage/default`.
pub fn default_footage() -> PathBuf {
    std::env::var_os("GATE_FOOTAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/footage/default")
        })
}

/// How to run a station on a footage folder.
#[derive(Debug, Clone, Default)]
pub struct FootageOptions {
    /// Extra TOML appended to the generated station file (`[recognise]`, `[decision]` overrides).
    pub extra_toml: String,
    /// Replace a lane's source (lane id → source URI), e.g. a broken file for failure tests.
    pub sources: HashMap<String, String>,
    /// Start the door and lighting drivers as child processes.
    pub spawn_drivers: bool,
    pub metrics: bool,
    /// Stop after this long instead of when the footage is played out.
    pub duration: Option<Duration>,
    /// Play the files at their own pace, newest frame only (as live cameras), instead of
    /// processing every frame as fast as possible.
    pub paced: bool,
    /// Every lane's zone, as fractions of the frame (default: the whole frame).
    pub zone: Option<[f32; 4]>,
    /// Where the HTTP endpoints and lane view listen (default: a free loopback port).
    pub view: Option<std::net::SocketAddr>,
    /// The station's id (default `demo`).
    pub station: Option<String>,
    /// Lanes whose role is exit (default: every lane is an entry).
    pub exits: Vec<String>,
    /// Run only each lane's upper camera, even where the footage has a lower one.
    pub one_camera: bool,
}

pub struct FootageRun {
    pub report: RunReport,
    pub truth: Truth,
    /// Identity (from the truth file) → the subject id the centre gave them.
    pub subjects: HashMap<String, domain::SubjectId>,
}

impl FootageRun {
    /// The run scored against the footage's ground truth.
    pub fn score(&self) -> score::Scorecard {
        score::score(&self.truth, &self.report.decisions, &|s| {
            self.identity_of(s).map(str::to_owned)
        })
    }

    /// The identity behind a decision's pseudonymous id, where the demo centre knows it.
    pub fn identity_of(&self, subject: &str) -> Option<&str> {
        self.subjects
            .iter()
            .find(|(_, id)| String::from(**id) == subject)
            .map(|(name, _)| name.as_str())
    }
}

/// The station file for a footage folder: one lane per recorded file; every frame processed, or
/// with `paced` the files played at their own speed, newest frame only.
pub fn footage_config(
    footage: &Path,
    truth: &Truth,
    work: &Path,
    opts: &FootageOptions,
) -> Result<StationConfig, DemoError> {
    let toml = footage_toml(footage, truth, work, opts)?;
    StationConfig::parse(&toml, "footage station").map_err(DemoError::Config)
}

/// [`footage_config`] as the file `gated run --config` reads (its ports chosen now, free on
/// loopback), without `[sync]`.
pub fn footage_toml(
    footage: &Path,
    truth: &Truth,
    work: &Path,
    opts: &FootageOptions,
) -> Result<String, DemoError> {
    let station = opts.station.as_deref().unwrap_or("demo");
    let mut toml = format!(
        "[station]\nid = {station:?}\n\n[capture]\nmode = \"{}\"\n\n",
        if opts.paced { "realtime" } else { "benchmark" }
    );
    for l in &truth.lanes {
        let source = match opts.sources.get(&l.lane) {
            Some(s) => s.clone(),
            None => footage_source(footage, l)?,
        };
        let role = match opts.exits.contains(&l.lane) {
            true => LaneRole::Exit,
            false => LaneRole::Entry,
        };
        toml += &lane_toml(truth, l, &source, role);
        if let Some(z) = opts.zone {
            toml += &format!("zone = {z:?}\n");
        }
        if let Some(lower) = l.lower.as_ref().filter(|_| !opts.one_camera) {
            toml += &lower_toml(footage, lower)?;
        }
        toml += "\n";
    }
    let certs = demo_certs(work, station)?;
    let port = || free_port().map_err(DemoError::Port);
    let metrics = match opts.view {
        Some(a) => a,
        None => std::net::SocketAddr::from(([127, 0, 0, 1], port()?)),
    };
    toml += &format!(
        "[drivers]\nspawn = {}\ndoor_listen = \"tls/127.0.0.1:{}\"\nlight_listen = \"tls/127.0.0.1:{}\"\n\n\
         [store]\npath = {:?}\n\n[metrics]\nenabled = {}\nlisten = \"{metrics}\"\n\n\
         [zenoh]\ncerts = {:?}\nlisten = [\"tls/127.0.0.1:{}\"]\n\n",
        opts.spawn_drivers,
        port()?,
        port()?,
        work.join("station.redb").display().to_string(),
        opts.metrics,
        certs.path().display().to_string(),
        port()?,
    );
    toml += &opts.extra_toml;
    Ok(toml)
}

/// The `file://` source of a footage lane's recording (an absolute path, as capture needs).
pub fn footage_source(footage: &Path, l: &truth::TruthLane) -> Result<String, DemoError> {
    file_uri(footage, &l.file)
}

/// A recording in the footage folder as an absolute `file://` URI.
fn file_uri(footage: &Path, name: &str) -> Result<String, DemoError> {
    let file = footage.join(name);
    let file = file.canonicalize().map_err(|source| DemoError::Footage {
        path: file.clone(),
        source,
    })?;
    Ok(format!("file://{}", file.display()))
}

/// One footage lane as a `[[lane]]` table (no trailing blank line): its recorded size and rate and,
/// where the camera stood beside the walking line, the geometry PAD's planarity cue needs.
pub fn lane_toml(truth: &Truth, l: &truth::TruthLane, source: &str, role: LaneRole) -> String {
    let mut toml = format!(
        "[[lane]]\nid = {:?}\nrole = \"{}\"\nsource = {:?}\nwidth = {}\nheight = {}\nfps = {}\n",
        l.lane,
        match role {
            LaneRole::Entry => "entry",
            LaneRole::Exit => "exit",
        },
        source,
        truth.width,
        truth.height,
        truth.fps.round().max(1.0) as u32
    );
    // The geometry the footage was drawn with, as an engineer would measure it at the lane. A
    // camera on the walking line gives the planarity cue nothing to measure: no geometry.
    if let Some(c) = l.camera.filter(|c| c.focal_px > 0.0 && c.offset_m > 0.0) {
        toml += &format!(
            "geometry = {{ focal_px = {}, aim_deg = {} }}\n",
            c.focal_px, c.aim_deg
        );
    }
    toml
}

/// A footage lane's lower camera as the lane's `[lane.lower]` table (written last: the keys after
/// a table header belong to it).
fn lower_toml(footage: &Path, l: &truth::TruthLower) -> Result<String, DemoError> {
    Ok(format!(
        "[lane.lower]\nsource = {:?}\nbelow_m = {}\ntilt_deg = {}\nfocal_px = {}\n",
        file_uri(footage, &l.file)?,
        l.below_m,
        l.tilt_deg,
        l.focal_px
    ))
}

/// The demo's station CA and every role's certificate under `work/certs`, made on first use: the
/// demo runs with the same mutual TLS and access control as a station.
pub fn demo_certs(work: &Path, station: &str) -> Result<protocol::CertDir, DemoError> {
    let certs = protocol::CertDir::new(work.join("certs"));
    certs.ensure_all(station)?;
    Ok(certs)
}

/// Enrols the footage's passengers at an in-process centre, then runs a station on the footage
/// until it is played out.
pub async fn run_footage(
    footage: &Path,
    work: &Path,
    opts: &FootageOptions,
) -> Result<FootageRun, DemoError> {
    let centre = start_centre(footage, work, opts).await?;
    let r = run_with_centre(footage, work, opts, &centre).await;
    centre.close().await;
    r
}

/// The footage's passengers enrolled at an in-process centre under `work/centre`, which knows the
/// footage station only.
pub async fn start_centre(
    footage: &Path,
    work: &Path,
    opts: &FootageOptions,
) -> Result<DemoCentre, DemoError> {
    let station = opts.station.as_deref().unwrap_or("demo");
    start_network_centre(footage, work, &[station]).await
}

/// The footage's passengers enrolled at an in-process centre under `work/centre` that serves
/// every one of `stations` (a station's certificates are `work/certs`, one CA for them all).
pub async fn start_network_centre(
    footage: &Path,
    work: &Path,
    stations: &[&str],
) -> Result<DemoCentre, DemoError> {
    let truth = Truth::load(footage)?;
    let first = stations.first().copied().unwrap_or("demo");
    let opts = FootageOptions {
        station: Some(first.to_owned()),
        ..Default::default()
    };
    let cfg = footage_config(footage, &truth, work, &opts)?;
    let people: Vec<Enrolee> = truth
        .enrol
        .iter()
        .map(|e| Enrolee {
            identity: e.identity.clone(),
            photo: Truth::resolve(footage, &e.photo),
            face: e.face,
            expired: e.ticket == "expired",
        })
        .collect();
    let models = cfg.recognise.models_dir();
    let certs = demo_certs(work, cfg.station_id())?;
    Ok(DemoCentre::start(&work.join("centre"), stations, &models, &people, &certs).await?)
}

/// A station on the footage, following `centre`, its store in `work` (a second run on the same
/// `work` is a restart of the station: what its store kept, it keeps).
pub async fn run_with_centre(
    footage: &Path,
    work: &Path,
    opts: &FootageOptions,
    centre: &DemoCentre,
) -> Result<FootageRun, DemoError> {
    let truth = Truth::load(footage)?;
    let mut cfg = footage_config(footage, &truth, work, opts)?;
    let sync = (centre.syncs.get(cfg.station_id()))
        .ok_or_else(|| DemoError::NotRegistered(cfg.station_id().into()))?;
    cfg.sync = Some(sync.clone());
    let report = crate::station::run(
        cfg,
        RunOptions {
            duration: opts.duration,
        },
    )
    .await;
    Ok(FootageRun {
        report: report?,
        truth,
        subjects: centre.subjects.clone(),
    })
}

/// What `gated demo` prints at the start for each mode.
pub fn mode_line(paced: bool) -> &'static str {
    if paced {
        "demo: real time — the footage plays at its own speed and the station takes the newest frame \
         of each lane, as with live cameras (--every-frame: benchmark mode)"
    } else {
        "demo: every frame (benchmark mode) — every frame of the footage is processed, as fast as the \
         station can; not what a walker in front of a live camera gets"
    }
}

/// `gated demo`: `paced` plays the footage in real time (newest frame only, as live cameras);
/// otherwise every frame is processed as fast as the station can (benchmark mode).
pub async fn run(
    footage: Option<PathBuf>,
    paced: bool,
    view: Option<std::net::SocketAddr>,
) -> Result<FootageRun, DemoError> {
    let footage = footage.unwrap_or_else(default_footage);
    let work = std::env::temp_dir().join(format!("gate-demo-{}", std::process::id()));
    // The default detector (BlazeFace back, 256 px): the 128-px one misses the follower of a
    // tailgating pair while the lead is decided (measured on this footage), so it would let the pair
    // through.
    let opts = FootageOptions {
        spawn_drivers: true,
        metrics: true,
        paced,
        view,
        ..Default::default()
    };
    println!("{}", mode_line(paced));
    if let Some(a) = view {
        println!("demo: lane view at http://{a}/ while the footage plays");
    }
    println!("demo: footage {}", footage.display());
    info!(footage = %footage.display(), paced, "demo starting");
    let r = run_footage(&footage, &work, &opts).await;
    let _ = std::fs::remove_dir_all(&work);
    r
}

/// The demo's table: per lane, each walker of the footage marked ✓ (got what the ground truth
/// expects) or ✗ (with what they got instead), then what the station decided, in order; and a last
/// line counting the walkers that match.
pub fn format_decisions(run: &FootageRun) -> String {
    let card = run.score();
    let mut s = String::new();
    for lane in &run.truth.lanes {
        s += &format!("\nlane {} ({})\n  walkers:\n", lane.lane, lane.scenario);
        let walkers = lane
            .walkers
            .iter()
            .zip(card.walkers.iter().filter(|ws| ws.lane == lane.lane))
            .map(|(w, ws)| {
                let who = format!(
                    "{}{}",
                    w.identity,
                    if w.enrolled { "" } else { " (not enrolled)" }
                );
                match ws.ok {
                    true => vec!["✓".into(), who, ws.got.clone()],
                    false => vec!["✗".into(), who, ws.why()],
                }
            });
        s += &table::indent(
            &table::table(&["", "walker", "decision"], &[], walkers),
            "    ",
        );
        s += "  decided:\n";
        let decided = run
            .report
            .decisions
            .iter()
            .filter(|d| d.lane == lane.lane)
            .map(|d| {
                let m = &d.message;
                let who = m
                    .subject
                    .as_deref()
                    .map(|id| run.identity_of(id).unwrap_or("?").to_owned())
                    .unwrap_or_else(|| "-".into());
                let opt = |v: Option<f32>, digits: usize| {
                    v.map(|v| format!("{v:.digits$}"))
                        .unwrap_or_else(|| "-".into())
                };
                vec![
                    format!("{:.2}", d.at_ms as f64 / 1e3),
                    m.track.to_string(),
                    crate::decide::decisions::outcome_name(m.outcome).to_string(),
                    m.reason.clone(),
                    who,
                    opt(m.similarity, 3),
                    opt(m.live, 2),
                    m.frames.to_string(),
                    format!("{:.0}", m.latency_ms),
                ]
            });
        let header = [
            "t (s)",
            "track",
            "outcome",
            "reason",
            "who",
            "sim",
            "live",
            "frames",
            "latency ms",
        ];
        s += &table::indent(&table::table(&header, &[0, 1, 5, 6, 7, 8], decided), "    ");
    }
    let wrong = card.wrong().count();
    s += &format!(
        "\n{} of {} walkers as the ground truth expects{}\n",
        card.walkers.len() - wrong,
        card.walkers.len(),
        if wrong == 0 {
            String::new()
        } else {
            format!(" ({wrong} ✗)")
        }
    );
    s
}
