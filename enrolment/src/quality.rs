//! Enrolment's judgement of a photo: the thresholds the quality measures (`engine::face::quality`)
//! are judged by, and the machine-readable rejection reasons (`docs/enrolment.md`, "Quality reasons").

use engine::face::quality::Measures;
use serde::{Deserialize, Serialize};

/// Why a photo or a request was refused. Serialised as its snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
