//! The station: wires capture → the tick (normalise, recognise) → decide → drive, with the gallery's
//! sync, the store and metrics, and runs until told to stop (or until recorded footage is played
//! out).
//!
//! `Station::start` (`start.rs`) opens every part in order; [`Station::run`] waits on the inputs (capture
//! events, the tick's reports, driver states and operator requests, the heartbeat, the
//! once-a-second health) and hands each to one handler. Handlers decide nothing themselves that a
//! stage can decide: they pass frames to the deciders and the lighting loop and send the
//! [`Command`]s those return through [`Station::send`], the one place commands leave from.

mod operator;
mod report;
mod safety;
mod stall;
mod start;
#[cfg(test)]
mod tests;

pub use report::{LaneReport, RunReport, format_report};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use protocol::{
    ArchColour, CtlRequest, DoorAction, DoorState, LaneEvent, LaneEventKind, LaneStatus,
    LightState, VERSION, encode, unix_ms,
};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::capture::{Capture, CaptureEvent};
use crate::config::StationConfig;
use crate::decide::View;
use crate::decide::decisions::Decisions;
use crate::drive::command::{Command, DoorCause};
use crate::drive::spawn::Drivers;
use crate::drive::{Incoming, LightingLoop, Outbox};
use crate::recognise::tick::{GpuReport, GpuStage, Settled};
use crate::recognise::{BBox, LaneFaces, TickTimes};
use crate::store::{JournalKind, Store};
use crate::sync::SyncHandle;
use crate::telemetry::names;

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("station id")]
    Id(#[source] protocol::ProtocolError),
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
    #[error("the station's bus certificate")]
    Cert(#[from] protocol::CertError),
    #[error("sync keys")]
    SyncKeys(#[source] crate::sync::StationSyncError),
    #[error("sync")]
    Sync(#[source] crate::sync::StationSyncError),
    #[error("sync: zenoh")]
    SyncZenoh(#[source] zenoh::Error),
    #[error("cannot start GPU stage")]
    Tick(#[source] std::io::Error),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this long (the demo, tests); `None` runs until SIGTERM, ctrl-c or the footage ends.
    pub duration: Option<Duration>,
}

/// Runs a station until SIGTERM or ctrl-c, `opts.duration`, or the end of recorded footage.
/// Heartbeat lateness samples kept for the run's report: 4.5 hours at the default 250 ms.
const HEARTBEAT_SAMPLES: usize = 1 << 16;

/// Tick and frame timings kept for the report and the lane view: the latest, between half this
/// and this many (a station runs for weeks; 8 lanes at 10 fps make 7 million frames a day).
const TIMING_SAMPLES: usize = 1 << 18;

/// Appends a timing, dropping the older half once `v` is full; `viewed` (how far the lane view
/// has read) moves with what is dropped.
fn keep_recent<T>(v: &mut Vec<T>, viewed: &mut usize, x: T) {
    if v.len() >= TIMING_SAMPLES {
        let drop = TIMING_SAMPLES / 2;
        v.drain(..drop);
        *viewed = viewed.saturating_sub(drop);
    }
    v.push(x);
}

pub async fn run(cfg: StationConfig, opts: RunOptions) -> Result<RunReport, StationError> {
    let (station, inputs) = Station::start(cfg).await?;
    Ok(station.run(inputs, opts).await)
}

/// What the station keeps per lane between frames.
struct LaneState {
    id: String,
    lighting: LightingLoop,
    lighting_commands: u64,
    luma_mean: f32,
    door: Option<DoorState>,
    /// When the door driver last reported (gated's start before its first state).
    door_heard: Instant,
    light: Option<LightState>,
    gpu_ns_sum: u64,
    gpu_frames: u64,
    /// Capture's detail for a degraded or finished lane (health `reason`).
    status_detail: Option<String>,
    /// The mode the operator last set (release, hold open, hold closed): what the door returns to
    /// after a recogniser stall.
    latch: DoorAction,
}

/// What the loop waits on.
struct Inputs {
    /// Driver states (and anything else) that arrived while the station waited for its drivers.
    early: Vec<Incoming>,
    capture: mpsc::UnboundedReceiver<CaptureEvent>,
    tick: mpsc::UnboundedReceiver<GpuReport>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// The lane view's operator actions (with `[metrics]`).
    operator: Option<mpsc::Receiver<crate::telemetry::view::OperatorRequest>>,
}

struct Station {
    cfg: StationConfig,
    adapter: String,
    outbox: Outbox,
    capture: Capture,
    stage: GpuStage,
    /// With recognition: the deciders, and the tick's watch of the walkers they settled.
    decisions: Option<(Decisions, watch::Sender<Settled>)>,
    recogniser: Option<&'static str>,
    lanes: Vec<LaneState>,
    index: HashMap<String, usize>,
    /// Per capture stream, its lane and camera (`StationConfig::streams`).
    streams: Vec<(usize, View)>,
    gpu_lost: bool,
    stall: stall::StallWatch,
    /// The lanes' clock for live sources (recorded footage has its own presentation times).
    t0: Instant,
    ticks: Vec<TickTimes>,
    normalised_s: Vec<f64>,
    /// Where in `ticks` and `normalised_s` the lane view's last stage times ended.
    viewed: (usize, usize),
    /// How late each heartbeat left the loop, seconds: the drivers' watchdog must stay above the
    /// heartbeat period plus this. The first `HEARTBEAT_SAMPLES` for the report; all in the metric.
    heartbeat_late_s: Vec<f64>,
    /// Each tick end's deciding (both views merged, the two-camera cues measured, every lane),
    /// seconds: the first `HEARTBEAT_SAMPLES` for the report; all in the metric.
    decide_s: Vec<f64>,
    /// Where `/healthz` and `/readyz` read the station's health (with `[metrics]`).
    board: Option<crate::telemetry::HealthBoard>,
    /// The store the journal writer appends to, for operators' journal queries.
    store: Arc<Store>,
    /// Kept until the run ends: dropping them stops the centre's sync and the driver processes.
    sync: Option<SyncHandle>,
    drivers: Option<Drivers>,
}

impl Station {
    /// The loop: one handler per input until the deadline, SIGTERM or ctrl-c, or the end of the
    /// footage.
    async fn run(mut self, mut inputs: Inputs, opts: RunOptions) -> RunReport {
        self.outbox.journal(
            "",
            JournalKind::Station,
            format!("gated started on {}", self.adapter),
        );
        for inc in std::mem::take(&mut inputs.early) {
            self.on_incoming(inc).await;
        }
        let initial: Vec<Command> = (0..self.lanes.len())
            .map(|lane| Command::Light {
                lane,
                arch: Some(ArchColour::Idle),
                illumination: Some(self.lanes[lane].lighting.level()),
            })
            .collect();
        self.send(initial).await;
        // Everything is open (store, link, sync, GPU, capture, tick): units ordered after gated
        // may start. Whether each lane can decide walkers is `/readyz`'s answer, not this.
        supervise::ready(&format!("{} lanes on {}", self.lanes.len(), self.adapter));
        let mut watchdog = supervise::Watchdog::from_env();

        let started = Instant::now();
        let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis(self.cfg.drivers.heartbeat_ms));
        let mut health_tick = tokio::time::interval(Duration::from_secs(1));
        // A stall is caught within this of `stall_ms`: part of the ≤ 500 ms to the doors' safe mode.
        let mut stall_tick = tokio::time::interval(Duration::from_millis(25));
        stall_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stop = std::pin::pin!(supervise::terminated());
        let mut sleep_until = std::pin::pin!(async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        });
        loop {
            tokio::select! {
                _ = &mut sleep_until => break,
                _ = &mut stop => { info!("stopping on a signal"); break; }
                // Pinged from this loop, so a loop stuck in a handler stops the pings.
                _ = watchdog.due() => watchdog.ping(),
                Some(ev) = inputs.capture.recv() => self.on_capture(ev).await,
                Some(r) = inputs.tick.recv() => match r {
                    GpuReport::Frame { stream, stats, gpu_ns, captured, pts_ms, faces, done, tick, .. } => {
                        if let Some(stall::Change::Resumed(d)) = self.stall.report(Instant::now()) {
                            self.on_resumed(d).await;
                        }
                        if let Some(t) = tick { keep_recent(&mut self.ticks, &mut self.viewed.0, t); }
                        keep_recent(&mut self.normalised_s, &mut self.viewed.1, done.saturating_duration_since(captured).as_secs_f64());
                        let at_ms = pts_ms.unwrap_or_else(|| captured.saturating_duration_since(self.t0).as_millis() as u64);
                        let Some(&(lane, view)) = self.streams.get(stream) else { continue };
                        self.on_frame(lane, view, at_ms, captured, faces.as_ref()).await;
                        // The lane's lights answer its own camera's picture.
                        if view == View::Upper {
                            self.on_lighting(lane, stats.mean, gpu_ns, faces.as_ref()).await;
                        }
                    }
                    GpuReport::TickEnd => self.on_tick_end().await,
                    GpuReport::Lost(why) => {
                        self.on_gpu_lost(why).await;
                        // Nothing is recognised or lit any more: hand over to the supervisor,
                        // whose restart opens a fresh device (the report says why).
                        break;
                    }
                },
                _ = stall_tick.tick() => {
                    // Results already queued for this loop mean a late loop, not a hung tick.
                    let waiting = self.capture.hub.waiting_since().filter(|_| inputs.tick.is_empty());
                    let now = Instant::now();
                    if let Some(stall::Change::Stalled(d)) = self.stall.check(now, waiting) {
                        self.on_stalled(d).await;
                    }
                    if self.stall.hopeless(now) {
                        // The tick is not coming back: like a lost device, hand over to the
                        // supervisor (the doors are safe already).
                        error!(after = ?stall::GIVE_UP, "recogniser still stalled; gated stops for its supervisor to restart it");
                        self.gpu_lost = true;
                        gauge!(names::GPU_LOST).set(1.0);
                        break;
                    }
                }
                Some(inc) = inputs.incoming.recv() => self.on_incoming(inc).await,
                Some(req) = async {
                    match inputs.operator.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let reply = self.on_ctl(CtlRequest {
                        v: VERSION,
                        door: Some(protocol::CtlDoor { lane: req.lane, action: req.action }),
                        journal: None,
                    }).await;
                    // The page may have given up waiting; the command went out all the same.
                    let _ = req.reply.send(reply);
                }
                at = heartbeat.tick() => {
                    let late = at.elapsed().as_secs_f64();
                    metrics::histogram!(crate::telemetry::names::HEARTBEAT_LATE).record(late);
                    if self.heartbeat_late_s.len() < HEARTBEAT_SAMPLES {
                        self.heartbeat_late_s.push(late);
                    }
                    self.on_heartbeat().await
                }
                _ = health_tick.tick() => {
                    self.on_health().await;
                    if deadline.is_none() && self.played_out().await { break; }
                }
            }
        }
        if let (Some(h), Some(s)) = (&self.sync, &self.cfg.sync) {
            h.drain(Duration::from_millis(s.drain_ms)).await;
        }
        let drivers = self.drivers.take();
        let report = self.stop(started.elapsed());
        if let Some(drivers) = drivers {
            drivers.stop().await;
        }
        report
    }

    /// The one place commands leave from: each goes out through the outbox, and a verdict's door
    /// command reports its sequence number back to the deciders (door latency).
    async fn send(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            if let (Command::Decision { msg, .. }, Some(b)) = (&cmd, &self.board) {
                b.view.decision(msg);
            }
            if let Ok(Some(stamp)) = self.outbox.send(&cmd).await
                && let Command::Door {
                    lane,
                    action,
                    cause,
                } = &cmd
                && let Some(decided) = decided_by(cause)
                && let Some((d, _)) = self.decisions.as_mut()
            {
                let resent = matches!(cause, DoorCause::Resent { .. });
                d.door_sent(*lane, *action, decided, stamp.seq, resent);
            }
        }
    }

    async fn on_capture(&mut self, mut ev: CaptureEvent) {
        let Some(&(lane, view)) = self.streams.get(ev.lane) else {
            return;
        };
        ev.lane = lane;
        if view == View::Lower {
            // The lane still decides on its upper camera: its state is that camera's; what
            // became of the lower one is told as an event.
            let event = LaneEvent {
                v: VERSION,
                lane: self.lanes[lane].id.clone(),
                kind: LaneEventKind::Status,
                status: Some(ev.status),
                detail: format!("lower camera: {}", ev.detail),
                t_unix_ms: unix_ms(),
            };
            warn!(lane = %event.lane, status = ?ev.status, detail = %ev.detail, "lower camera");
            self.send(vec![Command::Event(event)]).await;
            return;
        }
        self.lanes[ev.lane].status_detail = match ev.status {
            LaneStatus::Degraded | LaneStatus::Finished if !ev.detail.is_empty() => {
                Some(ev.detail.clone())
            }
            _ => None,
        };
        let lane = &self.lanes[ev.lane].id;
        gauge!(names::LANE_DEGRADED, "lane" => lane.clone()).set(
            if ev.status == LaneStatus::Degraded {
                1.0
            } else {
                0.0
            },
        );
        let event = LaneEvent {
            v: VERSION,
            lane: lane.clone(),
            kind: LaneEventKind::Status,
            status: Some(ev.status),
            detail: ev.detail,
            t_unix_ms: unix_ms(),
        };
        self.send(vec![Command::Event(event)]).await;
    }

    /// A frame's faces to the lane's deciders (with recognition, while the GPU lives); the walkers
    /// they settle go back to the tick.
    async fn on_frame(
        &mut self,
        lane: usize,
        view: View,
        at_ms: u64,
        captured: Instant,
        faces: Option<&LaneFaces>,
    ) {
        let (Some((d, _)), Some(faces)) = (self.decisions.as_mut(), faces) else {
            return;
        };
        if self.gpu_lost || !self.stall.decides(captured) {
            return;
        }
        let cmds = d.on_faces(lane, view, at_ms, captured, faces);
        self.settle();
        self.send(cmds).await;
    }

    /// The tick's frames are all in: two-camera lanes decide on both views.
    async fn on_tick_end(&mut self) {
        let Some((d, _)) = self.decisions.as_mut() else {
            return;
        };
        if self.gpu_lost {
            return;
        }
        let stall = &self.stall;
        let started = Instant::now();
        let cmds = d.tick_end(&|captured| stall.decides(captured));
        let took = started.elapsed().as_secs_f64();
        metrics::histogram!(names::STAGE_SECONDS, "lane" => "all", "stage" => "decide")
            .record(took);
        if self.decide_s.len() < HEARTBEAT_SAMPLES {
            self.decide_s.push(took);
        }
        // Even without commands: a grant held for confirmation settles its walker now.
        self.settle();
        self.send(cmds).await;
    }

    /// Tells the tick, per capture stream, the boxes of the walkers decided.
    fn settle(&mut self) {
        let Some((d, settled)) = self.decisions.as_ref() else {
            return;
        };
        let boxes: Vec<Vec<BBox>> = (self.streams.iter())
            .map(|&(lane, view)| d.settled(lane, view))
            .collect();
        settled.send_modify(|s| *s = boxes);
    }

    /// The closed lighting loop: with a face in view it drives the face's own luminance to the
    /// target, otherwise the scene's.
    async fn on_lighting(
        &mut self,
        lane: usize,
        scene_luma: f32,
        gpu_ns: Option<u64>,
        faces: Option<&LaneFaces>,
    ) {
        let l = &mut self.lanes[lane];
        l.luma_mean = scene_luma;
        if let Some(ns) = gpu_ns {
            l.gpu_ns_sum += ns;
            l.gpu_frames += 1;
        }
        gauge!(names::LUMA_MEAN, "lane" => l.id.clone()).set(scene_luma as f64);
        if self.gpu_lost {
            return;
        }
        let face_luma = faces.and_then(|f| f.face_luma);
        if let Some(v) = face_luma {
            gauge!(names::FACE_LUMA, "lane" => l.id.clone()).set(v as f64);
        }
        let Some(level) = l
            .lighting
            .update(face_luma.unwrap_or(scene_luma), Instant::now())
        else {
            return;
        };
        l.lighting_commands += 1;
        counter!(names::LIGHTING_COMMANDS, "lane" => l.id.clone()).increment(1);
        gauge!(names::ILLUMINATION, "lane" => l.id.clone()).set(level as f64);
        let detail = format!(
            "{} luma {:.2} -> illumination {level}%",
            if face_luma.is_some() { "face" } else { "scene" },
            l.lighting.smoothed().unwrap_or(scene_luma)
        );
        let event = LaneEvent {
            v: VERSION,
            lane: l.id.clone(),
            kind: LaneEventKind::Lighting,
            status: None,
            detail,
            t_unix_ms: unix_ms(),
        };
        let cmds = vec![
            Command::Light {
                lane,
                arch: None,
                illumination: Some(level),
            },
            Command::Event(event),
        ];
        self.send(cmds).await;
    }

    async fn on_incoming(&mut self, inc: Incoming) {
        match inc {
            Incoming::Door(lane, st, received) => {
                if let Some(&i) = self.index.get(&lane) {
                    // Only a state of gated's own epoch acknowledges gated's commands.
                    let (ours, resend) = self.outbox.door_state(i, &st, received).await;
                    if ours && let Some((d, _)) = self.decisions.as_mut() {
                        d.on_door(&lane, &st);
                    }
                    // After the heard state, so the new run's clock stamps them.
                    self.send(resend).await;
                    crate::telemetry::door_state(&lane, Some(&st));
                    if let Some(b) = &self.board {
                        b.view.door(&st);
                    }
                    self.lanes[i].door = Some(st);
                    self.lanes[i].door_heard = Instant::now();
                }
            }
            Incoming::Light(lane, st, received) => {
                if let Some(&i) = self.index.get(&lane) {
                    let waiting = self.outbox.light_state(i, &st, received);
                    self.lanes[i].light = Some(st);
                    self.send(waiting.into_iter().collect()).await;
                }
            }
            Incoming::Card(lane, st, received) => {
                if let Some(&i) = self.index.get(&lane) {
                    // First its clock, which stamps the verdict.
                    self.outbox.card_state(i, &st, received);
                    let cmds = match self.decisions.as_mut() {
                        Some((d, _)) => d.on_card(i, &st),
                        None => Vec::new(),
                    };
                    self.send(cmds).await;
                }
            }
            Incoming::Malformed(key, _) => counter!(names::MALFORMED, "key" => key).increment(1),
            Incoming::Ctl(query, req) => {
                let reply = match req {
                    Ok(r) => self.on_ctl(r).await,
                    Err(e) => operator::refuse(e.to_string()),
                };
                if let Err(e) = query.reply(query.key_expr().clone(), encode(&reply)).await {
                    warn!(error = %e, "ctl reply failed");
                }
            }
        }
    }

    async fn on_heartbeat(&mut self) {
        // After a GPU loss the heartbeats stop on purpose: the drivers' watchdog then keeps the
        // doors in their fail-safe position even if the `safe` command was lost.
        if self.gpu_lost {
            return;
        }
        for lane in 0..self.lanes.len() {
            let cmd = Command::Door {
                lane,
                action: DoorAction::Heartbeat,
                cause: DoorCause::Heartbeat,
            };
            // A failure is logged by the outbox; the next heartbeat tries again.
            let _ = self.outbox.send(&cmd).await;
            self.outbox.expire(lane);
        }
    }

    async fn on_health(&mut self) {
        let o = std::sync::atomic::Ordering::Relaxed;
        for c in &self.capture.counters {
            counter!(names::FRAMES_IN, "lane" => c.id.clone()).absolute(c.frames_in.load(o));
            counter!(names::FRAMES_PROCESSED, "lane" => c.id.clone())
                .absolute(c.frames_processed.load(o));
            counter!(names::FRAMES_DROPPED, "lane" => c.id.clone())
                .absolute(c.frames_dropped.load(o));
        }
        for l in &self.lanes {
            crate::telemetry::door_state_age(&l.id, l.door_heard.elapsed());
        }
        let health = self.health();
        if self.board.is_some() {
            let view = self.view(health.clone());
            if let Some(b) = &self.board {
                b.publish(health.clone());
                b.view.view(view);
            }
        }
        self.outbox.health(&health).await;
    }

    /// True once recorded footage is played out. Walkers still in view at the end of the files get
    /// their decision too (the run ends here, so acknowledgements of what that sends are not
    /// waited for).
    async fn played_out(&mut self) -> bool {
        if !(self.stage.is_finished() && self.capture.all_done()) {
            return false;
        }
        info!("all recorded sources played out");
        if !self.gpu_lost
            && let Some((d, _)) = self.decisions.as_mut()
        {
            let cmds = d.played_out();
            self.send(cmds).await;
        }
        true
    }

    /// Stops capture, the tick and the link, and says what the run did.
    fn stop(mut self, elapsed: Duration) -> RunReport {
        supervise::stopping();
        let report = self.report(elapsed);
        self.outbox
            .journal("", JournalKind::Station, "gated stopped".into());
        self.capture.shutdown();
        if !self.stage.stop() {
            error!(
                waited_s = crate::recognise::tick::GpuStage::STOP_WAIT.as_secs(),
                "the recogniser did not stop (hung in the GPU); leaving it to the process's exit"
            );
        }
        if !self.outbox.close() {
            error!("journal writer thread failed");
        }
        report
    }
}

/// The verdict behind a door command, re-sent or not (its open acknowledgement ends the verdict's
/// latency chain either way).
fn decided_by(cause: &DoorCause) -> Option<&crate::drive::command::Decided> {
    match cause {
        DoorCause::Decision(d) => Some(d),
        DoorCause::Resent { original, .. } => decided_by(original),
        _ => None,
    }
}
