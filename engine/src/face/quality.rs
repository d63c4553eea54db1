//! Quality measures of one face, from its detection and its aligned chip: size, pose, exposure,
//! sharpness and occlusion. Enrolment judges them against its thresholds (`enrolment::quality`), the
//! station's fusion gates on them (`pipeline::decide`); both measure here, so a photo and a frame of
//! the same face are measured alike.
//!
//! All measures are cheap, explainable statistics; none is a learned model. Chip coordinates refer to
//! the 112×112 ArcFace layout (eyes at y ≈ 52, nose tip y ≈ 72, mouth y ≈ 92), so the same region of
//! the chip is the same part of every face.

use super::blazeface::Detection;
use super::chain::Chip;

/// What was measured on one face (logged at debug level; never the pixels).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measures {
    pub score: f32,
    pub eye_distance_px: f32,
    pub roll_deg: f32,
    pub yaw_ratio: f32,
    pub pitch_ratio: f32,
    pub sharpness: f32,
    pub luma_mean: f32,
    pub clipped: f32,
    pub eye_luma_ratio: f32,
    pub mouth_chroma_distance: f32,
    pub mouth_texture_ratio: f32,
}

/// Half-open rectangle in chip pixels: x0..x1, y0..y1.
type Rect = (usize, usize, usize, usize);
const FACE: Rect = (24, 36, 88, 104);
const RIGHT_EYE: Rect = (28, 44, 49, 60);
const LEFT_EYE: Rect = (63, 44, 84, 60);
/// Forehead and the bridge between the eyes: skin in almost every enrolment photo, above any mask and
/// below most fringes and caps.
const SKIN_REF: [Rect; 2] = [(38, 28, 74, 42), (50, 44, 62, 60)];
const MOUTH: Rect = (40, 84, 72, 102);

fn pixels(r: Rect) -> impl Iterator<Item = (usize, usize)> {
    (r.1..r.3).flat_map(move |y| (r.0..r.2).map(move |x| (x, y)))
}

/// Mean (Y, Cb, Cr) over rectangles (BT.601, full range).
fn mean_ycc(chip: &Chip, rects: &[Rect]) -> [f32; 3] {
    let (mut s, mut n) = ([0f64; 3], 0f64);
    for &r in rects {
        for (x, y) in pixels(r) {
            let [cr, cg, cb] = chip.rgb(x, y).map(f64::from);
            s[0] += 0.299 * cr + 0.587 * cg + 0.114 * cb;
            s[1] += 128.0 - 0.168_736 * cr - 0.331_264 * cg + 0.5 * cb;
            s[2] += 128.0 + 0.5 * cr - 0.418_688 * cg - 0.081_312 * cb;
            n += 1.0;
        }
    }
    s.map(|v| (v / n.max(1.0)) as f32)
}

/// Laplacian (4-neighbour) of the luma at every interior pixel of `r`: (mean |L|, variance of L).
fn laplacian(chip: &Chip, r: Rect) -> (f32, f32) {
    let (mut sum, mut sum2, mut abs, mut n) = (0f64, 0f64, 0f64, 0f64);
    for (x, y) in pixels((r.0.max(1), r.1.max(1), r.2.min(111), r.3.min(111))) {
        let l = f64::from(
            chip.luma(x - 1, y) + chip.luma(x + 1, y) + chip.luma(x, y - 1) + chip.luma(x, y + 1)
                - 4.0 * chip.luma(x, y),
        );
        sum += l;
        sum2 += l * l;
        abs += l.abs();
        n += 1.0;
    }
    let n = n.max(1.0);
    let mean = sum / n;
    ((abs / n) as f32, (sum2 / n - mean * mean) as f32)
}

/// The measures taken from the keypoints alone (photo pixels). The station's GPU tick measures
/// the chip where it is (`gpu::probe`) and adds these.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose {
    pub eye_distance_px: f32,
    pub roll_deg: f32,
    pub yaw_ratio: f32,
    pub pitch_ratio: f32,
}

/// Pose of one face from its keypoints.
pub fn pose(face: &Detection) -> Pose {
    let k = face.keypoints;
    let (re, le, nose, mouth) = (k[0], k[1], k[2], k[3]);
    let eye = [le[0] - re[0], le[1] - re[1]];
    let d = (eye[0] * eye[0] + eye[1] * eye[1]).sqrt().max(1e-6);
    let u = [eye[0] / d, eye[1] / d];
    let n = [-u[1], u[0]]; // image-down when the face is upright
    let mid = [(re[0] + le[0]) / 2.0, (re[1] + le[1]) / 2.0];
    let rel = |p: [f32; 2]| [p[0] - mid[0], p[1] - mid[1]];
    let dot = |a: [f32; 2], b: [f32; 2]| a[0] * b[0] + a[1] * b[1];
    let mouth_down = dot(rel(mouth), n);
    Pose {
        eye_distance_px: d,
        roll_deg: u[1].atan2(u[0]).to_degrees(),
        yaw_ratio: dot(rel(nose), u) / d,
        pitch_ratio: if mouth_down.abs() > 1e-6 {
            dot(rel(nose), n) / mouth_down
        } else {
            0.0
        },
    }
}

/// Measures one face: pose from the keypoints (photo pixels), the rest from the chip.
pub fn measure(face: &Detection, chip: &Chip) -> Measures {
    let pose = pose(face);
    let mut luma_sum = 0f64;
    let mut clipped = 0usize;
    let mut count = 0usize;
    for (x, y) in pixels(FACE) {
        let l = chip.luma(x, y);
        luma_sum += f64::from(l);
        clipped += usize::from(!(5.0..250.0).contains(&l));
        count += 1;
    }
    let skin = mean_ycc(chip, &SKIN_REF);
    let eyes = [mean_ycc(chip, &[RIGHT_EYE]), mean_ycc(chip, &[LEFT_EYE])];
    let mouth_ycc = mean_ycc(chip, &[MOUTH]);
    let eye_texture = (laplacian(chip, RIGHT_EYE).0 + laplacian(chip, LEFT_EYE).0) / 2.0;
    Measures {
        score: face.score,
        eye_distance_px: pose.eye_distance_px,
        roll_deg: pose.roll_deg,
        yaw_ratio: pose.yaw_ratio,
        pitch_ratio: pose.pitch_ratio,
        sharpness: laplacian(chip, FACE).1,
        luma_mean: (luma_sum / count.max(1) as f64) as f32,
        clipped: clipped as f32 / count.max(1) as f32,
        eye_luma_ratio: eyes[0][0].max(eyes[1][0]) / skin[0].max(1.0),
        mouth_chroma_distance: ((mouth_ycc[1] - skin[1]).powi(2)
            + (mouth_ycc[2] - skin[2]).powi(2))
        .sqrt(),
        mouth_texture_ratio: laplacian(chip, MOUTH).0 / eye_texture.max(1e-3),
    }
}
