//! Before/after FNMR for `lighting`: enrolment templates, walker face crops cut by the truth boxes,
//! and the gain + gamma half of the station's normaliser in plain Rust (pipeline/src/normalise/
//! reference.rs), here computed from the face box instead of the whole frame and without CLAHE.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use engine::face::{Chip, FaceChain, align};

use super::{Args, Truth, luma};
use crate::photo::Photo;

const GAMMA: (f32, f32) = (0.4, 2.5);
const DARK_Q: f32 = 0.02;
const BRIGHT_Q: f32 = 0.98;
const MIN_RANGE: f32 = 64.0;

/// The gain + gamma tone curve the station's normaliser derives from a luma histogram, as a LUT.
pub fn gain_gamma_lut(hist: &[u32; 256], target: f32) -> [u8; 256] {
    let n: u32 = hist.iter().sum();
    let nf = n.max(1) as f32;
    let q = |p: f32| {
        let at = ((p * nf).ceil() as u32).max(1);
        let mut cum = 0;
        for (b, c) in hist.iter().enumerate() {
            cum += c;
            if cum >= at {
                return b as f32;
            }
        }
        255.0
    };
    let dark = q(DARK_Q);
    let range = (q(BRIGHT_Q) - dark).max(MIN_RANGE);
    let stretch = |b: f32| ((b - dark) / range).clamp(0.0, 1.0);
    let m = hist
        .iter()
        .enumerate()
        .map(|(b, c)| stretch(b as f32) * *c as f32)
        .sum::<f32>()
        / nf;
    let gamma = (target.ln() / m.clamp(0.02, 0.98).ln()).clamp(GAMMA.0, GAMMA.1);
    let mut lut = [0u8; 256];
    for (b, v) in lut.iter_mut().enumerate() {
        *v = (255.0 * stretch(b as f32).powf(gamma)).round() as u8;
    }
    lut
}

/// Applies a luma LUT keeping chroma, as the station's normaliser writes its RGBA frame.
pub(super) fn apply_lut(rgb: &mut [u8], lut: &[u8; 256]) {
    for p in rgb.chunks_exact_mut(3) {
        let (r, b) = (f32::from(p[0]), f32::from(p[2]));
        let y = luma(p);
        let (cb, cr) = (0.564 * (b - y), 0.713 * (r - y));
        let ny = f32::from(lut[y.round().clamp(0.0, 255.0) as usize]);
        let to8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        p[0] = to8(ny + 1.402 * cr);
        p[1] = to8(ny - 0.344_136 * cb - 0.714_136 * cr);
        p[2] = to8(ny + 1.772 * cb);
    }
}

pub(super) struct Templates {
    pipe: FaceChain,
    pub(super) by_identity: BTreeMap<String, Vec<f32>>,
}

fn resolve(photo: &str, o: &Args) -> Result<PathBuf> {
    let p = Path::new(photo);
    let tries = [o.photos_root.join(p), o.footage.join(p)];
    tries.iter().find(|t| t.is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "enrolment photo {photo} not found under {} or {} (the generator's working directory: \
             pass --photos-root)",
            o.photos_root.display(),
            o.footage.display()
        )
    })
}

/// The detection whose centre is nearest `(cx, cy)` and inside `half` of it: in a group photo or a
/// crop holding a second walker, the face meant is the one the truth box points at.
fn nearest(
    pipe: &FaceChain,
    ph: &Photo,
    cx: f32,
    cy: f32,
    half: f32,
) -> Result<Option<engine::face::blazeface::Detection>> {
    let found = pipe.detect(ph.view())?;
    let d2 = |d: &engine::face::blazeface::Detection| {
        (d.center[0] - cx).powi(2) + (d.center[1] - cy).powi(2)
    };
    Ok(found
        .into_iter()
        .filter(|d| d2(d) <= half * half)
        .min_by(|a, b| d2(a).total_cmp(&d2(b))))
}

fn embed_near(
    pipe: &FaceChain,
    ph: &Photo,
    cx: f32,
    cy: f32,
    half: f32,
) -> Result<Option<Vec<f32>>> {
    let Some(d) = nearest(pipe, ph, cx, cy, half)? else {
        return Ok(None);
    };
    let Some(sim) = align::from_blazeface(&d.keypoints) else {
        return Ok(None);
    };
    let chip = Chip::cut(ph.view(), &sim)?;
    Ok(Some(pipe.embed_one(&chip)?.to_vec()))
}

pub(super) fn templates(truth: &Truth, o: &Args) -> Result<Templates> {
    let pipe = FaceChain::load(&o.models)?;
    let mut by_identity = BTreeMap::new();
    for e in &truth.enrol {
        let path = resolve(&e.photo, o)?;
        let ph = Photo::load(&path, 0.5)?;
        let b = ph.border as f32;
        let [x, y, w, h] = e.face;
        match embed_near(&pipe, &ph, x + b + w / 2.0, y + b + h / 2.0, w.max(h) / 2.0)? {
            Some(t) => {
                by_identity.insert(e.identity.clone(), t);
            }
            None => eprintln!(
                "warning: no face at the enrolment box of {} in {}; its walkers are left out",
                e.identity,
                path.display()
            ),
        }
    }
    Ok(Templates { pipe, by_identity })
}

/// Square crop around a face box (2.2× its size; black outside the frame) and the box centre in it.
pub(super) fn crop(rgb: &[u8], w: usize, h: usize, bx: [f32; 4]) -> (Photo, f32, [usize; 4]) {
    let side = (bx[2].max(bx[3]) * 2.2).round().max(8.0) as i64;
    let (cx, cy) = (bx[0] + bx[2] / 2.0, bx[1] + bx[3] / 2.0);
    let (x0, y0) = (
        (cx - side as f32 / 2.0) as i64,
        (cy - side as f32 / 2.0) as i64,
    );
    let s = side as usize;
    let mut out = vec![0u8; s * s * 3];
    for yy in 0..side {
        let fy = y0 + yy;
        if fy < 0 || fy >= h as i64 {
            continue;
        }
        for xx in 0..side {
            let fx = x0 + xx;
            if fx < 0 || fx >= w as i64 {
                continue;
            }
            let src = (fy as usize * w + fx as usize) * 3;
            let dst = (yy as usize * s + xx as usize) * 3;
            out[dst..dst + 3].copy_from_slice(&rgb[src..src + 3]);
        }
    }
    let fx0 = ((bx[0] - x0 as f32).max(0.0) as usize).min(s);
    let fy0 = ((bx[1] - y0 as f32).max(0.0) as usize).min(s);
    let fx1 = ((bx[0] + bx[2] - x0 as f32).max(0.0) as usize).min(s);
    let fy1 = ((bx[1] + bx[3] - y0 as f32).max(0.0) as usize).min(s);
    (
        Photo {
            rgb: out,
            w: s,
            h: s,
            border: 0,
        },
        side as f32 / 2.0,
        [fx0, fy0, fx1, fy1],
    )
}

pub(super) fn score(t: &Templates, ph: &Photo, c: f32, half: f32, id: &str) -> Result<Option<f32>> {
    let Some(tpl) = t.by_identity.get(id) else {
        return Ok(None);
    };
    Ok(embed_near(&t.pipe, ph, c, c, half)?
        .map(|e| e.iter().zip(tpl).map(|(a, b)| a * b).sum::<f32>()))
}

pub(super) fn fnmr(scores: &[Option<f32>], thr: f32) -> Option<f32> {
    (!scores.is_empty()).then(|| {
        scores.iter().filter(|s| s.is_none_or(|v| v < thr)).count() as f32 / scores.len() as f32
    })
}

pub(super) fn mean_cos(scores: &[Option<f32>]) -> Option<f32> {
    let v: Vec<f32> = scores.iter().flatten().copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lut_brings_a_dark_face_to_the_target() {
        let mut hist = [0u32; 256];
        hist[20..60].fill(10);
        let lut = gain_gamma_lut(&hist, 0.45);
        let mean = (20..60).map(|b| f32::from(lut[b])).sum::<f32>() / 40.0 / 255.0;
        assert!((mean - 0.45).abs() < 0.05, "{mean}");
        assert!(lut.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn grey_stays_grey_after_the_lut() {
        let mut px = vec![100u8, 100, 100];
        let mut lut = [0u8; 256];
        lut[100] = 150;
        apply_lut(&mut px, &lut);
        assert_eq!(px, vec![150, 150, 150]);
    }
}
