//! Lighting normalisation on the CPU, for stations whose recogniser runs on the CPU (no GPU, or a
//! software Vulkan such as lavapipe). There the WGSL kernel costs more than the CPU doing the same
//! work, and the CPU backend would read the whole normalised frame back anyway; here a frame never
//! leaves the CPU. Histograms, statistics and tables are the reference's own steps (`reference.rs`);
//! the per-pixel step is rewritten for speed (each column's and row's tile blend worked out once,
//! tables instead of divisions, rounding without a libm call) with the same arithmetic, so the
//! output is the reference's bit for bit (tested below). Rows are split between threads, and a frame
//! is checked against its layout first instead of indexing out of bounds.

use zeroize::Zeroizing;

use super::lighting::NormaliseError;
use super::reference::{frame_stats, luma_levels, mix, tile_histograms, tile_luts};
use super::{FrameLayout, LightingStats, NormaliseParams, tile_grid};

/// One frame's statistics and its normalised pixels (packed RGBA, row by row, no padding).
pub struct CpuFrame {
    pub stats: LightingStats,
    pub rgba: Zeroizing<Vec<u32>>,
}

/// Checks that `frame` holds every row `layout` says it has, and that the frame is a size the
/// normaliser supports (the same rule as the GPU kernel's).
pub fn check(frame: &[u8], l: &FrameLayout) -> Result<(), NormaliseError> {
    if l.width < 16 || l.height < 16 || l.width % 2 == 1 || l.height % 2 == 1 {
        return Err(NormaliseError::BadSize {
            w: l.width,
            h: l.height,
        });
    }
    if l.y_stride < l.width || l.u_stride < l.width.div_ceil(2) || l.v_stride < l.width.div_ceil(2)
    {
        return Err(NormaliseError::BadStride {
            w: l.width,
            y: l.y_stride,
            u: l.u_stride,
            v: l.v_stride,
        });
    }
    if frame.len() < l.size() {
        return Err(NormaliseError::ShortFrame {
            got: frame.len(),
            want: l.size(),
            w: l.width,
            h: l.height,
        });
    }
    Ok(())
}

/// Normalises one I420 frame on up to `threads` threads.
pub fn normalise(
    frame: &[u8],
    l: &FrameLayout,
    p: &NormaliseParams,
    threads: usize,
) -> Result<CpuFrame, NormaliseError> {
    check(frame, l)?;
    let hists = tile_histograms(frame, l, p);
    let stats = frame_stats(&hists, p);
    let luts = tile_luts(&hists, &stats, l, p);
    let map = PixelMap::new(l, p);
    let width = l.width as usize;
    let mut rgba = Zeroizing::new(vec![0u32; width * l.height as usize]);
    let threads = threads.clamp(1, l.height as usize);
    let rows_each = (l.height as usize).div_ceil(threads);
    let (map, luts) = (&map, &luts);
    std::thread::scope(|s| {
        for (k, band) in rgba.chunks_mut(rows_each * width).enumerate() {
            let first = k * rows_each;
            let mut work = move || {
                for (i, row) in band.chunks_mut(width).enumerate() {
                    map.row(frame, luts, first + i, row);
                }
            };
            if k + 1 == threads {
                work(); // the last band on this thread: one spawn fewer
            } else {
                s.spawn(work);
            }
        }
    });
    Ok(CpuFrame { stats, rgba })
}

/// Where a pixel sits between tile centres along one axis: the offsets of the two tiles' tables
/// and the weight of the second (the reference's arithmetic, once per column or row).
#[derive(Debug, Clone, Copy)]
struct Blend {
    t0: usize,
    t1: usize,
    a: f32,
}

impl Blend {
    fn at(i: u32, tile: u32, tiles: u32, scale: usize) -> Self {
        let f = ((i as f32 + 0.5) / tile as f32 - 0.5).clamp(0.0, (tiles - 1) as f32);
        let t0 = f.floor() as u32;
        Self {
            t0: t0 as usize * scale,
            t1: (t0 + 1).min(tiles - 1) as usize * scale,
            a: f - t0 as f32,
        }
    }
}

/// Step 4 (`apply`) with everything that does not depend on the pixel worked out once.
struct PixelMap {
    layout: FrameLayout,
    /// Floats of one row of tiles' tables.
    tile_row: usize,
    columns: Vec<Blend>,
    rows: Vec<Blend>,
    levels: [u8; 256],
}

impl PixelMap {
    fn new(l: &FrameLayout, p: &NormaliseParams) -> Self {
        let (tx_n, ty_n, tile_w, tile_h) = tile_grid(l.width, l.height, p);
        let tile_row = tx_n as usize * 256;
        Self {
            layout: *l,
            tile_row,
            columns: (0..l.width)
                .map(|x| Blend::at(x, tile_w, tx_n, 256))
                .collect(),
            rows: (0..l.height)
                .map(|y| Blend::at(y, tile_h, ty_n, tile_row))
                .collect(),
            levels: luma_levels(l.limited_range),
        }
    }

    /// Output row `y` into `out` (`width` pixels). `check` has vouched for the layout.
    fn row(&self, frame: &[u8], luts: &[f32], y: usize, out: &mut [u32]) {
        let l = &self.layout;
        let w = l.width as usize;
        let r = self.rows[y];
        let top = &luts[r.t0..][..self.tile_row];
        let bottom = &luts[r.t1..][..self.tile_row];
        let luma = &frame[l.y_off as usize + y * l.y_stride as usize..][..w];
        let c = y / 2;
        let half = w.div_ceil(2);
        let u = &frame[l.u_off as usize + c * l.u_stride as usize..][..half];
        let v = &frame[l.v_off as usize + c * l.v_stride as usize..][..half];
        for (x, (px, (&yv, col))) in out
            .iter_mut()
            .zip(luma.iter().zip(&self.columns))
            .enumerate()
        {
            let b = self.levels[yv as usize] as usize;
            let t = mix(top[col.t0 + b], top[col.t1 + b], col.a);
            let bo = mix(bottom[col.t0 + b], bottom[col.t1 + b], col.a);
            let lv = mix(t, bo, r.a);
            let mut cb = u[x / 2] as f32 - 128.0;
            let mut cr = v[x / 2] as f32 - 128.0;
            if l.limited_range {
                cb *= 255.0 / 224.0;
                cr *= 255.0 / 224.0;
            }
            let red = to8(lv + 1.402 * cr);
            let g = to8(lv - 0.344136 * cb - 0.714136 * cr);
            let bl = to8(lv + 1.772 * cb);
            *px = red | (g << 8) | (bl << 16) | (255 << 24);
        }
    }
}

/// `round_ties_even(v).clamp(0, 255)` as an integer: adding 1.5·2²³ leaves no fraction bits below
/// one, so the FPU's round-to-nearest-even does the rounding (a libm call otherwise, without SSE4.1
/// in the baseline target).
fn to8(v: f32) -> u32 {
    const SHIFT: f32 = 12_582_912.0;
    ((v.clamp(0.0, 255.0) + SHIFT) - SHIFT) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::reference;

    #[test]
    fn rounding_is_the_references() {
        for i in -2000..300_000 {
            let v = i as f32 * 0.001 - 0.5;
            assert_eq!(to8(v), reference::round(v).clamp(0.0, 255.0) as u32, "{v}");
        }
        for v in [0.5, 1.5, 2.5, 254.5, 255.5, -0.5, 1e9, -1e9] {
            assert_eq!(to8(v), reference::round(v).clamp(0.0, 255.0) as u32, "{v}");
        }
    }

    fn frame(l: &FrameLayout, seed: u32) -> Vec<u8> {
        // A cheap deterministic pattern with structure in luma and chroma.
        (0..l.size())
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24;
                let ramp = (i % 640) as u32 / 4;
                ((v / 2 + ramp) % 256) as u8
            })
            .collect()
    }

    /// The CPU normaliser is the reference, bit for bit, whatever the thread count, on full- and
    /// limited-range frames and on a padded layout.
    #[test]
    fn equals_the_reference_bit_for_bit() {
        let mut padded = FrameLayout::i420(70, 34);
        padded.y_stride = 80;
        padded.u_stride = 48;
        padded.v_stride = 48;
        padded.u_off = 80 * 34 + 16;
        padded.v_off = padded.u_off + 48 * 17;
        let mut limited = FrameLayout::i420(96, 64);
        limited.limited_range = true;
        let p = NormaliseParams::default();
        for (k, l) in [FrameLayout::i420(64, 48), padded, limited]
            .iter()
            .enumerate()
        {
            let f = frame(l, k as u32);
            let want = reference::normalise(&f, l, &p);
            for threads in [1, 2, 3, 7] {
                let got = normalise(&f, l, &p, threads).expect("normalised");
                assert_eq!(got.stats, want.stats, "layout {k}, {threads} threads");
                assert!(*got.rgba == want.rgba, "layout {k}, {threads} threads");
            }
        }
    }

    /// A frame shorter than its layout, strides narrower than the picture, odd or tiny sizes: an
    /// error naming the problem, never a panic.
    #[test]
    fn refuses_frames_that_do_not_fit_their_layout() {
        let p = NormaliseParams::default();
        let l = FrameLayout::i420(64, 48);
        let f = frame(&l, 1);
        assert!(matches!(
            normalise(&f[..l.size() - 1], &l, &p, 2),
            Err(NormaliseError::ShortFrame { .. })
        ));
        let mut narrow = l;
        narrow.y_stride = 32;
        assert!(matches!(
            normalise(&f, &narrow, &p, 2),
            Err(NormaliseError::BadStride { .. })
        ));
        for (w, h) in [(63, 48), (64, 8), (0, 0)] {
            let odd = FrameLayout::i420(w, h);
            assert!(matches!(
                normalise(&vec![0; odd.size()], &odd, &p, 2),
                Err(NormaliseError::BadSize { .. })
            ));
        }
    }
}
