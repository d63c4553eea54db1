//! Presentation-attack detection, the learned cue: MiniVision's Silent-Face pair (MiniFASNetV2 on a
//! crop of 2.7× the face box, MiniFASNetV1SE on 4.0×; Apache-2.0), converted to ONNX by
//! `scripts/pad/convert.py` and committed in `assets/pad/` with the source's sha256.
//!
//! Each network sees an 80×80 crop in BGR order with raw 0–255 values (no normalisation: that is
//! how they were trained), cut the way upstream cuts it: the face box scaled about its centre, as
//! far as the image allows, shifted back inside the image rather than padded. Both give logits for
//! three classes of which class 1 is live; the verdict averages the two softmaxes, as upstream's
//! predictor does. The wider crop shows the edges of a print or a phone around the face, the tighter
//! one the texture of the skin.

use std::path::{Path, PathBuf};

use super::blazeface::Detection;
use super::chain::{FaceError, Rgb};
use crate::Tensor;
use crate::fast::FastModel;

/// Side of each network's square input.
pub const INPUT: usize = 80;

/// The pair: model file (in the models folder) and crop scale of the face box.
pub const MODELS: [(&str, f32); 2] = [
    ("minifasnet_v2_2.7_80x80.onnx", 2.7),
    ("minifasnet_v1se_4.0_80x80.onnx", 4.0),
];

/// The class of the networks' output that means a live face.
pub const LIVE_CLASS: usize = 1;

/// A face box in image pixels: left, top, width, height.
pub type FaceBox = [f32; 4];

/// Upstream's crop window for `bbox` at `scale` in a `w`×`h` image: inclusive pixel bounds
/// `[x0, y0, x1, y1]`. `None` for an empty image or box.
pub fn crop_window(w: usize, h: usize, bbox: FaceBox, scale: f32) -> Option<[usize; 4]> {
    let [x, y, bw, bh] = bbox;
    if w < 2 || h < 2 || !(bw > 0.0 && bh > 0.0) || !bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (sw, sh) = ((w - 1) as f32, (h - 1) as f32);
    // The box grows by `scale` unless the image is too small for that.
    let scale = scale.min(sh / bh).min(sw / bw);
    let (nw, nh) = (bw * scale, bh * scale);
    let (cx, cy) = (x + bw / 2.0, y + bh / 2.0);
    let (mut x0, mut y0, mut x1, mut y1) =
        (cx - nw / 2.0, cy - nh / 2.0, cx + nw / 2.0, cy + nh / 2.0);
    // Shifted, not cut, at the image's edges.
    if x0 < 0.0 {
        x1 -= x0;
        x0 = 0.0;
    }
    if y0 < 0.0 {
        y1 -= y0;
        y0 = 0.0;
    }
    if x1 > sw {
        x0 -= x1 - sw;
        x1 = sw;
    }
    if y1 > sh {
        y0 -= y1 - sh;
        y1 = sh;
    }
    // Truncation toward zero, as upstream's `int()`.
    let px = |v: f32, hi: f32| v.clamp(0.0, hi) as usize;
    let win = [px(x0, sw), px(y0, sh), px(x1, sw), px(y1, sh)];
    (win[2] >= win[0] && win[3] >= win[1]).then_some(win)
}

/// An image PAD can crop from: the chain's RGB8 images, or the station's packed frames.
pub trait Pixels {
    /// Width and height.
    fn size(&self) -> (usize, usize);
    /// Red, green, blue of pixel (`x`, `y`), inside [`Pixels::size`].
    fn rgb(&self, x: usize, y: usize) -> [u8; 3];
}

impl Pixels for Rgb<'_> {
    fn size(&self) -> (usize, usize) {
        // An image whose buffer is shorter than it says has no pixels to read.
        let enough = self.w.checked_mul(self.h).and_then(|n| n.checked_mul(3));
        if enough.is_some_and(|n| self.rgb.len() >= n) {
            (self.w, self.h)
        } else {
            (0, 0)
        }
    }

    fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// The network input for one face: the crop window of an image resized to 80×80 (bilinear at
/// pixel centres, edges clamped: OpenCV's `INTER_LINEAR`), planar BGR in 0..255, `[3, 80, 80]`.
/// `None` when the window is empty.
pub fn network_input(img: &dyn Pixels, bbox: FaceBox, scale: f32) -> Option<Vec<f32>> {
    let (w, h) = img.size();
    let [x0, y0, x1, y1] = crop_window(w, h, bbox, scale)?;
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let (fx, fy) = (cw as f32 / INPUT as f32, ch as f32 / INPUT as f32);
    let plane = INPUT * INPUT;
    let mut out = vec![0f32; 3 * plane];
    let at = |x: usize, y: usize| img.rgb(x0 + x, y0 + y).map(f32::from);
    for oy in 0..INPUT {
        let sy = ((oy as f32 + 0.5) * fy - 0.5).max(0.0);
        let ya = (sy.floor() as usize).min(ch - 1);
        let yb = (ya + 1).min(ch - 1);
        let wy = sy - ya as f32;
        for ox in 0..INPUT {
            let sx = ((ox as f32 + 0.5) * fx - 0.5).max(0.0);
            let xa = (sx.floor() as usize).min(cw - 1);
            let xb = (xa + 1).min(cw - 1);
            let wx = sx - xa as f32;
            let (a, b, c, d) = (at(xa, ya), at(xb, ya), at(xa, yb), at(xb, yb));
            for k in 0..3 {
                let top = a[k] * (1.0 - wx) + b[k] * wx;
                let bottom = c[k] * (1.0 - wx) + d[k] * wx;
                // RGB in, BGR out: plane 0 is blue.
                out[(2 - k) * plane + oy * INPUT + ox] = top * (1.0 - wy) + bottom * wy;
            }
        }
    }
    Some(out)
}

/// Softmax of one network's logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// The pair's verdict: the probability of a live face, the mean of both networks' class-1
/// softmax. `None` when a logit row is not three finite classes.
pub fn live_probability(logits: &[&[f32]]) -> Option<f32> {
    if logits.is_empty() {
        return None;
    }
    let mut sum = 0f32;
    for l in logits {
        if l.len() != 3 || !l.iter().all(|v| v.is_finite()) {
            return None;
        }
        sum += softmax(l)[LIVE_CLASS];
    }
    Some(sum / logits.len() as f32)
}

/// Where the PAD networks are: `$GATE_PAD`, else the workspace's `assets/pad/` (committed, so a
/// fresh checkout needs no download).
pub fn assets_dir() -> PathBuf {
    std::env::var_os("GATE_PAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/pad"))
}

/// The face box PAD crops around, from a BlazeFace detection: its box, left-top-width-height.
///
/// Upstream cut its crops around a RetinaFace box; BlazeFace's is similar in size (the crops are
/// 2.7× and 4.0× of it, so the context dominates). On upstream's three samples our box and
/// upstream's give the same verdicts (`gate-calibrate pad --face-box`, docs/pad.md), so the box
/// is used as found.
pub fn face_box(d: &Detection) -> FaceBox {
    let [w, h] = d.size;
    [d.center[0] - w / 2.0, d.center[1] - h / 2.0, w, h]
}

/// The PAD pair on the engine's fast CPU executor (held to the reference and to upstream's
/// PyTorch by `engine/tests/pad.rs`): one batch per network for all the faces of one image.
pub struct PadPair {
    nets: Vec<(FastModel, f32)>,
}

impl PadPair {
    /// Loads both networks from `dir` (usually [`assets_dir`]) for `threads` worker threads.
    pub fn load(dir: &Path, threads: usize) -> Result<Self, FaceError> {
        let mut nets = Vec::with_capacity(MODELS.len());
        for (file, scale) in MODELS {
            let path = dir.join(file);
            let load = |source| FaceError::PadLoad {
                path: path.clone(),
                source,
            };
            let g = crate::load(&path).map_err(load)?;
            nets.push((FastModel::new(g, threads).map_err(load)?, scale));
        }
        Ok(Self { nets })
    }

    /// The live probability of each face (an image and a face box in it), in order, in one batch
    /// per network; `None` for a face that gives no crop (empty or not finite box) and for a
    /// network output that is not three finite logits.
    pub fn live(&self, faces: &[(&dyn Pixels, FaceBox)]) -> Result<Vec<Option<f32>>, FaceError> {
        let plane = 3 * INPUT * INPUT;
        let mut inputs: Vec<Vec<f32>> = vec![Vec::new(); self.nets.len()];
        // Only faces with a crop in every network's window are run.
        let mut ok = Vec::with_capacity(faces.len());
        'face: for (i, (img, bbox)) in faces.iter().enumerate() {
            let mut xs = Vec::with_capacity(self.nets.len());
            for (_, scale) in &self.nets {
                match network_input(*img, *bbox, *scale) {
                    Some(x) => xs.push(x),
                    None => continue 'face,
                }
            }
            for (input, x) in inputs.iter_mut().zip(xs) {
                input.extend_from_slice(&x);
            }
            ok.push(i);
        }
        let mut live = vec![None; faces.len()];
        if ok.is_empty() {
            return Ok(live);
        }
        let mut logits: Vec<Vec<f32>> = Vec::with_capacity(self.nets.len());
        for ((net, _), batch) in self.nets.iter().zip(inputs) {
            let run = |source| FaceError::Run {
                model: "MiniFASNet",
                source,
            };
            debug_assert_eq!(batch.len(), ok.len() * plane);
            let x = Tensor::new(vec![ok.len(), 3, INPUT, INPUT], batch).map_err(run)?;
            let out = net.run(&[x]).map_err(run)?;
            let out = out.into_iter().next().ok_or(FaceError::PadOutput)?;
            if out.data.len() != ok.len() * 3 {
                return Err(FaceError::PadOutput);
            }
            logits.push(out.data);
        }
        for (b, &i) in ok.iter().enumerate() {
            let rows: Vec<&[f32]> = logits.iter().map(|l| &l[b * 3..][..3]).collect();
            live[i] = live_probability(&rows);
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_window_grows_about_the_centre_and_shifts_inside() {
        // A 100×100 box in the middle of a 640×480 image: 2.7× fits.
        let [x0, y0, x1, y1] = crop_window(640, 480, [270.0, 190.0, 100.0, 100.0], 2.7).unwrap();
        assert_eq!([x0, y0, x1, y1], [185, 105, 455, 375]);
        // Near the left edge the window shifts right instead of being cut.
        let [x0, _, x1, _] = crop_window(640, 480, [0.0, 190.0, 100.0, 100.0], 2.7).unwrap();
        assert_eq!((x0, x1), (0, 270));
        // Too large for the image: the scale shrinks to what fits.
        let [_, y0, _, y1] = crop_window(640, 480, [200.0, 100.0, 300.0, 300.0], 4.0).unwrap();
        assert_eq!((y0, y1), (0, 479));
        assert!(crop_window(640, 480, [0.0, 0.0, 0.0, 10.0], 2.7).is_none());
        assert!(crop_window(640, 480, [f32::NAN, 0.0, 10.0, 10.0], 2.7).is_none());
    }

    #[test]
    fn network_input_is_bgr_and_keeps_a_flat_colour() {
        let (w, h) = (64, 48);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [10u8, 20, 30]).collect();
        let img = Rgb { rgb: &rgb, w, h };
        let x = network_input(&img, [10.0, 10.0, 20.0, 20.0], 2.7).unwrap();
        let plane = INPUT * INPUT;
        assert!(x[..plane].iter().all(|v| *v == 30.0), "blue first");
        assert!(x[plane..2 * plane].iter().all(|v| *v == 20.0));
        assert!(x[2 * plane..].iter().all(|v| *v == 10.0));
        let short = Rgb {
            rgb: &rgb[..10],
            w,
            h,
        };
        assert!(network_input(&short, [10.0, 10.0, 20.0, 20.0], 2.7).is_none());
    }

    #[test]
    fn live_probability_averages_the_pair() {
        let live = [0.0f32, 10.0, 0.0];
        let spoof = [10.0f32, 0.0, 0.0];
        let p = live_probability(&[&live, &spoof]).unwrap();
        assert!((p - 0.5).abs() < 1e-3, "{p}");
        assert!(live_probability(&[&live]).unwrap() > 0.99);
        assert!(live_probability(&[&[f32::NAN, 0.0, 0.0]]).is_none());
        assert!(live_probability(&[]).is_none());
    }
}
