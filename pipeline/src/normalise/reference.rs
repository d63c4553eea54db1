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

fn luma8(y: u8, limited: bool) -> u32 {
    if !limited {
        return y as u32;
    }
    (((y as i32 - 16) * 255 + 109) / 219).clamp(0, 255) as u32
}

/// WGSL's `round` breaks ties to even; Rust's `f32::round` does not.
fn round(v: f32) -> f32 {
    v.round_ties_even()
}

fn mix(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

/// `frame` must hold at least `layout.size()` bytes.
pub fn normalise(frame: &[u8], l: &FrameLayout, p: &NormaliseParams) -> Reference {
    let (tx_n, ty_n, tile_w, tile_h) = tile_grid(l.width, l.height, p);
    let tiles = (tx_n * ty_n) as usize;
    let y_at = |x: u32, y: u32| frame[(l.y_off + y * l.y_stride + x) as usize];
    let rect = |t: usize| {
        let (tx, ty) = (t as u32 % tx_n, t as u32 / tx_n);
        let (x0, y0) = (tx * tile_w, ty * tile_h);
        (
            x0,
            y0,
            (x0 + tile_w).min(l.width),
            (y0 + tile_h).min(l.height),
        )
    };

    let mut tile_hists = vec![0u32; tiles * 256];
    for t in 0..tiles {
        let (x0, y0, x1, y1) = rect(t);
        for y in y0..y1 {
            for x in x0..x1 {
                tile_hists[t * 256 + luma8(y_at(x, y), l.limited_range) as usize] += 1;
            }
        }
    }

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
    for t in 0..tiles {
        for b in 0..256 {
            s.hist[b] += tile_hists[t * 256 + b];
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

    let tone = |b: u32| {
        let x = ((b as f32 - s.dark as f32) * s.gain).clamp(0.0, 1.0);
        round(255.0 * x.powf(s.gamma))
    };
    let mut luts = vec![0f32; tiles * 256];
    for t in 0..tiles {
        let (x0, y0, x1, y1) = rect(t);
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

    let lut = |tx: u32, ty: u32, b: u32| luts[((ty * tx_n + tx) * 256 + b) as usize];
    let to8 = |v: f32| round(v).clamp(0.0, 255.0) as u32;
    let mut rgba = vec![0u32; (l.width * l.height) as usize];
    for y in 0..l.height {
        for x in 0..l.width {
            let b = luma8(y_at(x, y), l.limited_range);
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
            rgba[(y * l.width + x) as usize] = r | (g << 8) | (bl << 16) | (255 << 24);
        }
    }
    Reference {
        tile_hists,
        stats: s,
        luts,
        rgba,
    }
}
