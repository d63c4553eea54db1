//! The station's one wgpu device: adapter choice, device-loss detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{error, info};

/// `[gpu]` in the station file: which adapter, timestamps, and the recognition tick.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `auto` (discrete preferred), `discrete`, `integrated`, `cpu`, or part of the adapter's name.
    /// The environment variable GATE_GPU_ADAPTER overrides it.
    pub adapter: String,
    /// Measure per-stage GPU time with timestamp queries when the adapter offers them.
    pub timestamps: bool,
    /// The batch scheduler's tick: at most one batch (the newest frame of every lane that has one)
    /// per tick, so lanes whose frames arrive within a tick share one GPU batch. Recorded footage
    /// in benchmark mode runs as fast as the GPU allows instead.
    pub tick_ms: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            adapter: "auto".into(),
            timestamps: true,
            tick_ms: 33,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter matches {wanted:?}; adapters seen: {seen}")]
    NoAdapter { wanted: String, seen: String },
    #[error("could not open a device on adapter {adapter}: {error}")]
    Device {
        adapter: String,
        error: wgpu::RequestDeviceError,
    },
    #[error("GPU device lost")]
    Lost,
    #[error("GPU: {0}")]
    Other(String),
}

/// How the adapter is picked: `GATE_GPU_ADAPTER` overrides the config so one binary can be pointed
/// at another card without editing the station file.
pub const ADAPTER_ENV: &str = "GATE_GPU_ADAPTER";

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub timestamps: bool,
    lost: Arc<AtomicBool>,
}

impl Gpu {
    pub fn open(cfg: &GpuConfig) -> Result<Self, GpuError> {
        pollster::block_on(Self::open_async(cfg))
    }

    async fn open_async(cfg: &GpuConfig) -> Result<Self, GpuError> {
        let wanted = std::env::var(ADAPTER_ENV).unwrap_or_else(|_| cfg.adapter.clone());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let seen = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?})", i.name, i.device_type, i.backend)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let adapter = pick(adapters, &wanted).ok_or_else(|| GpuError::NoAdapter {
            wanted: wanted.clone(),
            seen: if seen.is_empty() {
                "none (is a Vulkan driver installed?)".into()
            } else {
                seen
            },
        })?;
        let info = adapter.get_info();
        let timestamps =
            cfg.timestamps && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut required_features = wgpu::Features::empty();
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gate"),
                required_features,
                required_limits: wgpu::Limits::default().using_resolution(adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|error| GpuError::Device {
                adapter: info.name.clone(),
                error,
            })?;
        info!(adapter = %info.name, kind = ?info.device_type, backend = ?info.backend, driver = %info.driver,
              timestamps, "GPU device opened");
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            flag.store(true, Ordering::SeqCst);
            error!(?reason, %msg, "GPU device lost");
        });
        // wgpu's default handler panics; a validation error must degrade the frame, not the daemon.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| error!(error = %e, "GPU error")));
        Ok(Self {
            device,
            queue,
            info,
            timestamps,
            lost,
        })
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A flag that turns true when the device is lost, for threads that do not own the device.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.device_type, self.info.backend
        )
    }

    /// Blocks until submitted work is done; a failure here is how a lost device shows up mid-frame.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| {
                if self.is_lost() {
                    GpuError::Lost
                } else {
                    GpuError::Other(e.to_string())
                }
            })?;
        if self.is_lost() {
            Err(GpuError::Lost)
        } else {
            Ok(())
        }
    }
}

/// `auto` prefers a discrete GPU, then integrated, then anything (lavapipe); `discrete`, `integrated`
/// and `cpu` insist on that type; anything else is a case-insensitive substring of the adapter name.
fn pick(adapters: Vec<wgpu::Adapter>, wanted: &str) -> Option<wgpu::Adapter> {
    use wgpu::DeviceType as T;
    let rank = |t: T| match t {
        T::DiscreteGpu => 0,
        T::IntegratedGpu => 1,
        T::VirtualGpu => 2,
        T::Cpu => 3,
        T::Other => 4,
    };
    let w = wanted.to_ascii_lowercase();
    let mut matching: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            let i = a.get_info();
            match w.as_str() {
                "auto" | "" => true,
                "discrete" => i.device_type == T::DiscreteGpu,
                "integrated" => i.device_type == T::IntegratedGpu,
                "cpu" => i.device_type == T::Cpu,
                name => i.name.to_ascii_lowercase().contains(name),
            }
        })
        .collect();
    matching.sort_by_key(|a| rank(a.get_info().device_type));
    matching.into_iter().next()
}
