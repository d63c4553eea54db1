//! The GPU stage thread: takes the newest frame of every lane from the hub, normalises them in one
//! batch on the station's device, and reports statistics and timings to the station loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use metrics::histogram;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, warn};

use crate::capture::{Frame, FrameHub, LaneCounters};
use crate::normalise::{
    Gpu, LaneNormaliser, LightingKernel, LightingStats, NormaliseError, NormaliseParams,
    normalise_batch,
};
use crate::telemetry::names;

pub enum GpuReport {
    Frame {
        lane: usize,
        stats: Box<LightingStats>,
        gpu_ns: Option<u64>,
        captured: Instant,
        done: Instant,
    },
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
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gpu-stage".into())
            .spawn(move || run(gpu, params, hub, counters, reports, s))?;
        Ok(Self {
            thread: Some(thread),
            stop,
        })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GpuStage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run(
    gpu: Arc<Gpu>,
    params: NormaliseParams,
    hub: Arc<FrameHub>,
    counters: Vec<Arc<LaneCounters>>,
    reports: UnboundedSender<GpuReport>,
    stop: Arc<AtomicBool>,
) {
    let kernel = LightingKernel::new(&gpu);
    let mut lanes: Vec<Option<LaneNormaliser>> = (0..hub.lanes()).map(|_| None).collect();
    let labels: Vec<String> = counters.iter().map(|c| c.id.clone()).collect();
    let mut idle_since = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let frames = hub.take_batch(Duration::from_millis(20));
        if frames.is_empty() {
            // Every lane closed and drained: recorded footage is played out.
            if hub.all_closed() && idle_since.elapsed() > Duration::from_millis(200) {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        match process(&gpu, &kernel, &params, &mut lanes, &frames) {
            Ok(results) => {
                let done = Instant::now();
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
                        lane: frame.lane,
                        stats: Box::new(r.stats),
                        gpu_ns: r.gpu_ns,
                        captured: frame.captured,
                        done,
                    });
                }
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
                .map_err(|_| NormaliseError::ShortFrame {
                    got: 0,
                    want: f.layout.size(),
                    w: f.layout.width,
                    h: f.layout.height,
                })
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
    use crate::config::GpuConfig;
    use crate::normalise::FrameLayout;

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

    /// The stage normalises frames while the device lives and reports the loss (so the station can
    /// put the doors in their safe mode) instead of panicking or spinning once it is gone.
    #[test]
    fn stage_reports_device_loss() {
        crate::capture::init().expect("gstreamer");
        let gpu = Arc::new(Gpu::open(&GpuConfig::default()).expect("adapter"));
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
        )
        .expect("stage");
        let layout = FrameLayout::i420(64, 48);
        hub.push(frame(0, layout));
        hub.push(frame(1, FrameLayout::i420(32, 32)));
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = 0;
        while seen < 2 && Instant::now() < deadline {
            match rx.try_recv() {
                Ok(GpuReport::Frame { stats, .. }) => {
                    assert!(stats.pixels > 0);
                    seen += 1;
                }
                Ok(GpuReport::Lost(e)) => panic!("lost early: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert_eq!(seen, 2, "both lanes processed");
        gpu.device.destroy();
        hub.push(frame(0, layout));
        let mut lost = None;
        while lost.is_none() && Instant::now() < deadline {
            match rx.try_recv() {
                Ok(GpuReport::Lost(e)) => lost = Some(e),
                Ok(GpuReport::Frame { .. }) => {}
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
