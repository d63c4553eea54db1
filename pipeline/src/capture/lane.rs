//! One lane's pipeline: build, run, watch the bus, mark degraded, retry live sources with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use protocol::LaneStatus;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use super::{CaptureConfig, FrameLayout};
use super::{Frame, FrameHub, Push, Source};

/// Per-lane counters shared with the GPU stage, metrics and health reports.
pub struct LaneCounters {
    pub id: String,
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub frames_processed: AtomicU64,
    status: AtomicU8,
    /// Milliseconds since `epoch` of the last frame, for stall detection.
    last_frame_ms: AtomicU64,
    epoch: Instant,
    /// Presentation time of the newest frame + 1 (0: none yet), to tell a recording that played to
    /// its end from one that stopped early.
    last_pts_ns: AtomicU64,
}

impl LaneCounters {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            frames_in: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_processed: AtomicU64::new(0),
            status: AtomicU8::new(0),
            last_frame_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            last_pts_ns: AtomicU64::new(0),
        }
    }

    pub fn status(&self) -> LaneStatus {
        match self.status.load(Ordering::SeqCst) {
            0 => LaneStatus::Starting,
            1 => LaneStatus::Running,
            2 => LaneStatus::Degraded,
            _ => LaneStatus::Finished,
        }
    }

    fn set_status(&self, s: LaneStatus) -> bool {
        let v = match s {
            LaneStatus::Starting => 0,
            LaneStatus::Running => 1,
            LaneStatus::Degraded => 2,
            LaneStatus::Finished => 3,
        };
        self.status.swap(v, Ordering::SeqCst) != v
    }

    fn mark_frame(&self) {
        self.last_frame_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn since_last_frame(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_frame_ms.load(Ordering::Relaxed)))
    }
}

/// A change of a lane's status, for the station loop (metrics, zenoh event, journal).
#[derive(Debug, Clone)]
pub struct CaptureEvent {
    pub lane: usize,
    pub status: LaneStatus,
    pub detail: String,
}

pub(super) struct LaneRunner {
    pub index: usize,
    pub id: String,
    pub source: Source,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub cfg: CaptureConfig,
    pub hub: Arc<FrameHub>,
    pub counters: Arc<LaneCounters>,
    pub events: UnboundedSender<CaptureEvent>,
    pub stop: Arc<AtomicBool>,
    /// What is added to a recording's presentation times on its current play (`repeat`), ns.
    pub pts_offset_ns: Arc<AtomicU64>,
}

/// The time between two plays of a repeated recording (`[capture] repeat`), as if the lane stood
/// empty: longer than the deciders take to let a track go (`[decision] lost_after_ms`).
pub const REPEAT_GAP: Duration = Duration::from_secs(5);

/// How many times a recording that has not delivered its first frame is started.
const RECORDING_ATTEMPTS: u32 = 3;

enum Ended {
    Stopped,
    /// The end of the stream, with the recording's length in ns (0 when unknown or live).
    Eos(u64),
    Failed(String),
    /// No frame within `stall_ms`, and no error either.
    Stalled(String),
}

impl LaneRunner {
    fn report(&self, status: LaneStatus, detail: String) {
        if self.counters.set_status(status) || status == LaneStatus::Degraded {
            match status {
                LaneStatus::Degraded => warn!(lane = %self.id, %detail, "lane degraded"),
                _ => info!(lane = %self.id, ?status, %detail, "lane status"),
            }
            let _ = self.events.send(CaptureEvent {
                lane: self.index,
                status,
                detail,
            });
        }
    }

    pub fn run(self) {
        let mut backoff = Duration::from_millis(self.cfg.retry_initial_ms);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.hub.reopen_lane(self.index);
            let ended = match self.build() {
                Ok(pipeline) => {
                    let r = self.watch(&pipeline);
                    let _ = pipeline.set_state(gst::State::Null);
                    r
                }
                Err(e) => Ended::Failed(e),
            };
            match ended {
                Ended::Stopped => break,
                Ended::Eos(_) if !self.source.is_live() => {
                    self.report(LaneStatus::Finished, "end of recording".into());
                    break;
                }
                Ended::Eos(_) => self.report(LaneStatus::Degraded, "live source ended".into()),
                Ended::Failed(e) => self.report(LaneStatus::Degraded, e),
                Ended::Stalled(e) => {
                    // A recording is started again only while it has delivered nothing: a start
                    // that hangs without an error (a demuxer on a cold disk or a busy machine) is
                    // transient, whereas replaying one that already delivered frames would show
                    // its walkers twice, and a decoding error would only repeat.
                    let unstarted = self.counters.frames_in.load(Ordering::Relaxed) == 0;
                    if !self.source.is_live() && unstarted && attempts < RECORDING_ATTEMPTS {
                        self.report(
                            LaneStatus::Degraded,
                            format!("{e}; starting the recording again"),
                        );
                        continue;
                    }
                    self.report(LaneStatus::Degraded, e)
                }
            }
            if !self.source.is_live() {
                break;
            }
            debug!(lane = %self.id, ?backoff, "retrying source");
            if self.sleep(backoff) {
                break;
            }
            backoff = (backoff * 2).min(Duration::from_millis(self.cfg.retry_max_ms));
        }
        self.hub.close_lane(self.index);
    }

    /// Sleeps unless asked to stop; true when stopping.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stop.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.load(Ordering::SeqCst)
    }

    fn build(&self) -> Result<gst::Pipeline, String> {
        let desc = self
            .source
            .launch(self.width, self.height, self.fps, self.cfg.mode);
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| format!("cannot build pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "launch description did not produce a pipeline".to_owned())?;
        if let Some((prop, value)) = self.source.src_property() {
            let src = pipeline
                .by_name("src")
                .ok_or("pipeline has no src element")?;
            src.set_property_from_str(prop, &value);
        }
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("pipeline has no appsink")?;
        let hub = self.hub.clone();
        let counters = self.counters.clone();
        let lane = self.index;
        let mut seq = 0u64;
        let mut layout_cache: Option<(gst::Caps, FrameLayout)> = None;
        let offset = self.pts_offset_ns.clone();
        // A live source's times are its own pipeline's running time, which starts again at each
        // reconnect and differs between cameras: such frames carry none, and the station times
        // them by their capture on its own clock (lane clocks never run back, and a lane's two
        // cameras share one).
        let live = self.source.is_live();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let captured = Instant::now();
                    let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned())
                    else {
                        return Err(gst::FlowError::Error);
                    };
                    let layout = match &layout_cache {
                        Some((c, l)) if *c == caps => *l,
                        _ => {
                            let l = layout_of(&caps).ok_or(gst::FlowError::NotNegotiated)?;
                            layout_cache = Some((caps, l));
                            l
                        }
                    };
                    seq += 1;
                    counters.frames_in.fetch_add(1, Ordering::Relaxed);
                    counters.mark_frame();
                    let pts = buffer
                        .pts()
                        .filter(|_| !live)
                        .map(|p| p + gst::ClockTime::from_nseconds(offset.load(Ordering::Relaxed)));
                    if let Some(p) = pts {
                        counters
                            .last_pts_ns
                            .fetch_max(p.nseconds() + 1, Ordering::Relaxed);
                    }
                    match hub.push(Frame {
                        lane,
                        seq,
                        pts,
                        captured,
                        layout,
                        buffer,
                    }) {
                        Push::Queued => Ok(gst::FlowSuccess::Ok),
                        Push::Replaced => {
                            counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                            Ok(gst::FlowSuccess::Ok)
                        }
                        Push::Closed => Err(gst::FlowError::Flushing),
                    }
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            self.first_error(&pipeline)
                .unwrap_or_else(|| "source refused to start".into())
        })?;
        Ok(pipeline)
    }

    /// The error message a failed state change left on the bus, if any.
    fn first_error(&self, pipeline: &gst::Pipeline) -> Option<String> {
        let bus = pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(describe(e)),
            _ => None,
        }
    }

    /// A recording whose frames stop well before the duration its container states did not end:
    /// its data is corrupt or cut off, and decoders often say nothing and just stop. Reported as a
    /// failure, not as "end of recording".
    fn judge_eos(&self, pipeline: &gst::Pipeline) -> Ended {
        if self.source.is_live() {
            return Ended::Eos(0);
        }
        // Times of this play only: earlier plays of a repeated recording are in the offset.
        let offset = self.pts_offset_ns.load(Ordering::Relaxed);
        let last = self
            .counters
            .last_pts_ns
            .load(Ordering::Relaxed)
            .saturating_sub(offset);
        let end = last.saturating_sub(1);
        let interval = 1_000_000_000 / self.fps.max(1) as u64;
        let Some(duration) = pipeline.query_duration::<gst::ClockTime>() else {
            // No stated length: the last frame's time plus one frame.
            return Ended::Eos(if last == 0 { 0 } else { end + interval });
        };
        // Two frame intervals (at least 100 ms) of slack for rounding and a last partial frame.
        let slack = (2 * interval).max(100_000_000);
        if last == 0 || end + slack < duration.nseconds() {
            Ended::Failed(format!(
                "recording ended early: last frame at {:.2} s of {:.2} s (corrupt or truncated file)",
                end as f64 / 1e9,
                duration.nseconds() as f64 / 1e9
            ))
        } else {
            Ended::Eos(duration.nseconds())
        }
    }

    fn watch(&self, pipeline: &gst::Pipeline) -> Ended {
        let Some(bus) = pipeline.bus() else {
            return Ended::Failed("pipeline has no bus".into());
        };
        let started = Instant::now();
        let stall = Duration::from_millis(self.cfg.stall_ms);
        let mut plays = 1u32;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ended::Stopped;
            }
            if let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            ) {
                match msg.view() {
                    gst::MessageView::Eos(_) => match self.judge_eos(pipeline) {
                        // A play of no length (nothing delivered, no stated duration) would loop
                        // on the spot: it ends the recording instead.
                        Ended::Eos(length)
                            if !self.source.is_live() && plays < self.cfg.repeat && length > 0 =>
                        {
                            // Played again in the same pipeline (its threads and decoder kept):
                            // the next play's times continue where this one's recording ends,
                            // after an empty lane's worth of time, so that no track joins the
                            // last walker of one play to the first of the next.
                            plays += 1;
                            let offset = self.pts_offset_ns.fetch_add(
                                length + REPEAT_GAP.as_nanos() as u64,
                                Ordering::Relaxed,
                            );
                            debug!(lane = %self.id, play = plays, length_ns = length, offset_ns = offset, "recording played again");
                            if pipeline
                                .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
                                .is_err()
                            {
                                return Ended::Failed(
                                    "the recording cannot be played again (seek refused)".into(),
                                );
                            }
                        }
                        ended => return ended,
                    },
                    gst::MessageView::Error(e) => return Ended::Failed(describe(e)),
                    _ => {}
                }
            }
            let frames = self.counters.frames_in.load(Ordering::Relaxed);
            if frames > 0 && self.counters.status() != LaneStatus::Running {
                self.report(LaneStatus::Running, "frames flowing".into());
            }
            // A live camera that stops sending without an error (network cable, hung RTSP server) is as
            // broken as one that errors. So is a recording that never yields a first frame: a
            // demuxer can sit on a corrupt file without an error or EOS (seen about once in 30 runs
            // of capture_files). Later gaps of a recording are the consumer's back-pressure in
            // benchmark mode, not a fault, so only the first frame is watched there.
            if (self.source.is_live() || frames == 0)
                && started.elapsed() > stall
                && self.counters.since_last_frame() > stall
            {
                return Ended::Stalled(format!("no frame for {} ms", stall.as_millis()));
            }
        }
    }
}

fn describe(e: &gst::message::Error) -> String {
    let src = e
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    match e.debug() {
        Some(d) => format!(
            "{src}: {} ({})",
            e.error(),
            d.lines().next().unwrap_or_default()
        ),
        None => format!("{src}: {}", e.error()),
    }
}

fn layout_of(caps: &gst::CapsRef) -> Option<FrameLayout> {
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    if info.format() != gst_video::VideoFormat::I420 {
        return None;
    }
    let (o, s) = (info.offset(), info.stride());
    let u = |i: usize| u32::try_from(*o.get(i)?).ok();
    let st = |i: usize| u32::try_from(*s.get(i)?).ok();
    Some(FrameLayout {
        width: info.width(),
        height: info.height(),
        y_off: u(0)?,
        y_stride: st(0)?,
        u_off: u(1)?,
        u_stride: st(1)?,
        v_off: u(2)?,
        v_stride: st(2)?,
        limited_range: info.colorimetry().range() != gst_video::VideoColorRange::Range0_255,
    })
}
