//! Alignment: the similarity transform (rotation, uniform scale, translation) that best maps detected
//! landmarks onto SFace's 112×112 ArcFace template, and a bilinear warp that cuts the chip.
//!
//! BlazeFace gives the mouth centre, not the two corners the 5-point template has, so the 4-point fit
//! uses eyes, nose tip and the corners' midpoint. Pixel convention: integer coordinates are pixel
//! centres, as in OpenCV's `warpAffine`, which is how the template was measured.

/// ArcFace 5-point template (112×112): right eye, left eye, nose tip, right and left mouth corner
/// (person's right = image left).
pub const ARCFACE_5: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The 4 points BlazeFace can give: both eyes, nose tip, and the midpoint of the mouth corners.
pub const TEMPLATE_4: [[f32; 2]; 4] = [
    ARCFACE_5[0],
    ARCFACE_5[1],
    ARCFACE_5[2],
    [
        (ARCFACE_5[3][0] + ARCFACE_5[4][0]) / 2.0,
        (ARCFACE_5[3][1] + ARCFACE_5[4][1]) / 2.0,
    ],
];

pub const CHIP: usize = 112;

/// `p' = [a −b; b a]·p + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub t: [f32; 2],
}

impl Similarity {
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.t[0],
            self.b * p[0] + self.a * p[1] + self.t[1],
        ]
    }

    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }

    /// The inverse map; `None` for a degenerate (zero-scale) transform.
    pub fn inverse(&self) -> Option<Similarity> {
        let s2 = self.a * self.a + self.b * self.b;
        if s2 <= f32::EPSILON {
            return None;
        }
        let (a, b) = (self.a / s2, -self.b / s2);
        Some(Similarity {
            a,
            b,
            t: [
                -(a * self.t[0] - b * self.t[1]),
                -(b * self.t[0] + a * self.t[1]),
            ],
        })
    }
}

/// Least-squares similarity from `src` to `dst` (Umeyama's closed form without reflection, in 2-D).
/// `None` when the points are fewer than two, of different counts, or all coincide.
pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
    if src.len() != dst.len() || src.len() < 2 {
        return None;
    }
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]]| {
        p.iter().fold([0f64; 2], |m, v| {
            [m[0] + v[0] as f64 / n, m[1] + v[1] as f64 / n]
        })
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut dot, mut cross, mut var) = (0f64, 0f64, 0f64);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] as f64 - ms[0], s[1] as f64 - ms[1]);
        let (dx, dy) = (d[0] as f64 - md[0], d[1] as f64 - md[1]);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        var += sx * sx + sy * sy;
    }
    if var <= 1e-12 {
        return None;
    }
    let (a, b) = (dot / var, cross / var);
    let t = [
        md[0] - (a * ms[0] - b * ms[1]),
        md[1] - (b * ms[0] + a * ms[1]),
    ];
    Some(Similarity {
        a: a as f32,
        b: b as f32,
        t: [t[0] as f32, t[1] as f32],
    })
}

/// The frame → chip transform for BlazeFace keypoints (frame pixels, in BlazeFace order).
pub fn from_blazeface(keypoints: &[[f32; 2]; 6]) -> Option<Similarity> {
    fit(&keypoints[..4], &TEMPLATE_4)
}

/// Cuts a `CHIP`×`CHIP` chip from a packed RGBA8 frame (`frame_w`×`frame_h`) with bilinear sampling;
/// outside the frame reads as black. Output: planar RGB f32 in 0–255 (SFace's input), channel-major.
/// This is the plain-Rust reference of the GPU warp.
pub fn warp_chip(
    rgba: &[u32],
    frame_w: usize,
    frame_h: usize,
    to_chip: &Similarity,
) -> Option<Vec<f32>> {
    warp_chip_from_region(rgba, frame_w, frame_h, [0, 0], to_chip)
}

/// [`warp_chip`] reading only a region of the frame: `rgba` holds the `w`×`h` pixels whose top-left
/// is frame pixel `origin`, and `to_chip` still maps *frame* coordinates. Every sample position and
/// bilinear weight is computed in frame coordinates exactly as [`warp_chip`] computes them, and the
/// origin is subtracted from the integer pixel index only, so when the region holds every pixel the
/// chip touches (the chip's footprint plus a pixel) the result is bit-identical to warping the whole
/// frame, without a whole-frame copy. Pixels outside the region read as black.
pub fn warp_chip_from_region(
    rgba: &[u32],
    w: usize,
    h: usize,
    origin: [usize; 2],
    to_chip: &Similarity,
) -> Option<Vec<f32>> {
    if rgba.len() < w.checked_mul(h)? {
        return None;
    }
    let inv = to_chip.inverse()?;
    let (ox, oy) = (origin[0] as i64, origin[1] as i64);
    let mut out = vec![0f32; 3 * CHIP * CHIP];
    let px = |x: i64, y: i64, c: usize| -> f32 {
        let (x, y) = (x - ox, y - oy);
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            return 0.0;
        }
        ((rgba[y as usize * w + x as usize] >> (8 * c)) & 0xff) as f32
    };
    for v in 0..CHIP {
        for u in 0..CHIP {
            let [x, y] = inv.apply([u as f32, v as f32]);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                out[c * CHIP * CHIP + v * CHIP + u] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    Some(out)
}

/// The frame region a chip samples: the chip's corners mapped back into the frame, a pixel of
/// margin for the bilinear taps and one for rounding, clipped to the frame. Half-open
/// `[x0, y0, x1, y1]`; empty when the face lies outside the frame. `None` for a degenerate transform.
pub fn chip_footprint(to_chip: &Similarity, frame_w: usize, frame_h: usize) -> Option<[usize; 4]> {
    let inv = to_chip.inverse()?;
    let c = CHIP as f32;
    let corners = [[0.0, 0.0], [c, 0.0], [0.0, c], [c, c]].map(|p| inv.apply(p));
    let clamp = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi);
    let lo = |i: usize| corners.iter().map(|p| p[i]).fold(f32::MAX, f32::min) - 2.0;
    let hi = |i: usize| corners.iter().map(|p| p[i]).fold(f32::MIN, f32::max) + 3.0;
    Some([
        clamp(lo(0), frame_w),
        clamp(lo(1), frame_h),
        clamp(hi(0), frame_w),
        clamp(hi(1), frame_h),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_known_transform_exactly() {
        let truth = Similarity {
            a: 0.8 * 0.2f32.cos(),
            b: 0.8 * 0.2f32.sin(),
            t: [-30.0, 12.5],
        };
        let src: Vec<[f32; 2]> = [
            [100.0, 120.0],
            [160.0, 118.0],
            [131.0, 150.0],
            [130.0, 180.0],
        ]
        .to_vec();
        let dst: Vec<[f32; 2]> = src.iter().map(|p| truth.apply(*p)).collect();
        let got = fit(&src, &dst).expect("fits");
        assert!(
            (got.a - truth.a).abs() < 1e-5 && (got.b - truth.b).abs() < 1e-5,
            "{got:?}"
        );
        assert!((got.t[0] - truth.t[0]).abs() < 1e-3 && (got.t[1] - truth.t[1]).abs() < 1e-3);
        let back = got
            .inverse()
            .expect("invertible")
            .apply(got.apply([7.0, -3.0]));
        assert!((back[0] - 7.0).abs() < 1e-4 && (back[1] + 3.0).abs() < 1e-4);
    }

    #[test]
    fn degenerate_points_are_refused() {
        assert!(fit(&[[1.0, 1.0]; 4], &TEMPLATE_4).is_none());
        assert!(fit(&[[1.0, 1.0]], &[[2.0, 2.0]]).is_none());
        assert!(fit(&[[0.0, 0.0], [1.0, 0.0]], &TEMPLATE_4).is_none());
    }

    #[test]
    fn template_points_land_on_template() {
        // Landmarks already at template positions, scaled ×2 and shifted: the chip is that face.
        let kp: [[f32; 2]; 6] = [
            [TEMPLATE_4[0][0] * 2.0 + 10.0, TEMPLATE_4[0][1] * 2.0 + 5.0],
            [TEMPLATE_4[1][0] * 2.0 + 10.0, TEMPLATE_4[1][1] * 2.0 + 5.0],
            [TEMPLATE_4[2][0] * 2.0 + 10.0, TEMPLATE_4[2][1] * 2.0 + 5.0],
            [TEMPLATE_4[3][0] * 2.0 + 10.0, TEMPLATE_4[3][1] * 2.0 + 5.0],
            [0.0, 0.0],
            [0.0, 0.0],
        ];
        let s = from_blazeface(&kp).expect("fits");
        assert!((s.scale() - 0.5).abs() < 1e-5);
        for (k, t) in kp.iter().take(4).zip(TEMPLATE_4) {
            let p = s.apply(*k);
            assert!((p[0] - t[0]).abs() < 1e-3 && (p[1] - t[1]).abs() < 1e-3);
        }
    }

    #[test]
    fn warp_samples_bilinearly_and_blacks_out_the_outside() {
        // A horizontal ramp: red = x. An identity-scale shift by 0.5 px must interpolate.
        let (w, h) = (200usize, 150usize);
        let frame: Vec<u32> = (0..w * h).map(|i| (i % w) as u32 | 0xff00_0000).collect();
        let s = Similarity {
            a: 1.0,
            b: 0.0,
            t: [-10.5, -20.0],
        };
        let chip = warp_chip(&frame, w, h, &s).expect("warps");
        assert!((chip[0] - 10.5).abs() < 1e-4, "{}", chip[0]);
        assert!((chip[111] - 121.5).abs() < 1e-4);
        let far = Similarity {
            a: 1.0,
            b: 0.0,
            t: [-500.0, 0.0],
        };
        assert!(
            warp_chip(&frame, w, h, &far)
                .expect("warps")
                .iter()
                .all(|&v| v == 0.0)
        );
        assert!(warp_chip(&frame[..10], w, h, &s).is_none());
    }

    #[test]
    fn region_warp_is_bit_identical_to_the_whole_frame() {
        // A textured frame and a rotated, scaled face in it: cutting only the footprint must not
        // change a single value.
        let (w, h) = (300usize, 220usize);
        let frame: Vec<u32> = (0..w * h)
            .map(|i| ((i * 7919) % 251) as u32 | (((i * 31) % 256) as u32) << 8 | 0xff00_0000)
            .collect();
        let s = Similarity {
            a: 0.61 * 0.3f32.cos(),
            b: 0.61 * 0.3f32.sin(),
            t: [-71.3, -40.9],
        };
        let whole = warp_chip(&frame, w, h, &s).expect("warps");
        let [x0, y0, x1, y1] = chip_footprint(&s, w, h).expect("footprint");
        assert!(x1 - x0 < w || y1 - y0 < h, "the footprint is a real crop");
        let region: Vec<u32> = (y0..y1)
            .flat_map(|y| frame[y * w + x0..y * w + x1].iter().copied())
            .collect();
        let cut = warp_chip_from_region(&region, x1 - x0, y1 - y0, [x0, y0], &s).expect("warps");
        assert_eq!(whole, cut);
    }
}
