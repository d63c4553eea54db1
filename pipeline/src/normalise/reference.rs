//! Plain-Rust reference of `lighting.wgsl`, step for step, used to check the GPU kernel and
//! as the specification of what the kernel computes.

use super::{FrameLayout, LightingStats, NormaliseParams, tile_grid};

#[derive(Debug, Clone)]
pub struct Reference {
    pub tile_hists: Vec<u32>,
    pub stats: LightingStats,
    pub luts: Vec<f32>,
    pub rgba: Vec<u32>,
}

/// `luma8` of every code value.
pub(super) fn luma_levels(limited: bool) -> [u8; 256] {
    std::array::from_fn(|v| luma8(v as u8, limited) as u8)
}

fn luma8(y: u8, limited: bool) -> u32 {
    if !limited {
        return y as u32;
    }
    (((y as i32 - 16) * 255 + 109) / 219).clamp(0, 255) as u32
}

/// WGSL's `round` breaks ties to even; Rust's `f32::round` does not.
pub(super) fn round(v: f32) -> f32 {
    v.round_ties_even()
}

pub(super) fn mix(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

/// `frame` must hold at least `layout.size()` bytes.
pub fn normalise(frame: &[u8], l: &FrameLayout, p: &NormaliseParams) -> Reference {
    let tile_hists = tile_histograms(frame, l, p);
    let stats = frame_stats(&tile_hists, p);
    let luts = tile_luts(&tile_hists, &stats, l, p);
    let mut rgba = vec![0u32; (l.width * l.height) as usize];
    for (y, row) in rgba.chunks_mut(l.width as usize).enumerate() {
        apply_row(frame, &luts, l, p, y as u32, row);
    }
    Reference {
        tile_hists,
        stats,
        luts,
        rgba,
    }
}

/// Pixel rectangle of tile `t`: x0, y0, x1, y1 (exclusive).
pub(super) fn tile_rect(t: usize, l: &FrameLayout, p: &NormaliseParams) -> (u32, u32, u32, u32) {
    let (tx_n, _, tile_w, tile_h) = tile_grid(l.width, l.height, p);
    let (tx, ty) = (t as u32 % tx_n, t as u32 / tx_n);
    let (x0, y0) = (tx * tile_w, ty * tile_h);
    (
        x0,
        y0,
        (x0 + tile_w).min(l.width),
        (y0 + tile_h).min(l.height),
    )
}

/// Step 1 (`tile_hist`): a 256-bin luma histogram per tile, tiles in row order.
pub(super) fn tile_histograms(frame: &[u8], l: &FrameLayout, p: &NormaliseParams) -> Vec<u32> {
    let (tx_n, ty_n, _, _) = tile_grid(l.width, l.height, p);
    let tiles = (tx_n * ty_n) as usize;
    let mut tile_hists = vec![0u32; tiles * 256];
    let levels = luma_levels(l.limited_range);
    for t in 0..tiles {
        let (x0, y0, x1, y1) = tile_rect(t, l, p);
        let hist = &mut tile_hists[t * 256..][..256];
        for y in y0..y1 {
            let at = (l.y_off + y * l.y_stride) as usize;
            for &v in &frame[at + x0 as usize..at + x1 as usize] {
                hist[levels[v as usize] as usize] += 1;
            }
        }
    }
    tile_hists
}

/// Step 2 (`stats_main`): the frame's histogram, percentiles, gain and gamma.
pub(super) fn frame_stats(tile_hists: &[u32], p: &NormaliseParams) -> LightingStats {
    let mut s = LightingStats {
        hist: [0; 256],
        pixels: 0,
        dark: 255,
        bright: 255,
        _pad: 0,
        mean: 0.0,
        stretched_mean: 0.0,
        gamma: 1.0,
        gain: 1.0,
    };
    for tile in tile_hists.chunks(256) {
        for (b, v) in tile.iter().enumerate() {
            s.hist[b] += v;
        }
    }
    let mut n = 0u32;
    let mut acc = 0.0f32;
    for b in 0..256 {
        n += s.hist[b];
        acc += b as f32 * s.hist[b] as f32;
    }
    let nf = n.max(1) as f32;
    let dark_at = ((p.dark_q * nf).ceil() as u32).max(1);
    let bright_at = ((p.bright_q * nf).ceil() as u32).max(1);
    let mut cum = 0u32;
    let mut found_dark = false;
    for b in 0..256u32 {
        cum += s.hist[b as usize];
        if !found_dark && cum >= dark_at {
            s.dark = b;
            found_dark = true;
        }
        if cum >= bright_at {
            s.bright = b;
            break;
        }
    }
    let range = (s.bright as f32 - s.dark as f32).max(p.min_range);
    s.gain = 1.0 / range;
    let mut smean = 0.0f32;
    for b in 0..256 {
        smean += ((b as f32 - s.dark as f32) * s.gain).clamp(0.0, 1.0) * s.hist[b] as f32;
    }
    smean /= nf;
    let m = smean.clamp(0.02, 0.98);
    s.gamma = (p.target_mean.ln() / m.ln()).clamp(p.gamma_min, p.gamma_max);
    s.pixels = n;
    s.mean = acc / (nf * 255.0);
    s.stretched_mean = smean;
    s
}

/// Step 3 (`tile_lut`): per tile, the tone curve blended with its clipped equalisation.
pub(super) fn tile_luts(
    tile_hists: &[u32],
    s: &LightingStats,
    l: &FrameLayout,
    p: &NormaliseParams,
) -> Vec<f32> {
    let tiles = tile_hists.len() / 256;
    // The global tone curve, the same for every tile.
    let tones: Vec<f32> = (0..256u32)
        .map(|b| {
            let x = ((b as f32 - s.dark as f32) * s.gain).clamp(0.0, 1.0);
            round(255.0 * x.powf(s.gamma))
        })
        .collect();
    let tone = |b: u32| tones[b as usize];
    let mut luts = vec![0f32; tiles * 256];
    for t in 0..tiles {
        let (x0, y0, x1, y1) = tile_rect(t, l, p);
        let total = (x1 - x0) * (y1 - y0);
        let mut h = [0u32; 256];
        for b in 0..256u32 {
            h[tone(b) as usize] += tile_hists[t * 256 + b as usize];
        }
        let limit = ((p.clip_limit * total as f32 / 256.0) as u32).max(1);
        let excess: u32 = h.iter().map(|&v| v.saturating_sub(limit)).sum();
        let mut cdf = [0u32; 256];
        let mut run = 0u32;
        for b in 0..256u32 {
            let mut c = h[b as usize].min(limit) + excess / 256;
            if b < excess % 256 {
                c += 1;
            }
            run += c;
            cdf[b as usize] = run;
        }
        for b in 0..256u32 {
            let tv = tone(b);
            let eq = round(255.0 * cdf[tv as usize] as f32 / total.max(1) as f32);
            luts[t * 256 + b as usize] = tv + p.strength * (eq - tv);
        }
    }
    luts
}

/// Step 4 (`apply`): output row `y` (packed RGBA) into `out`, one pixel at a time as the kernel
/// does it: the pixel's luma through the four nearest tiles' tables, blended bilinearly between tile
/// centres, then the camera's chroma added back.
fn apply_row(
    frame: &[u8],
    luts: &[f32],
    l: &FrameLayout,
    p: &NormaliseParams,
    y: u32,
    out: &mut [u32],
) {
    let (tx_n, ty_n, tile_w, tile_h) = tile_grid(l.width, l.height, p);
    let lut = |tx: u32, ty: u32, b: u32| luts[((ty * tx_n + tx) * 256 + b) as usize];
    let to8 = |v: f32| round(v).clamp(0.0, 255.0) as u32;
    for (x, px) in (0..l.width).zip(out.iter_mut()) {
        let b = luma8(
            frame[(l.y_off + y * l.y_stride + x) as usize],
            l.limited_range,
        );
        let fx = ((x as f32 + 0.5) / tile_w as f32 - 0.5).clamp(0.0, (tx_n - 1) as f32);
        let fy = ((y as f32 + 0.5) / tile_h as f32 - 0.5).clamp(0.0, (ty_n - 1) as f32);
        let (tx0, ty0) = (fx.floor() as u32, fy.floor() as u32);
        let (tx1, ty1) = ((tx0 + 1).min(tx_n - 1), (ty0 + 1).min(ty_n - 1));
        let (ax, ay) = (fx - tx0 as f32, fy - ty0 as f32);
        let top = mix(lut(tx0, ty0, b), lut(tx1, ty0, b), ax);
        let bottom = mix(lut(tx0, ty1, b), lut(tx1, ty1, b), ax);
        let lv = mix(top, bottom, ay);
        let (cx, cy) = (x / 2, y / 2);
        let mut cb = frame[(l.u_off + cy * l.u_stride + cx) as usize] as f32 - 128.0;
        let mut cr = frame[(l.v_off + cy * l.v_stride + cx) as usize] as f32 - 128.0;
        if l.limited_range {
            cb *= 255.0 / 224.0;
            cr *= 255.0 / 224.0;
        }
        let r = to8(lv + 1.402 * cr);
        let g = to8(lv - 0.344136 * cb - 0.714136 * cr);
        let bl = to8(lv + 1.772 * cb);
        *px = r | (g << 8) | (bl << 16) | (255 << 24);
    }
}
