//! A surgical-style mask over the lower face, drawn from the face's box and keypoints: from just
//! below the nose tip to under the chin, ear to ear, with a few horizontal pleats. The footage
//! generator's masked walkers (`footage::source::Sprite::add_mask`) and `eval --mask` (a masked
//! variant of any labelled set, issue 19) paint this one shape.

/// The mask colours drawn: light blue, white, black.
pub const STYLES: [(&str, [f32; 3]); 3] = [
    ("blue", [168.0, 200.0, 226.0]),
    ("white", [232.0, 232.0, 228.0]),
    ("black", [38.0, 38.0, 44.0]),
];

/// The colour of a style named in [`STYLES`].
pub fn style(name: &str) -> Option<[f32; 3]> {
    STYLES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

pub struct Mask {
    top: f32,
    bottom: f32,
    /// Horizontal centre and half-width.
    mx: f32,
    a: f32,
}

impl Mask {
    /// The mask of a face with box `face` (x, y, w, h) and nose and mouth keypoints.
    pub fn new(face: [f32; 4], nose: [f32; 2], mouth: [f32; 2]) -> Mask {
        let [_, fy, fw, fh] = face;
        let top = nose[1] + 0.3 * (mouth[1] - nose[1]).max(0.05 * fh);
        Mask {
            top,
            bottom: (fy + fh * 1.08).max(top + 0.2 * fh),
            mx: 0.5 * (nose[0] + mouth[0]),
            a: 0.44 * fw,
        }
    }

    /// The pixels it may cover in a `w`×`h` image: x0..x1, y0..y1 (empty when it lies outside,
    /// or its geometry is not finite).
    pub fn bounds(&self, w: usize, h: usize) -> (usize, usize, usize, usize) {
        let px = |v: f32, hi: usize| v.clamp(0.0, hi as f32) as usize;
        (
            px(self.mx - self.a - 2.0, w),
            px(self.mx + self.a + 2.0, w),
            px(self.top - 2.0, h),
            px(self.bottom + 2.0, h),
        )
    }

    /// At pixel (x, y): how much the mask covers it (0–1, soft by a pixel or two at the
    /// outline) and its shade (folds and pleats, 0–1); `None` where it does not.
    pub fn at(&self, x: usize, y: usize) -> Option<(f32, f32)> {
        let depth = self.bottom - self.top;
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let (nx, ny) = ((px - self.mx) / self.a, ((py - self.top) / depth).max(0.0));
        let d = (nx * nx + ny * ny).sqrt();
        let cov = ((1.0 - d) * self.a.min(depth) / 1.5).clamp(0.0, 1.0)
            * ((py - self.top) / 1.5 + 0.5).clamp(0.0, 1.0);
        if cov.is_nan() || cov <= 0.0 {
            return None;
        }
        let pleat = 1.0 - 0.12 * ((ny * 3.0 * std::f32::consts::PI).sin().abs() < 0.2) as u8 as f32;
        Some((cov, (0.78 + 0.22 * (1.0 - nx * nx).max(0.0)) * pleat))
    }

    /// Paints the mask in `colour` onto an RGB8 image.
    pub fn paint_rgb(&self, rgb: &mut [u8], w: usize, h: usize, colour: [f32; 3]) {
        let (x0, x1, y0, y1) = self.bounds(w, h);
        for y in y0..y1 {
            for x in x0..x1 {
                let Some((cov, shade)) = self.at(x, y) else {
                    continue;
                };
                let Some(p) = rgb.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) else {
                    continue;
                };
                for (v, c) in p.iter_mut().zip(colour) {
                    *v = (*v as f32 * (1.0 - cov) + c * shade * cov)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask covers the mouth, not the eyes, and stays inside the image.
    #[test]
    fn covers_the_mouth_and_not_the_eyes() {
        let (w, h) = (100, 120);
        let mut rgb = vec![100u8; w * h * 3];
        let m = Mask::new([20.0, 20.0, 60.0, 80.0], [50.0, 60.0], [50.0, 78.0]);
        m.paint_rgb(&mut rgb, w, h, style("white").unwrap());
        let px = |x: usize, y: usize| rgb[(y * w + x) * 3];
        assert!(px(50, 80) > 180, "mouth {}", px(50, 80));
        assert_eq!(px(35, 40), 100, "eye");
        assert_eq!(px(50, 50), 100, "above the nose tip");
        let off = Mask::new(
            [-500.0, 900.0, 60.0, 80.0],
            [-470.0, 940.0],
            [-470.0, 958.0],
        );
        let before = rgb.clone();
        off.paint_rgb(&mut rgb, w, h, [0.0; 3]);
        assert_eq!(rgb, before);
        assert!(style("green").is_none());
    }
}
