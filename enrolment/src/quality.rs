//! Photo quality measures on a detection and its aligned chip, the thresholds they are judged by, and
//! the machine-readable rejection reasons (`docs/enrolment.md`, "Quality reasons").
//!
//! All measures are cheap, explainable statistics; none is a learned model. Chip coordinates refer to
//! the 112×112 ArcFace layout (eyes at y ≈ 52, nose tip y ≈ 72, mouth y ≈ 92), so the same region of
//! the chip is the same part of every face.

use engine::face::blazeface::Detection;
use serde::{Deserialize, Serialize};

use crate::faces::Chip;

/// Why a photo or a request was refused. Serialised as its snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not a JPEG or PNG (sniffed from the bytes).
    UnsupportedFormat,
    /// The file ends before its end marker.
    Truncated,
    /// The header declares more pixels than accepted.
    TooManyPixels,
    /// The decoder failed for another reason.
    CorruptImage,
    /// The photo's bytes exceed the per-photo limit.
    PhotoTooLarge,
    NoFace,
    MultipleFaces,
    FaceTooSmall,
    Blurred,
    BadlyExposed,
    NotFrontal,
    EyesCovered,
    MouthCovered,
    /// The photos of one request are not all of the same person.
    DifferentPeople,
    /// The face matches a subject already enrolled.
    AlreadyEnrolled,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat => "unsupported_format",
            Self::Truncated => "truncated",
            Self::TooManyPixels => "too_many_pixels",
            Self::CorruptImage => "corrupt_image",
            Self::PhotoTooLarge => "photo_too_large",
            Self::NoFace => "no_face",
            Self::MultipleFaces => "multiple_faces",
            Self::FaceTooSmall => "face_too_small",
            Self::Blurred => "blurred",
            Self::BadlyExposed => "badly_exposed",
            Self::NotFrontal => "not_frontal",
            Self::EyesCovered => "eyes_covered",
            Self::MouthCovered => "mouth_covered",
            Self::DifferentPeople => "different_people",
            Self::AlreadyEnrolled => "already_enrolled",
        }
    }
}

/// One refusal: the reason, the photo it concerns (0-based, in request order) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub code: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo: Option<usize>,
    pub message: String,
}

/// Thresholds (`[quality]` in the config). Defaults are set on the face_recognition test photos and
/// synthetic degradations of them (`tests/quality.rs`); see `docs/enrolment.md` for their meaning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Minimum distance between the eye centres, in photo pixels.
    pub min_eye_distance_px: f32,
    /// A second face counts when its eye distance is at least this fraction of the main face's.
    pub other_face_min_ratio: f32,
    /// Minimum variance of the Laplacian of the chip's luma (face region).
    pub min_sharpness: f32,
    /// Accepted mean luma of the face region (0–255).
    pub luma_range: [f32; 2],
    /// Largest fraction of face-region pixels that are clipped (luma ≤ 5 or ≥ 250).
    pub max_clipped: f32,
    /// Largest roll (eye line vs horizontal), degrees.
    pub max_roll_deg: f32,
    /// Largest |nose offset from the eye midpoint along the eye line| / eye distance (yaw).
    pub max_yaw_ratio: f32,
    /// Accepted (nose below eye line) / (mouth below eye line) (pitch); the template has 0.49.
    pub pitch_ratio_range: [f32; 2],
    /// Eyes covered: both eye regions darker than this fraction of the reference skin's luma.
    pub max_eye_luma_ratio: f32,
    /// Mouth covered: chroma distance (Cb/Cr units) of the mouth region from the reference skin above…
    pub max_mouth_chroma_distance: f32,
    /// …while its texture is below this fraction of the eye regions' texture.
    pub max_mouth_texture_ratio: f32,
    /// Photos of one request must be at least this similar to each other (cosine).
    pub same_person_cosine: f32,
    /// A new template this similar (cosine) to an enrolled one is refused as already enrolled.
    pub duplicate_cosine: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_eye_distance_px: 40.0,
            other_face_min_ratio: 0.35,
            min_sharpness: 40.0,
            luma_range: [50.0, 210.0],
            max_clipped: 0.2,
            max_roll_deg: 20.0,
            max_yaw_ratio: 0.25,
            pitch_ratio_range: [0.2, 0.8],
            max_eye_luma_ratio: 0.45,
            max_mouth_chroma_distance: 20.0,
            max_mouth_texture_ratio: 0.35,
            same_person_cosine: 0.363,
            duplicate_cosine: 0.5,
        }
    }
}

/// What was measured on one face (logged at debug level; never the pixels).
#[derive(Debug, Clone, Copy, Default, Serialize)]
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

/// Measures one face: pose from the keypoints (photo pixels), the rest from the chip.
pub fn measure(face: &Detection, chip: &Chip) -> Measures {
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
        eye_distance_px: d,
        roll_deg: u[1].atan2(u[0]).to_degrees(),
        yaw_ratio: dot(rel(nose), u) / d,
        pitch_ratio: if mouth_down.abs() > 1e-6 {
            dot(rel(nose), n) / mouth_down
        } else {
            0.0
        },
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

/// Judges the measures, in the order a person would fix them: size, pose, exposure, sharpness,
/// occlusion. Returns the first failing check.
pub fn judge(m: &Measures, c: &QualityConfig) -> Result<(), (Reason, String)> {
    if m.eye_distance_px < c.min_eye_distance_px {
        return Err((
            Reason::FaceTooSmall,
            format!(
                "the face is too small: {:.0} px between the eyes, at least {:.0} px needed; move closer or use a larger photo",
                m.eye_distance_px, c.min_eye_distance_px
            ),
        ));
    }
    let pitch_ok = (c.pitch_ratio_range[0]..=c.pitch_ratio_range[1]).contains(&m.pitch_ratio);
    if m.roll_deg.abs() > c.max_roll_deg || m.yaw_ratio.abs() > c.max_yaw_ratio || !pitch_ok {
        return Err((
            Reason::NotFrontal,
            format!(
                "the face is not frontal (head tilt {:.0}°, turn {:.2}, nod {:.2}); look straight into the camera",
                m.roll_deg, m.yaw_ratio, m.pitch_ratio
            ),
        ));
    }
    if !(c.luma_range[0]..=c.luma_range[1]).contains(&m.luma_mean) || m.clipped > c.max_clipped {
        return Err((
            Reason::BadlyExposed,
            format!(
                "the face is badly exposed (mean brightness {:.0} of 255, {:.0} % clipped); use even, moderate light",
                m.luma_mean,
                m.clipped * 100.0
            ),
        ));
    }
    if m.sharpness < c.min_sharpness {
        return Err((
            Reason::Blurred,
            format!(
                "the face is blurred (sharpness {:.0}, at least {:.0} needed); hold the camera still and focus on the face",
                m.sharpness, c.min_sharpness
            ),
        ));
    }
    if m.eye_luma_ratio < c.max_eye_luma_ratio {
        return Err((
            Reason::EyesCovered,
            "the eyes seem covered (e.g. sunglasses); take them off".into(),
        ));
    }
    if m.mouth_chroma_distance > c.max_mouth_chroma_distance
        && m.mouth_texture_ratio < c.max_mouth_texture_ratio
    {
        return Err((
            Reason::MouthCovered,
            "the mouth seems covered (e.g. a mask or scarf); uncover the face".into(),
        ));
    }
    Ok(())
}
