//! The station loop: wires capture, the GPU stage, the drivers link, the store and metrics together
//! and runs until told to stop (or until recorded footage is played out).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use protocol::{
    ArchColour, CtlReply, DoorAction, DoorMode, DoorState, Health, LaneEvent, LaneEventKind,
    LaneHealth, LaneStatus, LightState, VERSION, encode, unix_ms,
};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::capture::{Capture, CaptureEvent};
use crate::config::StationConfig;
use crate::drive::{Incoming, LightingLoop, Link};
use crate::normalise::Gpu;
use crate::recognise::tick::{GpuReport, GpuStage};
use crate::store::{JournalEntry, JournalKind, JournalWriter, Store};
use crate::telemetry::names;

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Gpu(#[from] crate::normalise::GpuError),
    #[error(transparent)]
    Link(#[from] crate::drive::link::LinkError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error(transparent)]
    Recognise(#[from] crate::recognise::RecogniseError),
    #[error(transparent)]
    Decisions(#[from] crate::decide::decisions::DecisionsError),
    #[error(transparent)]
    Spawn(#[from] crate::drive::spawn::SpawnError),
    #[error("{0}")]
    Io(String),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this long (the demo, tests); `None` runs until ctrl-c or the footage ends.
    pub duration: Option<Duration>,
}

/// What a run did, per lane: the table `gated demo` prints.
#[derive(Debug, Clone)]
pub struct LaneReport {
    pub id: String,
    pub status: LaneStatus,
    pub frames_in: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    pub fps: f64,
    pub luma_mean: f32,
    pub lighting_commands: u64,
    pub illumination: u8,
    pub door: Option<DoorState>,
    pub light: Option<LightState>,
    pub gpu_ms_mean: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub adapter: String,
    pub elapsed: Duration,
    pub gpu_lost: bool,
    pub lanes: Vec<LaneReport>,
    /// `cpu` or `gpu` when the station recognised faces.
    pub recogniser: Option<&'static str>,
    /// Every recognition tick's stage times (the benchmark's per-stage percentiles).
    pub ticks: Vec<crate::recognise::TickTimes>,
    /// Capture → normalised frame, seconds, every frame.
    pub normalised_s: Vec<f64>,
    pub decisions: Vec<crate::decide::decisions::DecisionRecord>,
}

struct LaneState {
    id: String,
    lighting: LightingLoop,
    lighting_commands: u64,
    luma_mean: f32,
    door: Option<DoorState>,
    light: Option<LightState>,
    door_pending: Pending,
    light_pending: Pending,
    gpu_ns_sum: u64,
    gpu_frames: u64,
}

/// Commands sent to one driver for one lane and not yet acknowledged, for round-trip times and
/// timeouts. Bounded: a driver that never answers cannot grow it.
#[derive(Default)]
struct Pending(Vec<(u64, Instant)>);

impl Pending {
    const MAX: usize = 64;

    fn sent(&mut self, seq: u64) {
        self.0.push((seq, Instant::now()));
        if self.0.len() > Self::MAX {
            self.0.drain(..self.0.len() - Self::MAX);
        }
    }

    /// Records the round trip of every command up to `ack_seq`.
    fn acked(&mut self, ack_seq: u64, driver: &'static str, lane: &str) {
        let now = Instant::now();
        self.0.retain(|&(seq, sent)| {
            if seq <= ack_seq {
                histogram!(names::DRIVER_RTT_SECONDS, "driver" => driver, "lane" => lane.to_owned()).record(now.duration_since(sent).as_secs_f64());
                false
            } else {
                true
            }
        });
    }

    /// Drops (and counts) commands older than `timeout`.
    fn expire(&mut self, timeout: Duration, driver: &'static str, lane: &str) {
        let before = self.0.len();
        self.0.retain(|&(_, sent)| sent.elapsed() < timeout);
        let expired = before - self.0.len();
        if expired > 0 {
            warn!(lane, driver, expired, "driver did not acknowledge in time");
            counter!(names::DRIVER_TIMEOUTS, "driver" => driver, "lane" => lane.to_owned())
                .increment(expired as u64);
        }
    }
}

pub async fn run(cfg: StationConfig, opts: RunOptions) -> Result<RunReport, StationError> {
    let keys =
        protocol::Keys::new(cfg.station_id()).map_err(|e| StationError::Io(e.to_string()))?;
    let store = Arc::new(Store::open(&cfg.store.path)?);
    let journal = JournalWriter::start(store.clone());
    if cfg.metrics.enabled {
        crate::telemetry::install(cfg.metrics.listen)?;
        info!(addr = %cfg.metrics.listen, "metrics at http://{}/metrics", cfg.metrics.listen);
    }
    let _drivers = if cfg.drivers.spawn {
        Some(crate::drive::spawn::spawn(
            &cfg.drivers,
            cfg.station_id(),
            &cfg.lane_ids(),
        )?)
    } else {
        None
    };
    let (inc_tx, mut inc_rx) = mpsc::unbounded_channel();
    let link = Link::open(keys, &cfg.zenoh_endpoints(), inc_tx).await?;
    let sync = match &cfg.sync {
        Some(s) => Some(start_sync(&cfg, s, store.clone(), &link).await?),
        None => None,
    };
    let gpu = Arc::new(Gpu::open(&cfg.gpu)?);
    let adapter = gpu.adapter_name();
    // Recognition needs a gallery: without [sync] the lanes stay in IC-card mode.
    let (recognition, mut decisions) = match (&sync, cfg.recognise.enabled) {
        (Some(h), true) => {
            let recogniser =
                crate::recognise::Recogniser::new(&gpu, &cfg.recognise, cfg.lanes.len())?;
            let gallery = h.syncer.gallery().clone();
            let decisions = crate::decide::decisions::Decisions::new(
                cfg.station_id(),
                &cfg.decision,
                cfg.gate_lanes(),
                recogniser.mirror.numbers(),
                gallery.clone(),
            )?;
            (
                Some(crate::recognise::tick::Recognition {
                    recogniser,
                    gallery,
                    narrow: cfg.recognise.narrow_to_ticket_holders,
                    settled: decisions.settled.clone(),
                }),
                Some(decisions),
            )
        }
        (None, true) => {
            info!("no [sync] section: no gallery, so no recognition; lanes stay in IC-card mode");
            (None, None)
        }
        _ => (None, None),
    };
    let recogniser_name = recognition.as_ref().map(|r| r.recogniser.backend_name());
    let (mut ticks, mut normalised_s) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    let (cap_tx, mut cap_rx) = mpsc::unbounded_channel::<CaptureEvent>();
    let capture = Capture::start(&cfg.cameras(), &cfg.capture, cap_tx)?;
    let (gpu_tx, mut gpu_rx) = mpsc::unbounded_channel();
    let stage = GpuStage::start(
        gpu.clone(),
        cfg.normalise,
        capture.hub.clone(),
        capture.counters.clone(),
        gpu_tx,
        recognition,
        match cfg.capture.mode {
            crate::capture::CaptureMode::Benchmark => Duration::ZERO,
            crate::capture::CaptureMode::Realtime => Duration::from_millis(cfg.gpu.tick_ms),
        },
    )
    .map_err(|e| StationError::Io(format!("cannot start GPU stage: {e}")))?;

    let mut lanes: Vec<LaneState> = cfg
        .lanes
        .iter()
        .map(|l| LaneState {
            id: l.id.get_ref().clone(),
            lighting: LightingLoop::new(cfg.lighting.clone()),
            lighting_commands: 0,
            luma_mean: 0.0,
            door: None,
            light: None,
            door_pending: Pending::default(),
            light_pending: Pending::default(),
            gpu_ns_sum: 0,
            gpu_frames: 0,
        })
        .collect();
    let index: HashMap<String, usize> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.clone(), i))
        .collect();
    let journal_entry = |lane: &str, kind: JournalKind, detail: String| JournalEntry {
        t_unix_ms: unix_ms(),
        lane: lane.to_owned(),
        kind,
        detail,
    };
    journal.append(journal_entry(
        "",
        JournalKind::Station,
        format!("gated started on {adapter}"),
    ));
    for l in &mut lanes {
        match link
            .light(&l.id, Some(ArchColour::Idle), Some(l.lighting.level()))
            .await
        {
            Ok(seq) => l.light_pending.sent(seq),
            Err(e) => warn!(lane = %l.id, error = %e, "initial light command failed"),
        }
    }

    let started = Instant::now();
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut heartbeat = tokio::time::interval(Duration::from_millis(cfg.drivers.heartbeat_ms));
    let mut health_tick = tokio::time::interval(Duration::from_secs(1));
    let ack_timeout = Duration::from_millis(cfg.drivers.ack_timeout_ms);
    let mut gpu_lost = false;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut sleep_until = std::pin::pin!(async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    });

    loop {
        tokio::select! {
            _ = &mut sleep_until => break,
            _ = &mut ctrl_c => { info!("interrupted"); break; }
            Some(ev) = cap_rx.recv() => {
                let lane = &lanes[ev.lane].id;
                gauge!(names::LANE_DEGRADED, "lane" => lane.clone()).set(if ev.status == LaneStatus::Degraded { 1.0 } else { 0.0 });
                let e = LaneEvent { v: VERSION, lane: lane.clone(), kind: LaneEventKind::Status, status: Some(ev.status), detail: ev.detail.clone(), t_unix_ms: unix_ms() };
                let _ = link.event(&e).await;
                journal.append(journal_entry(lane, JournalKind::LaneEvent, format!("{:?}: {}", ev.status, ev.detail)));
            }
            Some(r) = gpu_rx.recv() => match r {
                GpuReport::Frame { lane, stats, gpu_ns, captured, pts_ms, faces, done, tick, .. } => {
                    if let Some(t) = tick { ticks.push(t); }
                    normalised_s.push(done.saturating_duration_since(captured).as_secs_f64());
                    if let (Some(d), Some(f)) = (decisions.as_mut(), faces.as_ref()) && !gpu_lost {
                        let at_ms = pts_ms.unwrap_or_else(|| captured.saturating_duration_since(t0).as_millis() as u64);
                        let sent = d.on_faces(lane, at_ms, captured, f, &link, &journal).await;
                        for seq in sent.door { lanes[lane].door_pending.sent(seq); }
                        for seq in sent.light { lanes[lane].light_pending.sent(seq); }
                    }
                    let l = &mut lanes[lane];
                    l.luma_mean = stats.mean;
                    if let Some(ns) = gpu_ns { l.gpu_ns_sum += ns; l.gpu_frames += 1; }
                    gauge!(names::LUMA_MEAN, "lane" => l.id.clone()).set(stats.mean as f64);
                    if gpu_lost { continue; }
                    // With a face in view the loop drives the face's own luminance to the target;
                    // otherwise the scene's.
                    let face_luma = faces.as_ref().and_then(|f| f.face_luma);
                    if let Some(v) = face_luma { gauge!(names::FACE_LUMA, "lane" => l.id.clone()).set(v as f64); }
                    if let Some(level) = l.lighting.update(face_luma.unwrap_or(stats.mean), Instant::now()) {
                        l.lighting_commands += 1;
                        counter!(names::LIGHTING_COMMANDS, "lane" => l.id.clone()).increment(1);
                        gauge!(names::ILLUMINATION, "lane" => l.id.clone()).set(level as f64);
                        let detail = format!("{} luma {:.2} -> illumination {level}%", if face_luma.is_some() { "face" } else { "scene" }, l.lighting.smoothed().unwrap_or(stats.mean));
                        match link.light(&l.id, None, Some(level)).await {
                            Ok(seq) => l.light_pending.sent(seq),
                            Err(e) => warn!(lane = %l.id, error = %e, "light command failed"),
                        }
                        let ev = LaneEvent { v: VERSION, lane: l.id.clone(), kind: LaneEventKind::Lighting, status: None, detail: detail.clone(), t_unix_ms: unix_ms() };
                        let _ = link.event(&ev).await;
                        journal.append(journal_entry(&l.id, JournalKind::Lighting, detail));
                    }
                }
                GpuReport::Lost(why) => {
                    gpu_lost = true;
                    gauge!(names::GPU_LOST).set(1.0);
                    error!(%why, "GPU lost: doors to safe mode, lanes to IC-card only");
                    for l in &lanes {
                        if let Err(e) = link.door(&l.id, DoorAction::Safe).await { error!(lane = %l.id, error = %e, "could not send safe command"); }
                        let ev = LaneEvent { v: VERSION, lane: l.id.clone(), kind: LaneEventKind::GpuLost, status: None, detail: why.clone(), t_unix_ms: unix_ms() };
                        let _ = link.event(&ev).await;
                        journal.append(journal_entry(&l.id, JournalKind::LaneEvent, format!("GPU lost: {why}")));
                    }
                }
            },
            Some(inc) = inc_rx.recv() => match inc {
                Incoming::Door(lane, st) => if let Some(&i) = index.get(&lane) {
                    if let Some(d) = decisions.as_mut() { d.on_door(&lane, &st); }
                    lanes[i].door_pending.acked(st.ack_seq, "door", &lane);
                    lanes[i].door = Some(st);
                },
                Incoming::Light(lane, st) => if let Some(&i) = index.get(&lane) {
                    lanes[i].light_pending.acked(st.ack_seq, "light", &lane);
                    lanes[i].light = Some(st);
                },
                Incoming::Malformed(key, _) => counter!(names::MALFORMED, "key" => key).increment(1),
                Incoming::Ctl(query, req) => {
                    let reply = match req {
                        Err(e) => CtlReply { v: VERSION, ok: false, message: e, health: None },
                        Ok(r) => match r.door {
                            None => CtlReply { v: VERSION, ok: true, message: "status".into(), health: Some(health(&cfg, &adapter, gpu_lost, &lanes, &capture)) },
                            Some(d) => match (index.get(&d.lane), d.action) {
                                (None, _) => CtlReply { v: VERSION, ok: false, message: format!("no lane {:?} at this station", d.lane), health: None },
                                (_, DoorAction::Heartbeat | DoorAction::Safe) => CtlReply { v: VERSION, ok: false, message: format!("{:?} is not an operator command", d.action), health: None },
                                (Some(&i), action) => match link.door(&d.lane, action).await {
                                    Ok(seq) => {
                                        lanes[i].door_pending.sent(seq);
                                        journal.append(journal_entry(&d.lane, JournalKind::DoorCommand, format!("operator {action:?} (seq {seq})")));
                                        CtlReply { v: VERSION, ok: true, message: format!("{action:?} sent to {} (seq {seq})", d.lane), health: None }
                                    }
                                    Err(e) => CtlReply { v: VERSION, ok: false, message: e.to_string(), health: None },
                                },
                            },
                        },
                    };
                    if let Err(e) = query.reply(query.key_expr().clone(), encode(&reply)).await { warn!(error = %e, "ctl reply failed"); }
                }
            },
            _ = heartbeat.tick() => {
                // After a GPU loss the heartbeats stop on purpose: the drivers' watchdog then keeps
                // the doors in their fail-safe position even if the `safe` command was lost.
                if gpu_lost { continue; }
                for l in &mut lanes {
                    match link.door(&l.id, DoorAction::Heartbeat).await {
                        Ok(seq) => l.door_pending.sent(seq),
                        Err(e) => warn!(lane = %l.id, error = %e, "heartbeat failed"),
                    }
                    l.door_pending.expire(ack_timeout, "door", &l.id);
                    l.light_pending.expire(ack_timeout, "light", &l.id);
                }
            }
            _ = health_tick.tick() => {
                for c in &capture.counters {
                    counter!(names::FRAMES_IN, "lane" => c.id.clone()).absolute(c.frames_in.load(std::sync::atomic::Ordering::Relaxed));
                    counter!(names::FRAMES_PROCESSED, "lane" => c.id.clone()).absolute(c.frames_processed.load(std::sync::atomic::Ordering::Relaxed));
                    counter!(names::FRAMES_DROPPED, "lane" => c.id.clone()).absolute(c.frames_dropped.load(std::sync::atomic::Ordering::Relaxed));
                }
                let _ = link.health(&health(&cfg, &adapter, gpu_lost, &lanes, &capture)).await;
                if stage.is_finished() && capture.all_done() && deadline.is_none() {
                    info!("all recorded sources played out");
                    // Walkers still in view at the end of the files get their decision too (the run
                    // ends here, so acknowledgements of what that sends are not waited for).
                    if let Some(d) = decisions.as_mut() && !gpu_lost {
                        d.played_out(&link, &journal).await;
                    }
                    break;
                }
            }
        }
    }

    let elapsed = started.elapsed();
    let report = RunReport {
        adapter: adapter.clone(),
        elapsed,
        gpu_lost,
        lanes: lanes
            .iter()
            .zip(&capture.counters)
            .map(|(l, c)| {
                let processed = c
                    .frames_processed
                    .load(std::sync::atomic::Ordering::Relaxed);
                LaneReport {
                    id: l.id.clone(),
                    status: c.status(),
                    frames_in: c.frames_in.load(std::sync::atomic::Ordering::Relaxed),
                    frames_processed: processed,
                    frames_dropped: c.frames_dropped.load(std::sync::atomic::Ordering::Relaxed),
                    fps: processed as f64 / elapsed.as_secs_f64().max(1e-9),
                    luma_mean: l.luma_mean,
                    lighting_commands: l.lighting_commands,
                    illumination: l.lighting.level(),
                    door: l.door.clone(),
                    light: l.light.clone(),
                    gpu_ms_mean: (l.gpu_frames > 0)
                        .then(|| l.gpu_ns_sum as f64 / l.gpu_frames as f64 / 1e6),
                }
            })
            .collect(),
        recogniser: recogniser_name,
        ticks,
        normalised_s,
        decisions: decisions.map(|d| d.records).unwrap_or_default(),
    };
    journal.append(journal_entry(
        "",
        JournalKind::Station,
        "gated stopped".into(),
    ));
    capture.shutdown();
    stage.stop();
    link.close();
    if journal.finish().is_none() {
        error!("journal writer thread failed");
    }
    Ok(report)
}

/// Loads the gallery from the store and starts following the centre (`crate::sync`).
async fn start_sync(
    cfg: &StationConfig,
    s: &crate::sync::SyncConfig,
    store: Arc<Store>,
    link: &Link,
) -> Result<crate::sync::SyncHandle, StationError> {
    let keys = crate::sync::StationKeys::load(cfg.station_id(), s)
        .map_err(|e| StationError::Io(format!("sync keys: {e}")))?;
    let syncer = Arc::new(
        crate::sync::Syncer::load(keys, store)
            .map_err(|e| StationError::Io(format!("sync: {e}")))?,
    );
    crate::sync::spawn(
        syncer,
        link.session.clone(),
        s.batch,
        Duration::from_secs(s.poll_s),
        Duration::from_millis(s.query_timeout_ms),
    )
    .await
    .map_err(|e| StationError::Io(format!("sync: zenoh: {e}")))
}

fn health(
    cfg: &StationConfig,
    adapter: &str,
    gpu_lost: bool,
    lanes: &[LaneState],
    capture: &Capture,
) -> Health {
    let o = std::sync::atomic::Ordering::Relaxed;
    Health {
        v: VERSION,
        station: cfg.station_id().to_owned(),
        gpu_adapter: adapter.to_owned(),
        gpu_lost,
        lanes: lanes
            .iter()
            .zip(&capture.counters)
            .map(|(l, c)| LaneHealth {
                lane: l.id.clone(),
                status: c.status(),
                frames_in: c.frames_in.load(o),
                frames_processed: c.frames_processed.load(o),
                frames_dropped: c.frames_dropped.load(o),
                luma_mean: l.luma_mean,
                illumination: l.lighting.level(),
                door: l.door.as_ref().map(|d| d.flap),
                door_mode: l.door.as_ref().map(|d| d.mode),
            })
            .collect(),
        t_unix_ms: unix_ms(),
    }
}

/// One line per lane for people: the `gated demo` / `gated run` summary.
pub fn format_report(r: &RunReport) -> String {
    let mut s = format!(
        "adapter: {}   elapsed: {:.1} s{}\n",
        r.adapter,
        r.elapsed.as_secs_f64(),
        if r.gpu_lost { "   GPU LOST" } else { "" }
    );
    s += &format!(
        "{:<6} {:<9} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:<8} {:<15} {:<8}\n",
        "lane",
        "status",
        "in",
        "done",
        "dropped",
        "fps",
        "gpu ms",
        "luma",
        "light%",
        "lightcmd",
        "door",
        "door mode",
        "arch"
    );
    for l in &r.lanes {
        let door = l
            .door
            .as_ref()
            .map(|d| format!("{:?}", d.flap).to_lowercase())
            .unwrap_or_else(|| "-".into());
        let mode = l.door.as_ref().map(|d| mode_name(d.mode)).unwrap_or("-");
        let arch = l
            .light
            .as_ref()
            .map(|x| format!("{:?}", x.arch).to_lowercase())
            .unwrap_or_else(|| "-".into());
        s += &format!(
            "{:<6} {:<9} {:>7} {:>7} {:>7} {:>6.1} {:>6} {:>6.2} {:>6} {:>8} {:<8} {:<15} {:<8}\n",
            l.id,
            format!("{:?}", l.status).to_lowercase(),
            l.frames_in,
            l.frames_processed,
            l.frames_dropped,
            l.fps,
            l.gpu_ms_mean
                .map(|m| format!("{m:.2}"))
                .unwrap_or_else(|| "-".into()),
            l.luma_mean,
            l.illumination,
            l.lighting_commands,
            door,
            mode,
            arch
        );
    }
    s
}

fn mode_name(m: DoorMode) -> &'static str {
    match m {
        DoorMode::Normal => "normal",
        DoorMode::HeldOpen => "held_open",
        DoorMode::HeldClosed => "held_closed",
        DoorMode::FailsafeOpen => "failsafe_open",
        DoorMode::FailsafeClosed => "failsafe_closed",
        DoorMode::Emergency => "emergency",
    }
}
