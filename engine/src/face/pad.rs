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

/// The network input for one face: the crop window of an RGB8 image resized to 80×80 (bilinear
/// at pixel centres, edges clamped: OpenCV's `INTER_LINEAR`), planar BGR in 0..255, `[3, 80, 80]`.
/// `None` when the image is shorter than `w·h·3` or the window is empty.
pub fn network_input(
    rgb: &[u8],
    w: usize,
    h: usize,
    bbox: FaceBox,
    scale: f32,
) -> Option<Vec<f32>> {
    if rgb.len() < w.checked_mul(h)?.checked_mul(3)? {
        return None;
    }
    let [x0, y0, x1, y1] = crop_window(w, h, bbox, scale)?;
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let (fx, fy) = (cw as f32 / INPUT as f32, ch as f32 / INPUT as f32);
    let plane = INPUT * INPUT;
    let mut out = vec![0f32; 3 * plane];
    let at = |x: usize, y: usize, c: usize| f32::from(rgb[((y0 + y) * w + x0 + x) * 3 + c]);
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
            for c in 0..3 {
                let top = at(xa, ya, c) * (1.0 - wx) + at(xb, ya, c) * wx;
                let bottom = at(xa, yb, c) * (1.0 - wx) + at(xb, yb, c) * wx;
                // RGB in, BGR out: plane 0 is blue.
                out[(2 - c) * plane + oy * INPUT + ox] = top * (1.0 - wy) + bottom * wy;
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
        let x = network_input(&rgb, w, h, [10.0, 10.0, 20.0, 20.0], 2.7).unwrap();
        let plane = INPUT * INPUT;
        assert!(x[..plane].iter().all(|v| *v == 30.0), "blue first");
        assert!(x[plane..2 * plane].iter().all(|v| *v == 20.0));
        assert!(x[2 * plane..].iter().all(|v| *v == 10.0));
        assert!(network_input(&rgb[..10], w, h, [10.0, 10.0, 20.0, 20.0], 2.7).is_none());
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
