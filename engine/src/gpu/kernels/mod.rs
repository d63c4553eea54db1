//! The model kernels, one folder per kernel family with its WGSL beside its host code: `conv`,
//! `gemm`, `affine`, `resize`, `eltwise`, `layout`, `pool`, and `convert` (f16 boundaries). Here:
//! the set compiled once per device ([`Kernels`]), the 6-binding pipeline every model kernel shares
//! ([`Kernel`]: uniform, four read-only operands, output), and the bound [`Dispatch`] a family's
//! encoder returns and [`Kernels::record`] records into a compute pass. Buffers and bind groups are
//! made by the caller (the executor plans them once per batch size), so nothing here allocates per
//! frame except the small uniform buffers a caller chooses to create.

use wgpu::util::DeviceExt;

mod affine;
mod conv;
mod convert;
mod eltwise;
mod gemm;
mod layout;
mod pool;
mod resize;

pub use conv::ConvGeom;
pub use eltwise::{EltAct, EltOp};
pub use gemm::{Channel, GemmGeom, GemmVariant};
pub use layout::{Outside, Region};
pub use pool::{PoolGeom, PoolMode};

/// How activations and weights are stored on the GPU. Arithmetic is f32 in both (every kernel
/// widens on load and accumulates in f32); f16 halves the memory traffic, which is what bounds
/// these kernels on a real GPU, at a measured accuracy cost (docs/engine.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Needs the device feature `SHADER_F16`.
    F16,
}

impl Precision {
    pub fn element_bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// The shader source for this precision: every model kernel declares `alias S = f32;` as its
    /// storage type, and the f16 variant is that alias rewritten plus `enable f16;`.
    fn variant(self, src: &str) -> String {
        match self {
            Precision::F32 => src.to_owned(),
            Precision::F16 => format!(
                "enable f16;\n{}",
                src.replacen("alias S = f32;", "alias S = f16;", 1)
            ),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(format!("precision {other:?}: expected f32 or f16")),
        }
    }
}

/// The f16 variant was asked for on a device without `SHADER_F16`.
#[derive(Debug, thiserror::Error)]
#[error(
    "f16 storage needs the SHADER_F16 device feature, which this device ({0}) was not opened with"
)]
pub struct NoF16(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    /// Per-channel slope (the channel axis of the op).
    Prelu,
    /// The gate of a squeeze-excitation block (MiniFASNetV1SE), fused by the load passes.
    Sigmoid,
}

impl Act {
    fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::Relu => 1,
            Act::Prelu => 2,
            Act::Sigmoid => 3,
        }
    }
}

/// Operands of one fused op: input, weights, bias (zeros if the model has none), PReLU slopes (any
/// non-empty buffer when unused), output.
#[derive(Clone, Copy)]
pub struct Operands<'a> {
    pub x: &'a wgpu::Buffer,
    pub w: &'a wgpu::Buffer,
    pub bias: &'a wgpu::Buffer,
    pub slope: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
}

pub(super) struct Kernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl Kernel {
    pub(super) fn new(device: &wgpu::Device, label: &str, src: &str) -> Self {
        Self::with_entry(device, label, src, "main")
    }

    pub(super) fn with_entry(
        device: &wgpu::Device,
        label: &str,
        src: &str,
        entry_point: &str,
    ) -> Self {
        use wgpu::BufferBindingType::{Storage, Uniform};
        let read = Storage { read_only: true };
        let layout = super::shader::buffer_layout(
            device,
            label,
            &[
                (0, Uniform),
                (1, read),
                (2, read),
                (3, read),
                (4, read),
                (5, Storage { read_only: false }),
            ],
        );
        let [pipeline] =
            super::shader::compute_pipelines(device, label, src, &layout, [entry_point]);
        Self { layout, pipeline }
    }

    pub(super) fn bind(
        &self,
        device: &wgpu::Device,
        uniform: &[u8],
        ops: &Operands,
    ) -> wgpu::BindGroup {
        let u = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("op params"),
            contents: uniform,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: u.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: ops.x.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: ops.w.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: ops.bias.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: ops.slope.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: ops.y.as_entire_binding(),
                },
            ],
        })
    }
}

/// A bound op ready to be recorded into any number of command encoders.
pub struct Dispatch {
    pub(super) group: wgpu::BindGroup,
    pub(super) which: Which,
    pub(super) size: (u32, u32, u32),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    Conv,
    Gemm,
    GemmReduce,
    Affine,
    Eltwise,
    Layout,
    Pool,
    Narrow,
    Widen,
    Resize,
}

/// Every model kernel, compiled once for a device.
pub struct Kernels {
    conv: Kernel,
    gemm: Kernel,
    gemm_reduce: Kernel,
    affine: Kernel,
    pub(super) eltwise: Kernel,
    pub(super) layout: Kernel,
    pub(super) pool: Kernel,
    resize: Kernel,
    precision: Precision,
    gemm_variant: GemmVariant,
    /// f32 → f16 and f16 → f32 at a model's input and outputs (f16 only).
    convert: Option<(Kernel, Kernel)>,
}

impl Kernels {
    /// Every kernel in f32 storage.
    pub fn new(device: &wgpu::Device) -> Self {
        Self::build(device, Precision::F32, GemmVariant::for_device(device))
    }

    /// Every kernel in the given storage precision; f16 needs a device opened with `SHADER_F16`
    /// (`open_device` asks for it whenever the adapter has it).
    pub fn with_precision(device: &wgpu::Device, precision: Precision) -> Result<Self, NoF16> {
        if precision == Precision::F16 && !device.features().contains(wgpu::Features::SHADER_F16) {
            return Err(NoF16(format!("{:?}", device.features())));
        }
        Ok(Self::build(
            device,
            precision,
            GemmVariant::for_device(device),
        ))
    }

    /// As `with_precision`, with the GEMM variant forced (tests check both on any device).
    pub fn with_options(
        device: &wgpu::Device,
        precision: Precision,
        gemm: GemmVariant,
    ) -> Result<Self, NoF16> {
        let mut k = Self::with_precision(device, precision)?;
        if k.gemm_variant != gemm {
            k.gemm = Kernel::with_entry(
                device,
                "gemm.wgsl",
                &precision.variant(gemm::SOURCE),
                gemm.entry(),
            );
            k.gemm_variant = gemm;
        }
        Ok(k)
    }

    pub fn gemm_variant(&self) -> GemmVariant {
        self.gemm_variant
    }

    fn build(device: &wgpu::Device, p: Precision, gemm: GemmVariant) -> Self {
        let k = |label: &str, src: &str| Kernel::new(device, label, &p.variant(src));
        let convert = (p == Precision::F16).then(|| convert::compile(device));
        Self {
            conv: k("conv2d.wgsl", conv::SOURCE),
            gemm: Kernel::with_entry(device, "gemm.wgsl", &p.variant(gemm::SOURCE), gemm.entry()),
            gemm_reduce: Kernel::with_entry(
                device,
                "gemm.wgsl reduce_k",
                &p.variant(gemm::SOURCE),
                "reduce_k",
            ),
            affine: k("affine.wgsl", affine::SOURCE),
            eltwise: k("eltwise.wgsl", eltwise::SOURCE),
            layout: k("layout.wgsl", layout::SOURCE),
            pool: k("pool2d.wgsl", pool::SOURCE),
            resize: k("resize.wgsl", resize::SOURCE),
            precision: p,
            gemm_variant: gemm,
            convert,
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Records the dispatch; consecutive dispatches in one pass see each other's writes (wgpu inserts
    /// the barriers between dispatches that share buffers).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, d: &Dispatch) {
        let k = match d.which {
            Which::Conv => &self.conv,
            Which::Gemm => &self.gemm,
            Which::GemmReduce => &self.gemm_reduce,
            Which::Affine => &self.affine,
            Which::Eltwise => &self.eltwise,
            Which::Layout => &self.layout,
            Which::Pool => &self.pool,
            Which::Resize => &self.resize,
            // Convert dispatches are only ever made by `convert`, which needs these kernels.
            Which::Narrow | Which::Widen => match &self.convert {
                Some((narrow, widen)) => {
                    if matches!(d.which, Which::Narrow) {
                        narrow
                    } else {
                        widen
                    }
                }
                None => return,
            },
        };
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &d.group, &[]);
        pass.dispatch_workgroups(d.size.0, d.size.1, d.size.2);
    }
}

/// Grid for a 1-D kernel of 256-wide workgroups over `total` elements, folded into two dimensions
/// to stay under the 65535-workgroup limit of one dimension (the shader rebuilds the flat index).
pub(super) fn grid_256(total: u32) -> (u32, u32, u32) {
    let groups = total.div_ceil(256);
    if groups <= 65_535 {
        (groups, 1, 1)
    } else {
        (65_535, groups.div_ceil(65_535), 1)
    }
}

/// Ranks above this are refused (the engine's own limit is 8 too).
pub(super) const MAX_RANK: usize = 8;

/// `v` as a kernel index, or the error a caller attaches to its node.
pub(super) fn index(v: usize) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{v} does not fit the kernel's 32-bit indices"))
}

/// Copies `v` (at most 8 entries, checked by the caller) into a fixed uniform array.
pub(super) fn arr8(v: &[usize]) -> Result<[u32; 8], String> {
    let mut out = [0u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = index(x)?;
    }
    Ok(out)
}

#[cfg(test)]
mod testing;
