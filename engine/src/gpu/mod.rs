//! The engine's GPU side: each WGSL kernel in a folder beside its host code and tests. `kernels`
//! holds the model kernels (one folder per family), `executor` lowers a graph onto them
//! ([`GpuModel`]), `gallery` is the station's template store and matching kernel, `resample` cuts
//! chips and detector inputs from frames on the GPU, `probe` turns SFace's output into matched
//! probes and chip measures without leaving it, and `readback` is the one way back to the CPU.
//! The station's device is passed in (gated owns one device for everything); `open_device` exists
//! for tests and benchmarks.

pub mod executor;
pub mod gallery;
pub mod kernels;
pub mod probe;
pub mod readback;
pub mod resample;
pub mod shader;

pub use executor::{GpuModel, GpuRunError};
pub use kernels::{
    Act, Channel, ConvGeom, Dispatch, EltAct, EltOp, GemmGeom, GemmVariant, Kernels, NoF16,
    Operands, Outside, PoolGeom, PoolMode, Precision, Region,
};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no GPU adapter (is a Vulkan driver such as mesa-vulkan-drivers installed?): {0}")]
    NoAdapter(#[source] wgpu::RequestAdapterError),
    #[error("cannot open device: {0}")]
    Device(#[source] wgpu::RequestDeviceError),
}

/// The best adapter (discrete first) and a device with the adapter's own limits, for tests and
/// benchmarks that run the engine without the station.
pub fn open_device() -> Result<(wgpu::Device, wgpu::Queue), DeviceError> {
    pollster::block_on(async {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(DeviceError::NoAdapter)?;
        adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("engine"),
                // f16 storage is a choice made per model (`Kernels::with_precision`); the device
                // only has to allow it.
                required_features: adapter.features() & wgpu::Features::SHADER_F16,
                required_limits: wgpu::Limits::default().using_resolution(adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(DeviceError::Device)
    })
}
