//! The harness every model kernel's tests share: a device with the kernels, upload and readback,
//! and the comparison with the plain-Rust answer on the same random inputs.
//! Tolerance: |gpu − cpu| ≤ 1e-4·max(1, |cpu|): both accumulate in f32 but in different orders (the
//! GEMM sums 16-wide tiles), so the last bits differ; anything larger is a bug, not rounding.

use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

use super::{Act, Dispatch, GemmVariant, Kernels, Operands};

pub(super) fn rnd(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

pub(super) struct Gpu {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) k: Kernels,
}

impl Gpu {
    pub(super) fn new() -> Self {
        let (device, queue) = crate::gpu::open_device().expect("wgpu device (lavapipe in CI)");
        let k = Kernels::new(&device);
        Self { device, queue, k }
    }
    /// Both GEMM entry points are checked on every machine, whichever the device would pick.
    pub(super) fn with(variant: GemmVariant) -> Self {
        let (device, queue) = crate::gpu::open_device().expect("wgpu device (lavapipe in CI)");
        let k = Kernels::with_options(&device, crate::gpu::Precision::F32, variant)
            .expect("f32 kernels");
        Self { device, queue, k }
    }
    pub(super) fn buf(&self, data: &[f32]) -> wgpu::Buffer {
        let data = if data.is_empty() { &[0.0][..] } else { data };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }
    pub(super) fn out(&self, n: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (n * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }
    pub(super) fn run(&self, d: &Dispatch, y: &wgpu::Buffer) -> Vec<f32> {
        self.run_all(&[d], y)
    }
    /// Records the dispatches in order into one pass, then reads `y` back.
    pub(super) fn run_all(&self, ds: &[&Dispatch], y: &wgpu::Buffer) -> Vec<f32> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in ds {
                self.k.record(&mut pass, d);
            }
        }
        self.queue.submit([enc.finish()]);
        let bytes =
            crate::gpu::readback::read(&self.device, &self.queue, y, y.size()).expect("readback");
        bytemuck::pod_collect_to_vec(&bytes)
    }
}

pub(super) fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(d <= 1e-4 * w.abs().max(1.0), "{what}[{i}]: gpu {g} cpu {w}");
        worst = worst.max(d);
    }
    eprintln!("{what}: worst abs diff {worst:e}");
}

pub(super) fn act(v: f32, a: Act, slope: f32) -> f32 {
    match a {
        Act::None => v,
        Act::Relu => v.max(0.0),
        Act::Prelu => {
            if v >= 0.0 {
                v
            } else {
                v * slope
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
    }
}

/// The CPU reference's answer for `op` on `inputs` (shape, data).
pub(super) fn cpu_op(op: &crate::graph::Op, inputs: &[(&[usize], &[f32])]) -> Vec<f32> {
    let views: Vec<crate::tensor::View> = inputs
        .iter()
        .map(|(shape, data)| crate::tensor::View { shape, data })
        .collect();
    crate::cpu::eval_op(op, &views).expect("cpu reference").data
}

/// Operands of a kernel that reads one input: `x` in every read binding, `y` the output.
pub(super) fn io<'a>(x: &'a wgpu::Buffer, y: &'a wgpu::Buffer) -> Operands<'a> {
    Operands {
        x,
        w: x,
        bias: x,
        slope: x,
        y,
    }
}
