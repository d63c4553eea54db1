//! Convolution kernels of the fast executor.
//!
//! - Dense convolutions (`group == 1`) are one GEMM per image: weights `[M, C·kH·kW]` (the ONNX
//!   layout, used as it is) times the input's columns `[C·kH·kW, OH·OW]`. A 1×1, stride-1,
//!   unpadded convolution — the bulk of SFace and BlazeFace — reads the input itself as the
//!   column matrix; every other shape is unfolded (im2col) first.
//! - Depthwise convolutions (`group == C == M`) run direct: each channel is copied once into a
//!   zero-padded plane split by column phase (`x mod stride`), after which every tap of every
//!   output row is a contiguous multiply-add over the row, whatever the stride, padding or
//!   dilation; blocks of 16 outputs sum all taps in registers (AVX2+FMA where the CPU has it,
//!   checked at run time, since release builds target plain x86-64).
//!
//! Bias (and a fused residual) is written into the output before the GEMM accumulates onto it;
//! the activation follows per output channel (element-wise loops compiled for AVX-512 and AVX2
//! beside the baseline by `multiversion`).

use super::blocked::Packed as Blocked;
use super::direct::{DepthwiseScratch, Geometry, direct_dense};
use super::linear::product_onto;
use super::team::Workers;
use multiversion::multiversion;

/// Operations a part of a split job should have at least: less costs about what handing it to
/// another worker does.
const MIN_PART_MACS: usize = 1 << 16;

use crate::cpu::valid_range;
use crate::graph::{Activation, Conv};

/// A convolution with its constants packed at load.
pub(super) struct ConvKernel {
    conv: Conv,
    kind: Kind,
    /// Output channels.
    m: usize,
    /// Input channels per group, kernel height and width.
    cpg: usize,
    kh: usize,
    kw: usize,
    /// `[M, cpg·kH·kW]`, row-major.
    weights: Vec<f32>,
    /// One per output channel (zeros when the model has none).
    bias: Vec<f32>,
    /// One PReLU slope per output channel (only for a fused PReLU).
    slope: Vec<f32>,
    /// Whether the node adds a same-shaped residual input before the activation.
    residual: bool,
    /// The weights regrouped by output-channel block, for the few-channel convolutions
    /// ([`blocked`]).
    blocked: Option<Blocked>,
}

/// A depthwise convolution's constants, as [`ConvKernel::as_depthwise`] lends them.
pub(super) struct Depthwise<'a> {
    pub(super) window: crate::graph::Window2d,
    pub(super) kernel: [usize; 2],
    /// `[C, kH·kW]`.
    pub(super) taps: &'a [f32],
    pub(super) bias: &'a [f32],
}

/// A 1×1 convolution's constants, as [`ConvKernel::as_pointwise`] lends them.
pub(super) struct Pointwise<'a> {
    pub(super) m: usize,
    pub(super) k: usize,
    /// `[M, K]`.
    pub(super) weights: &'a [f32],
    pub(super) bias: &'a [f32],
    /// One per output channel (PReLU only).
    pub(super) slope: &'a [f32],
    pub(super) activation: Activation,
    pub(super) residual: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `group == 1`: a GEMM, the input read as columns directly (`direct`) or unfolded first.
    Dense { direct: bool },
    /// `group == 1` over at most [`FEW_CHANNELS`] input channels: summed tap by tap in registers.
    FewChannels,
    /// `group == C == M`.
    Depthwise,
}

impl ConvKernel {
    /// Packs a Conv whose weight, bias and slope are constants. `None` for the shapes the fast
    /// path does not cover (grouped but not depthwise convolutions), which then run on the
    /// reference.
    pub(super) fn new(
        conv: &Conv,
        channels: usize,
        weight: (&[usize], &[f32]),
        bias: Option<&[f32]>,
        slope: Option<&[f32]>,
    ) -> Option<Self> {
        let [m, cpg, kh, kw] = <[usize; 4]>::try_from(weight.0).ok()?;
        if m == 0 || weight.1.len() != m * cpg * kh * kw {
            return None;
        }
        let kind = if conv.group == 1 && cpg == channels {
            let w = conv.window;
            let unpadded = matches!(w.padding, crate::graph::Padding::Explicit(p) if p == [0; 4]);
            let pointwise = kh == 1 && kw == 1 && w.strides == [1, 1] && unpadded;
            if !pointwise && cpg <= FEW_CHANNELS {
                Kind::FewChannels
            } else {
                Kind::Dense { direct: pointwise }
            }
        } else if conv.group == channels && m == channels && cpg == 1 {
            Kind::Depthwise
        } else {
            return None;
        };
        let bias = match bias {
            Some(b) if b.len() == m => b.to_vec(),
            Some(_) => return None,
            None => vec![0.0; m],
        };
        let slope = match (conv.activation, slope) {
            (Activation::PRelu, Some(s)) if s.len() == m => s.to_vec(),
            (Activation::PRelu, Some(s)) if s.len() == 1 => vec![s[0]; m],
            (Activation::PRelu, _) => return None,
            _ => Vec::new(),
        };
        let blocked = match kind {
            Kind::FewChannels => Blocked::new(weight.1, m, cpg * kh * kw),
            _ => None,
        };
        Some(Self {
            conv: *conv,
            kind,
            m,
            cpg,
            kh,
            kw,
            weights: weight.1.to_vec(),
            bias,
            slope,
            residual: false,
            blocked,
        })
    }

    /// Only dense convolutions without their own activation take a residual (the GEMM
    /// accumulates onto it; the activation must come after the sum).
    pub(super) fn can_take_residual(&self) -> bool {
        matches!(self.kind, Kind::Dense { .. })
            && self.conv.activation == Activation::None
            && !self.residual
    }

    /// This convolution followed by `+ residual` and then `act`.
    pub(super) fn with_residual(mut self, act: Activation) -> Self {
        self.residual = true;
        self.conv.activation = act;
        self
    }

    pub(super) fn has_residual(&self) -> bool {
        self.residual
    }

    /// The first half of a fused block ([`super::block`]): a depthwise convolution with no
    /// activation of its own (the block has nowhere to apply one between its halves).
    pub(super) fn as_depthwise(&self) -> Option<Depthwise<'_>> {
        (self.kind == Kind::Depthwise && self.conv.activation == Activation::None).then(|| {
            Depthwise {
                window: self.conv.window,
                kernel: [self.kh, self.kw],
                taps: &self.weights,
                bias: &self.bias,
            }
        })
    }

    /// The second half of a fused block: a 1×1, stride-1, unpadded dense convolution (with its
    /// fused residual, if any).
    pub(super) fn as_pointwise(&self) -> Option<Pointwise<'_>> {
        (self.kind == Kind::Dense { direct: true }).then_some(Pointwise {
            m: self.m,
            k: self.cpg,
            weights: &self.weights,
            bias: &self.bias,
            slope: &self.slope,
            activation: self.conv.activation,
            residual: self.residual,
        })
    }

    pub(super) fn kind_name(&self) -> String {
        match self.kind {
            Kind::Dense { direct: true } => "1x1 gemm".into(),
            Kind::Dense { direct: false } => format!("{}x{} im2col+gemm", self.kh, self.kw),
            Kind::Depthwise => format!("{}x{} depthwise", self.kh, self.kw),
            Kind::FewChannels => format!("{}x{} direct, {} channels", self.kh, self.kw, self.cpg),
        }
    }

    /// `x` is `[N, C, H, W]`; returns `[N, M, OH, OW]` row-major, written into the recycled
    /// `out`.
    pub(super) fn run(
        &self,
        x: &[f32],
        shape: &[usize],
        residual: Option<&[f32]>,
        out_shape: &[usize],
        workers: Workers<'_>,
        out: Vec<f32>,
    ) -> Result<Vec<f32>, String> {
        let &[n, c, h, w] = shape else {
            return Err(format!("Conv input of shape {shape:?} is not NCHW"));
        };
        let &[_, m, oh, ow] = out_shape else {
            return Err(format!("Conv output of shape {out_shape:?} is not NCHW"));
        };
        if m != self.m || x.len() != n * c * h * w {
            return Err("Conv input does not match its packed weights".into());
        }
        let r = self.conv.window.resolve([h, w])?;
        if r.out != [oh, ow] {
            return Err(format!(
                "Conv output {:?} disagrees with {out_shape:?}",
                r.out
            ));
        }
        let geo = Geometry {
            h,
            w,
            oh,
            ow,
            kh: self.kh,
            kw: self.kw,
            stride: self.conv.window.strides,
            dilation: self.conv.window.dilations,
            pad: [r.pads[0], r.pads[1]],
        };
        let plane = oh * ow;
        let mut out = super::sized(out, n * m * plane);
        if self.residual != residual.is_some() || residual.is_some_and(|r| r.len() != out.len()) {
            return Err("residual input does not match the output".into());
        }
        match self.kind {
            Kind::FewChannels => {
                let packed = self
                    .blocked
                    .as_ref()
                    .ok_or("a few-channel convolution without blocked weights")?;
                let mut scratch = Vec::new();
                for (img, dst) in x
                    .chunks_exact(c * h * w)
                    .zip(out.chunks_exact_mut(m * plane))
                {
                    for (row, bias) in dst.chunks_exact_mut(plane).zip(&self.bias) {
                        row.fill(*bias);
                    }
                    direct_dense(img, c, packed, &geo, &mut scratch, dst, workers)?;
                    self.activate(dst, plane, workers);
                }
            }
            Kind::Dense { direct } => {
                let k = self.cpg * self.kh * self.kw;
                let mut cols = Vec::new();
                for (b, (img, dst)) in x
                    .chunks_exact(c * h * w)
                    .zip(out.chunks_exact_mut(m * plane))
                    .enumerate()
                {
                    let rhs: &[f32] = if direct {
                        img
                    } else {
                        cols.resize(k * plane, 0.0);
                        im2col(img, c, &geo, &mut cols);
                        &cols
                    };
                    match residual {
                        Some(r) => {
                            let r = &r[b * m * plane..][..m * plane];
                            for ((row, res), bias) in dst
                                .chunks_exact_mut(plane)
                                .zip(r.chunks_exact(plane))
                                .zip(&self.bias)
                            {
                                add_bias(row, res, *bias);
                            }
                        }
                        None => {
                            for (row, bias) in dst.chunks_exact_mut(plane).zip(&self.bias) {
                                row.fill(*bias);
                            }
                        }
                    }
                    product_onto(
                        dst,
                        (m, plane, k),
                        &self.weights,
                        rhs,
                        (plane as isize, 1),
                        1.0,
                        workers,
                    )?;
                    self.activate(dst, plane, workers);
                }
            }
            Kind::Depthwise => {
                // One scratch plane per part, reused across its channels: only the interior is
                // ever written, so the zero border survives from one channel to the next.
                // Two runs of channels per worker, and none for a layer smaller than a wake-up.
                let parts = (workers.count() * 2)
                    .min(out.len() * geo.kh * geo.kw / MIN_PART_MACS)
                    .max(1);
                workers.chunks(&mut out, plane, parts, |first, planes| {
                    let mut scratch = DepthwiseScratch::default();
                    for (i, dst) in planes.chunks_exact_mut(plane).enumerate() {
                        let idx = first + i;
                        let ch = idx % m;
                        let src = &x[idx * h * w..][..h * w];
                        let taps = &self.weights[ch * geo.kh * geo.kw..][..geo.kh * geo.kw];
                        scratch.run(src, taps, self.bias[ch], &geo, dst);
                        self.activate_row(dst, ch);
                    }
                });
            }
        }
        Ok(out)
    }

    fn activate(&self, dst: &mut [f32], plane: usize, workers: Workers<'_>) {
        if self.conv.activation == Activation::None {
            return;
        }
        let parts = workers.count().min(dst.len() / MIN_PART_MACS).max(1);
        workers.chunks(dst, plane, parts, |first, planes| {
            for (i, row) in planes.chunks_exact_mut(plane).enumerate() {
                self.activate_row(row, first + i);
            }
        });
    }

    fn activate_row(&self, row: &mut [f32], ch: usize) {
        match self.conv.activation {
            Activation::None => {}
            Activation::Relu => relu(row),
            Activation::PRelu => prelu(row, self.slope[ch]),
            a => row.iter_mut().for_each(|v| *v = a.apply(*v, 0.0)),
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma"))]
fn add_bias(row: &mut [f32], residual: &[f32], bias: f32) {
    for (o, r) in row.iter_mut().zip(residual) {
        *o = r + bias;
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma"))]
fn relu(row: &mut [f32]) {
    for v in row {
        *v = v.max(0.0);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma"))]
fn prelu(row: &mut [f32], slope: f32) {
    for v in row {
        *v = if *v < 0.0 { *v * slope } else { *v };
    }
}

/// Unfolds one image `[C, H, W]` into `[C·kH·kW, OH·OW]` columns (zeros in the padding).
fn im2col(img: &[f32], c: usize, g: &Geometry, cols: &mut [f32]) {
    let plane = g.oh * g.ow;
    let mut row = 0;
    for ch in 0..c {
        let src = &img[ch * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut cols[row * plane..][..plane];
                row += 1;
                let oy_off = (ky * g.dilation[0]) as isize - g.pad[0] as isize;
                let ox_off = (kx * g.dilation[1]) as isize - g.pad[1] as isize;
                // Output columns whose input column lies inside the row; the rest is padding.
                let (x0, x1) = valid_range(g.ow, g.stride[1], ox_off, g.w);
                for oy in 0..g.oh {
                    let d = &mut dst[oy * g.ow..][..g.ow];
                    let iy = oy as isize * g.stride[0] as isize + oy_off;
                    if iy < 0 || iy >= g.h as isize || x0 >= x1 {
                        d.fill(0.0);
                        continue;
                    }
                    let s = &src[iy as usize * g.w..][..g.w];
                    d[..x0].fill(0.0);
                    d[x1..].fill(0.0);
                    let ix0 = (x0 as isize * g.stride[1] as isize + ox_off) as usize;
                    if g.stride[1] == 1 {
                        d[x0..x1].copy_from_slice(&s[ix0..ix0 + (x1 - x0)]);
                    } else {
                        for (v, x) in d[x0..x1]
                            .iter_mut()
                            .zip(s[ix0..].iter().step_by(g.stride[1]))
                        {
                            *v = *x;
                        }
                    }
                }
            }
        }
    }
}

/// Up to this many input channels a dense convolution runs direct ([`direct_dense`]).
const FEW_CHANNELS: usize = 4;
