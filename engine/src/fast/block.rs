//! BlazeFace's block in one pass: depthwise convolution → 1×1 convolution [→ + residual]
//! [→ Relu/PReLU], computed band of output rows by band.
//!
//! Run layer by layer, each block streams its activation (24×128×128 floats, 1.5 MB, on the
//! back-256 model: past L2) through memory about ten times: the depthwise output written and
//! read back, the residual-plus-bias pass, the GEMM's read and write, the activation pass.
//! Here the depthwise output of a band of rows (all channels) stays in a small buffer that the
//! 1×1 kernel reads at once from L1/L2, and bias, residual and activation are applied in the
//! registers that hold the sum: the block reads its input and residual once and writes its
//! output once.
//!
//! Threads split the output rows into contiguous ranges (one task per thread, not one per
//! channel), and small blocks run on one thread: at 16×16 and below, waking a second worker
//! costs about what the block computes.

use super::blocked::{Packed, R};
use super::conv::ConvKernel;
use super::direct::{DepthwiseScratch, Geometry};
use super::pool::pool_row;
use super::team::Workers;
use crate::graph::{Activation, Window2d};

/// Outputs per register tile (two 8-wide registers).
const LANES: usize = 16;

/// Depthwise outputs (floats, all channels) one band aims at: small enough that the band
/// buffer is still in L1/L2 when the 1×1 kernel reads it.
const BAND_FLOATS: usize = 12 * 1024;

/// Multiply-adds an image's block must have before a second thread helps.
const MIN_PARALLEL_MACS: usize = 1 << 17;

/// A depthwise → 1×1 pair with its constants packed.
pub(super) struct Block {
    window: Window2d,
    /// Channels in (= depthwise channels) and out.
    c: usize,
    m: usize,
    kernel: [usize; 2],
    /// `[C, kH·kW]` and `[C]`.
    taps: Vec<f32>,
    dw_bias: Vec<f32>,
    /// The 1×1 weights by blocks of [`R`] output channels.
    packed: Packed,
    bias: Vec<f32>,
    slope: Vec<f32>,
    activation: Activation,
    residual: bool,
    /// Channels the residual carries: `m`, or fewer when the block reads the shortcut from
    /// before a Pad that appended zero channels ([`super::fuse::padded_residuals`]).
    res_channels: usize,
    /// Whether the residual is the 2×2 max pool of the block's own input, computed band by
    /// band here instead of read ([`super::fuse::pooled_residuals`]).
    pooled: bool,
}

impl Block {
    /// `dw` then `pw`, when the two can run as one (see [`ConvKernel::as_depthwise`],
    /// [`ConvKernel::as_pointwise`]) and the 1×1's activation is one the block applies.
    pub(super) fn new(dw: &ConvKernel, pw: &ConvKernel) -> Option<Self> {
        let (d, p) = (dw.as_depthwise()?, pw.as_pointwise()?);
        let c = d.bias.len();
        if p.k != c
            || c == 0
            || d.taps.len() != c * d.kernel[0] * d.kernel[1]
            || !matches!(
                p.activation,
                Activation::None | Activation::Relu | Activation::PRelu
            )
            || (p.activation == Activation::PRelu && p.slope.len() != p.m)
        {
            return None;
        }
        Some(Self {
            window: d.window,
            c,
            m: p.m,
            kernel: d.kernel,
            taps: d.taps.to_vec(),
            dw_bias: d.bias.to_vec(),
            packed: Packed::new(p.weights, p.m, c)?,
            bias: p.bias.to_vec(),
            slope: p.slope.to_vec(),
            activation: p.activation,
            residual: p.residual,
            res_channels: p.m,
            pooled: false,
        })
    }

    /// Whether the block reads a residual input (a pooled residual it computes itself).
    pub(super) fn has_residual(&self) -> bool {
        self.residual && !self.pooled
    }

    /// Computes the residual as the 2×2 max pool of the block's input (its first `C` channels;
    /// the rest add zero); `false`, changing nothing, where the residual does not have exactly
    /// the input's channels.
    pub(super) fn pool_residual(&mut self) -> bool {
        let ok = self.has_residual() && self.res_channels == self.c;
        if ok {
            self.pooled = true;
        }
        ok
    }

    /// Reads a residual of only the first `c` output channels (the rest add zero); `false`,
    /// changing nothing, where that is not fewer than the block has.
    pub(super) fn narrow_residual(&mut self, c: usize) -> bool {
        let ok = self.residual && c > 0 && c < self.m;
        if ok {
            self.res_channels = c;
        }
        ok
    }

    pub(super) fn kind_name(&self) -> String {
        format!(
            "{}x{} depthwise + 1x1, fused",
            self.kernel[0], self.kernel[1]
        )
    }

    /// `x` is the depthwise input `[N, C, H, W]`; returns `[N, M, OH, OW]`, written into the
    /// recycled `out`.
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
            return Err(format!("block input of shape {shape:?} is not NCHW"));
        };
        let &[_, m, oh, ow] = out_shape else {
            return Err(format!("block output of shape {out_shape:?} is not NCHW"));
        };
        if c != self.c || m != self.m || x.len() != n * c * h * w {
            return Err("block input does not match its packed weights".into());
        }
        let r = self.window.resolve([h, w])?;
        if r.out != [oh, ow] {
            return Err(format!(
                "block output {:?} disagrees with {out_shape:?}",
                r.out
            ));
        }
        let geo = Geometry {
            h,
            w,
            oh,
            ow,
            kh: self.kernel[0],
            kw: self.kernel[1],
            stride: self.window.strides,
            dilation: self.window.dilations,
            pad: [r.pads[0], r.pads[1]],
        };
        let plane = oh * ow;
        let mut out = super::sized(out, n * m * plane);
        let rc = self.res_channels;
        if self.pooled && (2 * oh > h || 2 * ow > w) {
            return Err(format!(
                "a pooled residual of {h}×{w} does not cover {oh}×{ow}"
            ));
        }
        if self.has_residual() != residual.is_some()
            || residual.is_some_and(|r| r.len() != n * rc * plane)
        {
            return Err("residual input does not match the output".into());
        }
        if plane == 0 {
            return Ok(out);
        }
        let band = (BAND_FLOATS / (c * ow)).clamp(1, oh);
        let bands = oh.div_ceil(band);
        let macs = plane * c * (m + geo.kh * geo.kw);
        let parts = workers
            .count()
            .min(bands)
            .min(macs / MIN_PARALLEL_MACS)
            .max(1);
        for (b, (img, dst)) in x
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(m * plane))
            .enumerate()
        {
            let res = residual.map(|r| &r[b * rc * plane..][..rc * plane]);
            // Part p computes bands [p·bands/parts, (p+1)·bands/parts): rows y0..y1 of every
            // output channel, lent to it as one slice per channel.
            let rows: Vec<(usize, usize)> = (0..parts)
                .map(|p| {
                    let y = |q: usize| (q * bands / parts * band).min(oh);
                    (y(p), y(p + 1))
                })
                .collect();
            let mut lent: Vec<Vec<&mut [f32]>> =
                (0..parts).map(|_| Vec::with_capacity(m)).collect();
            for chan in dst.chunks_exact_mut(plane) {
                let mut rest = chan;
                for (&(y0, y1), l) in rows.iter().zip(lent.iter_mut()) {
                    let (mine, others) = rest.split_at_mut((y1 - y0) * ow);
                    l.push(mine);
                    rest = others;
                }
            }
            // Each part's rows are lent through a lock that only that part takes.
            let lent: Vec<std::sync::Mutex<Vec<&mut [f32]>>> =
                lent.into_iter().map(std::sync::Mutex::new).collect();
            let failed: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
            workers.run(parts, &|p| {
                if let (Some(&rows), Some(Ok(mut outs))) =
                    (rows.get(p), lent.get(p).map(|l| l.lock()))
                    && let Err(e) = self.rows(img, &geo, band, rows, &mut outs, res)
                    && let Ok(mut f) = failed.lock()
                {
                    f.get_or_insert(e);
                }
            });
            if let Some(e) = failed.into_inner().ok().flatten() {
                return Err(e);
            }
        }
        Ok(out)
    }

    /// Output rows `y0..y1` of one image, band by band; `outs[ch]` holds those rows of channel
    /// `ch`, `res` (if any) the image's whole residual `[res_channels, OH·OW]`.
    fn rows(
        &self,
        img: &[f32],
        geo: &Geometry,
        band: usize,
        (y0, y1): (usize, usize),
        outs: &mut [&mut [f32]],
        res: Option<&[f32]>,
    ) -> Result<(), String> {
        let (c, ow) = (self.c, geo.ow);
        let kk = geo.kh * geo.kw;
        let mut dw = DepthwiseScratch::default();
        let mut buf = Vec::new();
        let mut pooled = Vec::new();
        let mut y = y0;
        while y < y1 {
            let end = (y + band).min(y1);
            let npx = (end - y) * ow;
            // Channel rows padded to whole tiles: the last tile reads inside the buffer.
            let stride = npx.div_ceil(LANES) * LANES;
            buf.resize(c * stride, 0.0);
            let (g, iy0, iy1) = band_geometry(geo, y, end);
            for (ch, (src, (taps, &bias))) in img
                .chunks_exact(geo.h * geo.w)
                .zip(self.taps.chunks_exact(kk).zip(&self.dw_bias))
                .enumerate()
            {
                dw.run(
                    &src[iy0 * geo.w..iy1 * geo.w],
                    taps,
                    bias,
                    &g,
                    &mut buf[ch * stride..][..npx],
                );
            }
            let res = if self.pooled {
                // The band's residual rows: 2×2 maxima of the input rows 2y, 2y + 1 (`run`
                // checked that they exist).
                pooled.resize(c * stride, 0.0);
                for (src, dst) in img
                    .chunks_exact(geo.h * geo.w)
                    .zip(pooled.chunks_exact_mut(stride))
                {
                    for (oy, row) in (y..end).zip(dst.chunks_exact_mut(ow)) {
                        let top = &src[2 * oy * geo.w..][..geo.w];
                        let bottom = &src[(2 * oy + 1) * geo.w..][..geo.w];
                        pool_row(row, top, bottom);
                    }
                }
                Some((&pooled[..], stride, 0))
            } else {
                res.map(|r| (r, geo.oh * ow, y * ow))
            };
            self.pointwise(&buf, stride, npx, outs, (y - y0) * ow, res)?;
            y = end;
        }
        Ok(())
    }

    /// `outs[ch][at..at + npx] = act(bias[ch] + Σ_k w[ch][k] · buf[k][..npx] + res[ch][..])`;
    /// `res` is the residual `[res_channels, plane]` read from `res_at` within each channel's
    /// plane (channels past `res_channels` add nothing).
    fn pointwise(
        &self,
        buf: &[f32],
        stride: usize,
        npx: usize,
        outs: &mut [&mut [f32]],
        at: usize,
        res: Option<(&[f32], usize, usize)>,
    ) -> Result<(), String> {
        let (m, k, rc) = (self.m, self.c, self.res_channels);
        // `run` sizes everything so that these hold; checked because the tiles below write
        // through raw pointers.
        if buf.len() < k * stride || outs.len() != m || outs.iter().any(|o| o.len() < at + npx) {
            return Err("a block band does not fit its buffers (internal)".into());
        }
        let (res, plane, res_at) = match res {
            Some((r, plane, at)) if r.len() == rc * plane && at + npx <= plane => {
                (Some(r), plane, at)
            }
            Some(_) => return Err("a block band's residual does not fit (internal)".into()),
            None => (None, 0, 0),
        };
        for b in 0..m.div_ceil(R) {
            let w = self.packed.block(b);
            let chans = R.min(m - b * R);
            let mut x = 0;
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut tile = Tile {
                    dst: [std::ptr::null_mut(); R],
                    res: res.map(|_| [std::ptr::null(); R]),
                    bias: [0.0; R],
                    slope: [0.0; R],
                    activation: self.activation,
                };
                for r in 0..chans {
                    let ch = b * R + r;
                    tile.dst[r] = outs[ch][at..].as_mut_ptr();
                    if let (Some(res), Some(from), true) = (res, tile.res.as_mut(), ch < rc) {
                        from[r] = res[ch * plane + res_at..].as_ptr();
                    }
                    tile.bias[r] = self.bias[ch];
                    tile.slope[r] = self.slope.get(ch).copied().unwrap_or(0.0);
                }
                let tiles = npx / LANES;
                // 32 columns at a time in 512-bit registers where the CPU has them (half the
                // instructions for the same multiply-adds), then 16 in 256-bit ones.
                let wide = if has_avx512() { npx / (2 * LANES) } else { 0 };
                let s = buf.as_ptr();
                // SAFETY: AVX-512F present where `wide` > 0; buf holds k rows of `stride` ≥ npx
                // floats; every dst pointer, and every non-null res pointer, of the first
                // `chans` has npx floats (checked above: outs[ch].len() ≥ at + npx,
                // res_at + npx ≤ plane).
                unsafe {
                    match chans {
                        6 => tiles_avx512::<6>(s, stride, wide, w, &tile),
                        5 => tiles_avx512::<5>(s, stride, wide, w, &tile),
                        4 => tiles_avx512::<4>(s, stride, wide, w, &tile),
                        3 => tiles_avx512::<3>(s, stride, wide, w, &tile),
                        2 => tiles_avx512::<2>(s, stride, wide, w, &tile),
                        _ => tiles_avx512::<1>(s, stride, wide, w, &tile),
                    }
                }
                let first = 2 * wide;
                // SAFETY: AVX2/FMA present; extents as above.
                unsafe {
                    match chans {
                        6 => tiles_avx2::<6>(s, stride, first..tiles, w, &tile),
                        5 => tiles_avx2::<5>(s, stride, first..tiles, w, &tile),
                        4 => tiles_avx2::<4>(s, stride, first..tiles, w, &tile),
                        3 => tiles_avx2::<3>(s, stride, first..tiles, w, &tile),
                        2 => tiles_avx2::<2>(s, stride, first..tiles, w, &tile),
                        _ => tiles_avx2::<1>(s, stride, first..tiles, w, &tile),
                    }
                }
                x = tiles * LANES;
            }
            // Columns left: the band's tail, or all of them without AVX2/FMA.
            for r in 0..chans {
                let ch = b * R + r;
                for col in x..npx {
                    let mut acc = 0f32;
                    for (t, wt) in w.chunks_exact(R).enumerate() {
                        acc += wt[r] * buf[t * stride + col];
                    }
                    let mut v = acc + self.bias[ch];
                    if let (Some(res), true) = (res, ch < rc) {
                        v += res[ch * plane + res_at + col];
                    }
                    outs[ch][at + col] = match self.activation {
                        Activation::Relu => v.max(0.0),
                        Activation::PRelu if v < 0.0 => v * self.slope[ch],
                        _ => v,
                    };
                }
            }
        }
        Ok(())
    }
}

/// Where one register tile's outputs go and what is applied on the way.
struct Tile {
    dst: [*mut f32; R],
    /// Null for a channel without a residual.
    res: Option<[*const f32; R]>,
    bias: [f32; R],
    slope: [f32; R],
    activation: Activation,
}

/// Tiles `tiles` (runs of 16 outputs) of `C` channels: each the sum over the K buffer rows in
/// registers, then bias, residual and activation, stored once. One call per band and channel
/// block: set up per 16 outputs, the pointers cost a tenth of the whole block.
///
/// # Safety
/// AVX2 and FMA present; `src + t·stride` has `16·tiles` readable floats for every t < K (`w`
/// is `[K][R]`); `t.dst[r]` (and `t.res[r]` unless null) have `16·tiles` floats for r < C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2<const C: usize>(
    src: *const f32,
    stride: usize,
    tiles: std::ops::Range<usize>,
    w: &[f32],
    t: &Tile,
) {
    for i in tiles {
        // SAFETY: tile i lies inside every extent of this function's contract.
        unsafe { tile_avx2::<C>(src.add(i * LANES), stride, i * LANES, w, t) };
    }
}

/// 16 outputs of `C` channels from column `x` of the band.
///
/// # Safety
/// As [`tiles_avx2`], for the 16 columns from `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const C: usize>(src: *const f32, stride: usize, x: usize, w: &[f32], t: &Tile) {
    use std::arch::x86_64::*;
    // SAFETY: every pointer below is inside the extents of this function's contract.
    unsafe {
        let mut a = [[_mm256_setzero_ps(); 2]; C];
        for (k, wk) in w.chunks_exact(R).enumerate() {
            let p = src.add(k * stride);
            let (v0, v1) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            for (ar, wv) in a.iter_mut().zip(wk) {
                let wv = _mm256_broadcast_ss(wv);
                ar[0] = _mm256_fmadd_ps(wv, v0, ar[0]);
                ar[1] = _mm256_fmadd_ps(wv, v1, ar[1]);
            }
        }
        let zero = _mm256_setzero_ps();
        for (r, ar) in a.iter().enumerate() {
            let bias = _mm256_set1_ps(t.bias[r]);
            let (mut v0, mut v1) = (_mm256_add_ps(ar[0], bias), _mm256_add_ps(ar[1], bias));
            if let Some(res) = t.res
                && !res[r].is_null()
            {
                let p = res[r].add(x);
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
            }
            match t.activation {
                Activation::Relu => {
                    v0 = _mm256_max_ps(v0, zero);
                    v1 = _mm256_max_ps(v1, zero);
                }
                Activation::PRelu => {
                    // max(v, 0) + slope · min(v, 0): v itself above zero, v · slope below.
                    let s = _mm256_set1_ps(t.slope[r]);
                    v0 = _mm256_fmadd_ps(s, _mm256_min_ps(v0, zero), _mm256_max_ps(v0, zero));
                    v1 = _mm256_fmadd_ps(s, _mm256_min_ps(v1, zero), _mm256_max_ps(v1, zero));
                }
                _ => {}
            }
            let d = t.dst[r].add(x);
            _mm256_storeu_ps(d, v0);
            _mm256_storeu_ps(d.add(8), v1);
        }
    }
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`tiles_avx2`] 32 columns at a time: `tiles` runs of 32 outputs from column 0.
///
/// # Safety
/// AVX-512F present (when `tiles` > 0); `src + t·stride` has `32·tiles` readable floats for
/// every t < K; `t.dst[r]` (and `t.res[r]` unless null) have `32·tiles` floats for r < C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tiles_avx512<const C: usize>(
    src: *const f32,
    stride: usize,
    tiles: usize,
    w: &[f32],
    t: &Tile,
) {
    use std::arch::x86_64::*;
    const WIDE: usize = 2 * LANES;
    // SAFETY: every pointer below is inside the extents of this function's contract.
    unsafe {
        for i in 0..tiles {
            let x = i * WIDE;
            let s = src.add(x);
            let mut a = [[_mm512_setzero_ps(); 2]; C];
            for (k, wk) in w.chunks_exact(R).enumerate() {
                let p = s.add(k * stride);
                let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(LANES)));
                for (ar, wv) in a.iter_mut().zip(wk) {
                    let wv = _mm512_set1_ps(*wv);
                    ar[0] = _mm512_fmadd_ps(wv, v0, ar[0]);
                    ar[1] = _mm512_fmadd_ps(wv, v1, ar[1]);
                }
            }
            let zero = _mm512_setzero_ps();
            for (r, ar) in a.iter().enumerate() {
                let bias = _mm512_set1_ps(t.bias[r]);
                let (mut v0, mut v1) = (_mm512_add_ps(ar[0], bias), _mm512_add_ps(ar[1], bias));
                if let Some(res) = t.res
                    && !res[r].is_null()
                {
                    let p = res[r].add(x);
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.add(LANES)));
                }
                match t.activation {
                    Activation::Relu => {
                        v0 = _mm512_max_ps(v0, zero);
                        v1 = _mm512_max_ps(v1, zero);
                    }
                    Activation::PRelu => {
                        let sl = _mm512_set1_ps(t.slope[r]);
                        v0 = _mm512_fmadd_ps(sl, _mm512_min_ps(v0, zero), _mm512_max_ps(v0, zero));
                        v1 = _mm512_fmadd_ps(sl, _mm512_min_ps(v1, zero), _mm512_max_ps(v1, zero));
                    }
                    _ => {}
                }
                let d = t.dst[r].add(x);
                _mm512_storeu_ps(d, v0);
                _mm512_storeu_ps(d.add(LANES), v1);
            }
        }
    }
}

/// The depthwise window of output rows `y0..y1` as a convolution of its own: over input rows
/// `iy0..iy1` (the ones the window reaches, clipped to the image), with the top padding that
/// is left. Returns it with `iy0` and `iy1`.
fn band_geometry(g: &Geometry, y0: usize, y1: usize) -> (Geometry, usize, usize) {
    let top = (y0 * g.stride[0]) as isize - g.pad[0] as isize;
    let end =
        ((y1 - 1) * g.stride[0] + (g.kh - 1) * g.dilation[0] + 1) as isize - g.pad[0] as isize;
    let iy0 = (top.max(0) as usize).min(g.h);
    let iy1 = (end.max(0) as usize).clamp(iy0, g.h);
    let band = Geometry {
        h: iy1 - iy0,
        oh: y1 - y0,
        pad: [(iy0 as isize - top) as usize, g.pad[1]],
        ..*g
    };
    (band, iy0, iy1)
}
