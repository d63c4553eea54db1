//! The geometric presentation-attack cue: a print or a screen is a plane, so the six BlazeFace
//! keypoints of its face keep their places relative to one another (up to one affine map, a
//! homography in close-up) whatever angle the camera sees it from. A head is not a plane: as the
//! angle changes, the nose slides across the face toward the side the camera sees, and the ears
//! the other way, behind the eyes.
//!
//! The measure: in each frame, the nose's and the ears' positions along the eye line in the frame
//! the eyes and the mouth span (affine coordinates, so a picture's are the same in every frame),
//! as `relief = nose − mean(ears)`. Against the tangent of the viewing angle (the angle between
//! the walking direction and the camera's ray to the face), a head's relief rises with a slope
//! near its depth (about one eye distance from nose tip to ears); a picture's stays flat. The slope
//! is fitted over all the track's frames, so one noisy keypoint does not decide.
//!
//! Why only when the angle changed: seen from one angle (a camera on the walking line, the walker
//! looking straight ahead), a head's keypoints hold still like a plane's, and calling that flat
//! would alarm at honest passengers. The station knows each frame's viewing angle from the lane's
//! geometry (`[lane.geometry]`: focal length and how far the camera is turned toward the walking
//! line) and where the face is in the frame. Over a range of angles of at least `min_view_deg`, a
//! track is judged flat when the fitted slope is below `relief` with confidence (two standard
//! errors), and shown in relief when it is above with the same confidence; in between it is not
//! judged yet. A lane without geometry never uses the cue.
//!
//! On a lane with geometry a grant needs both cues: the learned one shown live and this one shown
//! in relief (`track.rs`); flat is an attack. Relief alone never grants: a replayed video of the
//! victim's real head shows the recorded head's parallax inside a flat screen, and only the learned
//! cue sees the screen. docs/pad.md has the measurements and the camera placement advice.

use serde::Deserialize;

/// Eye distance of an adult, metres (the mean interpupillary distance, ~63 mm): turns a face's eye
/// distance in pixels into its distance from the camera.
pub(super) const EYE_M: f32 = 0.063;

/// A lane camera's geometry, measured at the lane (`[lane.geometry]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneGeometry {
    /// Focal length in pixels of the frames the lane decodes.
    pub focal_px: f32,
    /// Degrees the camera is turned from the walking direction toward the walking line (positive:
    /// the line is toward the frame's left, as for a camera standing right of it). A camera beside
    /// the line must be turned toward it; the turn is what makes the viewing angle change.
    pub aim_deg: f32,
    /// Metres from the camera by which the door must be told (the flaps' distance less the
    /// walking time of the door's travel). A grant waits for the face to be shown in relief until
    /// the walker is this near, then goes ahead on the learned cue alone.
    #[serde(default = "default_decide_by_m")]
    pub decide_by_m: f32,
}

pub(super) fn default_decide_by_m() -> f32 {
    0.8
}

/// Whether a face whose eyes are `eye_px` apart in a camera of focal length `focal_px` is within
/// the lane's `decide_by_m` of it, so a grant can wait no longer for the face shown in relief.
pub(super) fn within_decide_by(p: &PlanarParams, focal_px: f32, eye_px: f32) -> bool {
    let decide_by = p
        .geometry
        .map_or_else(default_decide_by_m, |g| g.decide_by_m);
    focal_px * EYE_M / eye_px <= decide_by
}

impl LaneGeometry {
    pub fn check(&self) -> Result<(), String> {
        if !(10.0..=20_000.0).contains(&self.focal_px)
            || !(-60.0..=60.0).contains(&self.aim_deg)
            || !(0.0..=10.0).contains(&self.decide_by_m)
        {
            return Err(format!(
                "geometry: focal_px must be 10–20000 (is {}), aim_deg -60–60 (is {}), decide_by_m 0–10 (is {})",
                self.focal_px, self.aim_deg, self.decide_by_m
            ));
        }
        Ok(())
    }

    /// The viewing angle's tangent for a face centred `x` pixels from the left of a frame whose
    /// optical centre is at `centre_x`.
    fn tan_view(&self, x: f32, centre_x: f32) -> f32 {
        (self.aim_deg.to_radians() + ((x - centre_x) / self.focal_px).atan()).tan()
    }
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
}

/// The planarity rule's parameters (`[pad]`, with the lane's geometry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanarParams {
    /// `None`: the lane's geometry is not known, the cue is not used.
    pub geometry: Option<LaneGeometry>,
    /// Optical centre of the lane's frames (half their width).
    pub centre_x: f32,
    /// Relief slope (eye distances per unit tangent of the viewing angle) that parts a picture
    /// (about 0) from a head (about 1): below it with confidence is flat, above it is relief.
    pub relief: f32,
    /// Least range of viewing angles (degrees) over the track's frames for any verdict.
    pub min_view_deg: f32,
    /// Frames whose eyes are fewer pixels apart than this are too noisy to count.
    pub min_eye_px: f32,
    /// Frames needed before the track is judged.
    pub min_frames: usize,
    /// The lane's lower camera, for the two-camera cue (`stereo`); `None` on a one-camera lane.
    pub lower: Option<LowerGeometry>,
    /// Optical centre row of the lane's frames (half their height; both cameras' frames are
    /// the same size).
    pub centre_y: f32,
    /// The two-camera cue's slope (eyes-to-mouth heights of relief per unit difference of the
    /// views' pitch tangents) that parts a picture (about 0) from a head (0.4–1.3 on our
    /// footage): below it with confidence is flat, above it with confidence is relief.
    pub stereo_relief: f32,
    /// The least fitted slope (less one standard error) of a face both cameras saw with a head's
    /// depth: what a grant at the door needs when the face was not shown in relief with
    /// confidence, and what holds back an alarm on the learned cue alone (most pictures fit
    /// below it, most heads above).
    pub stereo_near: f32,
    /// Paired frames needed before the two-camera cue judges.
    pub stereo_frames: usize,
    /// The pixels' structure (`parallax::Structure::together`; pixels of a 64-px face patch, the
    /// paired frames' shifts averaged on the face) below which a face is a picture, flat or bent,
    /// whatever its keypoints' slope; 0 leaves the pixels unmeasured. 0.3: on two footage draws
    /// 3 of 519 heads measured below it, none below 0.27; pictures' 90th percentile per lane
    /// 0.11–0.30 (docs/pad.md, "Frames averaged on the face").
    pub stereo_parallax: f32,
}

impl Default for PlanarParams {
    fn default() -> Self {
        Self {
            geometry: None,
            centre_x: 320.0,
            relief: 0.5,
            min_view_deg: 10.0,
            min_eye_px: 16.0,
            min_frames: 8,
            lower: None,
            centre_y: 240.0,
            stereo_relief: 0.5,
            stereo_near: 0.35,
            stereo_frames: 4,
            stereo_parallax: 0.3,
        }
    }
}

/// What the keypoints so far say of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Planarity {
    /// Its relief stayed flat while the viewing angle changed: a picture. The fitted `slope` and
    /// its standard error (eye distances per unit tangent) over `frames` frames.
    Flat { slope: f32, se: f32, frames: usize },
    /// It moved as a head does (or as a replayed video of one).
    Relief { slope: f32, se: f32, frames: usize },
    /// Not shown either way yet: too few frames, too little change of viewing angle, too noisy
    /// (or no lane geometry).
    Unsure { frames: usize },
}

impl Planarity {
    /// The fitted slope when the face was judged flat.
    pub fn flat_slope(&self) -> Option<f32> {
        match self {
            Self::Flat { slope, .. } => Some(*slope),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    relief: f32,
    tan_view: f32,
    eye_px: f32,
}

/// The relief of one track's usable frames, oldest first.
#[derive(Debug, Default, Clone)]
pub(super) struct Keypoints {
    samples: Vec<Sample>,
}

/// Standard errors the fitted slope must stand from `relief` for a verdict (~99 % one-sided, if
/// the residuals were independent; they are not quite, a head's own turning drifts slowly).
pub(super) const CONFIDENCE: f32 = 2.5;

/// Frames kept per track: more than a walk at 25 fps; past that the oldest go.
const KEPT: usize = 96;

impl Keypoints {
    /// Adds one frame's keypoints (the face centred at `x`); frames too small, without geometry,
    /// or with degenerate or non-finite keypoints are no evidence.
    pub(super) fn push(
        &mut self,
        p: &PlanarParams,
        keypoints: &[[f32; 2]; 6],
        eye_px: f32,
        x: f32,
    ) {
        let Some(g) = p.geometry else { return };
        // Written so a NaN eye distance is refused too.
        if eye_px.is_nan() || eye_px < p.min_eye_px || !x.is_finite() {
            return;
        }
        let Some(relief) = relief(keypoints) else {
            return;
        };
        if self.samples.len() >= KEPT {
            self.samples.remove(0);
        }
        self.samples.push(Sample {
            relief,
            tan_view: g.tan_view(x, p.centre_x),
            eye_px,
        });
    }

    /// Whether the walker is already within the lane's `decide_by_m` of the camera (by its latest
    /// usable frame's eye distance), so a grant can wait no longer.
    pub(super) fn near(&self, p: &PlanarParams) -> bool {
        match (p.geometry, self.samples.last()) {
            (Some(g), Some(s)) => within_decide_by(p, g.focal_px, s.eye_px),
            _ => false,
        }
    }

    /// The least-squares slope of relief against the viewing angle's tangent, with its standard
    /// error, judged as the module says.
    pub(super) fn verdict(&self, p: &PlanarParams) -> Planarity {
        let frames = self.samples.len();
        let views = self.samples.iter().map(|s| s.tan_view.atan().to_degrees());
        let (lo, hi) = views.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if frames < p.min_frames.max(3) || hi - lo < p.min_view_deg {
            return Planarity::Unsure { frames };
        }
        // Weighted by eye distance squared: a keypoint's error in eye distances shrinks as the face
        // grows, and the near frames are also the most turned.
        let points = self.samples.iter().map(|s| {
            (
                s.tan_view as f64,
                s.relief as f64,
                (s.eye_px as f64).powi(2),
            )
        });
        judge(fit(points, false), p.relief, frames)
    }
}

/// The weighted least-squares slope of `(x, y, weight)` points with its standard error: through
/// the origin when `origin` (a model with no intercept), else with one. `None` when the points
/// cannot give one (too few, by the weights' effective number, or no spread of x).
pub(super) fn fit(
    points: impl Iterator<Item = (f64, f64, f64)>,
    origin: bool,
) -> Option<(f32, f32)> {
    let points: Vec<(f64, f64, f64)> = points.collect();
    let total: f64 = points.iter().map(|p| p.2).sum();
    // Written so a NaN total is refused too.
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let xy = || points.iter().map(|&(x, y, w)| (x, y, w / total));
    let (mx, my) = match origin {
        true => (0.0, 0.0),
        false => (
            xy().map(|(x, _, w)| w * x).sum::<f64>(),
            xy().map(|(_, y, w)| w * y).sum::<f64>(),
        ),
    };
    let sxx: f64 = xy().map(|(x, _, w)| w * (x - mx).powi(2)).sum();
    let slope = xy().map(|(x, y, w)| w * (x - mx) * (y - my)).sum::<f64>() / sxx;
    let sse: f64 = xy()
        .map(|(x, y, w)| w * (y - my - slope * (x - mx)).powi(2))
        .sum();
    // Effective sample size of the weights (Kish), for the residual's degrees of freedom.
    let n_eff = 1.0 / xy().map(|(_, _, w)| w * w).sum::<f64>();
    let params = if origin { 1.0 } else { 2.0 };
    if n_eff <= params + 0.5 {
        return None;
    }
    // The weights sum to 1, so sse and sxx are per-observation: the slope's variance is
    // (sse·n/(n−k)) / (sxx·n) with n = n_eff, where n cancels but in the degrees of freedom.
    let se = (sse / (n_eff - params) / sxx).sqrt();
    let (slope, se) = (slope as f32, se as f32);
    (slope.is_finite() && se.is_finite()).then_some((slope, se))
}

/// A fitted slope against `threshold` (a head above, a picture about 0): flat or relief when it
/// stands [`CONFIDENCE`] standard errors from it, else not judged.
pub(super) fn judge(fitted: Option<(f32, f32)>, threshold: f32, frames: usize) -> Planarity {
    match fitted {
        Some((slope, se)) if slope + CONFIDENCE * se < threshold => {
            Planarity::Flat { slope, se, frames }
        }
        Some((slope, se)) if slope - CONFIDENCE * se > threshold => {
            Planarity::Relief { slope, se, frames }
        }
        _ => Planarity::Unsure { frames },
    }
}

/// `nose − mean(ears)` along the eye line, in the affine frame of the eyes (unit: their distance)
/// and the mouth: the same in every frame for a picture under any affine view. `None` when the
/// eyes and mouth are collinear or a value is not finite.
fn relief(k: &[[f32; 2]; 6]) -> Option<f32> {
    affine(k).map(|[nose, ears]| nose[0] - ears[0])
}

/// The nose's and the ears' midpoint's affine coordinates in the frame the eyes and the mouth
/// span: along the eye line (unit: the eye distance; a head turning left or right moves them) and
/// down toward the mouth (unit: eyes to mouth; a head seen from higher or lower moves them). A
/// picture's are the same under any affine view. `None` when the eyes and mouth are collinear or
/// a value is not finite.
pub(super) fn affine(k: &[[f32; 2]; 6]) -> Option<[[f32; 2]; 2]> {
    let [r, l, nose, mouth, ear_r, ear_l] = k.map(|p| [p[0] as f64, p[1] as f64]);
    let mid = [(r[0] + l[0]) / 2.0, (r[1] + l[1]) / 2.0];
    let u = [l[0] - r[0], l[1] - r[1]];
    let v = [mouth[0] - mid[0], mouth[1] - mid[1]];
    let det = u[0] * v[1] - u[1] * v[0];
    let scale = (u[0] * u[0] + u[1] * u[1]).max(v[0] * v[0] + v[1] * v[1]);
    if det.is_nan() || det.abs() <= 1e-3 * scale {
        return None;
    }
    // p − mid = along·u + down·v.
    let at = |p: [f64; 2]| {
        let (dx, dy) = (p[0] - mid[0], p[1] - mid[1]);
        [
            ((dx * v[1] - dy * v[0]) / det) as f32,
            ((u[0] * dy - u[1] * dx) / det) as f32,
        ]
    };
    let ears = [(ear_r[0] + ear_l[0]) / 2.0, (ear_r[1] + ear_l[1]) / 2.0];
    let out = [at(nose), at(ears)];
    out.iter().flatten().all(|v| v.is_finite()).then_some(out)
}

/// A face's six keypoints in 3D (eye distances; x right, y down, z toward the camera): eyes,
/// nose tip, mouth, ears, as a head holds them. The tests here and the decider's draw walks with it.
#[cfg(test)]
pub(super) const TEST_HEAD: [[f32; 3]; 6] = [
    [-0.5, 0.0, -0.2],
    [0.5, 0.0, -0.2],
    [0.0, 0.6, 0.45],
    [0.0, 1.1, 0.1],
    [-1.15, 0.3, -1.1],
    [1.15, 0.3, -1.1],
];

/// The keypoints a camera sees of [`TEST_HEAD`] with its eyes at `row` (centred on column 320),
/// looking down at it by `pitch` radians (negative: from below), at `scale` px per eye distance,
/// under weak perspective; `flat` drops the depth (a picture of the face).
#[cfg(test)]
pub(super) fn pitched(pitch: f32, scale: f32, row: f32, flat: bool) -> [[f32; 2]; 6] {
    let (c, s) = (pitch.cos(), pitch.sin());
    let depth = |z: f32| if flat { 0.0 } else { z };
    let eye_y = TEST_HEAD[0][1] * c + depth(TEST_HEAD[0][2]) * s;
    TEST_HEAD.map(|[x, y, z]| {
        [
            320.0 + scale * x,
            row + scale * (y * c + depth(z) * s - eye_y),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::TEST_HEAD as HEAD;

    /// The keypoints seen with the face turned by `turn` (radians) at `scale` px per eye
    /// distance, centred `x` px from the left, under weak perspective; `flat` drops the depth (a
    /// picture of the face).
    fn seen(turn: f32, scale: f32, x: f32, flat: bool) -> [[f32; 2]; 6] {
        let (c, s) = (turn.cos(), turn.sin());
        HEAD.map(|[px, py, pz]| {
            let pz = if flat { 0.0 } else { pz };
            [x + scale * (px * c + pz * s), 200.0 + scale * py]
        })
    }

    const FOCAL: f32 = 473.0;

    /// A walk from 2.4 m to 0.45 m past a camera `offset` metres beside the line, turned toward
    /// it as `--camera-offset` footage is, with every frame's keypoints pushed; `jitter` adds a
    /// pixel of alternating keypoint noise.
    fn walk(p: &PlanarParams, offset: f32, flat: bool, jitter: f32) -> Keypoints {
        let aim = (offset / 1.4f32).atan();
        let mut k = Keypoints::default();
        for (i, d) in [2.4f32, 2.0, 1.7, 1.4, 1.2, 1.0, 0.85, 0.7, 0.6, 0.5, 0.45]
            .into_iter()
            .enumerate()
        {
            let eye = FOCAL * EYE_M / d;
            let view = (offset / d).atan();
            let x = p.centre_x + FOCAL * (view - aim).tan();
            let mut kp = seen(view, eye, x, flat);
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            kp[2][0] += sign * jitter;
            kp[4][0] -= sign * jitter;
            k.push(p, &kp, eye, x);
        }
        k
    }

    fn params(offset: f32) -> PlanarParams {
        PlanarParams {
            geometry: Some(LaneGeometry {
                focal_px: FOCAL,
                aim_deg: (offset / 1.4f32).atan().to_degrees(),
                decide_by_m: 0.8,
            }),
            ..PlanarParams::default()
        }
    }

    #[test]
    fn a_pictures_relief_does_not_change_with_the_view_and_a_heads_does() {
        for turn in [0.0f32, 0.2, 0.5] {
            let flat = relief(&seen(turn, 40.0, 300.0, true)).unwrap();
            assert!(flat.abs() < 1e-4, "{turn}: {flat}");
        }
        let (a, b) = (
            relief(&seen(0.1, 40.0, 300.0, false)).unwrap(),
            relief(&seen(0.5, 90.0, 300.0, false)).unwrap(),
        );
        // Nose 0.45 and ears 1.1 eye distances apart in depth: ~1.55 × (tan 0.5 − tan 0.1) more.
        assert!((b - a) > 0.5, "{a} → {b}");
        // Eyes and mouth on one line, or not finite: no measure.
        let mut k = seen(0.1, 40.0, 300.0, true);
        k[3] = [k[0][0] + 2.0 * (k[1][0] - k[0][0]), k[0][1]];
        assert_eq!(relief(&k), None);
        assert_eq!(relief(&[[f32::NAN; 2]; 6]), None);
    }

    #[test]
    fn a_picture_is_flat_a_head_is_not_and_one_view_proves_nothing() {
        let p = params(0.25);
        for jitter in [0.0, 1.0] {
            assert!(
                matches!(
                    walk(&p, 0.25, true, jitter).verdict(&p),
                    Planarity::Flat { .. }
                ),
                "{jitter}: {:?}",
                walk(&p, 0.25, true, jitter).verdict(&p)
            );
            assert!(
                matches!(walk(&p, 0.25, false, jitter).verdict(&p), Planarity::Relief { slope, .. } if slope > 1.0),
                "{jitter}: {:?}",
                walk(&p, 0.25, false, jitter).verdict(&p)
            );
        }
        // On the walking line the angle hardly changes: a head looks as flat as a picture, so
        // neither is judged.
        let on_line = params(0.0);
        let v = walk(&on_line, 0.0, false, 0.0).verdict(&on_line);
        assert!(matches!(v, Planarity::Unsure { frames: 9 }), "{v:?}");
        // Without the lane's geometry nothing counts.
        let none = PlanarParams::default();
        assert_eq!(
            walk(&none, 0.25, true, 0.0).verdict(&none),
            Planarity::Unsure { frames: 0 }
        );
        // Hostile keypoints are no evidence.
        let mut k = Keypoints::default();
        k.push(&p, &[[f32::NAN; 2]; 6], 80.0, 300.0);
        k.push(&p, &seen(0.1, 40.0, 300.0, true), 80.0, f32::INFINITY);
        assert_eq!(k.verdict(&p), Planarity::Unsure { frames: 0 });
    }
}
