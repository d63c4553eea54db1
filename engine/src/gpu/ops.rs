//! Host side of the element-wise, data-movement and pooling kernels (`shaders/eltwise.wgsl`,
//! `layout.wgsl`, `pool2d.wgsl`): what BlazeFace needs besides Conv, and the standalone forms of
//! the activations. Same 6-binding layout as the conv/GEMM kernels; unused bindings take any
//! read-only buffer. Shapes are checked here (rank, broadcasting, 32-bit sizes) so a caller gets an
//! error string to attach to its node instead of a wrong dispatch.

use bytemuck::{Pod, Zeroable};

use super::kernels::{Dispatch, Which, grid_256};
use super::{Kernels, Operands};

/// Ranks above this are refused (the engine's own limit is 8 too).
const MAX_RANK: usize = 8;

/// The arithmetic of an element-wise dispatch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EltOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `y = act(a)`; `b` is not read.
    Unary,
    /// `y = a >= 0 ? a : a * b`, `b` the broadcast slope.
    PRelu,
}

/// Activation applied to an element-wise result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EltAct {
    None,
    Relu,
    LeakyRelu(f32),
    Clip(f32, f32),
    Sigmoid,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct EltUniform {
    total: u32,
    rank: u32,
    op: u32,
    act: u32,
    p0: f32,
    p1: f32,
    same: u32,
    _p: u32,
    dims: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
}

/// A strided copy (see `layout.wgsl`): Transpose, Pad (constant, reflect, edge), Concat parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Iteration domain; every other vector has one entry per domain axis.
    pub domain: Vec<usize>,
    pub dst_off: usize,
    pub dst_strides: Vec<usize>,
    /// Domain coordinates below `before` (or at/after `before + src_len`) get `fill`.
    pub before: Vec<usize>,
    pub src_len: Vec<usize>,
    pub src_strides: Vec<usize>,
    pub fill: f32,
    /// What a coordinate outside the source reads.
    pub outside: Outside,
}

/// How [`Region`] treats domain coordinates outside the source (ONNX Pad modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// The constant `fill`.
    Fill,
    /// Mirrored about the first/last element, which is not repeated (`reflect`): needs a pad
    /// smaller than the axis.
    Reflect,
    /// The nearest element (`edge`).
    Edge,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    crate::tensor::strides(shape)
}

impl Region {
    /// `y = transpose(x, perm)` for `x` of shape `in_shape`.
    pub fn transpose(in_shape: &[usize], perm: &[usize]) -> Result<Self, String> {
        if perm.len() != in_shape.len() || perm.iter().any(|&p| p >= in_shape.len()) {
            return Err(format!("perm {perm:?} does not fit shape {in_shape:?}"));
        }
        let s = strides(in_shape);
        let domain: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
        Ok(Self {
            dst_off: 0,
            dst_strides: strides(&domain),
            before: vec![0; domain.len()],
            src_len: domain.clone(),
            src_strides: perm.iter().map(|&p| s[p]).collect(),
            domain,
            fill: 0.0,
            outside: Outside::Fill,
        })
    }

    /// Padding: `pads` holds all begins, then all ends (ONNX order); `fill` is read only by
    /// [`Outside::Fill`].
    pub fn pad(
        in_shape: &[usize],
        pads: &[usize],
        fill: f32,
        outside: Outside,
    ) -> Result<Self, String> {
        let r = in_shape.len();
        if pads.len() != 2 * r {
            return Err(format!("{} pads for rank {r}", pads.len()));
        }
        let too_wide = |d: usize| pads[d].max(pads[r + d]) >= in_shape[d].max(1);
        if outside == Outside::Reflect && (0..r).any(too_wide) {
            return Err(format!(
                "reflect pads {pads:?} must be smaller than the padded axes of {in_shape:?}"
            ));
        }
        let domain: Vec<usize> = (0..r)
            .map(|d| in_shape[d] + pads[d] + pads[r + d])
            .collect();
        Ok(Self {
            dst_off: 0,
            dst_strides: strides(&domain),
            before: pads[..r].to_vec(),
            src_len: in_shape.to_vec(),
            src_strides: strides(in_shape),
            domain,
            fill,
            outside,
        })
    }

    /// One Concat input (`in_shape`) written at `offset` along `axis` of the output.
    pub fn concat_part(
        in_shape: &[usize],
        out_shape: &[usize],
        axis: usize,
        offset: usize,
    ) -> Self {
        let out_strides = strides(out_shape);
        Self {
            domain: in_shape.to_vec(),
            dst_off: offset * out_strides.get(axis).copied().unwrap_or(0),
            dst_strides: out_strides,
            before: vec![0; in_shape.len()],
            src_len: in_shape.to_vec(),
            src_strides: strides(in_shape),
            fill: 0.0,
            outside: Outside::Fill,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct LayoutUniform {
    total: u32,
    rank: u32,
    dst_off: u32,
    fill: f32,
    dims: [u32; 8],
    dst_stride: [u32; 8],
    before: [u32; 8],
    src_len: [u32; 8],
    src_stride: [u32; 8],
    /// x: 0 fill, 1 reflect, 2 edge
    outside: [u32; 4],
}

/// A pooling window over NCHW planes (`planes` = N·C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: u32,
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: (u32, u32),
    /// top, left, bottom, right
    pub pads: (u32, u32, u32, u32),
    pub dil: (u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Max,
    /// Average over the taps inside the input.
    Average,
    /// Average over the taps inside the padded extent (`count_include_pad`).
    AverageIncludePad,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct PoolUniform {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    pad_b: u32,
    pad_r: u32,
    dil_h: u32,
    dil_w: u32,
    mode: u32,
}

fn u(v: usize) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{v} does not fit the kernel's 32-bit indices"))
}

/// Copies `v` (at most 8 entries, checked by the caller) into a fixed uniform array.
fn arr8(v: &[usize]) -> Result<[u32; 8], String> {
    let mut out = [0u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u(x)?;
    }
    Ok(out)
}

/// Element strides of `shape` as seen from an output of `out` (numpy broadcasting: `shape` is
/// aligned to the right; a size-1 or missing axis repeats, stride 0).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Result<Vec<usize>, String> {
    if shape.len() > out.len() {
        return Err(format!(
            "operand {shape:?} has more axes than the output {out:?}"
        ));
    }
    let s = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|d| {
            if d < lead {
                return Ok(0);
            }
            let (len, o) = (shape[d - lead], out[d]);
            if len == o {
                Ok(s[d - lead])
            } else if len == 1 {
                Ok(0)
            } else {
                Err(format!("operand {shape:?} does not broadcast to {out:?}"))
            }
        })
        .collect()
}

impl Kernels {
    /// `y = act(a op b)` (see [`EltOp`]); `ops.x` = a, `ops.w` = b (for `Unary` any buffer),
    /// `ops.bias`/`ops.slope` unused.
    #[allow(clippy::too_many_arguments)]
    pub fn eltwise(
        &self,
        device: &wgpu::Device,
        op: EltOp,
        act: EltAct,
        a_shape: &[usize],
        b_shape: &[usize],
        out_shape: &[usize],
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        if out_shape.len() > MAX_RANK {
            return Err(format!("rank {} above {MAX_RANK}", out_shape.len()));
        }
        let total: usize = out_shape.iter().product();
        let sa = broadcast_strides(a_shape, out_shape)?;
        let sb = if op == EltOp::Unary {
            vec![0; out_shape.len()]
        } else {
            broadcast_strides(b_shape, out_shape)?
        };
        let same = a_shape == out_shape && (op == EltOp::Unary || b_shape == out_shape);
        let (code, p0, p1) = match act {
            EltAct::None => (0, 0.0, 0.0),
            EltAct::Relu => (1, 0.0, 0.0),
            EltAct::LeakyRelu(alpha) => (2, alpha, 0.0),
            EltAct::Clip(lo, hi) => (3, lo, hi),
            EltAct::Sigmoid => (4, 0.0, 0.0),
        };
        let uni = EltUniform {
            total: u(total)?,
            rank: u(out_shape.len())?,
            op: match op {
                EltOp::Add => 0,
                EltOp::Sub => 1,
                EltOp::Mul => 2,
                EltOp::Div => 3,
                EltOp::Unary => 4,
                EltOp::PRelu => 5,
            },
            act: code,
            p0,
            p1,
            same: same as u32,
            _p: 0,
            dims: arr8(out_shape)?,
            sa: arr8(&sa)?,
            sb: arr8(&sb)?,
        };
        Ok(Dispatch {
            group: self.eltwise.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Eltwise,
            size: grid_256(uni.total),
        })
    }

    /// The strided copy of `r` from `ops.x` into `ops.y` (other bindings unused).
    pub fn copy_region(
        &self,
        device: &wgpu::Device,
        r: &Region,
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        let rank = r.domain.len();
        if rank > MAX_RANK
            || [&r.dst_strides, &r.before, &r.src_len, &r.src_strides]
                .iter()
                .any(|v| v.len() != rank)
        {
            return Err(format!("bad copy region {r:?}"));
        }
        let uni = LayoutUniform {
            total: u(r.domain.iter().product())?,
            rank: u(rank)?,
            dst_off: u(r.dst_off)?,
            fill: r.fill,
            dims: arr8(&r.domain)?,
            dst_stride: arr8(&r.dst_strides)?,
            before: arr8(&r.before)?,
            src_len: arr8(&r.src_len)?,
            src_stride: arr8(&r.src_strides)?,
            outside: [
                match r.outside {
                    Outside::Fill => 0,
                    Outside::Reflect => 1,
                    Outside::Edge => 2,
                },
                0,
                0,
                0,
            ],
        };
        Ok(Dispatch {
            group: self.layout.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Layout,
            size: grid_256(uni.total),
        })
    }

    /// Pooling of `ops.x` into `ops.y` (other bindings unused).
    pub fn pool(
        &self,
        device: &wgpu::Device,
        g: &PoolGeom,
        mode: PoolMode,
        ops: &Operands,
    ) -> Dispatch {
        let uni = PoolUniform {
            planes: g.planes,
            h: g.h,
            w: g.w,
            oh: g.oh,
            ow: g.ow,
            kh: g.kh,
            kw: g.kw,
            stride_h: g.stride.0,
            stride_w: g.stride.1,
            pad_t: g.pads.0,
            pad_l: g.pads.1,
            pad_b: g.pads.2,
            pad_r: g.pads.3,
            dil_h: g.dil.0,
            dil_w: g.dil.1,
            mode: match mode {
                PoolMode::Max => 0,
                PoolMode::Average => 1,
                PoolMode::AverageIncludePad => 2,
            },
        };
        // Planes fold into y and z to stay under the 65535-workgroup limit per dimension.
        let (gy, gz) = if g.planes <= 65_535 {
            (g.planes, 1)
        } else {
            (65_535, g.planes.div_ceil(65_535))
        };
        Dispatch {
            group: self.pool.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Pool,
            size: ((g.oh * g.ow).div_ceil(64), gy, gz),
        }
    }
}
