//! capture: one GStreamer pipeline per lane, each ending in an appsink that hands frames to the GPU
//! stage through a [`FrameHub`].
//!
//! One pipeline per lane rather than one pipeline with N branches: an error message from any element
//! puts a whole pipeline into error, so with one graph a single dead camera would stop every lane, and
//! restarting one branch inside a running pipeline is far more fragile than restarting a pipeline.
//! `docs/capture.md` records the measurement that showed the split costs no throughput.

pub mod clip;
mod config;
mod frame;
mod hub;
mod lane;
mod source;

pub use config::{Camera, CaptureConfig, CaptureMode};
pub use frame::{Frame, FrameLayout};
pub use hub::{FrameHub, Push};
pub use lane::{CaptureEvent, LaneCounters, REPEAT_GAP};
pub use source::Source;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use gstreamer as gst;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("GStreamer could not be initialised")]
    Init(#[source] gst::glib::Error),
    #[error("cannot start lane thread")]
    Thread(#[source] std::io::Error),
    #[error("lane {lane}: {reason}")]
    Source { lane: String, reason: String },
}

pub fn init() -> Result<(), CaptureError> {
    gst::init().map_err(CaptureError::Init)
}

/// The running capture side of the station.
pub struct Capture {
    pub hub: Arc<FrameHub>,
    pub counters: Vec<Arc<LaneCounters>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Capture {
    /// Starts every lane. Lanes whose source cannot be built start degraded; none stops the others.
    pub fn start(
        lanes: &[Camera],
        cfg: &CaptureConfig,
        events: UnboundedSender<CaptureEvent>,
    ) -> Result<Self, CaptureError> {
        init()?;
        let sources: Vec<Source> = lanes
            .iter()
            .map(|l| {
                Source::parse(&l.source)
                    .unwrap_or(Source::File("/nonexistent/invalid-source".into()))
            })
            .collect();
        let newest_only: Vec<bool> = sources
            .iter()
            .map(|s| s.is_live() || cfg.mode == CaptureMode::Realtime)
            .collect();
        let hub = Arc::new(FrameHub::new(&newest_only));
        let stop = Arc::new(AtomicBool::new(false));
        let mut counters = Vec::new();
        let mut threads = Vec::new();
        for (i, (lane, source)) in lanes.iter().zip(sources).enumerate() {
            let c = Arc::new(LaneCounters::new(&lane.id));
            counters.push(c.clone());
            let runner = lane::LaneRunner {
                index: i,
                id: lane.id.clone(),
                source,
                width: lane.width,
                height: lane.height,
                fps: lane.fps,
                cfg: cfg.clone(),
                hub: hub.clone(),
                counters: c,
                events: events.clone(),
                stop: stop.clone(),
                pts_offset_ns: Default::default(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("lane-{}", lane.id))
                .spawn(move || runner.run())
                .map_err(CaptureError::Thread)?;
            threads.push(handle);
        }
        Ok(Self {
            hub,
            counters,
            stop,
            threads,
        })
    }

    /// True once every lane has finished or given up (recorded footage played out).
    pub fn all_done(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hub.close_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hub.close_all();
    }
}
