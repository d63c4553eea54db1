//! The picture `gate-calibrate lane` writes: a lane zone, its 10 % grid, a label and the faces
//! found, drawn onto one camera's frame, and the lane camera's and lower camera's frames side by
//! side when the lane has both. Drawn in plain pixels (a 5×7 font, no system fonts), so the tool
//! runs on a station with nothing but the binary.

use anyhow::{Result, anyhow};

pub const ZONE_COLOUR: [u8; 3] = [255, 196, 0];
const INSIDE: [u8; 3] = [40, 220, 60];
const OUTSIDE: [u8; 3] = [235, 40, 40];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// 5×7 glyphs, rows top to bottom; characters without a glyph draw as a space.
const FONT: &[(char, &str)] = &[
    ('0', "01110 10001 10011 10101 11001 10001 01110"),
    ('1', "00100 01100 00100 00100 00100 00100 01110"),
    ('2', "01110 10001 00001 00010 00100 01000 11111"),
    ('3', "11111 00010 00100 00010 00001 10001 01110"),
    ('4', "00010 00110 01010 10010 11111 00010 00010"),
    ('5', "11111 10000 11110 00001 00001 10001 01110"),
    ('6', "00110 01000 10000 11110 10001 10001 01110"),
    ('7', "11111 00001 00010 00100 01000 01000 01000"),
    ('8', "01110 10001 10001 01110 10001 10001 01110"),
    ('9', "01110 10001 10001 01111 00001 00010 01100"),
    ('A', "01110 10001 10001 11111 10001 10001 10001"),
    ('B', "11110 10001 10001 11110 10001 10001 11110"),
    ('C', "01110 10001 10000 10000 10000 10001 01110"),
    ('D', "11100 10010 10001 10001 10001 10010 11100"),
    ('E', "11111 10000 10000 11110 10000 10000 11111"),
    ('F', "11111 10000 10000 11110 10000 10000 10000"),
    ('G', "01110 10001 10000 10111 10001 10001 01111"),
    ('H', "10001 10001 10001 11111 10001 10001 10001"),
    ('I', "01110 00100 00100 00100 00100 00100 01110"),
    ('J', "00111 00010 00010 00010 00010 10010 01100"),
    ('K', "10001 10010 10100 11000 10100 10010 10001"),
    ('L', "10000 10000 10000 10000 10000 10000 11111"),
    ('M', "10001 11011 10101 10101 10001 10001 10001"),
    ('N', "10001 10001 11001 10101 10011 10001 10001"),
    ('O', "01110 10001 10001 10001 10001 10001 01110"),
    ('P', "11110 10001 10001 11110 10000 10000 10000"),
    ('Q', "01110 10001 10001 10001 10101 10010 01101"),
    ('R', "11110 10001 10001 11110 10100 10010 10001"),
    ('S', "01111 10000 10000 01110 00001 00001 11110"),
    ('T', "11111 00100 00100 00100 00100 00100 00100"),
    ('U', "10001 10001 10001 10001 10001 10001 01110"),
    ('V', "10001 10001 10001 10001 10001 01010 00100"),
    ('W', "10001 10001 10001 10101 10101 10101 01010"),
    ('X', "10001 10001 01010 00100 01010 10001 10001"),
    ('Y', "10001 10001 10001 01010 00100 00100 00100"),
    ('Z', "11111 00001 00010 00100 01000 10000 11111"),
    ('.', "00000 00000 00000 00000 00000 01100 01100"),
    (',', "00000 00000 00000 00000 01100 00100 01000"),
    ('-', "00000 00000 00000 11111 00000 00000 00000"),
    (':', "00000 01100 01100 00000 01100 01100 00000"),
    ('%', "11000 11001 00010 00100 01000 10011 00011"),
    ('[', "01110 01000 01000 01000 01000 01000 01110"),
    (']', "01110 00010 00010 00010 00010 00010 01110"),
    ('=', "00000 00000 11111 00000 11111 00000 00000"),
    ('/', "00000 00001 00010 00100 01000 10000 00000"),
];

struct Canvas<'a> {
    rgb: &'a mut [u8],
    w: usize,
    h: usize,
}

impl Canvas<'_> {
    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        for (dst, src) in self.rgb[i..i + 3].iter_mut().zip(c) {
            let v = f32::from(*dst) * (1.0 - alpha) + f32::from(src) * alpha;
            *dst = v.round().clamp(0.0, 255.0) as u8;
        }
    }

    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3], alpha: f32) {
        for y in y0.max(0)..y1.min(self.h as i64) {
            for x in x0.max(0)..x1.min(self.w as i64) {
                self.blend(x, y, c, alpha);
            }
        }
    }

    /// Outline drawn inward from the given bounds, `t` pixels thick.
    fn rect(&mut self, [x0, y0, x1, y1]: [i64; 4], t: i64, c: [u8; 3]) {
        self.fill(x0, y0, x1, y0 + t, c, 1.0);
        self.fill(x0, y1 - t, x1, y1, c, 1.0);
        self.fill(x0, y0, x0 + t, y1, c, 1.0);
        self.fill(x1 - t, y0, x1, y1, c, 1.0);
    }

    fn text_width(s: &str, scale: i64) -> i64 {
        s.chars().count() as i64 * 6 * scale
    }

    /// Text on a dark plate, so it reads on any background.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        let pad = scale;
        let tw = Self::text_width(s, scale);
        self.fill(
            x - pad,
            y - pad,
            x + tw + pad,
            y + 7 * scale + pad,
            BLACK,
            0.6,
        );
        for (i, ch) in s.chars().enumerate() {
            let up = ch.to_ascii_uppercase();
            let Some((_, g)) = FONT.iter().find(|(k, _)| *k == up) else {
                continue;
            };
            for (row, bits) in g.split(' ').enumerate() {
                for (col, b) in bits.bytes().enumerate() {
                    if b == b'1' {
                        let gx = x + (i as i64 * 6 + col as i64) * scale;
                        let gy = y + row as i64 * scale;
                        self.fill(gx, gy, gx + scale, gy + scale, c, 1.0);
                    }
                }
            }
        }
    }
}

/// A detected face for the overlay: box in frame pixels and detector score.
pub struct Marked {
    pub bbox: [f32; 4],
    pub score: f32,
}

/// Whether the box's centre is inside the zone, as the station decides it.
pub fn centre_in(bbox: [f32; 4], zone_px: [f64; 4]) -> bool {
    let cx = f64::from(bbox[0] + bbox[2]) / 2.0;
    let cy = f64::from(bbox[1] + bbox[3]) / 2.0;
    cx >= zone_px[0] && cx <= zone_px[2] && cy >= zone_px[1] && cy <= zone_px[3]
}

/// Zone, 10 % grid, label and faces drawn onto `rgb` (`w`×`h`).
pub fn draw(rgb: &mut [u8], w: usize, h: usize, zone: [f64; 4], label: &str, faces: &[Marked]) {
    let (wf, hf) = (w as f64, h as f64);
    let zpx = [zone[0] * wf, zone[1] * hf, zone[2] * wf, zone[3] * hf];
    let [zx0, zy0, zx1, zy1] = zpx.map(|v| v.round() as i64);
    let mut c = Canvas { rgb, w, h };
    let (wi, hi) = (w as i64, h as i64);
    // Outside the zone darkened, so the lane area stands out while the scene stays readable.
    let shade = [20, 24, 48];
    c.fill(0, 0, wi, zy0, shade, 0.5);
    c.fill(0, zy1, wi, hi, shade, 0.5);
    c.fill(0, zy0, zx0, zy1, shade, 0.5);
    c.fill(zx1, zy0, wi, zy1, shade, 0.5);
    let small = (h as i64 / 480).max(1);
    let tick = (w.min(h) as i64 / 40).max(6);
    for i in 1..10 {
        let x = (wf * f64::from(i) / 10.0).round() as i64;
        let y = (hf * f64::from(i) / 10.0).round() as i64;
        // Faint dotted grid lines, then solid ticks (longer at 50 %) on every edge.
        for yy in (0..hi).step_by(4) {
            c.blend(x, yy, WHITE, 0.35);
        }
        for xx in (0..wi).step_by(4) {
            c.blend(xx, y, WHITE, 0.35);
        }
        let len = if i == 5 { 2 * tick } else { tick };
        c.fill(x - 1, 0, x + 1, len, WHITE, 1.0);
        c.fill(x - 1, hi - len, x + 1, hi, WHITE, 1.0);
        c.fill(0, y - 1, len, y + 1, WHITE, 1.0);
        c.fill(wi - len, y - 1, wi, y + 1, WHITE, 1.0);
        let pct = format!("{}", i * 10);
        c.text(x + 3, len + 2 * small, &pct, small, WHITE);
        c.text(len + 3 * small, y + 3, &pct, small, WHITE);
    }
    for f in faces {
        let inside = centre_in(f.bbox, zpx);
        let col = if inside { INSIDE } else { OUTSIDE };
        let b = f.bbox.map(|v| v.round() as i64);
        c.rect([b[0], b[1], b[2], b[3]], (small * 2).max(2), col);
        let tag = format!("{:.2}{}", f.score, if inside { "" } else { " OUT" });
        c.text(b[0], b[3] + 2 * small, &tag, small, col);
    }
    // Border centred on the zone's edge (clamped to the frame), drawn last so nothing covers it.
    let t = (w.min(h) as i64 / 120).max(3);
    let half = t / 2;
    let outer = [
        (zx0 - half).max(0),
        (zy0 - half).max(0),
        (zx1 + t - half).min(wi),
        (zy1 + t - half).min(hi),
    ];
    c.rect(outer, t, ZONE_COLOUR);
    let mut scale = (h as i64 / 240).max(2);
    while scale > 1 && Canvas::text_width(label, scale) > wi - 4 {
        scale -= 1;
    }
    let lx = (zx0 + t + 4)
        .min(wi - Canvas::text_width(label, scale) - 2)
        .max(2);
    c.text(lx, zy0 + t + 2 * tick, label, scale, ZONE_COLOUR);
}

/// One camera's part of the picture: its frame, and its zone (fractions of this frame), label and
/// faces (this frame's pixels).
pub struct View {
    pub rgb: Vec<u8>,
    pub w: usize,
    pub h: usize,
    pub zone: [f64; 4],
    pub label: String,
    pub faces: Vec<Marked>,
}

impl View {
    /// The frame with its overlay, alone: what the tool writes for a lane with one camera.
    pub fn drawn(mut self) -> Result<image::RgbImage> {
        draw(
            &mut self.rgb,
            self.w,
            self.h,
            self.zone,
            &self.label,
            &self.faces,
        );
        image::RgbImage::from_raw(self.w as u32, self.h as u32, self.rgb)
            .ok_or_else(|| anyhow!("frame buffer does not match {}x{}", self.w, self.h))
    }

    /// The frame scaled to `h` rows, its faces with it; the zone is in fractions and needs nothing.
    /// Scaled before drawing, so lines and text keep their crisp colours.
    fn scaled_to(self, h: usize) -> Result<View> {
        if self.h == h {
            return Ok(self);
        }
        let w = ((self.w * h) as f64 / self.h as f64).round().max(1.0) as usize;
        let img = image::RgbImage::from_raw(self.w as u32, self.h as u32, self.rgb)
            .ok_or_else(|| anyhow!("frame buffer does not match {}x{}", self.w, self.h))?;
        let scaled = image::imageops::resize(
            &img,
            w as u32,
            h as u32,
            image::imageops::FilterType::Triangle,
        );
        let (sx, sy) = (w as f32 / self.w as f32, h as f32 / self.h as f32);
        let faces = self
            .faces
            .into_iter()
            .map(|m| Marked {
                bbox: [
                    m.bbox[0] * sx,
                    m.bbox[1] * sy,
                    m.bbox[2] * sx,
                    m.bbox[3] * sy,
                ],
                score: m.score,
            })
            .collect();
        Ok(View {
            rgb: scaled.into_raw(),
            w,
            h,
            faces,
            ..self
        })
    }
}

/// Columns of black between the two frames, so where one ends shows even when both zones run to
/// the edge.
pub fn gap(h: usize) -> usize {
    (h / 120).max(2)
}

/// The lane camera's frame on the left and the lower camera's on the right, each with its own zone
/// and faces; the lower frame is scaled to the lane frame's height, so the left half keeps the
/// lane camera's pixels.
pub fn side_by_side(upper: View, lower: View) -> Result<image::RgbImage> {
    if upper.w == 0 || upper.h == 0 || lower.w == 0 || lower.h == 0 {
        return Err(anyhow!("empty frame"));
    }
    let h = upper.h;
    let left = upper.drawn()?;
    let right = lower.scaled_to(h)?.drawn()?;
    let gap = gap(h) as u32;
    let mut out = image::RgbImage::new(left.width() + gap + right.width(), h as u32);
    image::imageops::replace(&mut out, &left, 0, 0);
    image::imageops::replace(&mut out, &right, i64::from(left.width() + gap), 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_has_the_zone_colour_and_centre_is_untouched() {
        let (w, h) = (200usize, 100usize);
        let mut rgb = vec![128u8; w * h * 3];
        draw(&mut rgb, w, h, [0.2, 0.1, 0.8, 0.9], "L1", &[]);
        let px = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        assert_eq!(px(40, 50), ZONE_COLOUR);
        assert_eq!(px(160, 50), ZONE_COLOUR);
        assert_eq!(px(100, 10), ZONE_COLOUR);
        // Outside is darkened, a spot inside the zone away from grid and label is not.
        assert!(px(5, 45)[0] < 100);
        assert_eq!(px(73, 62), [128, 128, 128]);
    }

    #[test]
    fn whole_frame_zone_stays_inside_the_frame() {
        let (w, h) = (64usize, 48usize);
        let mut rgb = vec![0u8; w * h * 3];
        draw(&mut rgb, w, h, [0.0, 0.0, 1.0, 1.0], "L1", &[]);
        let i = ((h - 1) * w + (w - 1)) * 3;
        assert_eq!(rgb[i..i + 3], ZONE_COLOUR);
    }

    fn grey(w: usize, h: usize, zone: [f64; 4], label: &str) -> View {
        View {
            rgb: vec![128u8; w * h * 3],
            w,
            h,
            zone,
            label: label.to_owned(),
            faces: Vec::new(),
        }
    }

    #[test]
    fn side_by_side_draws_each_zone_in_its_own_frame() {
        let upper = grey(200, 100, [0.2, 0.1, 0.8, 0.9], "L1 UPPER");
        // Twice the lane frame's height: scaled to 100 rows, 100 columns wide.
        let mut lower = grey(200, 200, [0.5, 0.3, 0.9, 1.0], "L1 LOWER");
        lower.faces.push(Marked {
            bbox: [20.0, 20.0, 60.0, 60.0],
            score: 0.9,
        });
        let img = side_by_side(upper, lower).unwrap();
        let g = gap(100) as u32;
        assert_eq!(img.dimensions(), (200 + g + 100, 100));
        let px = |x: u32, y: u32| img.get_pixel(x, y).0;
        // Upper zone edges at x = 40 and 160, y = 10 and 90, in the left frame's pixels.
        for (x, y) in [(40, 50), (160, 50), (100, 10), (100, 90)] {
            assert_eq!(px(x, y), ZONE_COLOUR, "upper border ({x},{y})");
        }
        assert_eq!(px(200, 50), [0, 0, 0], "gap");
        // Lower zone edges at x = 50 and 90, y = 30, of the right frame (100×100).
        let x0 = 200 + g;
        for (x, y) in [(50, 75), (89, 75), (70, 30)] {
            assert_eq!(px(x0 + x, y), ZONE_COLOUR, "lower border ({x},{y})");
        }
        // The upper zone's edges do not carry over: x = 40 and 20 of the right frame are shaded
        // (outside the lower zone), and the face there is red: its centre (20,20) scaled is
        // outside the lower zone.
        assert!(px(x0 + 40, 60)[0] < 100, "{:?}", px(x0 + 40, 60));
        assert_eq!(px(x0 + 10, 15), OUTSIDE);
        // Inside the lower zone, away from grid, label and border: the frame's own grey.
        assert_eq!(px(x0 + 73, 83), [128, 128, 128]);
    }
}
