//! Dense accumulation over few terms, blocked by output channel: for a block of [`R`] output
//! channels and 16 consecutive outputs, each input run is loaded once and multiplied by the R
//! channels' weights in registers.
//!
//! This serves the dense convolutions over the image (few input channels, a 3×3 or 5×5 window:
//! the first layer of BlazeFace and SFace), read in place from the phase-split padded planes of
//! `conv::Padded` through one start offset per term. A per-channel loop reloads every input run
//! once per output channel and is load-bound; here one load feeds R multiply-adds, so the FMA
//! units set the pace (about 3× faster on BlazeFace back-256's first layer). The thin 1×1
//! convolutions stay on the GEMM crate: the same kernel over their planes measured 0.55–0.99×
//! of it (its packing pays for itself even at K = 24).

use super::team::{SharedOut, Workers};

/// Output channels per register block: 6 channels × 16 outputs are twelve 8-wide accumulators,
/// which with two input registers and one broadcast weight fill the sixteen AVX2 registers.
pub(super) const R: usize = 6;

/// Outputs per block (two 8-wide registers).
const LANES: usize = 16;

/// Consecutive outputs one task handles: its K input runs stay in L1 while every channel block
/// passes over them.
const TILE: usize = 64;

/// Weights `[M, K]` regrouped for [`accumulate`]: blocks of [`R`] output channels, term-major
/// within a block (`[M/R][K][R]`), the last block padded with zero weights.
pub(super) struct Packed {
    m: usize,
    k: usize,
    w: Vec<f32>,
}

impl Packed {
    /// `weights` is row-major `[m, k]`; `None` when it is not that long.
    pub(super) fn new(weights: &[f32], m: usize, k: usize) -> Option<Self> {
        if weights.len() != m * k || m == 0 || k == 0 {
            return None;
        }
        let blocks = m.div_ceil(R);
        let mut w = vec![0f32; blocks * k * R];
        for (ch, row) in weights.chunks_exact(k).enumerate() {
            let (b, r) = (ch / R, ch % R);
            for (t, &v) in row.iter().enumerate() {
                w[(b * k + t) * R + r] = v;
            }
        }
        Some(Self { m, k, w })
    }

    pub(super) fn terms(&self) -> usize {
        self.k
    }

    /// The `[K][R]` weights of output channels `b·R ..`, or nothing past the last block.
    pub(super) fn block(&self, b: usize) -> &[f32] {
        self.w
            .get(b * self.k * R..(b + 1) * self.k * R)
            .unwrap_or(&[])
    }
}

/// Where the terms of one output row are read and its outputs written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows {
    /// Output rows and columns of one channel; a channel's plane is `oh · ow` floats in `dst`.
    pub oh: usize,
    pub ow: usize,
    /// Source step from one output row to the next (ignored for one row).
    pub row_step: usize,
}

/// `dst[ch][oy][x] += Σ_t w[ch][t] · src[offs[t] + oy·row_step + x]` for every output channel
/// `ch < M`, row `oy < oh` and column `x < ow`. `dst` is `[M, oh·ow]`, already holding the bias
/// (and residual) to accumulate onto. `Err` when an extent does not fit, before any write.
pub(super) fn accumulate(
    dst: &mut [f32],
    src: &[f32],
    offs: &[usize],
    packed: &Packed,
    rows: Rows,
    workers: Workers<'_>,
) -> Result<(), String> {
    let Rows { oh, ow, row_step } = rows;
    let plane = oh * ow;
    let (m, k) = (packed.m, packed.k);
    if offs.len() != k || dst.len() != m * plane {
        return Err(format!(
            "blocked accumulation: {} offsets for {k} terms, {} outputs for {m}×{plane}",
            offs.len(),
            dst.len()
        ));
    }
    if plane == 0 {
        return Ok(());
    }
    // The furthest read: the last row's last column of the furthest term.
    let furthest = offs.iter().max().copied().unwrap_or(0) + (oh - 1) * row_step + ow;
    if furthest > src.len() {
        return Err(format!(
            "blocked accumulation reads {furthest} floats of a {}-float source",
            src.len()
        ));
    }
    // Tasks are column tiles of one row; they write disjoint columns of every channel's plane.
    let tiles_per_row = ow.div_ceil(TILE);
    let tiles = oh * tiles_per_row;
    let out = SharedOut(dst.as_mut_ptr());
    let job = |tile: usize| {
        let oy = tile / tiles_per_row;
        let x0 = (tile % tiles_per_row) * TILE;
        let x1 = (x0 + TILE).min(ow);
        // SAFETY: tiles are disjoint column ranges [x0, x1) of row oy, so no two tasks touch the
        // same output; every read lies below `furthest` (checked above) and every write below
        // m·plane.
        unsafe {
            tile_rows(
                out,
                src,
                offs,
                packed,
                plane,
                oy * row_step + x0,
                oy * ow,
                x0,
                x1,
            )
        };
    };
    // A few runs of tiles per worker, so that a worker that starts late takes fewer.
    let parts = (workers.count() * 4).min(tiles.div_ceil(4));
    workers.run(parts, &|p| {
        (p * tiles / parts..(p + 1) * tiles / parts).for_each(job);
    });
    Ok(())
}

/// Columns `[x0, x1)` of one output row for every channel: full blocks of 16 in registers, the
/// rest of the row term by term.
///
/// `src_at` is where column `x0` of the row is read for a term at offset 0.
///
/// # Safety
/// `out` points at `[M, plane]` floats; `src_at + offs[t] + (x1 - x0) ≤ src.len()` for every
/// term; no other thread writes these columns.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows(
    out: SharedOut,
    src: &[f32],
    offs: &[usize],
    packed: &Packed,
    plane: usize,
    src_at: usize,
    dst_row: usize,
    x0: usize,
    x1: usize,
) {
    let (m, k) = (packed.m, packed.k);
    let full = x0 + (x1 - x0) / LANES * LANES;
    for b in 0..m.div_ceil(R) {
        let w = &packed.w[b * k * R..][..k * R];
        let chans = R.min(m - b * R);
        // SAFETY: channel rows b·R .. b·R + chans exist (b < ⌈m/R⌉).
        let dst = unsafe { out.0.add(b * R * plane + dst_row) };
        let mut x = x0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            while x < full {
                // SAFETY: AVX2/FMA present; 16 columns from x lie inside the row and the source
                // (caller's contract).
                unsafe {
                    let s = src.as_ptr().add(src_at + x - x0);
                    let d = dst.add(x);
                    match chans {
                        6 => block_avx2::<6>(d, plane, s, offs, w),
                        5 => block_avx2::<5>(d, plane, s, offs, w),
                        4 => block_avx2::<4>(d, plane, s, offs, w),
                        3 => block_avx2::<3>(d, plane, s, offs, w),
                        2 => block_avx2::<2>(d, plane, s, offs, w),
                        _ => block_avx2::<1>(d, plane, s, offs, w),
                    }
                }
                x += LANES;
            }
        }
        // Columns left (a row's tail, or every column on CPUs without AVX2/FMA).
        for r in 0..chans {
            for col in x..x1 {
                let mut acc = 0f32;
                for (t, &off) in offs.iter().enumerate() {
                    acc += w[t * R + r] * src[src_at + off + col - x0];
                }
                // SAFETY: channel b·R + r < m, column col < ow.
                unsafe { *dst.add(r * plane + col) += acc };
            }
        }
    }
}

/// 16 consecutive outputs of `C` channels (rows `plane` apart from `dst`): load, add every term,
/// store. `w` is the block's `[K][R]` weights.
///
/// # Safety
/// AVX2 and FMA present; `dst + r·plane + 16` writable for r < C; `src + offs[t] + 16` readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const C: usize>(
    dst: *mut f32,
    plane: usize,
    src: *const f32,
    offs: &[usize],
    w: &[f32],
) {
    use std::arch::x86_64::*;
    // SAFETY: every pointer below is inside the extents of this function's contract.
    unsafe {
        let mut a = [[_mm256_setzero_ps(); 2]; C];
        for (r, ar) in a.iter_mut().enumerate() {
            let d = dst.add(r * plane);
            ar[0] = _mm256_loadu_ps(d);
            ar[1] = _mm256_loadu_ps(d.add(8));
        }
        for (&off, wt) in offs.iter().zip(w.chunks_exact(R)) {
            let p = src.add(off);
            let (v0, v1) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            for (ar, wv) in a.iter_mut().zip(wt) {
                let wv = _mm256_broadcast_ss(wv);
                ar[0] = _mm256_fmadd_ps(wv, v0, ar[0]);
                ar[1] = _mm256_fmadd_ps(wv, v1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            let d = dst.add(r * plane);
            _mm256_storeu_ps(d, ar[0]);
            _mm256_storeu_ps(d.add(8), ar[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) / 50.0)
            .collect()
    }

    /// Against the plain sum, for channel counts that fill, and do not fill, the last block,
    /// rows with and without a tail, one and several rows, one and two threads. Tolerance
    /// `1e-5·(1+K)` for K summed terms (f32 reassociation).
    #[test]
    fn matches_the_plain_sum() {
        for (m, k, oh, ow, threads) in [
            (1usize, 1usize, 1usize, 5usize, 1usize),
            (6, 24, 1, 256, 1),
            (7, 3, 3, 17, 2),
            (24, 75, 4, 40, 2),
            (13, 96, 1, 200, 2),
        ] {
            let row_step = ow + 9;
            let offs: Vec<usize> = (0..k).map(|t| t * 3 + (t % 5)).collect();
            let src = values(offs.iter().max().unwrap() + oh * row_step + ow, k);
            let w = values(m * k, m);
            let init = values(m * oh * ow, 7);
            let packed = Packed::new(&w, m, k).unwrap();
            let mut got = init.clone();
            let rows = Rows { oh, ow, row_step };
            let team = crate::fast::team::Team::new(threads).unwrap();
            let workers = crate::fast::team::Workers::of(Some(&team));
            accumulate(&mut got, &src, &offs, &packed, rows, workers).unwrap();
            for ch in 0..m {
                for oy in 0..oh {
                    for x in 0..ow {
                        let want = init[(ch * oh + oy) * ow + x]
                            + (0..k)
                                .map(|t| w[ch * k + t] * src[offs[t] + oy * row_step + x])
                                .sum::<f32>();
                        let g = got[(ch * oh + oy) * ow + x];
                        assert!(
                            (g - want).abs() <= 1e-5 * (1.0 + k as f32),
                            "m={m} k={k} [{ch},{oy},{x}]: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_extents_that_do_not_fit() {
        let packed = Packed::new(&[1.0; 6], 2, 3).unwrap();
        let mut dst = vec![0f32; 2 * 4];
        let rows = Rows {
            oh: 1,
            ow: 4,
            row_step: 0,
        };
        // The furthest term reads past the source.
        assert!(accumulate(&mut dst, &[0.0; 8], &[0, 2, 5], &packed, rows, Workers::ONE).is_err());
        assert!(accumulate(&mut dst, &[0.0; 8], &[0, 2], &packed, rows, Workers::ONE).is_err());
        assert!(accumulate(&mut dst, &[0.0; 9], &[0, 2, 5], &packed, rows, Workers::ONE).is_ok());
    }
}
