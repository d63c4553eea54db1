//! Direct convolution over a laid-out channel: the depthwise kernel (per channel, blocks of 16
//! outputs summing every tap in AVX2 registers) and the few-channel dense first layer (the same
//! layout, summed by [`blocked`] across output channels). Each channel is copied once into a
//! zero-padded plane split by column phase (`x mod stride`), after which every tap of every output
//! row is a contiguous run, whatever the stride, padding or dilation.

use super::blocked::{self, Packed as Blocked, Rows};
use super::team::Workers;

/// The window of one convolution resolved against its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    /// Leading padding (top, left); the trailing side is whatever the window still needs.
    pub(super) pad: [usize; 2],
}

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

/// A worker's scratch for depthwise channels: the laid-out channel and the tap offsets, rebuilt
/// only when the geometry changes. A fused block ([`super::block`]) runs thousands of
/// (band, channel) pairs per frame, and an offset list allocated per call cost more than the
/// taps of a small band.
#[derive(Default)]
pub(super) struct DepthwiseScratch {
    geo: Option<Geometry>,
    plane: Vec<f32>,
    offs: Vec<usize>,
}

impl DepthwiseScratch {
    /// One channel: `dst` (`[OH, OW]`, at least that long) = bias + Σ taps · input.
    pub(super) fn run(
        &mut self,
        src: &[f32],
        taps: &[f32],
        bias: f32,
        g: &Geometry,
        dst: &mut [f32],
    ) {
        let p = Padded::of(g);
        if self.geo != Some(*g) {
            // Another geometry writes other interior positions: the border must be zero again.
            self.plane.clear();
            self.plane.resize(p.len(g), 0.0);
            self.offs.clear();
            p.push_offsets(g, 0, &mut self.offs);
            self.geo = Some(*g);
        }
        p.lay_out(src, g, &mut self.plane);
        accumulate(
            dst,
            &self.plane,
            taps,
            &self.offs,
            bias,
            g.oh,
            g.ow,
            g.stride[0] * p.qw,
        );
    }
}

/// A dense convolution over few input channels (a network's first layer, on the image): every
/// channel laid out as for depthwise, then blocks of output channels sum all `C·kH·kW` taps in
/// registers ([`blocked`]). Unfolding a whole frame for a GEMM with K = 75 would move more memory
/// than it computes. `img` is `[C, H, W]`, `dst` `[M, OH·OW]` holding the bias.
pub(super) fn direct_dense(
    img: &[f32],
    c: usize,
    packed: &Blocked,
    g: &Geometry,
    scratch: &mut Vec<f32>,
    dst: &mut [f32],
    workers: Workers<'_>,
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
    blocked::accumulate(dst, scratch, &offs, packed, rows, workers)
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
    // FMA latency that two chains (one row) left exposed. Leftover rows go one at a time. The
    // 32-wide blocks that fit in a row go to 512-bit registers where the CPU has them (half the
    // loads and FMAs for the same outputs), the rest to 256-bit ones.
    let wide = if std::arch::is_x86_feature_detected!("avx512f") {
        ow / (2 * LANES) * (2 * LANES)
    } else {
        0
    };
    let mut oy = 0;
    while oy + 4 <= oh {
        // SAFETY: AVX2/FMA (and AVX-512F where `wide` > 0) present and extents checked (this
        // function's contract).
        unsafe {
            rows_avx512::<4>(dst, scratch, taps, offs, bias, oy, ow, row_step, wide);
            rows_avx2::<4>(dst, scratch, taps, offs, bias, oy, ow, row_step, wide);
        }
        oy += 4;
    }
    for oy in oy..oh {
        // SAFETY: as above.
        unsafe {
            rows_avx512::<1>(dst, scratch, taps, offs, bias, oy, ow, row_step, wide);
            rows_avx2::<1>(dst, scratch, taps, offs, bias, oy, ow, row_step, wide);
        }
    }
}

/// Columns `0..wide` (a multiple of 32, at most `ow`) of output rows `oy..oy + R`: 32 outputs
/// per block in two 16-wide registers per row.
///
/// # Safety
/// AVX-512F present when `wide` > 0; otherwise as [`rows_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512<const R: usize>(
    dst: &mut [f32],
    scratch: &[f32],
    taps: &[f32],
    offs: &[usize],
    bias: f32,
    oy: usize,
    ow: usize,
    row_step: usize,
    wide: usize,
) {
    use std::arch::x86_64::*;
    let base = scratch.as_ptr();
    for x in (0..wide.min(ow)).step_by(2 * LANES) {
        let mut a = [[_mm512_set1_ps(bias); 2]; R];
        for (&off, &w) in offs.iter().zip(taps) {
            let wv = _mm512_set1_ps(w);
            for (r, ar) in a.iter_mut().enumerate() {
                // SAFETY: within the scratch by the caller's check (x + 32 ≤ ow ≤ the padded
                // row the check covers).
                let (l0, l1) = unsafe {
                    let p = base.add(off + (oy + r) * row_step + x);
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(LANES)))
                };
                ar[0] = _mm512_fmadd_ps(wv, l0, ar[0]);
                ar[1] = _mm512_fmadd_ps(wv, l1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            let out = &mut dst[(oy + r) * ow + x..][..2 * LANES];
            // SAFETY: `out` holds 32 floats.
            unsafe {
                _mm512_storeu_ps(out.as_mut_ptr(), ar[0]);
                _mm512_storeu_ps(out.as_mut_ptr().add(LANES), ar[1]);
            }
        }
    }
}

/// Output rows `oy..oy + R` of [`accumulate_avx2`], columns from `x0` (a multiple of 16): 16
/// outputs per block in two 8-wide registers per row, each tap's weight broadcast once for the
/// R rows.
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
    x0: usize,
) {
    use std::arch::x86_64::*;
    let owp = ow.div_ceil(LANES) * LANES;
    let base = scratch.as_ptr();
    let mut acc = [0f32; LANES];
    for x in (x0..owp).step_by(LANES) {
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

    /// The SIMD paths (AVX-512 blocks of 32 and AVX2 blocks of 16 on this machine) and the
    /// portable one (CPUs without AVX2) agree on every row count (blocks of four rows and the
    /// leftovers) and width (with and without whole 32-wide blocks).
    #[test]
    fn portable_and_avx2_paths_agree() {
        for (oh, ow) in [
            (1usize, 5usize),
            (4, 16),
            (7, 17),
            (9, 40),
            (5, 64),
            (6, 80),
            (4, 33),
        ] {
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
