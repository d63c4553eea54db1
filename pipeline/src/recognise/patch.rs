//! A small grey picture of each face the PAD pair scores, for the two-camera parallax cue
//! (`decide::parallax`): cut on the CPU from the pixels the PAD pair already reads (both backends
//! hold them there for it), so it costs no readback of its own.

use engine::face::pad::{FaceBox, Pixels};
use zeroize::Zeroizing;

/// Side of a patch, pixels: the face box's square resampled to it. 64 keeps the nose's parallax
/// (a few pixels at the door) well above the resampling's blur and costs 4 KiB a face.
pub const SIDE: usize = 64;

/// A face box's square (side the box's larger side, about its centre) as `SIDE`×`SIDE` luma
/// (0–255), row by row, with where it was cut: the two cameras' boxes jitter independently by
/// several pixels, so the parallax cue starts its alignment from the keypoints, which it must
/// place in each patch. A face is biometric data: wiped when dropped, never printed.
#[derive(Clone, PartialEq)]
pub struct Patch {
    px: Zeroizing<Vec<u8>>,
    /// Image coordinates of the patch's top-left corner, and image pixels per patch pixel.
    origin: [f32; 2],
    step: f32,
}

impl std::fmt::Debug for Patch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Patch({SIDE}x{SIDE})")
    }
}

impl Patch {
    /// Cuts `bbox` (x, y, width, height in `img`'s pixels) out of `img`, bilinear, edges
    /// repeated. `None` for an empty or non-finite box or an empty image.
    pub fn cut(img: &dyn Pixels, bbox: FaceBox) -> Option<Patch> {
        let (w, h) = img.size();
        let [x, y, bw, bh] = bbox;
        let side = bw.max(bh);
        if w == 0 || h == 0 || !bbox.iter().all(|v| v.is_finite()) || !(bw > 0.0 && bh > 0.0) {
            return None;
        }
        let (cx, cy, step) = (x + bw / 2.0, y + bh / 2.0, side / SIDE as f32);
        let origin = [cx - side / 2.0, cy - side / 2.0];
        let luma = |px: usize, py: usize| {
            let [r, g, b] = img.rgb(px.min(w - 1), py.min(h - 1));
            0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32
        };
        let mut out = Zeroizing::new(vec![0u8; SIDE * SIDE]);
        for j in 0..SIDE {
            // Pixel centres: the patch pixel's centre in image coordinates, less half a pixel.
            let sy = (origin[1] + (j as f32 + 0.5) * step - 0.5).clamp(0.0, (h - 1) as f32);
            let (y0, fy) = (sy.floor() as usize, sy.fract());
            for i in 0..SIDE {
                let sx = (origin[0] + (i as f32 + 0.5) * step - 0.5).clamp(0.0, (w - 1) as f32);
                let (x0, fx) = (sx.floor() as usize, sx.fract());
                let top = luma(x0, y0) * (1.0 - fx) + luma(x0 + 1, y0) * fx;
                let bottom = luma(x0, y0 + 1) * (1.0 - fx) + luma(x0 + 1, y0 + 1) * fx;
                out[j * SIDE + i] =
                    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
        Some(Patch {
            px: out,
            origin,
            step,
        })
    }

    /// From `SIDE`×`SIDE` luma values, row by row, cut at an image's origin one pixel for one
    /// (`None` for another length).
    pub fn from_luma(px: Vec<u8>) -> Option<Patch> {
        (px.len() == SIDE * SIDE).then(|| Patch {
            px: Zeroizing::new(px),
            origin: [0.0, 0.0],
            step: 1.0,
        })
    }

    /// The same pixels as if cut with its top-left corner at `origin` of an image, `step` image
    /// pixels per patch pixel.
    #[cfg(test)]
    pub(crate) fn framed(self, origin: [f32; 2], step: f32) -> Patch {
        Patch {
            origin,
            step,
            ..self
        }
    }

    /// The patch's luma, row by row.
    pub fn luma(&self) -> &[u8] {
        &self.px
    }

    /// Where a point of the image it was cut from lies in the patch (patch pixel centres at
    /// whole numbers, as `luma` indexes them).
    pub fn place(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            (x + 0.5 - self.origin[0]) / self.step - 0.5,
            (y + 0.5 - self.origin[1]) / self.step - 0.5,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200×100 image whose luma rises one step per column.
    struct Ramp;

    impl Pixels for Ramp {
        fn size(&self) -> (usize, usize) {
            (200, 100)
        }
        fn rgb(&self, x: usize, _y: usize) -> [u8; 3] {
            let v = x.min(255) as u8;
            [v, v, v]
        }
    }

    #[test]
    fn a_patch_is_the_box_resampled_and_hostile_boxes_are_none() {
        // A 64-px box from column 50: one image column per patch column.
        let p = Patch::cut(&Ramp, [50.0, 10.0, 64.0, 64.0]).expect("a patch");
        assert_eq!(p.luma().len(), SIDE * SIDE);
        assert_eq!(p.luma()[0], 50);
        assert_eq!(p.luma()[SIDE - 1], 113);
        assert_eq!(p.luma()[SIDE * (SIDE - 1) + 10], 60);
        // An image point lands where the patch shows it: column 60 is patch column 10.
        assert_eq!(p.place([60.0, 10.0]), [10.0, 0.0]);
        // A 128-px box halves: image pixels 50 and 51 make patch pixel 0.
        let half = Patch::cut(&Ramp, [50.0, 10.0, 128.0, 128.0]).expect("a patch");
        assert_eq!(half.place([50.5, 10.5]), [0.0, 0.0]);
        assert_eq!(half.luma()[1], 53);
        // Past the image's edge the edge repeats.
        let edge = Patch::cut(&Ramp, [180.0, 0.0, 64.0, 64.0]).expect("a patch");
        assert_eq!(edge.luma()[SIDE - 1], 199);
        for b in [
            [f32::NAN, 0.0, 10.0, 10.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, -5.0, 10.0],
            [0.0, f32::INFINITY, 10.0, 10.0],
        ] {
            assert!(Patch::cut(&Ramp, b).is_none(), "{b:?}");
        }
        assert!(Patch::from_luma(vec![0; 10]).is_none());
        assert_eq!(format!("{p:?}"), "Patch(64x64)");
    }
}
