//! A lane's two cameras (`[lane.lower]`): the faces the lower camera sees, placed in the upper
//! camera's frame, and each walker's two views of one tick merged into one observation, so one
//! walker is one track whichever camera sees them.
//!
//! The lower camera stands on the same spot as the upper one, `below_m` lower and turned up by
//! `tilt_deg` (docs/calibration.md, "Two cameras"). Both see a face at the same distance, so with
//! the same focal length they see it at the same size and the same column; only the row differs,
//! by the cameras' height difference seen at that distance (`below_m · focal / distance`, the
//! distance told by the face's size) less the tilt's shift of the horizon (`focal · tan tilt`).

use serde::Deserialize;

use super::fusion::frame_weight;
use super::track::Observation;
pub use super::track::{Seen, View};
use super::{BBox, QualityGates};

/// BlazeFace's box height on an adult face, metres (brow to chin, roughly; the footage generator
/// draws faces to it): what tells the distance of a face from its size.
const FACE_BOX_M: f32 = 0.2;

/// A face seen by both cameras in one tick overlaps itself at least this much once placed in the
/// upper frame; the placement's error is the face-size spread between people (about 15 %).
const MIN_PAIR_IOU: f32 = 0.2;

/// `[lane.lower]` as the deciders need it: where the lower camera stands and its lane zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowerView {
    pub geometry: LowerGeometry,
    /// The lower camera's lane zone, its own frame pixels.
    pub zone: BBox,
}

/// Where the lower camera stands relative to the upper one (`[lane.lower]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowerGeometry {
    /// Metres below the upper camera, on the same spot along and across the lane.
    pub below_m: f32,
    /// Degrees the lower camera is turned up, relative to the upper camera.
    #[serde(default)]
    pub tilt_deg: f32,
    /// Focal length in pixels, the same for both cameras (same lens and frame size).
    pub focal_px: f32,
}

impl LowerGeometry {
    pub fn check(&self) -> Result<(), String> {
        if !(0.05..=2.0).contains(&self.below_m)
            || !(-45.0..=45.0).contains(&self.tilt_deg)
            || !(10.0..=20_000.0).contains(&self.focal_px)
        {
            return Err(format!(
                "lower: below_m must be 0.05–2 (is {}), tilt_deg -45–45 (is {}), focal_px 10–20000 (is {})",
                self.below_m, self.tilt_deg, self.focal_px
            ));
        }
        Ok(())
    }

    /// Rows to add to a lower-camera point to place it in the upper camera's frame, for a face
    /// whose box is `box_h` pixels high.
    pub fn shift_px(&self, box_h: f32) -> f32 {
        self.below_m * box_h / FACE_BOX_M - self.focal_px * self.tilt_deg.to_radians().tan()
    }
}

impl LowerView {
    /// A lower-camera observation placed in the upper camera's frame.
    pub fn observe(&self, mut o: Observation) -> Observation {
        let [x0, y0, x1, y1] = o.bbox.0;
        let dy = self.geometry.shift_px(y1 - y0);
        let own = o.bbox;
        o.bbox = BBox([x0, y0 + dy, x1, y1 + dy]);
        for k in &mut o.keypoints {
            k[1] += dy;
        }
        o.seen = Seen {
            view: View::Lower,
            mapped: true,
            lower: Some(own),
            in_zone: Some(own.centre_in(&self.zone)),
        };
        o
    }
}

/// One tick's faces of both cameras as one list: a face both saw becomes one observation with the
/// better view's evidence (passing the gates first, then the fusion's frame weight) and the upper
/// camera's box and keypoints (the track's and the planarity cue's frame); a face one camera
/// alone saw stays as it is. Pairs are formed greedily by overlap, best first, ties by order, so
/// the result never depends on float noise beyond the overlap itself.
/// `zone` is the upper camera's lane zone.
pub fn merge(
    upper: Vec<Observation>,
    lower: Vec<Observation>,
    zone: &BBox,
    gates: &QualityGates,
) -> Vec<Observation> {
    if lower.is_empty() {
        return upper;
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (ui, u) in upper.iter().enumerate() {
        for (li, l) in lower.iter().enumerate() {
            let iou = u.bbox.iou(&l.bbox);
            if iou >= MIN_PAIR_IOU {
                pairs.push((iou, ui, li));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut lower_of: Vec<Option<usize>> = vec![None; upper.len()];
    let mut taken = vec![false; lower.len()];
    for (_, ui, li) in pairs {
        if lower_of[ui].is_none() && !taken[li] {
            lower_of[ui] = Some(li);
            taken[li] = true;
        }
    }
    let mut lower: Vec<Option<Observation>> = lower.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(upper.len() + lower.len());
    for (u, li) in upper.into_iter().zip(lower_of) {
        let Some(l) = li.and_then(|li| lower[li].take()) else {
            out.push(u);
            continue;
        };
        let in_zone = u.seen.in_zone.unwrap_or_else(|| u.bbox.centre_in(zone))
            || l.seen.in_zone.unwrap_or_else(|| l.bbox.centre_in(zone));
        let (bbox, keypoints) = (u.bbox, u.keypoints);
        let lower_box = l.seen.lower;
        let mut best = if rank(&l, gates) > rank(&u, gates) {
            l
        } else {
            u
        };
        best.bbox = bbox;
        best.keypoints = keypoints;
        best.seen.mapped = false;
        best.seen.lower = lower_box;
        best.seen.in_zone = Some(in_zone);
        out.push(best);
    }
    tracing::debug!(
        paired = taken.iter().filter(|t| **t).count(),
        upper = out.len(),
        lower_alone = lower.iter().flatten().count(),
        "views merged"
    );
    out.extend(lower.into_iter().flatten());
    out
}

/// How much a view's face is worth: passing the gates first, then the fusion's frame weight.
fn rank(o: &Observation, gates: &QualityGates) -> (bool, f32) {
    (
        gates.fails(&o.quality).is_none(),
        frame_weight(&o.quality, gates),
    )
}
