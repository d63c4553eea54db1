//! Drawing a lane's frames: walkers (legs, torso, neck, head sprite) over the static background,
//! motion blur by averaging sub-exposure poses, then the lighting scenario and sensor noise.

use rand::RngCore;
use rand::rngs::StdRng;

use super::relief::Relief;
use super::scene::{Lighting, Motion, Pose};
use super::source::Sprite;
use super::view::View;

/// Someone on the lane: their head, how they move, what they wear.
pub struct Actor {
    pub sprite: Sprite,
    pub motion: Motion,
    pub clothes: [f32; 3],
    pub trousers: [f32; 3],
    /// First and last frame the walker is in (the ground truth's frames).
    pub frames: (u32, u32),
}

/// Sprite → frame: p = c + m·(q − fc).
struct Affine {
    m: [[f32; 2]; 2],
    c: [f32; 2],
    fc: [f32; 2],
}

impl Affine {
    fn apply(&self, q: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (q[0] - self.fc[0], q[1] - self.fc[1]);
        [
            self.c[0] + self.m[0][0] * dx + self.m[0][1] * dy,
            self.c[1] + self.m[1][0] * dx + self.m[1][1] * dy,
        ]
    }

    fn det(&self) -> f32 {
        self.m[0][0] * self.m[1][1] - self.m[0][1] * self.m[1][0]
    }

    fn invert(&self, p: [f32; 2]) -> [f32; 2] {
        let d = self.det();
        let (dx, dy) = (p[0] - self.c[0], p[1] - self.c[1]);
        [
            self.fc[0] + (self.m[1][1] * dx - self.m[0][1] * dy) / d,
            self.fc[1] + (-self.m[1][0] * dx + self.m[0][0] * dy) / d,
        ]
    }

    /// Axis-aligned bounds of a sprite rectangle (x, y, w, h) once placed: x0, y0, x1, y1.
    fn bounds(&self, r: [f32; 4]) -> [f32; 4] {
        let pts = [
            [r[0], r[1]],
            [r[0] + r[2], r[1]],
            [r[0], r[1] + r[3]],
            [r[0] + r[2], r[1] + r[3]],
        ]
        .map(|q| self.apply(q));
        let xs = pts.map(|p| p[0]);
        let ys = pts.map(|p| p[1]);
        [
            xs.iter().copied().fold(f32::MAX, f32::min),
            ys.iter().copied().fold(f32::MAX, f32::min),
            xs.iter().copied().fold(f32::MIN, f32::max),
            ys.iter().copied().fold(f32::MIN, f32::max),
        ]
    }
}

/// The pitch beyond which the lean stops growing (radians): the lean stands in for a nodding
/// head's small asymmetries, and a steep pitch (a phone-looker, a face seen from well above) would
/// slant the whole face sideways, which no head does. Walkers' own nods stay within it.
const LEAN_MAX: f32 = 0.15;

/// Yaw (the head's own and the camera's viewing angle) narrows the face, pitch shortens it and
/// leans it (a cheap stand-in for foreshortening), roll turns it; the face box's centre lands on
/// the pose's centre. A head's depth adds its parallax on top (`Relief`).
fn head_affine(s: &Sprite, p: &Pose) -> Affine {
    let k = p.h / s.face[3];
    let turn = p.yaw + p.view;
    let lean = p.pitch.clamp(-LEAN_MAX, LEAN_MAX).sin();
    let (sx, sy, sh) = (k * turn.cos(), k * p.pitch.cos(), k * 0.3 * lean);
    let (cr, sr) = (p.roll.cos(), p.roll.sin());
    Affine {
        m: [[cr * sx, cr * sh - sr * sy], [sr * sx, sr * sh + cr * sy]],
        c: [p.cx, p.cy],
        fc: [s.face[0] + s.face[2] / 2.0, s.face[1] + s.face[3] / 2.0],
    }
}

/// Share of a face box's area that must lie inside the frame for the ground truth to list it: a
/// face cut off by more than that is not one a detector is expected to find.
const MOSTLY_INSIDE: f32 = 0.6;

/// The face box the ground truth reports for this pose: x, y, w, h, clipped to the frame; `None`
/// when less than `MOSTLY_INSIDE` of it is in the frame.
pub fn face_box(a: &Actor, p: &Pose, w: f32, h: f32) -> Option<[f32; 4]> {
    let b = head_affine(&a.sprite, p).bounds(a.sprite.face);
    let (x0, y0, x1, y1) = (b[0].max(0.0), b[1].max(0.0), b[2].min(w), b[3].min(h));
    let whole = (b[2] - b[0]) * (b[3] - b[1]);
    let inside =
        (x1 - x0 >= 1.0 && y1 - y0 >= 1.0) && (x1 - x0) * (y1 - y0) >= MOSTLY_INSIDE * whole;
    inside.then_some([x0, y0, x1 - x0, y1 - y0])
}

/// A premultiplied RGBA (colour 0–255, alpha 0–1) window of the frame.
struct Layer {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    px: Vec<[f32; 4]>,
}

impl Layer {
    fn over(&mut self, x: usize, y: usize, src: [f32; 4]) {
        let d = &mut self.px[(y - self.y0) * self.w + (x - self.x0)];
        let k = 1.0 - src[3];
        for c in 0..4 {
            d[c] = src[c] + d[c] * k;
        }
    }
}

/// Signed distance to a rounded rectangle (centre, half extents, corner radius).
fn rounded_rect(p: [f32; 2], c: [f32; 2], half: [f32; 2], r: f32) -> f32 {
    let qx = (p[0] - c[0]).abs() - (half[0] - r);
    let qy = (p[1] - c[1]).abs() - (half[1] - r);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

/// A rounded rectangle of the body: centre, half extents, corner radius, colour.
type Part = ([f32; 2], [f32; 2], f32, [f32; 3]);

/// Body parts in frame pixels, back to front.
fn body(a: &Actor, p: &Pose) -> [Part; 6] {
    let h = p.h;
    let shoulders = p.cy + 0.72 * h;
    let swing = 0.12 * h * p.stride.sin();
    let leg = |side: f32, sw: f32| {
        (
            [p.cx + side * 0.4 * h + sw, shoulders + 4.7 * h],
            [0.22 * h, 2.1 * h],
            0.18 * h,
            a.trousers,
        )
    };
    // Arms swing against the legs.
    let arm = |side: f32, sw: f32| {
        (
            [p.cx + side * 1.22 * h + sw, shoulders + 1.45 * h],
            [0.2 * h, 1.35 * h],
            0.18 * h,
            a.clothes.map(|c| c * 0.85),
        )
    };
    [
        leg(-1.0, swing),
        leg(1.0, -swing),
        arm(-1.0, -0.5 * swing),
        arm(1.0, 0.5 * swing),
        (
            [p.cx, shoulders + 1.45 * h],
            [1.12 * h, 1.5 * h],
            0.5 * h,
            a.clothes,
        ),
        (
            [p.cx, p.cy + 0.55 * h],
            [0.26 * h, 0.28 * h],
            0.1 * h,
            a.sprite.skin.map(|c| c * 0.85),
        ),
    ]
}

/// The head sprite's rectangle once placed, widened by how far its depth can move a point.
fn head_bounds(s: &Sprite, p: &Pose, aff: &Affine) -> [f32; 4] {
    let l0 = &s.levels[0];
    let b = aff.bounds([0.0, 0.0, l0.w as f32, l0.h as f32]);
    let grow = Relief::of(s, p).map_or(0.0, |r| r.reach() * p.h / s.face[3]);
    [b[0] - grow, b[1] - grow, b[2] + grow, b[3] + grow]
}

fn bounds_of(a: &Actor, p: &Pose) -> [f32; 4] {
    let s = &a.sprite;
    let hb = head_bounds(s, p, &head_affine(s, p));
    let mut b = hb;
    for (c, half, _, _) in body(a, p) {
        b[0] = b[0].min(c[0] - half[0]);
        b[1] = b[1].min(c[1] - half[1]);
        b[2] = b[2].max(c[0] + half[0]);
        b[3] = b[3].max(c[1] + half[1]);
    }
    b
}

fn draw_actor(a: &Actor, p: &Pose, t: f64, out: &mut Layer) {
    let (xe, ye) = (out.x0 + out.w, out.y0 + out.h);
    for (c, half, r, col) in body(a, p) {
        let x0 = ((c[0] - half[0] - 1.0).max(out.x0 as f32)) as usize;
        let y0 = ((c[1] - half[1] - 1.0).max(out.y0 as f32)) as usize;
        let x1 = ((c[0] + half[0] + 1.0).max(0.0) as usize).min(xe);
        let y1 = ((c[1] + half[1] + 1.0).max(0.0) as usize).min(ye);
        for y in y0..y1 {
            for x in x0..x1 {
                let q = [x as f32 + 0.5, y as f32 + 0.5];
                let cov = (0.5 - rounded_rect(q, c, half, r)).clamp(0.0, 1.0);
                if cov <= 0.0 {
                    continue;
                }
                // Rounded cloth: darker toward the sides.
                let u = ((q[0] - c[0]) / half[0]).clamp(-1.0, 1.0);
                let shade = 0.72 + 0.28 * (1.0 - u * u);
                out.over(
                    x,
                    y,
                    [
                        col[0] * shade * cov,
                        col[1] * shade * cov,
                        col[2] * shade * cov,
                        cov,
                    ],
                );
            }
        }
    }
    let s = &a.sprite;
    let aff = head_affine(s, p);
    let relief = Relief::of(s, p);
    let b = head_bounds(s, p, &aff);
    // Mip level: the one whose pixels are about the size of a frame pixel.
    let scale = aff.det().abs().sqrt().max(1e-6);
    let lv = ((1.0 / scale).log2().floor().max(0.0) as usize).min(s.levels.len() - 1);
    let level = &s.levels[lv];
    let f = (1u32 << lv) as f32;
    let x0 = (b[0].floor().max(out.x0 as f32)) as usize;
    let y0 = (b[1].floor().max(out.y0 as f32)) as usize;
    let x1 = (b[2].ceil().max(0.0) as usize).min(xe);
    let y1 = (b[3].ceil().max(0.0) as usize).min(ye);
    for y in y0..y1 {
        for x in x0..x1 {
            let mut q = aff.invert([x as f32 + 0.5, y as f32 + 0.5]);
            if let Some(r) = &relief {
                q = r.source(q);
            }
            if let Some(v) = &s.video {
                q = v.source(q, t);
            }
            let v = level.sample(q[0] / f, q[1] / f);
            if v[3] > 0.0 {
                out.over(x, y, v);
            }
        }
    }
}

/// Renders one lane's frames in order, as one of its cameras sees them.
pub struct LaneRenderer<'a> {
    pub cam: View,
    pub w: usize,
    pub h: usize,
    pub fps: u32,
    pub background: Vec<[f32; 3]>,
    pub lighting: Lighting,
    pub actors: &'a [Actor],
    pub noise: StdRng,
    canvas: Vec<[f32; 3]>,
}

impl<'a> LaneRenderer<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cam: View,
        w: usize,
        h: usize,
        fps: u32,
        background: Vec<[f32; 3]>,
        lighting: Lighting,
        actors: &'a [Actor],
        noise: StdRng,
    ) -> Self {
        LaneRenderer {
            cam,
            w,
            h,
            fps,
            background,
            lighting,
            actors,
            noise,
            canvas: Vec::new(),
        }
    }

    /// Frame `f` as RGB8 into `out`.
    pub fn frame(&mut self, f: u32, out: &mut Vec<u8>) {
        let t = f as f64 / self.fps as f64;
        self.canvas.clone_from(&self.background);
        let mut visible: Vec<(&Actor, Pose)> = self
            .actors
            .iter()
            .filter(|a| f >= a.frames.0 && f <= a.frames.1)
            .map(|a| (a, a.motion.pose(t, self.cam)))
            .collect();
        // Farther (smaller) first, so nearer walkers cover them.
        visible.sort_by(|x, y| x.1.h.total_cmp(&y.1.h));
        for (a, _) in visible {
            self.composite(a, t);
        }
        self.expose(t, out);
    }

    /// Averages the walker over the exposure (sub-poses as far apart as ~1.5 px) and lays the
    /// result over the canvas.
    fn composite(&mut self, a: &Actor, t: f64) {
        let e = self.lighting.exposure_s as f64;
        let cam = self.cam;
        let (p0, p1) = (
            a.motion.pose(t - e / 2.0, cam),
            a.motion.pose(t + e / 2.0, cam),
        );
        let travel = (p1.cx - p0.cx).abs().max((p1.cy - p0.cy).abs()) + (p1.h - p0.h).abs();
        let n = ((travel / 1.5).ceil() as usize).clamp(1, 10);
        let poses: Vec<Pose> = (0..n)
            .map(|k| {
                a.motion
                    .pose(t - e / 2.0 + e * (k as f64 + 0.5) / n as f64, cam)
            })
            .collect();
        let mut b = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for p in &poses {
            let pb = bounds_of(a, p);
            b = [
                b[0].min(pb[0]),
                b[1].min(pb[1]),
                b[2].max(pb[2]),
                b[3].max(pb[3]),
            ];
        }
        let x0 = b[0].floor().clamp(0.0, self.w as f32) as usize;
        let y0 = b[1].floor().clamp(0.0, self.h as f32) as usize;
        let x1 = b[2].ceil().clamp(0.0, self.w as f32) as usize;
        let y1 = b[3].ceil().clamp(0.0, self.h as f32) as usize;
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let (lw, lh) = (x1 - x0, y1 - y0);
        let mut acc = vec![[0.0f32; 4]; lw * lh];
        let mut scratch = Layer {
            x0,
            y0,
            w: lw,
            h: lh,
            px: vec![[0.0; 4]; lw * lh],
        };
        let wgt = 1.0 / n as f32;
        for p in &poses {
            scratch.px.fill([0.0; 4]);
            draw_actor(a, p, t, &mut scratch);
            for (d, s) in acc.iter_mut().zip(&scratch.px) {
                for c in 0..4 {
                    d[c] += s[c] * wgt;
                }
            }
        }
        let g = self.lighting.fg_gain;
        for y in 0..lh {
            let row = (y + y0) * self.w + x0;
            for (x, s) in acc[y * lw..(y + 1) * lw].iter().enumerate() {
                if s[3] <= 0.0 {
                    continue;
                }
                let d = &mut self.canvas[row + x];
                for c in 0..3 {
                    d[c] = s[c] * g + d[c] * (1.0 - s[3]);
                }
            }
        }
    }

    /// Camera response: gains (overall, flicker, colour cast), then noise that grows with the
    /// signal, then 8 bits.
    fn expose(&mut self, t: f64, out: &mut Vec<u8>) {
        let l = &self.lighting;
        let g = l.frame_gain(t);
        let gains = l.channel.map(|c| c * g);
        out.clear();
        out.reserve(self.w * self.h * 3);
        // Two 10-bit uniforms per channel from one 64-bit draw: a triangular variate, sd 1/√6.
        const TRI_SD: f32 = 0.408_248_3;
        for p in &self.canvas {
            let mut bits = self.noise.next_u64();
            for c in 0..3 {
                let v = p[c] * gains[c];
                let a = (bits & 0x3ff) as f32;
                let b = ((bits >> 10) & 0x3ff) as f32;
                bits >>= 20;
                let tri = (a + b) / 1023.0 - 1.0;
                let sd = (l.read_noise * l.read_noise + l.shot_noise * v.max(0.0)).sqrt();
                out.push((v + tri * sd / TRI_SD).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::super::source::{Level, Surface};
    use super::*;

    pub fn head(surface: Surface) -> Sprite {
        Sprite {
            levels: vec![Level {
                w: 170,
                h: 200,
                px: vec![[0.0; 4]; 170 * 200],
            }],
            face: [35.0, 50.0, 100.0, 100.0],
            // Eyes 36 px apart, nose, mouth, ears at the face's edges.
            keypoints: [
                [67.0, 85.0],
                [103.0, 85.0],
                [85.0, 105.0],
                [85.0, 125.0],
                [42.0, 95.0],
                [128.0, 95.0],
            ],
            skin: [150.0; 3],
            surface,
            video: None,
        }
    }

    pub fn pose(view: f32) -> Pose {
        Pose {
            cx: 320.0,
            cy: 200.0,
            h: 100.0,
            yaw: 0.0,
            pitch: 0.0,
            roll: 0.0,
            stride: 0.0,
            view,
        }
    }

    /// Positive pitch is chin down (the relief's test pins that): brow to chin foreshortened
    /// about the face's centre.
    #[test]
    fn pitch_shortens_the_face_about_its_centre() {
        let s = head(Surface::Head);
        let mut p = pose(0.0);
        p.pitch = 0.4;
        let aff = head_affine(&s, &p);
        let (brow, chin) = (aff.apply([85.0, 50.0]), aff.apply([85.0, 150.0]));
        assert!((chin[1] - brow[1] - 100.0 * 0.4f32.cos()).abs() < 1e-3);
        assert!(((chin[1] + brow[1]) / 2.0 - p.cy).abs() < 1e-3);
    }

    #[test]
    fn a_face_box_counts_only_while_mostly_in_the_frame() {
        let a = Actor {
            sprite: head(Surface::Head),
            motion: crate::footage::scene::tests::standing(),
            clothes: [0.0; 3],
            trousers: [0.0; 3],
            frames: (0, 1),
        };
        let at = |cy: f32| face_box(&a, &Pose { cy, ..pose(0.0) }, 640.0, 480.0);
        // 100 px boxes: whole at 200, 80 % in at 30 (clipped to what is in), half in at 480.
        assert_eq!(at(200.0), Some([270.0, 150.0, 100.0, 100.0]));
        assert_eq!(at(30.0), Some([270.0, 0.0, 100.0, 80.0]));
        assert_eq!(at(480.0), None);
    }

    #[test]
    fn a_video_replay_moves_the_face_inside_the_screen_only() {
        let v = super::super::source::Video {
            screen: [10.0, 10.0, 50.0, 60.0],
            sway: 2.0,
            roll: 0.05,
            hz: 1.0,
            phase: 0.3,
        };
        // The bezel stays put.
        assert_eq!(v.source([5.0, 5.0], 0.37), [5.0, 5.0]);
        assert_eq!(v.source([55.0, 30.0], 0.37), [55.0, 30.0]);
        // Inside, the face moves with time, by at most the sway (√1.25 of it with the vertical
        // half) plus the roll's arc, and never samples outside the screen.
        let centre = [30.0f32, 35.0];
        let (a, b) = (v.source(centre, 0.0), v.source(centre, 0.25));
        assert_ne!(a, b);
        for k in 0..40 {
            let t = k as f64 * 0.05;
            for q in [centre, [11.0, 59.0], [49.5, 10.0]] {
                let s = v.source(q, t);
                assert!(
                    (10.0..=49.0).contains(&s[0]) && (10.0..=59.0).contains(&s[1]),
                    "{s:?}"
                );
                let r = ((q[0] - centre[0]).powi(2) + (q[1] - centre[1]).powi(2)).sqrt();
                let moved = ((s[0] - q[0]).powi(2) + (s[1] - q[1]).powi(2)).sqrt();
                assert!(
                    moved <= 2.0 * 1.25f32.sqrt() + 0.05 * r + 1e-3,
                    "{q:?} {t}: {moved}"
                );
            }
        }
    }
}
