//! Getting pixels into the networks: the detector's letterboxed NHWC input and the packed frame the
//! alignment warp samples. CPU versions; the station does the same on the GPU from the normalised frame.

use super::blazeface::Letterbox;

/// Resizes an RGB8 image (`w`×`h`, rows top-down) into a square `input`×`input` NHWC tensor in
/// [−1, 1] (BlazeFace's input), letterboxed: aspect kept, bars black (−1). Bilinear sampling at pixel
/// centres. `None` when the buffer is shorter than `w·h·3` or a side is zero.
pub fn detector_input(
    rgb: &[u8],
    w: usize,
    h: usize,
    input: usize,
) -> Option<(Vec<f32>, Letterbox)> {
    if w == 0 || h == 0 || rgb.len() < w.checked_mul(h)?.checked_mul(3)? {
        return None;
    }
    let lb = Letterbox::fit(w, h, input);
    let mut out = vec![-1f32; input * input * 3];
    let at = |x: usize, y: usize, c: usize| rgb[(y * w + x) * 3 + c] as f32;
    for oy in 0..input {
        for ox in 0..input {
            let sx = (ox as f32 + 0.5 - lb.pad[0]) / lb.scale - 0.5;
            let sy = (oy as f32 + 0.5 - lb.pad[1]) / lb.scale - 0.5;
            if sx < -0.5 || sy < -0.5 || sx > w as f32 - 0.5 || sy > h as f32 - 0.5 {
                continue;
            }
            let (x0, y0) = (sx.floor().max(0.0), sy.floor().max(0.0));
            let (fx, fy) = ((sx - x0).clamp(0.0, 1.0), (sy - y0).clamp(0.0, 1.0));
            let (x0, y0) = (x0 as usize, y0 as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            for c in 0..3 {
                let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
                let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
                out[(oy * input + ox) * 3 + c] = (top * (1.0 - fy) + bottom * fy) / 127.5 - 1.0;
            }
        }
    }
    Some((out, lb))
}

/// RGB8 → packed RGBA8 (`r | g<<8 | b<<16 | a<<24`), the layout of the lighting-normalised frame.
pub fn pack_rgba(rgb: &[u8]) -> Vec<u32> {
    rgb.chunks_exact(3).map(pack_pixel).collect()
}

/// One RGB8 pixel (at least 3 bytes) packed as [`pack_rgba`] packs it.
pub fn pack_pixel(p: &[u8]) -> u32 {
    p[0] as u32 | (p[1] as u32) << 8 | (p[2] as u32) << 16 | 0xff00_0000
}

/// One packed pixel back to RGB8: the inverse of [`pack_pixel`] (alpha dropped).
pub fn unpack_pixel(p: u32) -> [u8; 3] {
    [p as u8, (p >> 8) as u8, (p >> 16) as u8]
}

/// Cosine similarity, the one similarity used everywhere (matching, enrolment, calibration).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += (*x as f64) * (*y as f64);
        na += (*x as f64) * (*x as f64);
        nb += (*y as f64) * (*y as f64);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// Euclidean norm, accumulated in f64.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt()
}

/// L2-normalised copy (a zero vector stays zero): the one L2 normalisation of the workspace
/// (embeddings, templates, the engine's model tests).
pub fn l2_normalise(v: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    l2_normalise_into(v, &mut out);
    out
}

/// [`l2_normalise`] into `out` (as many values as fit), for callers that keep the result in a
/// fixed array or zeroized buffer.
pub fn l2_normalise_into(v: &[f32], out: &mut [f32]) {
    let n = l2_norm(v);
    for (o, x) in out.iter_mut().zip(v) {
        *o = if n == 0.0 { *x } else { (*x as f64 / n) as f32 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterboxed_input_keeps_aspect_and_pads_black() {
        // 4x2 white image into 4x4: rows 0 and 3 are bars (−1), rows 1–2 white (+1).
        let rgb = vec![255u8; 4 * 2 * 3];
        let (t, lb) = detector_input(&rgb, 4, 2, 4).expect("fits");
        assert_eq!(lb.pad, [0.0, 1.0]);
        assert!(t[..12].iter().all(|&v| v == -1.0));
        assert!(t[12..36].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(t[36..].iter().all(|&v| v == -1.0));
        assert!(detector_input(&rgb[..5], 4, 2, 4).is_none());
        assert!(detector_input(&rgb, 0, 2, 4).is_none());
    }

    #[test]
    fn cosine_and_normalise() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        let n = l2_normalise(&[3.0, 4.0]);
        assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] - 0.8).abs() < 1e-6);
        assert_eq!(pack_rgba(&[1, 2, 3]), vec![0xff03_0201]);
    }
}
