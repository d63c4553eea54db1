//! A lane's two cameras (`[lane.lower]`): the faces the lower camera sees, placed in the upper
//! camera's frame, and each walker's two views of one tick merged into one observation, so one
//! walker is one track whichever camera sees them.
//!
//! The lower camera stands on the same spot as the upper one, `below_m` lower and turned up by
//! `tilt_deg` (docs/calibration.md, "Two cameras"). Both see a face at the same distance, so with
//! the same focal length they see it at the same size and the same column; only the row differs,
//! by the cameras' height difference seen at that distance (`below_m · focal / distance`, the
//! distance told by the face's size) less the tilt's shift of the horizon (`focal · tan tilt`).

use std::collections::VecDeque;
use std::time::Instant;

use super::fusion::frame_weight;
use super::parallax::Patches;
// Where the lower camera stands is defined beside the lane camera's geometry: the PAD cues read it
// too, and `planarity` must not depend on this module.
pub use super::planarity::LowerGeometry;
use super::track::{Observation, pair_greedily};
pub use super::track::{Seen, View};
use super::{BBox, QualityGates};

/// BlazeFace's box width on an adult face, metres (roughly; the footage generator draws faces to
/// it): what tells the distance of a face from its size. The width, not the height: a face bent
/// toward or away from a camera is shortened in that camera's picture, not narrowed.
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
    /// Its frame's width and height, pixels.
    pub frame: [f32; 2],
}

impl LowerGeometry {
    /// Rows to add to a lower-camera point to place it in the upper camera's frame, for a face
    /// whose box is `box_w` pixels wide.
    pub fn shift_px(&self, box_w: f32) -> f32 {
        self.below_m * box_w / FACE_BOX_M - self.focal_px * self.tilt_deg.to_radians().tan()
    }
}

impl LowerView {
    /// A lower-camera observation placed in the upper camera's frame.
    pub fn observe(&self, mut o: Observation) -> Observation {
        let [x0, y0, x1, y1] = o.bbox.0;
        let dy = self.geometry.shift_px(x1 - x0);
        let own = o.bbox;
        let own_keypoints = o.keypoints;
        o.bbox = BBox([x0, y0 + dy, x1, y1 + dy]);
        for k in &mut o.keypoints {
            k[1] += dy;
        }
        let [w, h] = self.frame;
        o.seen = Seen {
            view: View::Lower,
            mapped: true,
            lower: Some(own),
            in_zone: Some(own.centre_in(&self.zone)),
            cut: x0 < 0.0 || y0 < 0.0 || x1 > w || y1 > h,
            lower_keypoints: Some(own_keypoints),
        };
        o
    }
}

/// One tick's faces of both cameras as one list: a face both saw becomes one observation with the
/// better view's evidence (passing the gates first, then the fusion's frame weight) and the upper
/// camera's box and keypoints (the track's and the planarity cue's frame); a face one camera
/// alone saw stays as it is. Pairs are formed greedily by overlap, best first, ties by order, so
/// the result never depends on float noise beyond the overlap itself. `lower` are placed in the
/// upper frame ([`LowerView::observe`]) by `geometry`; `zone` is the upper camera's lane zone.
pub fn merge(
    upper: Vec<Observation>,
    lower: Vec<Observation>,
    geometry: &LowerGeometry,
    zone: &BBox,
    gates: &QualityGates,
) -> Vec<Observation> {
    if lower.is_empty() {
        return upper;
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (ui, u) in upper.iter().enumerate() {
        for (li, l) in lower.iter().enumerate() {
            let iou = pair_overlap(u, l, geometry);
            if iou >= MIN_PAIR_IOU {
                pairs.push((iou, ui, li));
            }
        }
    }
    let kept = pair_greedily(pairs, upper.len(), lower.len());
    let mut lower_of: Vec<Option<usize>> = vec![None; upper.len()];
    for &(ui, li) in &kept {
        lower_of[ui] = Some(li);
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
        let (lower_box, lower_keypoints) = (l.seen.lower, l.seen.lower_keypoints);
        let patches = Patches {
            upper: u.patches.upper.clone(),
            lower: l.patches.lower.clone(),
        };
        let mut best = if rank(&l, gates) > rank(&u, gates) {
            l
        } else {
            u
        };
        best.bbox = bbox;
        best.keypoints = keypoints;
        best.seen.mapped = false;
        best.seen.lower = lower_box;
        best.seen.lower_keypoints = lower_keypoints;
        best.seen.in_zone = Some(in_zone);
        best.patches = patches;
        out.push(best);
    }
    tracing::debug!(
        paired = kept.len(),
        upper = out.len(),
        lower_alone = lower.iter().flatten().count(),
        "views merged"
    );
    // A face the lower camera's frame cuts off alone: its box's size is not the face's, so
    // the geometry cannot place it, and it would start a second track of someone the upper
    // camera sees (a walker leaving the top of the lower frame).
    out.extend(lower.into_iter().flatten().filter(|o| !o.seen.cut));
    out
}

/// How well a lower-camera face placed in the upper frame matches an upper-camera face, as one
/// face seen twice: placed by the mean of both boxes' widths (the same face at the same distance;
/// either box alone is off by a tenth now and then, which at arm's length is a face's height),
/// and 0 for boxes whose widths differ more than one face at one distance can (a walker behind
/// another is smaller). The better of the placed boxes' overlap and their column agreement: a
/// face narrower than [`FACE_BOX_M`] (a child's, about 0.15 m) is told to be farther than it is
/// and placed too high, by up to a third of the height term, while still in the same column
/// at the same width.
fn pair_overlap(u: &Observation, l: &Observation, geometry: &LowerGeometry) -> f32 {
    let Some(own) = l.seen.lower else {
        return u.bbox.iou(&l.bbox);
    };
    let width = |b: &BBox| b.0[2] - b.0[0];
    let (wu, wl) = (width(&u.bbox), width(&own));
    if !(wu > 0.0 && wl > 0.0) || wu.max(wl) > MAX_WIDTH_RATIO * wu.min(wl) {
        return 0.0;
    }
    let w = (wu + wl) / 2.0;
    let dy = geometry.shift_px(w);
    let [x0, y0, x1, y1] = own.0;
    let placed = BBox([x0, y0 + dy, x1, y1 + dy]);
    let [ux0, _, ux1, _] = u.bbox.0;
    let column = (ux1.min(x1) - ux0.max(x0)).max(0.0) / (ux1.max(x1) - ux0.min(x0));
    let tolerance = geometry.below_m * w / FACE_BOX_M / 2.0;
    let off = (u.bbox.centre()[1] - placed.centre()[1]).abs();
    let by_column = match column >= MIN_COLUMN && tolerance > 0.0 {
        true => column * (1.0 - off / tolerance).max(0.0),
        false => 0.0,
    };
    u.bbox.iou(&placed).max(by_column)
}

/// Two views of one face share at least this much of their columns (overlap over union of the
/// boxes' horizontal extents).
const MIN_COLUMN: f32 = 0.6;

/// Two views of one face at one instant differ in box width by less than this factor (BlazeFace's
/// box noise, and a face pitched toward one camera); a walker half a metre behind another at arm's
/// length differs by more.
const MAX_WIDTH_RATIO: f32 = 1.4;

/// How much a view's face is worth: passing the gates first, then how squarely the camera sees
/// it up and down, then the fusion's frame weight. Both views see the face at the same distance
/// and turn, so what differs is the pitch: a face bent over a phone is foreshortened in the upper
/// camera's picture and seen nearly from the front by the lower one, a standing adult's the other
/// way round.
fn rank(o: &Observation, gates: &QualityGates) -> (bool, f32, f32) {
    (
        // A face its frame cuts off is not a whole face's evidence.
        !o.seen.cut && gates.fails(&o.quality).is_none(),
        upright(&o.keypoints).unwrap_or(0.0),
        frame_weight(&o.quality, gates),
    )
}

/// The eyes-to-mouth height of a face over its eye distance (BlazeFace's keypoints: right eye,
/// left eye, nose, mouth, …), measured across the eye line so a tilted head reads the same: it
/// shrinks as the face pitches away from the camera, either way. Two views of one face at one
/// instant differ in nothing else, so the larger is the squarer view. `None` for keypoints
/// without an eye distance.
fn upright(k: &[[f32; 2]; 6]) -> Option<f32> {
    let ([ax, ay], [bx, by], [mx, my]) = (k[0], k[1], k[3]);
    let (vx, vy) = (bx - ax, by - ay);
    let eye = (vx * vx + vy * vy).sqrt();
    if eye.is_nan() || eye <= 0.0 {
        return None;
    }
    let (cx, cy) = ((ax + bx) / 2.0, (ay + by) / 2.0);
    let r = (vx * (my - cy) - vy * (mx - cx)).abs() / eye / eye;
    r.is_finite().then_some(r)
}

/// Frames of the two cameras whose presentation times are this close show one instant: at walking
/// pace the walker moves under 7 cm in it, and unsynchronised live cameras are at most half a
/// frame apart at 10 fps or more.
pub const TWIN_MS: u64 = 50;

/// How many tick ends a frame waits for its twin from the other camera, unless that camera is
/// behind and still delivering (`MAX_LAG_TICKS`). A live camera's twin comes in the same tick, and
/// a dead camera's never.
const MAX_WAIT_TICKS: u8 = 2;

/// How many tick ends a frame waits for a twin from a camera that is behind it in time and still
/// delivering. Recorded footage is decoded per camera and each camera's queue holds two frames
/// (`capture::hub`), so a camera that starts a few frames late stays that late for the whole run:
/// with two tick ends only, one benchmark run paired no face on one lane for the whole footage
/// (docs/pad.md). Bounded, since a camera whose clock runs behind would otherwise hold the other
/// camera's frames, and the lane's decisions, for ever.
const MAX_LAG_TICKS: u8 = 32;

/// One camera's frame of a lane, waiting for its twin.
#[derive(Debug)]
pub struct Waiting {
    pub at_ms: u64,
    pub captured: Instant,
    pub obs: Vec<Observation>,
    ticks: u8,
}

/// One instant of a lane, both cameras' faces (either may be empty).
#[derive(Debug)]
pub struct Moment {
    pub at_ms: u64,
    pub captured: Instant,
    pub upper: Vec<Observation>,
    pub lower: Vec<Observation>,
}

/// A two-camera lane's frames waiting for their twins: what makes both views of one instant meet,
/// whichever tick each camera's frame came in.
#[derive(Debug, Default)]
pub struct Twins {
    queues: [VecDeque<Waiting>; 2],
    /// Each camera's newest frame time so far, and the tick ends since it last delivered one.
    newest: [Option<u64>; 2],
    idle: [u8; 2],
}

impl Twins {
    pub fn push(&mut self, view: View, at_ms: u64, captured: Instant, obs: Vec<Observation>) {
        let v = view as usize;
        self.newest[v] = Some(self.newest[v].map_or(at_ms, |n| n.max(at_ms)));
        self.idle[v] = 0;
        self.queues[v].push_back(Waiting {
            at_ms,
            captured,
            obs,
            ticks: 0,
        });
    }

    /// At a tick's end: the frames paired with their twins, and those that waited long enough
    /// for one, in time order. `all`: every frame waiting (the footage played out).
    pub fn take(&mut self, all: bool) -> Vec<Moment> {
        let mut out = Vec::new();
        let (newest, idle) = (self.newest, self.idle);
        // Whether a frame of camera `v` alone has waited long enough for its twin from the other.
        let waited = |v: usize, w: &Waiting| {
            let other = 1 - v;
            let behind = idle[other] < MAX_WAIT_TICKS
                && newest[other].is_some_and(|n| n + TWIN_MS < w.at_ms);
            let most = if behind {
                MAX_LAG_TICKS
            } else {
                MAX_WAIT_TICKS
            };
            all || w.ticks >= most
        };
        loop {
            let [u, l] = &mut self.queues;
            let (up, low) = match (u.front(), l.front()) {
                (Some(a), Some(b)) if a.at_ms.abs_diff(b.at_ms) <= TWIN_MS => {
                    (u.pop_front(), l.pop_front())
                }
                // Frames come in time order per camera: the older one's twin would have come first.
                (Some(a), Some(b)) if a.at_ms < b.at_ms => (u.pop_front(), None),
                (Some(_), Some(_)) => (None, l.pop_front()),
                (Some(a), None) if waited(0, a) => (u.pop_front(), None),
                (None, Some(b)) if waited(1, b) => (None, l.pop_front()),
                _ => break,
            };
            let both = [&up, &low];
            let at_ms = both
                .iter()
                .filter_map(|w| w.as_ref().map(|w| w.at_ms))
                .max();
            let captured = both
                .iter()
                .filter_map(|w| w.as_ref().map(|w| w.captured))
                .min();
            let (Some(at_ms), Some(captured)) = (at_ms, captured) else {
                break;
            };
            out.push(Moment {
                at_ms,
                captured,
                upper: up.map(|w| w.obs).unwrap_or_default(),
                lower: low.map(|w| w.obs).unwrap_or_default(),
            });
        }
        for w in self.queues.iter_mut().flatten() {
            w.ticks = w.ticks.saturating_add(1);
        }
        for i in &mut self.idle {
            *i = i.saturating_add(1);
        }
        out
    }
}
