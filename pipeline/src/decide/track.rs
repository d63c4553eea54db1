//! Face tracks across the frames of one lane, and the events the decision needs.

use std::sync::Arc;

use super::fusion::{Evidence, Frame, Fusion, FusionParams, Templates, frame_weight};
use super::liveness::{LiveVerdict, Liveness, PadMode};
use super::parallax::{self, Patches};
use super::planarity::{Keypoints, Planarity};
use super::stereo::Stereo;
use super::{BBox, Candidate, Quality};

mod pad;
pub use pad::Cue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// One detected face of one frame with its measurements and the matcher's top two.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub bbox: BBox,
    pub quality: Quality,
    pub best: Option<Candidate>,
    pub second: Option<Candidate>,
    /// The unit embedding that was matched, for the `mean` fusion rule.
    pub embedding: Option<Arc<[f32]>>,
    /// The PAD pair's live probability (0–1) of this face, when it was measured.
    pub live: Option<f32>,
    /// BlazeFace's six keypoints (frame pixels), for the planarity cue.
    pub keypoints: [[f32; 2]; 6],
    /// Which camera saw it, on a lane with two (`views`).
    pub seen: Seen,
    /// Its grey patches, by camera, where PAD scored it (the parallax cue's input).
    pub patches: Patches,
}

/// Which of a lane's cameras saw a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The lane's camera (`[[lane]] source`); the only one on a one-camera lane.
    #[default]
    Upper,
    /// `[lane.lower]`: nearer the height of children, seated passengers and faces bent over a phone.
    Lower,
}

/// How one observation was seen, on a lane with two cameras. The default is a one-camera lane's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Seen {
    /// The camera the face's evidence (quality, match, PAD score, keypoints) came from.
    pub view: View,
    /// `bbox` is the lower camera's box placed in the upper camera's frame: the upper camera did
    /// not see the face this tick (its keypoints then say nothing of the upper camera's geometry).
    pub mapped: bool,
    /// The face's box in the lower camera's own pixels, when that camera saw it.
    pub lower: Option<BBox>,
    /// Whether the face is inside the lane zone of a camera that saw it; `None`: `bbox` is tested
    /// against the lane's zone.
    pub in_zone: Option<bool>,
    /// The lower camera's frame cuts the face's box off.
    pub cut: bool,
    /// The face's keypoints in the lower camera's own pixels, when that camera saw it (with
    /// `keypoints` the upper camera's, unless `mapped`: the two-camera PAD cue).
    pub lower_keypoints: Option<[[f32; 2]; 6]>,
}

/// The reason of an unidentified track whose frames agreed on a subject but whose liveness was
/// never shown (too few frames scored by PAD): the lane did not decide.
pub const LIVENESS_NOT_SHOWN: &str = "liveness not shown";

/// The reason of an unidentified track whose frames named different subjects (a refusal, however
/// few the frames).
pub const CONFLICTING: &str = "frames named different subjects";

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A track became confident; reported once per track, with its best frame.
    Identified {
        track: TrackId,
        evidence: Evidence,
        first_seen_ms: u64,
        frames: usize,
        /// Mean live probability of the track's PAD-scored frames, when PAD judged it.
        live: Option<f32>,
    },
    /// The track's face is most likely a picture (print, screen): never opens, raises the alarm.
    /// Reported once per track, when the frames named someone (with their best frame) or when
    /// the track left without being identified.
    Attack {
        track: TrackId,
        /// Whom the picture showed, when the frames agreed on someone.
        evidence: Option<Evidence>,
        first_seen_ms: u64,
        frames: usize,
        /// Mean live probability over `scored` frames, when the PAD pair scored any.
        live: Option<f32>,
        scored: usize,
        /// When the planarity cue judged it (its face kept a picture's relief while the viewing
        /// angle changed): the fitted relief slope (a head shows about 1).
        flat: Option<f32>,
        /// Which rule of `Track::suspected` raised it.
        cue: Cue,
    },
    /// Someone else is inside the lane zone together with an identified track that is still
    /// there: one identification, two people. Reported once per identified track.
    Tailgating {
        identified: TrackId,
        others: Vec<TrackId>,
        at_ms: u64,
    },
    /// A track left without being identified (the lane stays in IC-card mode for it). `gated` of
    /// its `frames` passed the quality gates; the fusion rule needs `needed` (its `k`) of them, so
    /// with fewer the lane could not decide at all (`gate::verdicts` says `not_decided`, not
    /// `unknown`). `reason`: `frames named different subjects`, the last quality gate failed when
    /// no frame passed, else `not confident`.
    Unidentified {
        track: TrackId,
        first_seen_ms: u64,
        frames: usize,
        gated: usize,
        needed: usize,
        reason: &'static str,
        /// Mean live probability of the frames PAD scored, when it scored any.
        live: Option<f32>,
    },
}

#[derive(Debug)]
struct Track {
    id: TrackId,
    /// Last box, upper camera's frame.
    bbox: BBox,
    /// The box before it and when it was seen: the walker's motion, to follow a face across
    /// frames a live station skipped (`predicted`).
    before: Option<(BBox, u64)>,
    /// Last box in the lower camera's own frame, when it saw the walker, and when.
    lower_box: Option<BBox>,
    lower_seen_ms: u64,
    /// Whether the last box was inside the lane zone (of the camera that saw it).
    in_zone: bool,
    first_seen_ms: u64,
    last_seen_ms: u64,
    frames: usize,
    gated: usize,
    fusion: Fusion,
    identified: bool,
    /// Judged a presentation attack: settled like an identified track, but never someone to
    /// tailgate behind.
    attack: bool,
    tailgate_reported: bool,
    last_gate_failure: Option<&'static str>,
    /// The last frame came from the lower camera alone: the upper camera's geometry says
    /// nothing of it.
    mapped: bool,
    /// The upper camera saw the face at least once: on a lane with a lower camera, the two
    /// views could have been paired.
    upper_seen: bool,
    liveness: Liveness,
    keypoints: Keypoints,
    /// Both cameras' keypoints of the same instants (a lane with a lower camera).
    stereo: Stereo,
    /// The cues called it a picture and the alarm was held back (the two cameras saw a head's
    /// depth, or the walker was not yet near): logged as the track leaves.
    alarm_held: bool,
}

impl Track {
    /// Where the face is likely at `at_ms`: its last box moved on as it moved between its last
    /// two sightings, at most two such steps ahead. A live station takes each lane's newest
    /// frame and skips the rest (the paced benchmark processed 60 % of them), and a walker near
    /// the camera moves and grows enough between the frames it took for their boxes to stop
    /// overlapping: the track split, its second part short of the frames the two-camera cue
    /// judges on (13 % of walkers there against 1–2 % with every frame; docs/pad.md).
    fn predicted(&self, at_ms: u64) -> BBox {
        let Some((before, then)) = self.before else {
            return self.bbox;
        };
        let step = self.last_seen_ms.saturating_sub(then);
        if step == 0 {
            return self.bbox;
        }
        let k = (at_ms.saturating_sub(self.last_seen_ms) as f32 / step as f32).min(2.0);
        let moved = BBox(std::array::from_fn(|i| {
            self.bbox.0[i] + k * (self.bbox.0[i] - before.0[i])
        }));
        if valid_box(&moved) { moved } else { self.bbox }
    }
}

/// The tracks of one lane and the rule that turns them into events.
#[derive(Debug)]
pub struct LaneDecider {
    params: FusionParams,
    /// Where a person counts as inside the lane (frame pixels).
    zone: BBox,
    /// Minimum overlap of a face with its track's last box to continue the track.
    min_iou: f32,
    /// A track not seen for this long has left.
    lost_after_ms: u64,
    tracks: Vec<Track>,
    next: u64,
    /// What the `mean` fusion rule matches against; without them that rule identifies nobody.
    templates: Option<Arc<dyn Templates>>,
    /// The lane's cameras' shutter as the two views' smears show it (`parallax::Shutter`).
    shutter: parallax::Shutter,
}

impl LaneDecider {
    pub fn new(params: FusionParams, zone: BBox, lost_after_ms: u64) -> Self {
        Self {
            params,
            zone,
            min_iou: 0.25,
            lost_after_ms,
            tracks: Vec::new(),
            next: 1,
            templates: None,
            shutter: parallax::Shutter::default(),
        }
    }

    /// The enrolled templates the `mean` fusion rule matches a track's fused embedding against.
    pub fn with_templates(mut self, templates: Arc<dyn Templates>) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Last boxes, in `view`'s own frame, of the tracks already decided (identified or judged
    /// an attack): their faces need no more embedding.
    pub fn identified_boxes(&self, view: View) -> Vec<BBox> {
        self.tracks
            .iter()
            .filter(|t| t.identified || t.attack)
            .filter_map(|t| match view {
                View::Upper => Some(t.bbox),
                View::Lower => self.lower_box(t),
            })
            .collect()
    }

    /// A track's box in the lower camera's frame while that camera still sees the walker (not
    /// missing longer than a track may be).
    fn lower_box(&self, t: &Track) -> Option<BBox> {
        let fresh = t.last_seen_ms.saturating_sub(t.lower_seen_ms) <= self.lost_after_ms;
        t.lower_box.filter(|_| fresh)
    }

    /// Tracks whose last box is inside the lane zone.
    pub fn tracks_in_zone(&self) -> usize {
        self.tracks.iter().filter(|t| t.in_zone).count()
    }

    /// The lane zone, upper camera's frame pixels.
    pub fn zone(&self) -> &BBox {
        &self.zone
    }

    /// The quality gates a frame must pass to count.
    pub fn gates(&self) -> &super::QualityGates {
        &self.params.gates
    }

    /// One frame's faces at `at_ms` (the lane's clock, non-decreasing). Returns the events in a
    /// fixed order: identifications, tailgating, then tracks that left.
    pub fn update(&mut self, at_ms: u64, faces: &[Observation]) -> Vec<Event> {
        let faces: Vec<&Observation> = faces.iter().filter(|o| valid_box(&o.bbox)).collect();
        // Greedy association by overlap (`pair_greedily`).
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            let ahead = t.predicted(at_ms);
            for (fi, f) in faces.iter().enumerate() {
                // A walker the lower camera keeps seeing is followed in its own frame too: where
                // the geometry places a face off (one narrower than an adult's), its placed box
                // jumps when the upper camera loses it, its own box does not.
                let own = match (self.lower_box(t), f.seen.lower) {
                    (Some(a), Some(b)) => a.iou(&b),
                    _ => 0.0,
                };
                let iou = t.bbox.iou(&f.bbox).max(ahead.iou(&f.bbox)).max(own);
                if iou >= self.min_iou {
                    pairs.push((iou, ti, fi));
                }
            }
        }
        let mut track_of: Vec<Option<usize>> = vec![None; faces.len()];
        for (ti, fi) in pair_greedily(pairs, self.tracks.len(), faces.len()) {
            track_of[fi] = Some(ti);
        }
        let mut seen_now = vec![false; self.tracks.len()];
        for (fi, face) in faces.iter().enumerate() {
            let ti = match track_of[fi] {
                Some(ti) => ti,
                None => {
                    self.tracks.push(Track {
                        id: TrackId(self.next),
                        bbox: face.bbox,
                        before: None,
                        lower_box: None,
                        lower_seen_ms: 0,
                        in_zone: false,
                        first_seen_ms: at_ms,
                        last_seen_ms: at_ms,
                        frames: 0,
                        gated: 0,
                        fusion: Fusion::default(),
                        identified: false,
                        attack: false,
                        tailgate_reported: false,
                        last_gate_failure: None,
                        mapped: false,
                        upper_seen: false,
                        liveness: Liveness::default(),
                        keypoints: Keypoints::default(),
                        stereo: Stereo::default(),
                        alarm_held: false,
                    });
                    self.next += 1;
                    seen_now.push(false);
                    self.tracks.len() - 1
                }
            };
            seen_now[ti] = true;
            let t = &mut self.tracks[ti];
            if at_ms > t.last_seen_ms {
                t.before = Some((t.bbox, t.last_seen_ms));
            }
            t.bbox = face.bbox;
            if face.seen.lower.is_some() {
                t.lower_box = face.seen.lower;
                t.lower_seen_ms = at_ms;
            }
            t.mapped = face.seen.mapped;
            t.upper_seen |= !face.seen.mapped;
            t.in_zone = face
                .seen
                .in_zone
                .unwrap_or_else(|| face.bbox.centre_in(&self.zone));
            t.last_seen_ms = at_ms;
            t.frames += 1;
            // Every frame's keypoints, gated or not: a turned face fails the yaw gate, and the
            // turn is what the planarity cue needs. Only the upper camera's: the lane's geometry
            // is that camera's.
            if self.params.pad.mode != PadMode::Off && !face.seen.mapped {
                let pad = &self.params.pad.planar;
                let x = face.bbox.centre()[0];
                t.keypoints
                    .push(pad, &face.keypoints, face.quality.eye_px, x);
                if let Some(lower) = &face.seen.lower_keypoints {
                    let shutter = &mut self.shutter;
                    t.stereo
                        .push(pad, at_ms, &face.keypoints, lower, &face.patches, shutter);
                }
            }
            match self.params.gates.fails(&face.quality) {
                Some(why) => t.last_gate_failure = Some(why),
                None => {
                    t.gated += 1;
                    let frame = Frame {
                        at_ms,
                        best: face.best,
                        second: face.second,
                        embedding: face.embedding.clone(),
                        weight: frame_weight(&face.quality, &self.params.gates),
                    };
                    t.fusion.push(&self.params, frame);
                    if let Some(live) = face.live.filter(|_| self.params.pad.mode != PadMode::Off) {
                        t.liveness.push(&self.params.pad, live);
                        tracing::trace!(
                            track = t.id.0,
                            at_ms,
                            live,
                            eye_px = face.quality.eye_px,
                            mean = ?t.liveness.mean(),
                            "pad score"
                        );
                    }
                }
            }
        }
        let mut events = Vec::new();
        let pad = self.params.pad;
        let templates = self.templates.as_deref();
        for t in self
            .tracks
            .iter_mut()
            .filter(|t| !t.identified && !t.attack)
        {
            let Some(evidence) = t.fusion.decide(&self.params, templates) else {
                continue;
            };
            let cues = t.pad_cues(&pad, false);
            if let Some(attack) = t.attack(&pad, &cues, Some(evidence)) {
                t.attack = true;
                events.push(attack);
                continue;
            }
            t.alarm_held |= t.suspected(&pad, &cues).is_some();
            let verdict = cues.learned;
            // On a lane with geometry or a lower camera, a grant waits for the face shown in
            // relief, until the walker is too near to wait longer, or only the lower camera sees
            // them; then the learned cue decides, on a face both cameras saw only when its fitted
            // slope is more a head's than a picture's (pictures the two cameras could not call
            // flat went through at the door on the learned cue alone: docs/pad.md).
            let relief = match cues.shape(&pad.planar) {
                Planarity::Flat { .. } => false,
                Planarity::Relief { .. } => true,
                Planarity::Unsure { .. } if cues.stereo.paired() => {
                    (t.near(&pad) || t.mapped) && cues.stereo.head_like(&pad.planar)
                }
                // A lane with neither geometry nor a lower camera has no shape cue: the learned
                // cue decides; with the upper camera's geometry, or a lower camera too close to
                // pair a face (`stereo::pairs_before_door`), once the walker is near or only the
                // lower camera sees them. Where the two cameras can pair a face, only one the
                // upper camera never saw (a child's) goes on the learned cue: one both could see
                // is granted only as a pair, since a walk split in two leaves a short unpaired
                // fragment at the door, and a glossy print's opened a door so (docs/pad.md).
                Planarity::Unsure { .. } if super::stereo::pairs_before_door(&pad.planar) => {
                    !t.upper_seen
                }
                Planarity::Unsure { .. } => {
                    (pad.planar.geometry.is_none() && pad.planar.lower.is_none())
                        || t.near(&pad)
                        || t.mapped
                }
            };
            match (pad.mode, verdict) {
                // Liveness not shown yet: the track waits for more frames (or leaves undecided).
                // A picture to the learned cue that `attack` did not alarm (the two cameras saw a
                // head's depth, or have not had their best look yet) waits too: never a grant.
                (
                    PadMode::Enforce,
                    LiveVerdict::Unsure { .. }
                    | LiveVerdict::Doubtful { .. }
                    | LiveVerdict::Attack { .. },
                ) => {}
                (PadMode::Enforce, LiveVerdict::Live { .. }) if !relief => {}
                _ => {
                    t.identified = true;
                    events.push(Event::Identified {
                        track: t.id,
                        evidence,
                        first_seen_ms: t.first_seen_ms,
                        frames: t.frames,
                        live: verdict.mean(),
                    });
                }
            }
        }
        let in_zone: Vec<TrackId> = self
            .tracks
            .iter()
            .zip(&seen_now)
            .filter(|(t, seen)| **seen && t.in_zone)
            .map(|(t, _)| t.id)
            .collect();
        for (t, seen) in self.tracks.iter_mut().zip(&seen_now) {
            if t.identified && !t.attack && !t.tailgate_reported && *seen && in_zone.contains(&t.id)
            {
                let others: Vec<TrackId> = in_zone.iter().copied().filter(|o| *o != t.id).collect();
                if !others.is_empty() {
                    t.tailgate_reported = true;
                    events.push(Event::Tailgating {
                        identified: t.id,
                        others,
                        at_ms,
                    });
                }
            }
        }
        let lost_after = self.lost_after_ms;
        let (gone, kept): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| at_ms.saturating_sub(t.last_seen_ms) > lost_after);
        self.tracks = kept;
        for t in &gone {
            tracing::debug!(
                track = t.id.0,
                first_seen_ms = t.first_seen_ms,
                last_seen_ms = t.last_seen_ms,
                planarity = ?t.keypoints.verdict(&pad.planar),
                stereo = ?t.stereo.fit(&pad.planar),
                live = ?t.liveness.mean(),
                alarm_held = t.alarm_held,
                identified = t.identified,
                attack = t.attack,
                "track left"
            );
            tracing::trace!(track = t.id.0, keypoints = ?t.keypoints, stereo = ?t.stereo, "track left");
        }
        for t in gone.into_iter().filter(|t| !t.identified && !t.attack) {
            // A picture of someone unknown is still an attack: the alarm, not just a shut door;
            // of someone enrolled, it names whose (their account may be being abused).
            let evidence = t.fusion.decide(&self.params, self.templates.as_deref());
            if let Some(attack) = t.attack(&pad, &t.pad_cues(&pad, true), evidence) {
                events.push(attack);
                continue;
            }
            let reason = if t.fusion.conflicting() {
                CONFLICTING
            } else if evidence.is_some() {
                LIVENESS_NOT_SHOWN
            } else if t.gated == 0 {
                t.last_gate_failure.unwrap_or("no usable frame")
            } else {
                "not confident"
            };
            events.push(Event::Unidentified {
                track: t.id,
                first_seen_ms: t.first_seen_ms,
                frames: t.frames,
                gated: t.gated,
                needed: self.params.k.max(1),
                reason,
                live: t.liveness.mean(),
            });
        }
        events
    }
}

/// Greedy one-to-one matching of scored candidate pairs `(score, a, b)`: best score first, ties by
/// `a` then `b`, so the result never depends on hashing or float noise beyond the score itself.
/// Returns the pairs kept, each `a` (of `n_a`) and each `b` (of `n_b`) at most once.
pub(super) fn pair_greedily(
    mut pairs: Vec<(f32, usize, usize)>,
    n_a: usize,
    n_b: usize,
) -> Vec<(usize, usize)> {
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let (mut a_taken, mut b_taken) = (vec![false; n_a], vec![false; n_b]);
    let mut kept = Vec::new();
    for (_, a, b) in pairs {
        if !a_taken[a] && !b_taken[b] {
            a_taken[a] = true;
            b_taken[b] = true;
            kept.push((a, b));
        }
    }
    kept
}

/// Hostile or broken detector output (NaN, inverted or empty boxes) never becomes a track.
fn valid_box(b: &BBox) -> bool {
    b.0.iter().all(|v| v.is_finite()) && b.area() > 0.0
}
