//! Host side of the model kernels in `shaders/`: pipelines compiled once per device, and encoders that
//! record one dispatch into a compute pass. Buffers and bind groups are made by the caller (the
//! executor plans them once per batch size), so nothing here allocates per frame except the small
//! uniform buffers a caller chooses to create.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

const CONV: &str = include_str!("../../../shaders/conv2d.wgsl");
const GEMM: &str = include_str!("../../../shaders/gemm.wgsl");
const AFFINE: &str = include_str!("../../../shaders/affine.wgsl");
const ELTWISE: &str = include_str!("../../../shaders/eltwise.wgsl");
const LAYOUT: &str = include_str!("../../../shaders/layout.wgsl");
const POOL: &str = include_str!("../../../shaders/pool2d.wgsl");
const CONVERT: &str = include_str!("../../../shaders/convert.wgsl");
const RESIZE: &str = include_str!("../../../shaders/resize.wgsl");

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

/// Which `gemm.wgsl` entry point runs GEMMs (1×1 convolutions and fully connected layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmVariant {
    /// `main`: 16×64 tiles staged through workgroup memory; for GPUs.
    Tiled,
    /// `main_blocked`: 64×64 tiles, a 4×4 register block per invocation, no workgroup memory or
    /// barriers; for CPU adapters (lavapipe), where it runs SFace ~6× faster (docs/engine.md).
    Blocked,
}

impl GemmVariant {
    /// `Blocked` on CPU adapters, `Tiled` elsewhere; `GATE_GEMM=tiled|blocked` overrides.
    pub fn for_device(device: &wgpu::Device) -> Self {
        match std::env::var("GATE_GEMM").as_deref() {
            Ok("tiled") => GemmVariant::Tiled,
            Ok("blocked") => GemmVariant::Blocked,
            _ if device.adapter_info().device_type == wgpu::DeviceType::Cpu => GemmVariant::Blocked,
            _ => GemmVariant::Tiled,
        }
    }

    fn entry(self) -> &'static str {
        match self {
            GemmVariant::Tiled => "main",
            GemmVariant::Blocked => "main_blocked",
        }
    }

    /// Output rows one workgroup covers.
    fn rows(self) -> u32 {
        match self {
            GemmVariant::Tiled => 16,
            GemmVariant::Blocked => 64,
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
}

impl Act {
    fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::Relu => 1,
            Act::Prelu => 2,
        }
    }
}

/// A convolution's geometry (NCHW), as the importer's shape inference gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: (u32, u32),
    /// top, left, bottom, right
    pub pads: (u32, u32, u32, u32),
    pub dil: (u32, u32),
    pub groups: u32,
}

impl ConvGeom {
    pub fn out_hw(&self) -> (u32, u32) {
        let eff_h = self.dil.0 * (self.kh - 1) + 1;
        let eff_w = self.dil.1 * (self.kw - 1) + 1;
        let oh = (self.h + self.pads.0 + self.pads.2).saturating_sub(eff_h) / self.stride.0 + 1;
        let ow = (self.w + self.pads.1 + self.pads.3).saturating_sub(eff_w) / self.stride.1 + 1;
        (oh, ow)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ConvUniform {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    dil_h: u32,
    dil_w: u32,
    act: u32,
    _pad: [u32; 3],
}

/// `C[b] = act(A[b] · B[b] + bias)`, every operand addressed by strides (elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmGeom {
    pub batch: u32,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// (batch, row, k) strides of A
    pub a: (u32, u32, u32),
    /// (batch, k, column) strides of B
    pub b: (u32, u32, u32),
    /// (batch, row, column) strides of C
    pub c: (u32, u32, u32),
    /// Which axis bias and PReLU slopes follow.
    pub channel: Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rows,
    Columns,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct GemmUniform {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    a_b: u32,
    a_m: u32,
    a_k: u32,
    _p0: u32,
    b_b: u32,
    b_k: u32,
    b_n: u32,
    _p1: u32,
    c_b: u32,
    c_m: u32,
    c_n: u32,
    _p2: u32,
    bias_on: u32,
    act: u32,
    splits: u32,
    k_chunk: u32,
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

    fn with_entry(device: &wgpu::Device, label: &str, src: &str, entry_point: &str) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        };
        let storage = |read_only| wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(1, storage(true)),
                entry(2, storage(true)),
                entry(3, storage(true)),
                entry(4, storage(true)),
                entry(5, storage(false)),
            ],
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: None,
        });
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

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct AffineUniform {
    total: u32,
    hw: u32,
    channels: u32,
    scalar: u32,
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

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ConvertUniform {
    total: u32,
    _pad: [u32; 3],
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
            k.gemm =
                Kernel::with_entry(device, "gemm.wgsl", &precision.variant(GEMM), gemm.entry());
            k.gemm_variant = gemm;
        }
        Ok(k)
    }

    pub fn gemm_variant(&self) -> GemmVariant {
        self.gemm_variant
    }

    fn build(device: &wgpu::Device, p: Precision, gemm: GemmVariant) -> Self {
        let k = |label: &str, src: &str| Kernel::new(device, label, &p.variant(src));
        let convert = (p == Precision::F16).then(|| {
            let widen = CONVERT
                .replacen("alias In = f32;", "alias In = f16;", 1)
                .replacen("alias Out = f16;", "alias Out = f32;", 1);
            (
                Kernel::new(device, "convert.wgsl narrow", CONVERT),
                Kernel::new(device, "convert.wgsl widen", &widen),
            )
        });
        Self {
            conv: k("conv2d.wgsl", CONV),
            gemm: Kernel::with_entry(device, "gemm.wgsl", &p.variant(GEMM), gemm.entry()),
            gemm_reduce: Kernel::with_entry(
                device,
                "gemm.wgsl reduce_k",
                &p.variant(GEMM),
                "reduce_k",
            ),
            affine: k("affine.wgsl", AFFINE),
            eltwise: k("eltwise.wgsl", ELTWISE),
            layout: k("layout.wgsl", LAYOUT),
            pool: k("pool2d.wgsl", POOL),
            resize: k("resize.wgsl", RESIZE),
            precision: p,
            gemm_variant: gemm,
            convert,
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `ops.y[i] = ops.x[i]` converted f32 → f16 (`widen == false`) or f16 → f32, for `total`
    /// elements. `None` in f32 mode, where there is nothing to convert.
    pub fn convert(
        &self,
        device: &wgpu::Device,
        total: u32,
        widen: bool,
        ops: &Operands,
    ) -> Option<Dispatch> {
        let (narrow_k, widen_k) = self.convert.as_ref()?;
        let u = ConvertUniform {
            total,
            _pad: [0; 3],
        };
        let (k, which) = if widen {
            (widen_k, Which::Widen)
        } else {
            (narrow_k, Which::Narrow)
        };
        Some(Dispatch {
            group: k.bind(device, bytemuck::bytes_of(&u), ops),
            which,
            size: grid_256(total),
        })
    }

    pub fn conv(&self, device: &wgpu::Device, g: &ConvGeom, act: Act, ops: &Operands) -> Dispatch {
        let (oh, ow) = g.out_hw();
        let u = ConvUniform {
            n: g.n,
            cin: g.cin,
            h: g.h,
            w: g.w,
            cout: g.cout,
            oh,
            ow,
            groups: g.groups,
            kh: g.kh,
            kw: g.kw,
            stride_h: g.stride.0,
            stride_w: g.stride.1,
            pad_t: g.pads.0,
            pad_l: g.pads.1,
            dil_h: g.dil.0,
            dil_w: g.dil.1,
            act: act.code(),
            _pad: [0; 3],
        };
        Dispatch {
            group: self.conv.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Conv,
            size: ((oh * ow).div_ceil(64), g.cout, g.n),
        }
    }

    pub fn gemm(&self, device: &wgpu::Device, g: &GemmGeom, act: Act, ops: &Operands) -> Dispatch {
        let u = Self::gemm_uniform(g, act, 1, g.k);
        Dispatch {
            group: self.gemm.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Gemm,
            size: (
                g.n.div_ceil(64),
                g.m.div_ceil(self.gemm_variant.rows()),
                g.batch,
            ),
        }
    }

    /// How many K slices [`Kernels::gemm_split_k`] should use for `g` (1: run [`Kernels::gemm`]).
    /// Splitting pays when the output has few 16×64 tiles (each workgroup would walk a very long
    /// K alone while most of the device idles) and K is long enough that every slice keeps at
    /// least 512 terms; it aims at about 256 workgroups in all.
    pub fn split_k_for(g: &GemmGeom) -> u32 {
        let tiles = g.n.div_ceil(64) * g.m.div_ceil(16) * g.batch;
        if tiles >= 64 || g.k < 1024 {
            return 1;
        }
        (256 / tiles).min(g.k / 512).max(1)
    }

    /// Split-K GEMM as two dispatches: partial sums of `splits` K slices into `partial` (at least
    /// `splits · batch · m · n` floats), then their sum with bias and activation into `ops.y`.
    pub fn gemm_split_k(
        &self,
        device: &wgpu::Device,
        g: &GemmGeom,
        act: Act,
        splits: u32,
        ops: &Operands,
        partial: &wgpu::Buffer,
    ) -> [Dispatch; 2] {
        // Slices are whole 16-wide tiles; the count is recomputed so none is empty.
        let chunk = g.k.div_ceil(splits.max(1)).div_ceil(16) * 16;
        let splits = g.k.div_ceil(chunk);
        let u = Self::gemm_uniform(g, act, splits, chunk);
        let first = Operands { y: partial, ..*ops };
        let reduce = Operands { x: partial, ..*ops };
        [
            Dispatch {
                group: self.gemm.bind(device, bytemuck::bytes_of(&u), &first),
                which: Which::Gemm,
                size: (
                    g.n.div_ceil(64),
                    g.m.div_ceil(self.gemm_variant.rows()),
                    g.batch * splits,
                ),
            },
            Dispatch {
                group: self
                    .gemm_reduce
                    .bind(device, bytemuck::bytes_of(&u), &reduce),
                which: Which::GemmReduce,
                size: ((g.batch * g.m * g.n).div_ceil(64), 1, 1),
            },
        ]
    }

    fn gemm_uniform(g: &GemmGeom, act: Act, splits: u32, k_chunk: u32) -> GemmUniform {
        GemmUniform {
            batch: g.batch,
            m: g.m,
            n: g.n,
            k: g.k,
            a_b: g.a.0,
            a_m: g.a.1,
            a_k: g.a.2,
            _p0: 0,
            b_b: g.b.0,
            b_k: g.b.1,
            b_n: g.b.2,
            _p1: 0,
            c_b: g.c.0,
            c_m: g.c.1,
            c_n: g.c.2,
            _p2: 0,
            bias_on: match g.channel {
                Channel::Rows => 1,
                Channel::Columns => 2,
            },
            act: act.code(),
            splits,
            k_chunk,
        }
    }

    /// `y = x * scale[c] + shift[c]` over `total` elements in channels of `hw` (`ops.w` = scale,
    /// `ops.bias` = shift; a single-element scale applies to every element).
    pub fn affine(
        &self,
        device: &wgpu::Device,
        total: u32,
        hw: u32,
        channels: u32,
        scalar: bool,
        ops: &Operands,
    ) -> Dispatch {
        let u = AffineUniform {
            total,
            hw,
            channels,
            scalar: scalar as u32,
        };
        Dispatch {
            group: self.affine.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Affine,
            size: grid_256(total),
        }
    }

    /// Resize of `planes` H×W planes to OH×OW from the taps in `ops.w` (see `resize.wgsl`).
    pub fn resize(
        &self,
        device: &wgpu::Device,
        planes: u32,
        hw: (u32, u32),
        out_hw: (u32, u32),
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        let total = planes
            .checked_mul(out_hw.0)
            .and_then(|v| v.checked_mul(out_hw.1))
            .ok_or("output does not fit the kernel's 32-bit indices")?;
        let u = [planes, hw.0, hw.1, out_hw.0, out_hw.1, 0, 0, 0];
        Ok(Dispatch {
            group: self.resize.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Resize,
            size: grid_256(total),
        })
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
