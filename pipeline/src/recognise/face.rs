//! What recognition reports of one face: its box, its quality and the matcher's top two. The
//! deciders (`crate::decide`) take these as their input.

/// A gallery row's subject, as the matcher reports it (the gallery maps it to the pseudonymous id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(pub u32);

/// One of the matcher's top two for a face: a subject and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub subject: Subject,
    pub similarity: f32,
}

/// Axis-aligned box in frame pixels: x0, y0, x1, y1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox(pub [f32; 4]);

impl BBox {
    pub fn area(&self) -> f32 {
        let [x0, y0, x1, y1] = self.0;
        (x1 - x0).max(0.0) * (y1 - y0).max(0.0)
    }

    pub fn iou(&self, o: &BBox) -> f32 {
        engine::face::iou(self.0, o.0)
    }

    pub fn centre(&self) -> [f32; 2] {
        let [x0, y0, x1, y1] = self.0;
        [(x0 + x1) / 2.0, (y0 + y1) / 2.0]
    }

    /// Whether the box's centre lies inside `zone`.
    pub fn centre_in(&self, zone: &BBox) -> bool {
        let [x, y] = self.centre();
        let [x0, y0, x1, y1] = zone.0;
        x >= x0 && x <= x1 && y >= y0 && y <= y1
    }
}

/// Measurements of one face crop, taken where the face is cut (eye distance from the keypoints,
/// sharpness and luma from the aligned chip, yaw from the keypoints).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Distance between the eye centres, frame pixels.
    pub eye_px: f32,
    /// Variance of the Laplacian of the chip's luma.
    pub sharpness: f32,
    /// Yaw estimate: nose offset from the eye midpoint over the eye distance (0 = frontal).
    pub yaw: f32,
    /// Mean luma of the chip, 0–255.
    pub luma: f32,
}

/// A frame's face counts as evidence only inside these bounds (lane config; the calibration tool
/// sets them). The deciders apply them; the CPU tick also skips embedding a face that fails them,
/// since its embedding could never count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityGates {
    pub min_eye_px: f32,
    pub min_sharpness: f32,
    pub max_abs_yaw: f32,
    pub luma: (f32, f32),
}

impl Default for QualityGates {
    fn default() -> Self {
        Self {
            min_eye_px: 20.0,
            min_sharpness: 20.0,
            max_abs_yaw: 0.35,
            luma: (40.0, 220.0),
        }
    }
}

impl QualityGates {
    /// `None` when the face passes; otherwise the first gate it fails. NaN fails every gate
    /// (written as "passes" tests, which are false for NaN).
    pub fn fails(&self, q: &Quality) -> Option<&'static str> {
        let big_enough = q.eye_px >= self.min_eye_px;
        let sharp = q.sharpness >= self.min_sharpness;
        let frontal = q.yaw.abs() <= self.max_abs_yaw;
        let exposed = q.luma >= self.luma.0 && q.luma <= self.luma.1;
        [
            (big_enough, "face too small"),
            (sharp, "blurred"),
            (frontal, "not frontal"),
            (exposed, "badly exposed"),
        ]
        .into_iter()
        .find_map(|(ok, why)| (!ok).then_some(why))
    }
}
