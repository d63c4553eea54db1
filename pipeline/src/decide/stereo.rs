//! The two-camera presentation-attack cue: on a lane with a lower camera (`[lane.lower]`), both
//! cameras see a walker's face at the same instant from two heights, so from two pitches that
//! differ by about `below_m / distance` (10–30° over a walk). A print or a screen is a plane: its
//! six BlazeFace keypoints keep one affine shape in both pictures. A head is not: the camera above
//! sees the nose slide down toward the mouth and the ears rise, the camera below the other way.
//!
//! Why this beside the one-camera cue (`planarity`): that one needs the viewing angle to change
//! over the walk, and the head's own turning moves its measure as much as the view does, so
//! honest walkers who turn as they approach look flat. Here both views are of one instant: the
//! head's own pitch and turn are the same in both and cancel, the difference of the views' angles
//! is known from the lane geometry in every frame, and a replayed video cannot show two cameras
//! two parallaxes at once (a screen is flat for both).
//!
//! The measure, per paired frame: `down relief = nose − mean(ears)` along the eyes-to-mouth axis
//! in the affine frame of the eyes and the mouth (`planarity::affine`), upper view minus lower,
//! against `tan θ_upper − tan θ_lower` (each camera's ray to the face below its level). A head's
//! difference rises with a slope of about its depth (nose tip to ears, in eyes-to-mouth heights); a
//! picture's stays 0. The slope is fitted through the origin over the track's paired frames and
//! judged against `stereo_relief` with the same confidence as the one-camera cue.
//!
//! Where a lane enables it (`stereo_parallax` above 0), the same paired frames' pixels are measured
//! too (`parallax`: both views' patches), and they can only take depth away: the keypoints move
//! with the face's overall look, so a bent print fits a shallow head's slope, and its pixels show
//! no nose; but noise (a dim lane's) only ever adds structure, so pixels that look deep are no
//! evidence of a head. Flat pixels make the face flat whatever the slope; a head needs both.

use super::parallax::{self, Patches};
use super::planarity::{CONFIDENCE, PlanarParams, Planarity, affine, fit, judge, within_decide_by};
use crate::recognise::patch::Patch;

#[derive(Debug, Clone)]
struct Sample {
    /// `tan θ_upper − tan θ_lower`.
    dtan: f32,
    /// The nose's and the ears' down coordinates (`planarity::affine`), upper view minus lower.
    dnose: f32,
    dears: f32,
    /// The smaller of the two views' eye distances, pixels.
    eye_px: f32,
    /// The pixels' structure (`parallax`), when both views' patches were cut.
    structure: Option<parallax::Structure>,
}

/// The least difference of the two views' pitches (tangent; about 3°) for a pair to say anything:
/// cameras mounted close together see a head and a picture alike, and a lane whose cameras are
/// that close gets no verdict from this cue (its grants wait until the walker is near, then the
/// learned cue decides).
const MIN_DTAN: f32 = 0.05;

/// Whether the lane's cameras stand far enough apart to pair a face before the door: a pair needs
/// the views' pitches to differ by `MIN_DTAN`, about `below_m / distance`, so from
/// `below_m / MIN_DTAN` on; asked of at least twice `decide_by_m`, the last stretch of the walk
/// gives the pair its frames. Cameras closer than that (a lower camera for coverage, not depth)
/// leave the lane's grants to its other rules, as a lane without one.
pub(super) fn pairs_before_door(p: &PlanarParams) -> bool {
    let decide_by = p
        .geometry
        .map_or_else(super::planarity::default_decide_by_m, |g| g.decide_by_m);
    p.lower
        .is_some_and(|g| g.below_m >= 2.0 * decide_by * MIN_DTAN)
}

/// Frames kept per track: more than a walk at 25 fps; past that the oldest go.
const KEPT: usize = 96;

/// Paired frames with both patches needed before the pixels' parallax says anything, whether
/// or not the keypoints have enough for their own verdict (`stereo_frames`); also enough for the
/// alarm since the frames are averaged (`parallax::Structure::together`): the lowest of 49 heads
/// measured on three or four frames was 0.31 (docs/pad.md), against the alarm's 0.2. (Judged
/// frame by frame, one head measured flat on three; the alarm then waited for five.)
const PARALLAX_FRAMES: usize = 3;

/// The share of `stereo_parallax` below which flat pixels raise the alarm on their own: an alarm
/// at an honest passenger costs more than a grant held back. Heads' lowest on the footage sat at
/// the threshold (0.30 at 0.3), pictures the learned cue misses well below it (docs/pad.md).
const ALARM_SHARE: f32 = 2.0 / 3.0;

/// The share of `stereo_parallax` under which pixels that are not flat are still short of a
/// head's: with the keypoints flat and the learned cue doubtful, an alarm. A dim lane's noise and
/// blur lift a picture's pixels to 0.30–0.39 (docs/pad.md); of the heads whose keypoints fitted
/// flat while the learned cue doubted them, the lowest measured 0.465.
const SHALLOW_SHARE: f32 = 4.0 / 3.0;

/// The paired frames of one track, oldest first.
#[derive(Debug, Default, Clone)]
pub(super) struct Stereo {
    samples: Vec<Sample>,
    /// The smaller eye distance of the latest instant both cameras saw the face, whether or not
    /// it was evidence: how near the walker is.
    last_eye_px: Option<f32>,
    /// The latest instant both cameras saw the face: when, and where each view's eyes and mouth
    /// were (image pixels), for each camera's motion since (`parallax::Motion`).
    before: Option<(u64, [f32; 2], [f32; 2])>,
}

/// The longest gap between two paired instants over which a camera's motion is taken as the
/// motion at the second: three frames at 10 fps; longer, a walker may have turned or stopped.
const MOTION_WITHIN_MS: u64 = 300;

/// The mean of a face's eyes and mouth, image pixels (`parallax::STARTS_FROM`, the points the
/// pixels' alignment starts from): where it is, steadier than the box.
fn centre(k: &[[f32; 2]; 6]) -> [f32; 2] {
    parallax::centroid(&parallax::STARTS_FROM.map(|i| k[i]))
}

/// A face's eye midpoint row and eye distance (pixels), from BlazeFace's keypoints (right eye,
/// left eye first).
fn eyes(k: &[[f32; 2]; 6]) -> (f32, f32) {
    let ([ax, ay], [bx, by]) = (k[0], k[1]);
    ((ay + by) / 2.0, (bx - ax).hypot(by - ay))
}

impl Stereo {
    /// Adds one instant's two views of a face at `at_ms`: `upper` in the upper camera's frame,
    /// `lower` in the lower camera's own, with their grey patches where PAD cut them. Faces too
    /// small in either view, on a lane without a lower camera, or with degenerate or non-finite
    /// keypoints are no evidence. `shutter` is the lane's, which each frame's smears vote on.
    pub(super) fn push(
        &mut self,
        p: &PlanarParams,
        at_ms: u64,
        upper: &[[f32; 2]; 6],
        lower: &[[f32; 2]; 6],
        patches: &Patches,
        shutter: &mut parallax::Shutter,
    ) {
        let Some(g) = p.lower else { return };
        let now = (at_ms, centre(upper), centre(lower));
        let before = self.before.replace(now);
        let ((yu, eye_u), (yl, eye_l)) = (eyes(upper), eyes(lower));
        let eye_px = eye_u.min(eye_l);
        // Written so a NaN eye distance is refused too.
        if eye_px.is_nan() || eye_px < p.min_eye_px {
            return;
        }
        self.last_eye_px = Some(eye_px);
        let (Some([nu, eu]), Some([nl, el])) = (affine(upper), affine(lower)) else {
            return;
        };
        let tan_u = (yu - p.centre_y) / g.focal_px;
        let tan_l = (((yl - p.centre_y) / g.focal_px).atan() - g.tilt_deg.to_radians()).tan();
        let (dtan, dnose, dears) = (tan_u - tan_l, nu[1] - nl[1], eu[1] - el[1]);
        if ![dtan, dnose, dears].iter().all(|v| v.is_finite()) || dtan < MIN_DTAN {
            return;
        }
        if self.samples.len() >= KEPT {
            self.samples.remove(0);
        }
        // Measured only where the lane enables the pixels' cue: an alignment and 128 small
        // shift estimates per paired face, on the deciding thread (the footage benchmark's "decide"
        // stage: its dearest part, docs/pad.md).
        let structure = match (&patches.upper, &patches.lower) {
            (Some(u), Some(l)) if p.stereo_parallax > 0.0 => {
                let motion = before.and_then(|b| motion(b, now, u, l));
                let smear = motion.as_ref().map(|m| (m, shutter));
                parallax::structure(u, l, upper, lower, smear)
            }
            _ => None,
        };
        self.samples.push(Sample {
            dtan,
            dnose,
            dears,
            eye_px,
            structure,
        });
    }

    /// Whether the walker is already within the lane's `decide_by_m` (by the latest instant both
    /// cameras saw the face), so a grant can wait no longer.
    pub(super) fn near(&self, p: &PlanarParams) -> bool {
        match (p.lower, self.last_eye_px) {
            (Some(g), Some(eye_px)) => within_decide_by(p, g.focal_px, eye_px),
            _ => false,
        }
    }

    /// The fitted slope of `nose − ears` (down) against the views' pitch difference, with its
    /// standard error: through the origin (a picture's is 0 at any pitch), weighted by eye
    /// distance squared (a keypoint's error in relief units shrinks as the face grows). Computed
    /// once per decision: what the rules ask of it is [`StereoFit`]'s.
    pub(super) fn fit(&self, p: &PlanarParams) -> StereoFit {
        let points = self.samples.iter().map(|s| {
            (
                s.dtan as f64,
                (s.dnose - s.dears) as f64,
                (s.eye_px as f64).powi(2),
            )
        });
        let frames = self.samples.len();
        let structure: Vec<&parallax::Structure> = self
            .samples
            .iter()
            .filter_map(|s| s.structure.as_ref())
            .collect();
        // The median frame's, reported beside the judged measure (docs/pad.md compares them).
        let median = |mut v: Vec<f32>| {
            v.sort_by(f32::total_cmp);
            let m = v.len() / 2;
            match v.len() % 2 {
                1 => v[m],
                _ => (v[m - 1] + v[m]) / 2.0,
            }
        };
        let enough = structure.len() >= PARALLAX_FRAMES;
        StereoFit {
            fit: fit(points, true),
            parallax: enough
                .then(|| parallax::Structure::together(&structure))
                .flatten(),
            per_frame: enough.then(|| median(structure.iter().map(|s| s.relief()).collect())),
            parallax_frames: structure.len(),
            frames,
            paired: p.lower.is_some() && frames >= p.stereo_frames.max(2),
        }
    }
}

/// Each camera's motion between two paired instants (`Stereo::before`), in patch pixels per
/// second of the patches cut at the second; `None` over a gap longer than `MOTION_WITHIN_MS`, or
/// none at all.
fn motion(
    (t0, u0, l0): (u64, [f32; 2], [f32; 2]),
    (t1, u1, l1): (u64, [f32; 2], [f32; 2]),
    upper: &Patch,
    lower: &Patch,
) -> Option<parallax::Motion> {
    let dt = t1
        .checked_sub(t0)
        .filter(|d| (1..=MOTION_WITHIN_MS).contains(d))? as f32
        / 1000.0;
    let per_s = |patch: &Patch, a: [f32; 2], b: [f32; 2]| {
        let (pa, pb) = (patch.place(a), patch.place(b));
        [(pb[0] - pa[0]) / dt, (pb[1] - pa[1]) / dt]
    };
    let m = parallax::Motion {
        upper: per_s(upper, u0, u1),
        lower: per_s(lower, l0, l1),
    };
    (m.upper.iter().chain(&m.lower).all(|v| v.is_finite())).then_some(m)
}

/// What the two-camera cue says of a track at one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct StereoFit {
    /// Slope and its standard error.
    fit: Option<(f32, f32)>,
    /// The structure of the paired frames with patches together
    /// (`parallax::Structure::together`), pixels of a 64-px patch; with fewer than
    /// `PARALLAX_FRAMES` such frames, none.
    parallax: Option<f32>,
    /// The median of the same frames' own structures (`parallax::Structure::relief`): what the
    /// cue judged before the frames were averaged, kept for the log.
    per_frame: Option<f32>,
    parallax_frames: usize,
    frames: usize,
    /// Both cameras have seen the face together often enough (`stereo_frames`) for a verdict.
    paired: bool,
}

impl StereoFit {
    pub(super) fn paired(&self) -> bool {
        self.paired
    }

    /// Whether the pixels were measured and show a picture: the structure of the paired frames'
    /// patches together below `stereo_parallax` (`parallax`). A picture, flat or bent one way, has
    /// none beyond noise; a head's nose gives it at every lane we measured (docs/pad.md).
    pub(super) fn pixels_flat(&self, p: &PlanarParams) -> bool {
        self.pixels_below(p.stereo_parallax)
    }

    /// The pixels' structure, where measured (`PARALLAX_FRAMES` frames with both patches).
    fn pixels(&self) -> Option<f32> {
        self.parallax
            .filter(|_| self.parallax_frames >= PARALLAX_FRAMES)
    }

    /// Whether the pixels were measured and came out below `bound`.
    fn pixels_below(&self, bound: f32) -> bool {
        self.pixels().is_some_and(|s| s < bound)
    }

    /// Whether the two cameras show a picture beyond doubt, an alarm on their own whatever the
    /// learned cue says or whether it has said anything (`track::Track::suspected`): the pixels
    /// below `ALARM_SHARE` of `stereo_parallax`, or flat (below it) with the keypoints' slope
    /// confidently short of the head's a grant at the door needs (`stereo_near`). Two measures of
    /// the same instants: on the dim lane noise lifts a picture's pixels over the first bound, and
    /// a keypoint slope that low is rare for a head (3 of 516 on our footage); one head was below
    /// both, and the learned cue doubted it too (already an alarm: docs/pad.md).
    pub(super) fn pixels_alarm(&self, p: &PlanarParams) -> bool {
        self.pixels_below(ALARM_SHARE * p.stereo_parallax)
            || self.pixels_flat(p) && self.keypoints_below(p.stereo_near)
    }

    /// Whether the keypoints' slope, on a paired track, is below `bound` with confidence.
    fn keypoints_below(&self, bound: f32) -> bool {
        self.paired
            && self
                .fit
                .is_some_and(|(slope, se)| slope + CONFIDENCE * se < bound)
    }

    /// A face neither shown flat nor in relief with confidence: whether it still has a head's
    /// depth rather than a picture's. The keypoints' slope at least `stereo_near` by one standard
    /// error, and the pixels, where measured, not flat. Enough for a grant at the door, and for
    /// holding back an alarm the learned cue alone would raise (the two cues disagree: no grant,
    /// no alarm). One standard error, not the verdicts' 2.5: bent prints reach 0.3–0.5 on their
    /// best walks, heads 0.7 (docs/pad.md); their pixels take that slope back.
    pub(super) fn head_like(&self, p: &PlanarParams) -> bool {
        self.paired
            && !self.pixels_flat(p)
            && self
                .fit
                .is_some_and(|(slope, se)| slope - se >= p.stereo_near)
    }

    /// Whether the face is flat enough for the flatness alone to turn a doubtful learned score
    /// into an alarm: the pixels show a picture, or the keypoints' slope is confidently below
    /// half of `stereo_relief`, or below `stereo_relief` with the pixels short of a head's
    /// (`SHALLOW_SHARE`). Flat below `stereo_relief` already refuses the grant; an alarm at an
    /// honest passenger costs more, and about 2 % of honest tracks fit flat at `stereo_relief` on
    /// our footage (docs/pad.md), fewer than half as many this far down, and those the learned
    /// cue doubted had pixels of 0.465 and more (a dim lane's pictures 0.30–0.33).
    pub(super) fn flat_for_alarm(&self, p: &PlanarParams) -> bool {
        self.pixels_flat(p)
            || self.keypoints_below(p.stereo_relief / 2.0)
            || self.keypoints_flat(p) && self.pixels_below(SHALLOW_SHARE * p.stereo_parallax)
    }

    /// Whether the pixels were measured short of a head's (under `SHALLOW_SHARE` of
    /// `stereo_parallax`) while the keypoints did not show a head's slope either (not
    /// `head_like`): neither measure of the two cameras found a head, though neither found a
    /// picture beyond doubt. With a learned score leaning to a picture, an alarm
    /// (`track::Track::suspected`): seed 73's dim-lane curved print measured 0.30 and 0.42 ± 0.11.
    pub(super) fn shallow_without_relief(&self, p: &PlanarParams) -> bool {
        self.pixels_below(SHALLOW_SHARE * p.stereo_parallax) && !self.head_like(p)
    }

    /// Whether the pixels were measured and showed a head's depth: at or above the bound under
    /// which they are short of a head's (`SHALLOW_SHARE` of `stereo_parallax`). Against that,
    /// flat keypoints and a doubtful learned score are no alarm (`track::Track::suspected`).
    pub(super) fn pixels_head(&self, p: &PlanarParams) -> bool {
        p.stereo_parallax > 0.0
            && self
                .pixels()
                .is_some_and(|s| s >= SHALLOW_SHARE * p.stereo_parallax)
    }

    /// Whether the lane measures the pixels (a lower camera, `stereo_parallax` set) and this
    /// track's are not measured yet.
    pub(super) fn pixels_pending(&self, p: &PlanarParams) -> bool {
        p.lower.is_some() && p.stereo_parallax > 0.0 && self.pixels().is_none()
    }

    /// Whether the keypoints' slope is confidently below `stereo_relief`: their own verdict,
    /// flat.
    pub(super) fn keypoints_flat(&self, p: &PlanarParams) -> bool {
        self.keypoints_below(p.stereo_relief)
    }

    /// The slope of the views' relief difference against their angles' difference, judged as the
    /// module says; flat, whatever the slope, where the pixels show a picture; `Unsure` until
    /// `stereo_frames` paired frames.
    pub(super) fn verdict(&self, p: &PlanarParams) -> Planarity {
        if !self.paired {
            return Planarity::Unsure {
                frames: self.frames,
            };
        }
        if self.pixels_flat(p) {
            let (slope, se) = self.fit.unwrap_or((0.0, 0.0));
            return Planarity::Flat {
                slope,
                se,
                frames: self.frames,
            };
        }
        judge(self.fit, p.stereo_relief, self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::parallax::Shutter;
    use crate::decide::planarity::pitched as seen;
    use crate::decide::planarity::{EYE_M, LowerGeometry};

    const FOCAL: f32 = 473.0;
    const CENTRE_Y: f32 = 240.0;
    const TILT_DEG: f32 = 12.0;

    fn params() -> PlanarParams {
        PlanarParams {
            lower: Some(LowerGeometry {
                below_m: 0.5,
                tilt_deg: TILT_DEG,
                focal_px: FOCAL,
            }),
            centre_y: CENTRE_Y,
            ..PlanarParams::default()
        }
    }

    /// A walk from 3 m to 0.7 m, the face 0.3 m below the upper camera and 0.2 m above the
    /// lower one; `jitter` adds alternating keypoint noise (pixels) to both views.
    fn walk(p: &PlanarParams, flat: bool, jitter: f32) -> Stereo {
        let mut st = Stereo::default();
        for (i, d) in [3.0f32, 2.6, 2.2, 1.9, 1.6, 1.4, 1.2, 1.0, 0.85, 0.7]
            .into_iter()
            .enumerate()
        {
            let scale = FOCAL * EYE_M / d;
            let (up, down) = ((0.3 / d).atan(), (-0.2 / d).atan());
            let row_u = CENTRE_Y + FOCAL * up.tan();
            let row_l = CENTRE_Y + FOCAL * (down + TILT_DEG.to_radians()).tan();
            let (mut u, mut l) = (seen(up, scale, row_u, flat), seen(down, scale, row_l, flat));
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            u[2][1] += sign * jitter;
            l[4][1] -= sign * jitter;
            st.push(p, 0, &u, &l, &Patches::default(), &mut Shutter::default());
        }
        st
    }

    #[test]
    fn a_picture_is_flat_to_both_cameras_and_a_head_is_not() {
        let p = params();
        for jitter in [0.0, 1.0] {
            let v = walk(&p, true, jitter).fit(&p).verdict(&p);
            assert!(
                matches!(v, Planarity::Flat { slope, .. } if slope.abs() < 0.2),
                "{jitter}: {v:?}"
            );
            let v = walk(&p, false, jitter).fit(&p).verdict(&p);
            assert!(
                matches!(v, Planarity::Relief { slope, .. } if slope > 0.8),
                "{jitter}: {v:?}"
            );
            // A picture this flat is enough for an alarm when the learned cue doubts, and does
            // not look like a head at the door; a head the other way round.
            let (picture, head) = (
                walk(&p, true, jitter).fit(&p),
                walk(&p, false, jitter).fit(&p),
            );
            assert!(
                picture.flat_for_alarm(&p) && !picture.head_like(&p),
                "{jitter}"
            );
            assert!(!head.flat_for_alarm(&p) && head.head_like(&p), "{jitter}");
        }
    }

    #[test]
    fn no_lower_camera_few_frames_or_hostile_keypoints_judge_nothing() {
        let none = PlanarParams::default();
        assert_eq!(
            walk(&none, true, 0.0).fit(&none).verdict(&none),
            Planarity::Unsure { frames: 0 }
        );
        let p = params();
        let mut st = Stereo::default();
        let none = Patches::default();
        let k = seen(0.2, 30.0, 200.0, true);
        st.push(&p, 0, &k, &k, &none, &mut Shutter::default());
        assert!(matches!(
            st.fit(&p).verdict(&p),
            Planarity::Unsure { frames: 1 }
        ));
        st.push(
            &p,
            0,
            &[[f32::NAN; 2]; 6],
            &k,
            &none,
            &mut Shutter::default(),
        );
        st.push(
            &p,
            0,
            &k,
            &[[f32::INFINITY; 2]; 6],
            &none,
            &mut Shutter::default(),
        );
        // Near: within the default 0.8 m once the eyes are ≥ 473·0.063/0.8 ≈ 37 px apart.
        assert!(!st.near(&p));
        // Cameras 5 cm apart seeing the same picture (views within 3° of each other): no
        // evidence, though it tells how near the walker is.
        let level = seen(0.0, 40.0, 240.0, true);
        let tilted_row = 240.0 + FOCAL * TILT_DEG.to_radians().tan();
        st.push(
            &p,
            0,
            &level,
            &seen(0.0, 40.0, tilted_row, true),
            &none,
            &mut Shutter::default(),
        );
        assert!(st.near(&p));
        // Too small in one view.
        st.push(
            &p,
            0,
            &k,
            &seen(0.2, 5.0, 200.0, true),
            &none,
            &mut Shutter::default(),
        );
        assert!(matches!(
            st.fit(&p).verdict(&p),
            Planarity::Unsure { frames: 1 }
        ));
        st.push(
            &p,
            0,
            &seen(0.2, 40.0, 200.0, true),
            &seen(-0.1, 40.0, 200.0, true),
            &none,
            &mut Shutter::default(),
        );
        assert!(st.near(&p));
    }

    /// The pixels can only take depth away: a head's keypoint slope with a picture's pixels is
    /// flat (the bent print); a flat slope with deep pixels stays flat (noise only adds
    /// structure), and a head needs both. Both flat beyond doubt raise the alarm.
    #[test]
    fn the_pixels_take_depth_away_and_never_give_it() {
        let p = PlanarParams {
            stereo_parallax: 0.3,
            ..params()
        };
        let fit = |slope: f32, parallax: Option<f32>| StereoFit {
            fit: Some((slope, 0.05)),
            parallax,
            per_frame: parallax,
            parallax_frames: if parallax.is_some() { 8 } else { 0 },
            frames: 10,
            paired: true,
        };
        let bent = fit(0.7, Some(0.1));
        assert!(!bent.head_like(&p) && bent.flat_for_alarm(&p) && bent.pixels_alarm(&p));
        let few = StereoFit {
            parallax_frames: PARALLAX_FRAMES - 1,
            ..bent
        };
        assert!(!few.flat_for_alarm(&p) && !few.pixels_alarm(&p));
        // Pixels measured on three frames, fewer than the keypoints' own verdict needs: they
        // alarm and refuse alone; the keypoints say nothing yet.
        let unpaired = StereoFit {
            parallax_frames: PARALLAX_FRAMES,
            frames: PARALLAX_FRAMES,
            paired: false,
            ..bent
        };
        assert!(unpaired.pixels_alarm(&p) && unpaired.flat_for_alarm(&p));
        assert!(!unpaired.head_like(&p));
        assert!(matches!(unpaired.verdict(&p), Planarity::Unsure { .. }));
        assert!(matches!(bent.verdict(&p), Planarity::Flat { .. }));
        // Pixels flat but over the alarm's share (a dim lane's noise on a picture): an alarm
        // only with keypoints confidently short of a head's slope at the door (`stereo_near`).
        let dim_picture = fit(0.0, Some(0.25));
        assert!(dim_picture.pixels_alarm(&p));
        for slope in [0.3, 0.7] {
            let v = fit(slope, Some(0.25));
            assert!(!v.pixels_alarm(&p) && v.flat_for_alarm(&p), "{slope}");
        }
        // Pixels over `stereo_parallax` but short of a head's (a dim lane's picture, 0.35): with
        // the keypoints flat to their own verdict, enough for a doubtful learned score's alarm;
        // with a head's slope, or a head's pixels, not.
        assert!(fit(0.3, Some(0.35)).flat_for_alarm(&p));
        assert!(!fit(0.7, Some(0.35)).flat_for_alarm(&p));
        assert!(!fit(0.3, Some(0.5)).flat_for_alarm(&p));
        // Short of a head's in the pixels and not a head's slope: no head to either measure.
        assert!(fit(0.3, Some(0.35)).shallow_without_relief(&p));
        assert!(!fit(0.7, Some(0.35)).shallow_without_relief(&p));
        assert!(!fit(0.3, Some(0.5)).shallow_without_relief(&p));
        assert!(!fit(0.3, None).shallow_without_relief(&p));
        let noisy_picture = fit(0.0, Some(0.6));
        assert!(!noisy_picture.head_like(&p) && noisy_picture.flat_for_alarm(&p));
        assert!(matches!(noisy_picture.verdict(&p), Planarity::Flat { .. }));
        let head = fit(0.7, Some(0.6));
        assert!(head.head_like(&p) && !head.flat_for_alarm(&p) && !head.pixels_alarm(&p));
        assert!(matches!(head.verdict(&p), Planarity::Relief { .. }));
        // Unmeasured: the keypoints as before.
        let (deep, flat) = (fit(0.7, None), fit(0.0, None));
        assert!(deep.head_like(&p) && !deep.flat_for_alarm(&p));
        assert!(!flat.head_like(&p) && flat.flat_for_alarm(&p));
        assert!(matches!(flat.verdict(&p), Planarity::Flat { .. }));
    }

    /// The pixels are measured only where the lane enables them, and only with both patches.
    #[test]
    fn the_pixels_are_measured_where_enabled_with_both_patches() {
        use super::super::parallax::tests::{SAME, view};
        use crate::recognise::patch::Patch;
        use std::sync::Arc;
        // Each view's patch framed so its keypoints fall where `SAME` has them.
        let framed = |p: Patch, k: &[[f32; 2]; 6]| {
            let step = eyes(k).1 / (SAME[1][0] - SAME[0][0]);
            Arc::new(p.framed(
                [k[0][0] - SAME[0][0] * step, k[0][1] - SAME[0][1] * step],
                step,
            ))
        };
        let walk_with = |p: &PlanarParams, both: bool| {
            let mut st = Stereo::default();
            for d in [1.6f32, 1.3, 1.0, 0.8] {
                let scale = FOCAL * EYE_M / d;
                let (up, down) = ((0.3 / d).atan(), (-0.2 / d).atan());
                let row_u = CENTRE_Y + FOCAL * up.tan();
                let row_l = CENTRE_Y + FOCAL * (down + TILT_DEG.to_radians()).tan();
                let (ku, kl) = (seen(up, scale, row_u, true), seen(down, scale, row_l, true));
                let patches = Patches {
                    upper: Some(framed(view(|_, _| [0.0, 0.0]), &ku)),
                    lower: both.then(|| framed(view(|_, _| [0.0, 1.0]), &kl)),
                };
                st.push(p, 0, &ku, &kl, &patches, &mut Shutter::default());
            }
            st.fit(p)
        };
        let on = PlanarParams {
            stereo_parallax: 0.3,
            ..params()
        };
        let measured = walk_with(&on, true);
        assert_eq!(measured.parallax_frames, 4);
        assert!(measured.parallax.is_some_and(|s| s < 0.1), "{measured:?}");
        assert!(!measured.head_like(&on) && measured.flat_for_alarm(&on));
        assert_eq!(walk_with(&on, false).parallax_frames, 0);
        let off = PlanarParams {
            stereo_parallax: 0.0,
            ..params()
        };
        assert_eq!(walk_with(&off, true).parallax_frames, 0);
    }
}
