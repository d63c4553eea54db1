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

use super::blocked::{self, Packed as Blocked, Rows};
use super::linear::product_onto;
use multiversion::multiversion;
use rayon::prelude::*;

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

    pub(super) fn kind_name(&self) -> String {
        match self.kind {
            Kind::Dense { direct: true } => "1x1 gemm".into(),
            Kind::Dense { direct: false } => format!("{}x{} im2col+gemm", self.kh, self.kw),
            Kind::Depthwise => format!("{}x{} depthwise", self.kh, self.kw),
            Kind::FewChannels => format!("{}x{} direct, {} channels", self.kh, self.kw, self.cpg),
        }
    }

    /// `x` is `[N, C, H, W]`; returns `[N, M, OH, OW]` row-major. `threads` ≥ 1.
    pub(super) fn run(
        &self,
        x: &[f32],
        shape: &[usize],
        residual: Option<&[f32]>,
        out_shape: &[usize],
        threads: usize,
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
        let mut out = vec![0f32; n * m * plane];
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
                    direct_dense(img, c, packed, &geo, &mut scratch, dst, threads)?;
                    self.activate(dst, plane, threads);
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
                        threads,
                    )?;
                    self.activate(dst, plane, threads);
                }
            }
            Kind::Depthwise => {
                // One scratch plane per worker, reused across its channels: only the interior is
                // ever written, so the zero border survives from one channel to the next.
                let job = |scratch: &mut Vec<f32>, (idx, dst): (usize, &mut [f32])| {
                    let ch = idx % m;
                    let src = &x[idx * h * w..][..h * w];
                    let taps = &self.weights[ch * geo.kh * geo.kw..][..geo.kh * geo.kw];
                    depthwise_plane(src, taps, self.bias[ch], &geo, scratch, dst);
                    self.activate_row(dst, ch);
                };
                if threads > 1 {
                    out.par_chunks_mut(plane)
                        .with_min_len(8)
                        .enumerate()
                        .for_each_init(Vec::new, job);
                } else {
                    let mut scratch = Vec::new();
                    out.chunks_mut(plane)
                        .enumerate()
                        .for_each(|item| job(&mut scratch, item));
                }
            }
        }
        Ok(out)
    }

    fn activate(&self, dst: &mut [f32], plane: usize, threads: usize) {
        if self.conv.activation == Activation::None {
            return;
        }
        if threads > 1 {
            dst.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(ch, row)| self.activate_row(row, ch));
        } else {
            for (ch, row) in dst.chunks_mut(plane).enumerate() {
                self.activate_row(row, ch);
            }
        }
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

/// The window of one convolution resolved against its input.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Leading padding (top, left); the trailing side is whatever the window still needs.
    pad: [usize; 2],
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

/// Output block width: 16 outputs accumulate in registers across all taps and are stored once.
const LANES: usize = 16;

/// A channel laid out for direct convolution: zero-padded to every row and column the window
/// reaches, columns split by phase (`x mod stride`) so that each tap of an output row is a
/// contiguous run, rows long enough that the last 16-wide block of a row stays inside it.
#[derive(Debug, Clone, Copy)]
struct Padded {
    /// Padded rows and columns.
    ph: usize,
    pw: usize,
    /// Row length of one phase plane.
    qw: usize,
}

impl Padded {
    fn of(g: &Geometry) -> Self {
        let (sy, sx) = (g.stride[0], g.stride[1]);
        let (dy, dx) = (g.dilation[0], g.dilation[1]);
        let ph = (g.oh - 1) * sy + (g.kh - 1) * dy + 1;
        let pw = (g.ow - 1) * sx + (g.kw - 1) * dx + 1;
        let owp = g.ow.div_ceil(LANES) * LANES;
        let qw = pw.div_ceil(sx).max((g.kw - 1) * dx / sx + owp);
        Self { ph, pw, qw }
    }

    /// Floats of one laid-out channel.
    fn len(&self, g: &Geometry) -> usize {
        g.stride[1] * self.ph * self.qw
    }

    /// Where each tap (ky, kx) of a channel laid out at `base` starts, for output row 0.
    fn push_offsets(&self, g: &Geometry, base: usize, offs: &mut Vec<usize>) {
        let sx = g.stride[1];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let cx = kx * g.dilation[1];
                offs.push(base + ((cx % sx) * self.ph + ky * g.dilation[0]) * self.qw + cx / sx);
            }
        }
    }

    /// Copies one input channel into its laid-out place. Only interior positions are written, the
    /// same ones for every channel of a geometry: a reused scratch keeps its zero border.
    fn lay_out(&self, src: &[f32], g: &Geometry, scratch: &mut [f32]) {
        let (ph, pw, qw) = (self.ph, self.pw, self.qw);
        let sx = g.stride[1];
        for iy in 0..g.h {
            let py = iy + g.pad[0];
            if py >= ph {
                break;
            }
            let row = &src[iy * g.w..][..g.w];
            let last = pw.saturating_sub(g.pad[1]).min(g.w);
            // Input column ix sits at padded column px = ix + pad: phase px % sx, index px / sx. Each
            // phase takes every sx-th input column from its first one, contiguous in the scratch.
            if sx == 2 {
                deinterleave(scratch, row, last, g.pad[1], py * qw, ph * qw);
                continue;
            }
            for r in 0..sx {
                let ix0 = (r + sx - g.pad[1] % sx) % sx;
                if ix0 >= last {
                    continue;
                }
                let start = (r * ph + py) * qw + (ix0 + g.pad[1]) / sx;
                let to = &mut scratch[start..(r * ph + py + 1) * qw];
                let from = &row[ix0..last];
                if sx == 1 {
                    let n = from.len().min(to.len());
                    to[..n].copy_from_slice(&from[..n]);
                } else {
                    for (d, c) in to.iter_mut().zip(from.chunks(sx)) {
                        *d = c[0];
                    }
                }
            }
        }
    }
}

/// One channel of a depthwise convolution: `dst` (`[OH, OW]`) = bias + Σ taps · input.
fn depthwise_plane(
    src: &[f32],
    taps: &[f32],
    bias: f32,
    g: &Geometry,
    scratch: &mut Vec<f32>,
    dst: &mut [f32],
) {
    let p = Padded::of(g);
    if scratch.len() != p.len(g) {
        scratch.clear();
        scratch.resize(p.len(g), 0.0);
    }
    p.lay_out(src, g, scratch);
    let mut offs = Vec::with_capacity(taps.len());
    p.push_offsets(g, 0, &mut offs);
    accumulate(
        dst,
        scratch,
        taps,
        &offs,
        bias,
        g.oh,
        g.ow,
        g.stride[0] * p.qw,
    );
}

/// A dense convolution over few input channels (a network's first layer, on the image): every
/// channel laid out as for depthwise, then blocks of output channels sum all `C·kH·kW` taps in
/// registers ([`blocked`]). Unfolding a whole frame for a GEMM with K = 75 would move more memory
/// than it computes. `img` is `[C, H, W]`, `dst` `[M, OH·OW]` holding the bias.
fn direct_dense(
    img: &[f32],
    c: usize,
    packed: &Blocked,
    g: &Geometry,
    scratch: &mut Vec<f32>,
    dst: &mut [f32],
    threads: usize,
) -> Result<(), String> {
    let p = Padded::of(g);
    let per = p.len(g);
    if scratch.len() != c * per {
        scratch.clear();
        scratch.resize(c * per, 0.0);
    }
    let mut offs = Vec::with_capacity(c * g.kh * g.kw);
    for (ch, (src, plane)) in img
        .chunks_exact(g.h * g.w)
        .zip(scratch.chunks_exact_mut(per))
        .enumerate()
    {
        p.lay_out(src, g, plane);
        p.push_offsets(g, ch * per, &mut offs);
    }
    if offs.len() != packed.terms() {
        return Err("a few-channel convolution's taps do not match its weights".into());
    }
    let rows = Rows {
        oh: g.oh,
        ow: g.ow,
        row_step: g.stride[0] * p.qw,
    };
    blocked::accumulate(dst, scratch, &offs, packed, rows, threads)
}

/// Stride 2: the even input columns go to one phase plane and the odd ones to the other, in one
/// pass over the row. `row_at` is the row's offset within a phase plane of `plane` floats.
fn deinterleave(
    scratch: &mut [f32],
    row: &[f32],
    last: usize,
    pad: usize,
    row_at: usize,
    plane: usize,
) {
    // Even ix = 2k lands in phase pad % 2 at index k + pad / 2; odd ix = 2k + 1 in the other
    // phase at index k + (pad + 1) / 2.
    let even_phase = pad % 2;
    let (first, second) = scratch.split_at_mut(plane);
    let (even_plane, odd_plane) = if even_phase == 0 {
        (first, second)
    } else {
        (second, first)
    };
    let (Some(even), Some(odd)) = (
        even_plane.get_mut(row_at + pad / 2..),
        odd_plane.get_mut(row_at + pad.div_ceil(2)..),
    ) else {
        return;
    };
    let pairs = row[..last].chunks_exact(2);
    let tail = pairs.remainder();
    let mut k = 0;
    for ((p, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
        *e = p[0];
        *o = p[1];
        k += 1;
    }
    if let (Some(&v), Some(e)) = (tail.first(), even.get_mut(k)) {
        *e = v;
    }
}

/// Every output row: for each block of `LANES` outputs, the sum over all taps of the tap weight
/// times the tap's contiguous source run (`offs`: where each tap starts for output row 0; row oy
/// adds `oy · row_step`), kept in registers and stored once.
#[allow(clippy::too_many_arguments)]
fn accumulate(
    dst: &mut [f32],
    scratch: &[f32],
    taps: &[f32],
    offs: &[usize],
    bias: f32,
    oh: usize,
    ow: usize,
    row_step: usize,
) {
    let owp = ow.div_ceil(LANES) * LANES;
    // Every read below stays inside the scratch: checked once here.
    let furthest = offs.iter().max().copied().unwrap_or(0) + (oh.max(1) - 1) * row_step + owp;
    if furthest > scratch.len() || offs.len() != taps.len() || dst.len() < oh * ow {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA; the extents were checked above.
        unsafe { accumulate_avx2(dst, scratch, taps, offs, bias, oh, ow, row_step) };
        return;
    }
    accumulate_portable(dst, scratch, taps, offs, bias, oh, ow, row_step);
}

/// [`accumulate`] in plain Rust, for CPUs without AVX2/FMA (and the test of the AVX2 path).
#[allow(clippy::too_many_arguments)]
fn accumulate_portable(
    dst: &mut [f32],
    scratch: &[f32],
    taps: &[f32],
    offs: &[usize],
    bias: f32,
    oh: usize,
    ow: usize,
    row_step: usize,
) {
    let owp = ow.div_ceil(LANES) * LANES;
    for oy in 0..oh {
        let out = &mut dst[oy * ow..][..ow];
        for x in (0..owp).step_by(LANES) {
            let mut acc = [bias; LANES];
            for (&off, &w) in offs.iter().zip(taps) {
                let s = &scratch[off + oy * row_step + x..][..LANES];
                for l in 0..LANES {
                    acc[l] += w * s[l];
                }
            }
            let n = LANES.min(ow - x);
            out[x..x + n].copy_from_slice(&acc[..n]);
        }
    }
}

/// [`accumulate`] with two 8-wide FMA registers per block of 16 outputs. Written with intrinsics
/// because the compiler's vectorisation of the generic loop (multiversioned) was slower than the
/// baseline build (measured on the development machine).
///
/// # Safety
/// AVX2 and FMA must be present, and for every tap `off + (oh-1)·row_step + ⌈ow/16⌉·16` must lie
/// within `scratch`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn accumulate_avx2(
    dst: &mut [f32],
    scratch: &[f32],
    taps: &[f32],
    offs: &[usize],
    bias: f32,
    oh: usize,
    ow: usize,
    row_step: usize,
) {
    // Four output rows at a time share each tap's weight: eight independent FMA chains hide the
    // FMA latency that two chains (one row) left exposed. Leftover rows go one at a time.
    let mut oy = 0;
    while oy + 4 <= oh {
        // SAFETY: AVX2/FMA present and extents checked (this function's contract).
        unsafe { rows_avx2::<4>(dst, scratch, taps, offs, bias, oy, ow, row_step) };
        oy += 4;
    }
    for oy in oy..oh {
        // SAFETY: as above.
        unsafe { rows_avx2::<1>(dst, scratch, taps, offs, bias, oy, ow, row_step) };
    }
}

/// Output rows `oy..oy + R` of [`accumulate_avx2`]: 16 outputs per block in two 8-wide registers
/// per row, each tap's weight broadcast once for the R rows.
///
/// # Safety
/// As [`accumulate_avx2`], for rows up to `oy + R ≤ oh`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2<const R: usize>(
    dst: &mut [f32],
    scratch: &[f32],
    taps: &[f32],
    offs: &[usize],
    bias: f32,
    oy: usize,
    ow: usize,
    row_step: usize,
) {
    use std::arch::x86_64::*;
    let owp = ow.div_ceil(LANES) * LANES;
    let base = scratch.as_ptr();
    let mut acc = [0f32; LANES];
    for x in (0..owp).step_by(LANES) {
        let mut a = [[_mm256_set1_ps(bias); 2]; R];
        for (&off, &w) in offs.iter().zip(taps) {
            let wv = _mm256_set1_ps(w);
            for (r, ar) in a.iter_mut().enumerate() {
                // SAFETY: within the scratch by the caller's check.
                let (l0, l1) = unsafe {
                    let p = base.add(off + (oy + r) * row_step + x);
                    (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
                };
                ar[0] = _mm256_fmadd_ps(wv, l0, ar[0]);
                ar[1] = _mm256_fmadd_ps(wv, l1, ar[1]);
            }
        }
        let n = LANES.min(ow - x);
        for (r, ar) in a.iter().enumerate() {
            let out = &mut dst[(oy + r) * ow + x..][..n];
            if n == LANES {
                // A whole block straight into the row (a copy through `acc` here cost a memcpy
                // call per row and block, about as much as the taps themselves).
                // SAFETY: `out` holds 16 floats.
                unsafe {
                    _mm256_storeu_ps(out.as_mut_ptr(), ar[0]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), ar[1]);
                }
                continue;
            }
            if n == LANES / 2 {
                // SAFETY: `out` holds 8 floats (8-wide planes, the smallest BlazeFace maps).
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), ar[0]) };
                continue;
            }
            // SAFETY: `acc` holds 16 floats.
            unsafe {
                _mm256_storeu_ps(acc.as_mut_ptr(), ar[0]);
                _mm256_storeu_ps(acc.as_mut_ptr().add(8), ar[1]);
            }
            out.copy_from_slice(&acc[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path (taken on this machine) and the portable one (taken on CPUs without AVX2)
    /// agree on every row count (blocks of four rows and the leftovers) and width.
    #[test]
    fn portable_and_avx2_paths_agree() {
        for (oh, ow) in [(1usize, 5usize), (4, 16), (7, 17), (9, 40)] {
            let row_step = ow.div_ceil(LANES) * LANES + 4;
            let scratch: Vec<f32> = (0..(oh + 3) * row_step + 64)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let offs: Vec<usize> = (0..9).map(|t| (t / 3) * row_step + t % 3).collect();
            let taps: Vec<f32> = (0..9).map(|t| t as f32 * 0.1 - 0.4).collect();
            let mut a = vec![0f32; oh * ow];
            let mut b = vec![0f32; oh * ow];
            accumulate(&mut a, &scratch, &taps, &offs, 0.25, oh, ow, row_step);
            accumulate_portable(&mut b, &scratch, &taps, &offs, 0.25, oh, ow, row_step);
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!((x - y).abs() <= 1e-5, "{oh}x{ow}[{i}]: {x} vs {y}");
            }
            assert!(a.iter().any(|v| *v != 0.0));
        }
    }
}
