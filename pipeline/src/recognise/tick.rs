//! The GPU stage thread: every tick takes the newest frame of every lane from the hub, normalises
//! them in one batch on the station's device, then (with a recogniser) detects, embeds and matches
//! the faces of all lanes in one batch, and reports statistics, faces and timings to the station
//! loop. A lane with no new frame is simply absent from the tick: it never holds the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use metrics::{counter, histogram};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use tracing::{error, warn};
use zeroize::Zeroizing;

use super::priority::LanePriority;
use super::{BBox, FrameRef, LaneFaces, LaneScope, Pixels, Recogniser, TickTimes};
use crate::capture::{Frame, FrameHub, LaneCounters};
use crate::normalise::{
    FrameResult, Gpu, LaneNormaliser, LightingKernel, LightingStats, NormaliseError,
    NormaliseParams, cpu, normalise_batch,
};
use crate::telemetry::names;

/// Per lane, the boxes of walkers already decided: the tick detects and tracks them but does not
/// embed them again. The station writes it after each decision; each tick reads the latest.
pub type Settled = Vec<Vec<BBox>>;

/// What the stage recognises with: the recogniser and the synced gallery it mirrors.
pub struct Recognition {
    pub recogniser: Recogniser,
    pub gallery: crate::sync::Gallery,
    /// Narrow matching to subjects holding a ticket valid today.
    pub narrow: bool,
    settled: watch::Receiver<Settled>,
    /// Under load, how long a lane stays at full rate after its last face still to decide
    /// ([`super::priority::busy_hold`]).
    busy_hold: Duration,
    /// Per lane, its gates and zone (see `Recogniser::tick`); the settled boxes come from `settled`.
    lanes: Vec<LaneScope>,
    /// Per capture stream, the streams of its gate lane, itself included (empty: one stream per
    /// lane).
    siblings: Vec<Vec<usize>>,
}

impl Recognition {
    /// Recognition for lanes with these gates and zones, whose grants are held `confirm` before the
    /// door opens, and the sender through which the deciders' settled boxes reach the tick.
    pub fn new(
        recogniser: Recogniser,
        gallery: crate::sync::Gallery,
        narrow: bool,
        lanes: Vec<LaneScope>,
        confirm: Duration,
    ) -> (Self, watch::Sender<Settled>) {
        let busy_hold = super::priority::busy_hold(confirm);
        let (tx, settled) = watch::channel(vec![Vec::new(); lanes.len()]);
        (
            Self {
                recogniser,
                gallery,
                narrow,
                settled,
                busy_hold,
                lanes,
                siblings: Vec::new(),
            },
            tx,
        )
    }

    /// The gate lane of each capture stream (`StationConfig::streams`): a lane's cameras are busy
    /// together, so a walker one of them sees keeps the other at full rate too (their frames of
    /// one instant are decided together).
    pub fn with_lanes_of(mut self, lane_of: &[usize]) -> Self {
        self.siblings = (lane_of.iter())
            .map(|&lane| {
                (lane_of.iter().enumerate())
                    .filter(|(_, l)| **l == lane)
                    .map(|(s, _)| s)
                    .collect()
            })
            .collect();
        self
    }
}

pub enum GpuReport {
    Frame {
        /// The capture stream (`StationConfig::streams`): the lane's index for a lane's camera.
        stream: usize,
        stats: Box<LightingStats>,
        gpu_ns: Option<u64>,
        captured: Instant,
        /// Presentation time of the frame (recorded footage), for the lane's decision clock.
        pts_ms: Option<u64>,
        done: Instant,
        /// The frame's faces, when the station recognises.
        faces: Option<LaneFaces>,
        /// When detection finished for this frame's tick.
        detected: Option<Instant>,
        /// The tick's stage times, on the first frame of each tick only.
        tick: Option<TickTimes>,
    },
    /// Every frame of a tick has been reported: a lane with two cameras decides now, on both.
    TickEnd,
    /// The device is gone: the station must put its doors into their safe mode.
    Lost(String),
}

pub struct GpuStage {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl GpuStage {
    pub fn start(
        gpu: Arc<Gpu>,
        params: NormaliseParams,
        hub: Arc<FrameHub>,
        counters: Vec<Arc<LaneCounters>>,
        reports: UnboundedSender<GpuReport>,
        recognition: Option<Recognition>,
        tick: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gpu-stage".into())
            .spawn(move || {
                run(Worker {
                    gpu,
                    params,
                    hub,
                    counters,
                    reports,
                    stop: s,
                    recognition,
                    tick,
                })
            })?;
        Ok(Self {
            thread: Some(thread),
            stop,
        })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the stage to stop and waits for its thread, at most [`Self::STOP_WAIT`]. Returns
    /// whether it stopped: a thread hung inside a GPU call never returns, and waiting for it would
    /// keep a station with a lost GPU from exiting (and so from being restarted); it is left behind
    /// for the process's exit to end.
    pub fn stop(mut self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        let Some(t) = self.thread.take() else {
            return true;
        };
        let since = Instant::now();
        while !t.is_finished() {
            if since.elapsed() > Self::STOP_WAIT {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = t.join();
        true
    }

    /// How long [`Self::stop`] waits: a tick, even on lavapipe with eight lanes, takes well under it.
    pub const STOP_WAIT: Duration = Duration::from_secs(5);
}

impl Drop for GpuStage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What the stage thread owns.
struct Worker {
    gpu: Arc<Gpu>,
    params: NormaliseParams,
    hub: Arc<FrameHub>,
    counters: Vec<Arc<LaneCounters>>,
    reports: UnboundedSender<GpuReport>,
    stop: Arc<AtomicBool>,
    recognition: Option<Recognition>,
    tick: Duration,
}

fn run(w: Worker) {
    let Worker {
        gpu,
        params,
        hub,
        counters,
        reports,
        stop,
        mut recognition,
        tick,
    } = w;
    let kernel = LightingKernel::new(&gpu);
    // Frames are normalised where the recogniser reads them (see `Recogniser::cpu_frames`).
    let cpu_threads = recognition.as_ref().and_then(|r| r.recogniser.cpu_frames());
    let mut lanes: Vec<Option<LaneNormaliser>> = (0..hub.lanes()).map(|_| None).collect();
    let labels: Vec<String> = counters.iter().map(|c| c.id.clone()).collect();
    let mut idle_since = Instant::now();
    let mut next_tick = Instant::now();
    // Live pacing only: in benchmark mode every frame is processed, whatever it shows.
    let mut priority = recognition
        .as_ref()
        .filter(|_| !tick.is_zero())
        .map(|r| LanePriority::new(hub.lanes(), Duration::from_millis(200), r.busy_hold));
    while !stop.load(Ordering::SeqCst) {
        // One batch per tick: frames that arrive during a tick wait for its end and go together.
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        }
        next_tick = Instant::now().max(next_tick) + tick;
        let batch = hub.take_batch(Duration::from_millis(20));
        let mut frames = batch.frames;
        for (c, n) in counters.iter().zip(batch.passed_over) {
            c.frames_dropped.fetch_add(n, Ordering::Relaxed);
        }
        if let Some(p) = priority.as_mut() {
            let lanes: Vec<usize> = frames.iter().map(|f| f.lane).collect();
            let mut take = p.select(&lanes, Instant::now()).into_iter();
            frames.retain(|f| {
                let keep = take.next().unwrap_or(true);
                if !keep {
                    counters[f.lane]
                        .frames_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    counter!(names::FRAMES_DEFERRED, "lane" => labels[f.lane].clone()).increment(1);
                }
                keep
            });
        }
        if frames.is_empty() {
            // Every lane closed and drained: recorded footage is played out.
            if hub.all_closed() && idle_since.elapsed() > Duration::from_millis(200) {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        #[cfg(any(test, feature = "fault-injection"))]
        super::faults::before_tick(&gpu, &labels);
        // Frames normalised on the CPU never touch the device, so its loss (which the GPU path
        // learns from a failed submission) is looked for here: the gallery still lives on it. A
        // non-blocking poll runs the device-lost callback if the device has gone.
        if cpu_threads.is_some()
            && (gpu.device.poll(wgpu::PollType::Poll).is_err() || gpu.is_lost())
        {
            error!("GPU stage stopped: device lost");
            let _ = reports.send(GpuReport::Lost("device lost".into()));
            return;
        }
        let normalised = match cpu_threads {
            Some(threads) => process_cpu(&params, &frames, threads),
            None => process(&gpu, &kernel, &params, &mut lanes, &frames).map(|r| (r, Vec::new())),
        };
        match normalised {
            Ok((results, pixels)) => {
                let done = Instant::now();
                let refs = frame_refs(&frames, &pixels, &lanes);
                let (faces, detected, mut tick) = match (recognition.as_mut(), refs) {
                    (Some(r), Some(refs)) => recognise(&gpu, r, &refs, &frames, &labels),
                    _ => (None, None, None),
                };
                if let (Some(p), Some(all)) = (priority.as_mut(), faces.as_ref()) {
                    for (frame, lf) in frames.iter().zip(all) {
                        let busy = lf.faces.iter().any(|f| !f.decided);
                        let siblings = (recognition.as_ref())
                            .and_then(|r| r.siblings.get(frame.lane))
                            .map_or(std::slice::from_ref(&frame.lane), Vec::as_slice);
                        for &s in siblings {
                            p.saw(s, busy, done);
                        }
                    }
                }
                let mut faces = faces.map(|f| f.into_iter());
                for (frame, r) in frames.iter().zip(results) {
                    let lane = &labels[frame.lane];
                    counters[frame.lane]
                        .frames_processed
                        .fetch_add(1, Ordering::Relaxed);
                    histogram!(names::STAGE_SECONDS, "lane" => lane.clone(), "stage" => "capture_to_normalised").record(done.duration_since(frame.captured).as_secs_f64());
                    if let Some(ns) = r.gpu_ns {
                        histogram!(names::GPU_STAGE_SECONDS, "lane" => lane.clone(), "stage" => "normalise").record(ns as f64 * 1e-9);
                    }
                    let _ = reports.send(GpuReport::Frame {
                        stream: frame.lane,
                        stats: Box::new(r.stats),
                        gpu_ns: r.gpu_ns,
                        captured: frame.captured,
                        pts_ms: frame.pts.map(|p| p.mseconds()),
                        done,
                        faces: faces.as_mut().and_then(|f| f.next()),
                        detected,
                        tick: tick.take(),
                    });
                }
                let _ = reports.send(GpuReport::TickEnd);
            }
            Err(NormaliseError::Gpu(e)) if gpu.is_lost() => {
                error!(error = %e, "GPU stage stopped: device lost");
                let _ = reports.send(GpuReport::Lost(e.to_string()));
                return;
            }
            Err(e) => warn!(error = %e, "frame batch dropped"),
        }
    }
}

/// Detect → align → embed → match over the tick's frames. A failed tick is logged and skipped (the
/// lanes stay in IC-card mode for it); it never stops normalisation or the lighting loop.
fn recognise(
    gpu: &Gpu,
    r: &mut Recognition,
    refs: &[FrameRef<'_>],
    frames: &[Frame],
    labels: &[String],
) -> (Option<Vec<LaneFaces>>, Option<Instant>, Option<TickTimes>) {
    let day = r.narrow.then(|| chrono::Local::now().date_naive());
    if let Err(e) = r.recogniser.mirror.refresh(&r.gallery, day) {
        warn!(error = %e, "gallery refresh failed; matching against the previous gallery");
    }
    let scopes: Vec<LaneScope> = {
        let s = r.settled.borrow();
        frames
            .iter()
            .map(|f| LaneScope {
                settled: s.get(f.lane).cloned().unwrap_or_default(),
                ..r.lanes.get(f.lane).cloned().unwrap_or_default()
            })
            .collect()
    };
    match r.recogniser.tick(gpu, refs, &scopes) {
        Ok((mut faces, times)) => {
            for (f, lf) in frames.iter().zip(faces.iter_mut()) {
                lf.face_luma = face_luma(f, lf);
            }
            record_times(&times, labels, frames);
            let detected = Instant::now() - times.embed - times.matching - times.pad;
            (Some(faces), Some(detected), Some(times))
        }
        Err(e) => {
            warn!(error = %e, "recognition skipped for this tick");
            (None, None, None)
        }
    }
}

/// Mean luma of the raw camera frame inside the largest face's box (every other pixel), 0–1.
fn face_luma(frame: &Frame, faces: &LaneFaces) -> Option<f32> {
    let face = faces
        .faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))?;
    let map = frame.buffer.map_readable().ok()?;
    let l = &frame.layout;
    let [x0, y0, x1, y1] = face.bbox.0;
    let clampx = |v: f32| (v.max(0.0) as u32).min(l.width);
    let clampy = |v: f32| (v.max(0.0) as u32).min(l.height);
    let (x0, x1, y0, y1) = (clampx(x0), clampx(x1), clampy(y0), clampy(y1));
    let (mut sum, mut n) = (0u64, 0u64);
    for y in (y0..y1).step_by(2) {
        for x in (x0..x1).step_by(2) {
            let at = (l.y_off + y * l.y_stride + x) as usize;
            sum += *map.get(at)? as u64;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let mean = sum as f32 / n as f32;
    Some(if l.limited_range {
        ((mean - 16.0) / 219.0).clamp(0.0, 1.0)
    } else {
        mean / 255.0
    })
}

fn record_times(t: &TickTimes, labels: &[String], frames: &[Frame]) {
    let all = "all".to_string();
    for (stage, d) in [
        ("detect", t.detect),
        ("embed", t.embed),
        ("match", t.matching),
        ("pad", t.pad),
    ] {
        histogram!(names::STAGE_SECONDS, "lane" => all.clone(), "stage" => stage)
            .record(d.as_secs_f64());
    }
    histogram!(names::TICK_FACES).record(t.faces as f64);
    histogram!(names::TICK_EMBEDDED).record(t.embedded as f64);
    let detected = Instant::now() - t.embed - t.matching - t.pad;
    for f in frames {
        histogram!(names::DECISION_LATENCY, "lane" => labels[f.lane].clone(), "to" => "detected")
            .record(detected.saturating_duration_since(f.captured).as_secs_f64());
    }
}

/// One frame normalised on the CPU: packed RGBA.
type CpuPixels = Zeroizing<Vec<u32>>;

/// Where each frame of the tick was normalised: its CPU pixels (`pixels`, one per frame, when the
/// tick normalised on the CPU) or its lane's normaliser on the device. `None` if one is missing.
fn frame_refs<'a>(
    frames: &[Frame],
    pixels: &'a [CpuPixels],
    lanes: &'a [Option<LaneNormaliser>],
) -> Option<Vec<FrameRef<'a>>> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let px = if pixels.is_empty() {
                Pixels::Gpu(lanes.get(f.lane)?.as_ref()?)
            } else {
                Pixels::Cpu(pixels.get(i)?.as_slice())
            };
            Some(FrameRef {
                pixels: px,
                width: f.layout.width,
                height: f.layout.height,
            })
        })
        .collect()
}

/// The tick's frames normalised on the CPU: statistics as the GPU path reports them, and the
/// pixels for the recogniser.
fn process_cpu(
    params: &NormaliseParams,
    frames: &[Frame],
    threads: usize,
) -> Result<(Vec<FrameResult>, Vec<CpuPixels>), NormaliseError> {
    let t0 = Instant::now();
    let mut results = Vec::with_capacity(frames.len());
    let mut pixels = Vec::with_capacity(frames.len());
    for f in frames {
        let map = f.buffer.map_readable().map_err(|_| unreadable(f))?;
        let out = cpu::normalise(map.as_slice(), &f.layout, params, threads)?;
        results.push(FrameResult {
            stats: out.stats,
            gpu_ns: None,
        });
        pixels.push(out.rgba);
    }
    histogram!(names::STAGE_SECONDS, "lane" => "all", "stage" => "normalise_batch")
        .record(t0.elapsed().as_secs_f64());
    Ok((results, pixels))
}

/// A frame whose buffer cannot be mapped for reading: reported as a frame with no bytes.
fn unreadable(f: &Frame) -> NormaliseError {
    NormaliseError::ShortFrame {
        got: 0,
        want: f.layout.size(),
        w: f.layout.width,
        h: f.layout.height,
    }
}

fn process(
    gpu: &Gpu,
    kernel: &LightingKernel,
    params: &NormaliseParams,
    lanes: &mut [Option<LaneNormaliser>],
    frames: &[Frame],
) -> Result<Vec<crate::normalise::FrameResult>, NormaliseError> {
    let t0 = Instant::now();
    for f in frames {
        let slot = lanes
            .get_mut(f.lane)
            .ok_or(NormaliseError::NoLane(f.lane))?;
        // Buffers are made once per lane and only remade if the camera's format changes.
        if slot
            .as_ref()
            .map(|n| *n.layout() != f.layout)
            .unwrap_or(true)
        {
            *slot = Some(LaneNormaliser::new(gpu, kernel, f.layout, params)?);
        }
    }
    let maps: Vec<gst::buffer::MappedBuffer<gst::buffer::Readable>> = frames
        .iter()
        .map(|f| {
            f.buffer
                .clone()
                .into_mapped_buffer_readable()
                .map_err(|_| unreadable(f))
        })
        .collect::<Result<_, _>>()?;
    let work: Vec<(&LaneNormaliser, &[u8])> = frames
        .iter()
        .zip(&maps)
        .filter_map(|(f, m)| lanes[f.lane].as_ref().map(|n| (n, m.as_slice())))
        .collect();
    let out = normalise_batch(gpu, kernel, &work)?;
    histogram!(names::STAGE_SECONDS, "lane" => "all", "stage" => "normalise_batch")
        .record(t0.elapsed().as_secs_f64());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Frame;
    use crate::normalise::FrameLayout;
    use crate::normalise::GpuConfig;

    fn frame(lane: usize, layout: FrameLayout) -> Frame {
        Frame {
            lane,
            seq: 1,
            pts: None,
            captured: Instant::now(),
            layout,
            buffer: gst::Buffer::from_mut_slice(vec![100u8; layout.size()]),
        }
    }

    /// The lighting loop's face luminance: the raw luma inside the largest face's box, not the scene's.
    #[test]
    fn face_luma_reads_the_largest_face_box() {
        crate::capture::init().expect("gstreamer");
        let layout = FrameLayout::i420(64, 48);
        let mut data = vec![50u8; layout.size()];
        // A bright square where the big face is, a dark one where a small face is.
        for y in 10..30u32 {
            for x in 20..40u32 {
                data[(layout.y_off + y * layout.y_stride + x) as usize] = 200;
            }
        }
        let f = Frame {
            lane: 0,
            seq: 1,
            pts: None,
            captured: Instant::now(),
            layout,
            buffer: gst::Buffer::from_mut_slice(data),
        };
        let face = |x0: f32, y0: f32, x1: f32, y1: f32| crate::recognise::Face {
            detection: engine::face::blazeface::Detection {
                score: 0.9,
                center: [(x0 + x1) / 2.0, (y0 + y1) / 2.0],
                size: [x1 - x0, y1 - y0],
                keypoints: [[0.0; 2]; 6],
            },
            bbox: BBox([x0, y0, x1, y1]),
            quality: None,
            best: None,
            second: None,
            embedding: None,
            live: None,
            patch: None,
            decided: false,
        };
        let faces = LaneFaces {
            faces: vec![face(0.0, 0.0, 4.0, 4.0), face(20.0, 10.0, 40.0, 30.0)],
            face_luma: None,
        };
        let v = face_luma(&f, &faces).expect("a face");
        assert!((v - (200.0 - 16.0) / 219.0).abs() < 1e-6, "{v}");
        assert_eq!(face_luma(&f, &LaneFaces::default()), None);
    }

    /// The stage normalises frames while the device lives and reports the loss (so the station can
    /// put the doors in their safe mode) instead of panicking or spinning once it is gone.
    #[test]
    fn stage_reports_device_loss() {
        crate::capture::init().expect("gstreamer");
        let gpu = Arc::new(Gpu::open(&GpuConfig::default()).expect("adapter"));
        device_loss_is_reported(gpu, None);
    }

    /// With a CPU recogniser the frames are normalised on the CPU and never touch the device;
    /// its loss must still stop the stage and be reported.
    #[test]
    fn stage_reports_device_loss_when_frames_stay_on_the_cpu() {
        crate::capture::init().expect("gstreamer");
        let models = crate::recognise::default_models();
        if !crate::recognise::models_present(&models) {
            eprintln!("skipped: run scripts/setup for models/ (CI does)");
            return;
        }
        let gpu = Arc::new(Gpu::open(&GpuConfig::default()).expect("adapter"));
        let cfg = crate::recognise::RecogniseConfig {
            backend: crate::recognise::Backend::Cpu,
            detector: crate::recognise::Detector::Front,
            ..Default::default()
        };
        let recogniser = Recogniser::new(&gpu, &cfg, 2, None).expect("recogniser");
        assert!(recogniser.cpu_frames().is_some());
        let (recognition, _settled) = Recognition::new(
            recogniser,
            crate::sync::Gallery::new(),
            false,
            vec![LaneScope::default(); 2],
            Duration::ZERO,
        );
        device_loss_is_reported(gpu, Some(recognition));
    }

    fn device_loss_is_reported(gpu: Arc<Gpu>, recognition: Option<Recognition>) {
        let hub = Arc::new(FrameHub::new(&[true, true]));
        let counters = vec![
            Arc::new(LaneCounters::new("A")),
            Arc::new(LaneCounters::new("B")),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stage = GpuStage::start(
            gpu.clone(),
            NormaliseParams::default(),
            hub.clone(),
            counters.clone(),
            tx,
            recognition,
            Duration::ZERO,
        )
        .expect("stage");
        let layout = FrameLayout::i420(64, 48);
        hub.push(frame(0, layout));
        hub.push(frame(1, FrameLayout::i420(32, 32)));
        // Each phase has its own deadline, generous: they bound a hang, not a speed, and a CPU
        // recogniser on a loaded two-core machine once spent most of a shared 20 s on the first.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < 2 && Instant::now() < deadline {
            match rx.try_recv() {
                Ok(GpuReport::Frame { stats, .. }) => {
                    assert!(stats.pixels > 0);
                    seen += 1;
                }
                Ok(GpuReport::Lost(e)) => panic!("lost early: {e}"),
                Ok(GpuReport::TickEnd) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert_eq!(seen, 2, "both lanes processed");
        gpu.device.destroy();
        hub.push(frame(0, layout));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lost = None;
        while lost.is_none() && Instant::now() < deadline {
            match rx.try_recv() {
                Ok(GpuReport::Lost(e)) => lost = Some(e),
                Ok(GpuReport::Frame { .. } | GpuReport::TickEnd) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert!(lost.is_some(), "device loss not reported");
        assert!(
            stage.is_finished() || {
                std::thread::sleep(Duration::from_millis(200));
                stage.is_finished()
            }
        );
        assert_eq!(counters[0].frames_processed.load(Ordering::Relaxed), 1);
    }
}
