//! What a run did: the health gated publishes every second and answers `gated ctl status` with, and
//! the per-lane report `gated run` and `gated demo` print at the end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::{DoorState, Health, LaneHealth, LaneStatus, LightState, VERSION, unix_ms};

use super::Station;
use crate::decide::View;
use crate::decide::decisions::DecisionRecord;
use crate::recognise::TickTimes;
use crate::telemetry::view::{StageTimes, StationView};

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
    /// Frames of the lane's lower camera processed, when it has one.
    pub lower_frames_processed: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub adapter: String,
    pub elapsed: Duration,
    pub gpu_lost: bool,
    /// Times the recogniser stalled (doors to their safe position until it reported again).
    pub recogniser_stalls: u64,
    /// Opens re-sent to a restarted door driver (`drive::restart`).
    pub resent_opens: u64,
    pub lanes: Vec<LaneReport>,
    /// `cpu` or `gpu` when the station recognised faces.
    pub recogniser: Option<&'static str>,
    /// Every recognition tick's stage times (the benchmark's per-stage percentiles).
    pub ticks: Vec<TickTimes>,
    /// Capture → normalised frame, seconds, every frame.
    pub normalised_s: Vec<f64>,
    /// How late each heartbeat to the drivers left the station loop, seconds (the first 65,536).
    pub heartbeat_late_s: Vec<f64>,
    /// Each tick end's deciding, all lanes, seconds (the first 65,536).
    pub decide_s: Vec<f64>,
    pub decisions: Vec<DecisionRecord>,
}

impl Station {
    /// The run's report; takes the per-tick and per-decision records with it.
    pub(super) fn report(&mut self, elapsed: Duration) -> RunReport {
        let o = Ordering::Relaxed;
        RunReport {
            adapter: self.adapter.clone(),
            elapsed,
            gpu_lost: self.gpu_lost,
            recogniser_stalls: self.stall.stalls(),
            resent_opens: self.outbox.resent_opens(),
            lanes: self
                .lanes
                .iter()
                .zip(&self.capture.counters)
                .enumerate()
                .map(|(i, (l, c))| {
                    let processed = c.frames_processed.load(o);
                    LaneReport {
                        id: l.id.clone(),
                        status: c.status(),
                        frames_in: c.frames_in.load(o),
                        frames_processed: processed,
                        frames_dropped: c.frames_dropped.load(o),
                        fps: processed as f64 / elapsed.as_secs_f64().max(1e-9),
                        luma_mean: l.luma_mean,
                        lighting_commands: l.lighting_commands,
                        illumination: l.lighting.level(),
                        door: l.door.clone(),
                        light: l.light.clone(),
                        gpu_ms_mean: (l.gpu_frames > 0)
                            .then(|| l.gpu_ns_sum as f64 / l.gpu_frames as f64 / 1e6),
                        lower_frames_processed: (self.streams.iter())
                            .position(|&s| s == (i, View::Lower))
                            .and_then(|s| self.capture.counters.get(s))
                            .map(|c| c.frames_processed.load(o)),
                    }
                })
                .collect(),
            recogniser: self.recogniser,
            ticks: std::mem::take(&mut self.ticks),
            normalised_s: std::mem::take(&mut self.normalised_s),
            heartbeat_late_s: std::mem::take(&mut self.heartbeat_late_s),
            decide_s: std::mem::take(&mut self.decide_s),
            decisions: self
                .decisions
                .as_mut()
                .map(|(d, _)| std::mem::take(&mut d.records))
                .unwrap_or_default(),
        }
    }

    /// The lane view's picture of the station: `health` with each lane's arch and the mean stage
    /// times of the ticks since the previous view.
    pub(super) fn view(&mut self, health: Health) -> StationView {
        let (t0, n0) = self.viewed;
        let ticks = self.ticks.get(t0..).unwrap_or_default();
        let normalised = self.normalised_s.get(n0..).unwrap_or_default();
        self.viewed = (self.ticks.len(), self.normalised_s.len());
        let mean_ms = |d: &dyn Fn(&TickTimes) -> Duration| {
            if ticks.is_empty() {
                0.0
            } else {
                ticks.iter().map(|t| d(t).as_secs_f64()).sum::<f64>() * 1e3 / ticks.len() as f64
            }
        };
        let stages = StageTimes {
            ticks: ticks.len(),
            normalise_ms: if normalised.is_empty() {
                0.0
            } else {
                normalised.iter().sum::<f64>() * 1e3 / normalised.len() as f64
            },
            detect_ms: mean_ms(&|t| t.detect),
            embed_ms: mean_ms(&|t| t.embed),
            matching_ms: mean_ms(&|t| t.matching),
            pad_ms: mean_ms(&|t| t.pad),
        };
        StationView {
            health,
            arches: self
                .lanes
                .iter()
                .map(|l| l.light.as_ref().map(|s| s.arch))
                .collect(),
            stages,
        }
    }

    /// The station's health now.
    pub(super) fn health(&self) -> Health {
        let o = Ordering::Relaxed;
        Health {
            v: VERSION,
            station: self.cfg.station_id().to_owned(),
            gpu_adapter: self.adapter.clone(),
            gpu_lost: self.gpu_lost,
            lanes: self
                .lanes
                .iter()
                .zip(&self.capture.counters)
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
                    door_age_ms: l
                        .door
                        .as_ref()
                        .map(|_| l.door_heard.elapsed().as_millis() as u64),
                    reason: l.status_detail.clone(),
                })
                .collect(),
            t_unix_ms: unix_ms(),
        }
    }
}

/// One line per lane for people: the `gated demo` / `gated run` summary.
pub fn format_report(r: &RunReport) -> String {
    let mut s = format!(
        "adapter: {}   elapsed: {:.1} s{}{}\n",
        r.adapter,
        r.elapsed.as_secs_f64(),
        if r.gpu_lost { "   GPU LOST" } else { "" },
        match r.recogniser_stalls {
            0 => String::new(),
            n => format!("   recogniser stalled {n}×"),
        }
    );
    let header = [
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
        "arch",
    ];
    let rows = r.lanes.iter().map(|l| {
        let door = l
            .door
            .as_ref()
            .map(|d| format!("{:?}", d.flap).to_lowercase())
            .unwrap_or_else(|| "-".into());
        let mode = l
            .door
            .as_ref()
            .map(|d| crate::telemetry::door_mode_label(d.mode))
            .unwrap_or("-");
        let arch = l
            .light
            .as_ref()
            .map(|x| format!("{:?}", x.arch).to_lowercase())
            .unwrap_or_else(|| "-".into());
        vec![
            l.id.clone(),
            format!("{:?}", l.status).to_lowercase(),
            l.frames_in.to_string(),
            l.frames_processed.to_string(),
            l.frames_dropped.to_string(),
            format!("{:.1}", l.fps),
            l.gpu_ms_mean
                .map(|m| format!("{m:.2}"))
                .unwrap_or_else(|| "-".into()),
            format!("{:.2}", l.luma_mean),
            l.illumination.to_string(),
            l.lighting_commands.to_string(),
            door,
            mode.to_string(),
            arch,
        ]
    });
    s += &crate::table::table(&header, &[2, 3, 4, 5, 6, 7, 8, 9], rows);
    s
}
