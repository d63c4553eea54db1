//! Fault injection for `benches/faults.rs` (cargo feature `fault-injection`, off in the station's
//! own build) and the station's own tests: a recogniser tick that hangs, and a GPU device that is
//! lost. Both act inside the tick thread, where the real faults happen, so the station sees exactly
//! what it would see: a tick that does not come back, or wgpu's device-lost path
//! (`Device::destroy`). Each is aimed at the station whose lanes include a given lane id, so tests
//! running side by side in one process do not hit each other. Nothing on the network can reach
//! these; they are plain functions for code in the same process.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::normalise::Gpu;

#[derive(Default)]
struct Armed {
    /// (lane, how long) of the next hang.
    stall: Option<(String, Duration)>,
    /// The lane whose station's device is to be destroyed.
    lose: Option<String>,
    /// When the last hang began and the device was last destroyed: what the bench times from.
    stall_began: Option<Instant>,
    device_lost: Option<Instant>,
    objects: Option<GpuObjects>,
}

static ARMED: Mutex<Option<Armed>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Armed) -> T) -> T {
    let mut g = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Armed::default))
}

/// The next tick of the station with lane `lane` hangs for `d` (as a GPU hang would) after taking
/// its frames.
pub fn stall_next_tick(lane: &str, d: Duration) {
    with(|a| a.stall = Some((lane.to_owned(), d)));
}

/// The next tick of the station with lane `lane` destroys its device (as a driver reset or an
/// unplugged GPU would).
pub fn lose_device(lane: &str) {
    with(|a| a.lose = Some(lane.to_owned()));
}

/// When the last injected hang began.
pub fn stall_began() -> Option<Instant> {
    with(|a| a.stall_began)
}

/// When a device was last destroyed.
pub fn device_lost_at() -> Option<Instant> {
    with(|a| a.device_lost)
}

/// wgpu's live objects on a station's device, as its last tick saw them (wgpu's `counters`
/// feature, which `fault-injection` turns on; zero without it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuObjects {
    pub buffers: isize,
    pub textures: isize,
    pub bind_groups: isize,
    pub buffer_bytes: isize,
}

/// The device's live objects at the last tick of any station (the soak runs one).
pub fn gpu_objects() -> Option<GpuObjects> {
    with(|a| a.objects)
}

/// Called by the tick of the station with lanes `lanes` after taking a batch of frames.
pub(crate) fn before_tick(gpu: &Gpu, lanes: &[String]) {
    let c = gpu.device.get_internal_counters();
    let ours = |lane: &str| lanes.iter().any(|l| l == lane);
    let (lose, stall) = with(|a| {
        a.objects = Some(GpuObjects {
            buffers: c.hal.buffers.read(),
            textures: c.hal.textures.read(),
            bind_groups: c.hal.bind_groups.read(),
            buffer_bytes: c.hal.buffer_memory.read(),
        });
        let lose = a.lose.as_deref().is_some_and(ours);
        if lose {
            a.lose = None;
            a.device_lost = Some(Instant::now());
        }
        let stall = match a.stall.take() {
            Some((lane, d)) if ours(&lane) => {
                a.stall_began = Some(Instant::now());
                Some(d)
            }
            other => {
                a.stall = other;
                None
            }
        };
        (lose, stall)
    });
    if lose {
        tracing::warn!("fault injection: destroying the GPU device");
        gpu.device.destroy();
    }
    if let Some(d) = stall {
        tracing::warn!(ms = d.as_millis() as u64, "fault injection: the tick hangs");
        std::thread::sleep(d);
    }
}
