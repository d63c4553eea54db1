//! Per lane: who is walking in, decided from many frames. Faces are associated into tracks across
//! frames (`track`), each track collects gated evidence (`fusion`), and a track is identified only
//! when `k` frames agree on one subject with similarity ≥ T and a margin ≥ M over the second best,
//! and no frame confidently says someone else. Everything else stays unidentified — the door stays
//! shut and the lane stays in IC-card mode. Tailgating (a second person inside the lane zone for
//! one identification) is reported so the caller can hold the door and raise the alarm.
//!
//! Pure logic on timestamps and numbers: no GPU, no clock (time is passed in), so it is tested
//! exhaustively and the same code decides on live lanes and recorded footage.

pub mod decisions;
mod fusion;
pub mod gate;
mod track;

pub use fusion::{Evidence, FusionParams, Quality, QualityGates};
pub use track::{Event, LaneDecider, Observation, TrackId};

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
        let [a0, b0, a1, b1] = self.0;
        let [c0, d0, c1, d1] = o.0;
        let inter = BBox([a0.max(c0), b0.max(d0), a1.min(c1), b1.min(d1)]).area();
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
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

#[cfg(test)]
mod tests;
