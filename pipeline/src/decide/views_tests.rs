//! Two cameras per lane: placing the lower camera's faces in the upper frame, merging a tick's
//! views, and whole walks seen by one camera, the other, or both.

use super::tests::{cand, face, good, identified};
use super::views::{LowerGeometry, LowerView, View, merge};
use super::*;
use crate::recognise::patch::{Patch, SIDE};

const ZONE: BBox = BBox([100.0, 0.0, 540.0, 480.0]);
const FOCAL: f32 = 473.0;

fn lower(tilt_deg: f32) -> LowerView {
    LowerView {
        geometry: LowerGeometry {
            below_m: 0.5,
            tilt_deg,
            focal_px: FOCAL,
        },
        zone: BBox([0.0, 0.0, 640.0, 480.0]),
        frame: [640.0, 480.0],
    }
}

/// Where a camera at `cam_m` whose horizon is at row `horizon` sees a face centre at `face_m`
/// (metres above the floor), `h` px high: the pinhole the footage generator draws with.
fn row(face_m: f32, cam_m: f32, horizon: f32, h: f32) -> f32 {
    horizon - (face_m - cam_m) / 0.2 * h
}

/// Whether a walk's events are one track left undecided with liveness not shown: no grant, no
/// alarm (the card reader).
fn left_undecided(events: &[Event]) -> bool {
    matches!(
        events,
        [Event::Unidentified {
            reason: track::LIVENESS_NOT_SHOWN,
            ..
        }]
    )
}

fn at(cx: f32, cy: f32, h: f32) -> Observation {
    let mut o = face(0.0, cand(7, 0.7), cand(3, 0.1));
    o.bbox = BBox([cx - h / 2.0, cy - h / 2.0, cx + h / 2.0, cy + h / 2.0]);
    o
}

/// The keypoints of [`planarity::TEST_HEAD`] (or its picture, `flat`) turned by `yaw` and pitched
/// by `pitch` toward the camera, eyes' midpoint at (`x`, `row`), `scale` px per eye distance,
/// under weak perspective (with `yaw` 0, `planarity::pitched`'s).
fn posed(yaw: f32, pitch: f32, scale: f32, [x, row]: [f32; 2], flat: bool) -> [[f32; 2]; 6] {
    use super::planarity::TEST_HEAD;
    let (cy, sy, cp, sp) = (yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin());
    let pose = |[px, py, pz]: [f32; 3]| {
        let pz = if flat { 0.0 } else { pz };
        let z = -px * sy + pz * cy;
        [px * cy + pz * sy, py * cp + z * sp]
    };
    let [e0, e1] = [pose(TEST_HEAD[0]), pose(TEST_HEAD[1])];
    let mid = [(e0[0] + e1[0]) / 2.0, (e0[1] + e1[1]) / 2.0];
    TEST_HEAD.map(|p| {
        let [a, b] = pose(p);
        [x + scale * (a - mid[0]), row + scale * (b - mid[1])]
    })
}

/// The grey patch a camera cuts of a face whose keypoints it saw at `k`: the test texture
/// (`parallax::tests::view`) framed so the eyes fall where they do, as the upper camera sees it
/// or, with `nose`, as the lower one does: shifted down a pixel as a whole, and the nose by `nose`
/// patch pixels more against the cheeks (0 for a plane; a head's measures 0.3 and more at 3).
fn patch_of(k: &[[f32; 2]; 6], nose: Option<f32>) -> std::sync::Arc<Patch> {
    use super::parallax::tests::{SAME, view};
    let shift = move |x: f32, y: f32| {
        let c = (SIDE as f32 - 1.0) / 2.0;
        let (u, v) = ((x - c) / c, (y - c) / c);
        let bump = (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp();
        [0.0, nose.map_or(0.0, |n| 1.0 + n * bump)]
    };
    let step = (k[1][0] - k[0][0]).hypot(k[1][1] - k[0][1]) / (SAME[1][0] - SAME[0][0]);
    std::sync::Arc::new(view(shift).framed(
        [k[0][0] - SAME[0][0] * step, k[0][1] - SAME[0][1] * step],
        step,
    ))
}

/// How a walk of `two_camera_walk` looks.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// The walking line 0.25 m beside the cameras as this geometry says (so the face turns to
    /// them as it comes, and the one-camera cue has its angle); none: on the line (x 320).
    beside: Option<LaneGeometry>,
    /// A picture's keypoints (`posed`), not a head's.
    flat: bool,
    /// The learned cue's score.
    live: f32,
    /// Whether the upper camera sees it (the lower one always does).
    upper: bool,
    /// Each camera's grey patch too, the lower view's nose this many patch pixels off
    /// (`patch_of`), for the two cameras' pixels.
    nose: Option<f32>,
    /// For a picture (`flat`), the share of a head's relief its keypoints show the lower camera,
    /// as BlazeFace's on dim-lane screens came out: the two cameras' keypoint cue short of
    /// calling it flat.
    lower_relief: f32,
    /// How far that share wanders from one frame to the next (alternately more and less), as a
    /// bent print's keypoints did on a dim lane: the two cameras' slope then has an error.
    lower_jitter: f32,
}

impl Default for Walk {
    fn default() -> Self {
        Walk {
            beside: None,
            flat: false,
            live: 0.95,
            upper: true,
            nose: None,
            lower_relief: 0.0,
            lower_jitter: 0.0,
        }
    }
}

/// A walk (`Walk`) seen by the lower camera (tilted up 12°) and maybe the upper one: at each
/// (`at_ms`, metres from the cameras), the face 0.3 m below the upper camera and 0.2 m above the
/// lower. Returns the lane's events, the track left at the end.
fn two_camera_walk(steps: &[(u64, f32)], w: Walk) -> Vec<Event> {
    use super::planarity::EYE_M;
    let v = lower(12.0);
    let mut p = FusionParams::default();
    p.pad.planar.lower = Some(v.geometry);
    p.pad.planar.geometry = w.beside;
    p.pad.planar.centre_y = 240.0;
    let mut d = LaneDecider::new(p, ZONE, 300);
    let mut all = Vec::new();
    for (i, &(at_ms, m)) in steps.iter().enumerate() {
        let (h, scale) = (FOCAL * 0.2 / m, FOCAL * EYE_M / m);
        let (yaw, x) = match w.beside {
            Some(g) => {
                let yaw = (0.25 / m).atan();
                (
                    yaw,
                    320.0 + g.focal_px * (yaw - g.aim_deg.to_radians()).tan(),
                )
            }
            None => (0.0, 320.0),
        };
        let (up, down) = ((0.3 / m).atan(), (-0.2 / m).atan());
        let row_u = 240.0 + FOCAL * up.tan();
        let row_l = 240.0 + FOCAL * (down + 12f32.to_radians()).tan();
        let mut u = at(x, row_u, h);
        u.keypoints = posed(yaw, up, scale, [x, row_u], w.flat);
        u.live = Some(w.live);
        let mut l = at(x, row_l, h);
        let (picture, head) = (
            posed(yaw, down, scale, [x, row_l], w.flat),
            posed(yaw, down, scale, [x, row_l], false),
        );
        let r = w.lower_relief + w.lower_jitter * if i % 2 == 0 { 1.0 } else { -1.0 };
        l.keypoints =
            std::array::from_fn(|i| [0, 1].map(|c| (1.0 - r) * picture[i][c] + r * head[i][c]));
        l.live = Some(w.live);
        if let Some(n) = w.nose {
            u.patches.upper = Some(patch_of(&u.keypoints, None));
            l.patches.lower = Some(patch_of(&l.keypoints, Some(n)));
        }
        let ups = if w.upper { vec![u] } else { Vec::new() };
        let obs = merge(ups, vec![v.observe(l)], &v.geometry, &ZONE, &p.gates);
        assert_eq!(obs.len(), 1, "{m} m: {obs:?}");
        all.extend(d.update(at_ms, &obs));
    }
    let last = steps.last().map_or(0, |s| s.0);
    all.extend(d.update(last + 1_000, &[]));
    all
}

/// A child's face as both cameras draw it lands, once placed, where the upper camera sees it,
/// for tilted and level lower cameras and near and far faces.
#[test]
fn a_lower_face_lands_where_the_upper_camera_sees_it() {
    for tilt in [0.0f32, 12.0] {
        for h in [40.0f32, 90.0, 200.0] {
            let up = row(1.1, 1.6, 192.0, h);
            let down = row(1.1, 1.1, 192.0 + FOCAL * tilt.to_radians().tan(), h);
            let placed = lower(tilt).observe(at(320.0, down, h));
            let want = at(320.0, up, h).bbox;
            assert!(
                placed.bbox.iou(&want) > 0.99,
                "tilt {tilt} h {h}: {placed:?}"
            );
            assert_eq!(placed.seen.view, View::Lower);
            assert!(placed.seen.mapped);
            assert_eq!(placed.seen.lower, Some(at(320.0, down, h).bbox));
        }
    }
    assert!((lower(0.0).geometry.shift_px(100.0) - 250.0).abs() < 1e-3);
}

/// A face both cameras saw becomes one observation: the better view's evidence, the upper
/// camera's box; faces one camera alone saw stay.
#[test]
fn a_face_seen_twice_is_one_observation_with_the_better_view() {
    let v = lower(0.0);
    let h = 100.0;
    // The upper camera sees the face bent down (fails the yaw gate as a stand-in for any gate).
    let mut up = at(300.0, row(1.55, 1.6, 192.0, h), h);
    up.quality.yaw = 0.9;
    up.best = cand(9, 0.4);
    let low = v.observe(at(300.0, row(1.55, 1.1, 192.0, h), h));
    // A second walker only the lower camera sees (a child further right).
    let child = v.observe(at(480.0, row(1.1, 1.1, 192.0, 60.0), 60.0));
    let gates = QualityGates::default();
    let merged = merge(
        vec![up.clone()],
        vec![low.clone(), child.clone()],
        &v.geometry,
        &ZONE,
        &gates,
    );
    assert_eq!(merged.len(), 2);
    let m = &merged[0];
    assert_eq!(m.bbox, up.bbox, "the upper camera's box");
    assert_eq!(m.best, low.best, "the lower camera's evidence");
    assert_eq!(m.quality, low.quality);
    assert_eq!(m.seen.view, View::Lower);
    assert!(!m.seen.mapped);
    assert_eq!(m.seen.lower, low.seen.lower);
    assert_eq!(merged[1], child);
    // With both views usable, the heavier frame wins; a tie keeps the upper camera.
    let mut up2 = up.clone();
    up2.quality = good();
    let m = &merge(vec![up2.clone()], vec![low], &v.geometry, &ZONE, &gates)[0];
    assert_eq!(m.seen.view, View::Upper);
    assert_eq!(m.best, up2.best);
    // No lower faces: the upper list unchanged.
    assert_eq!(
        merge(vec![up.clone()], vec![], &v.geometry, &ZONE, &gates),
        vec![up.clone()]
    );
    // A face leaving the top of the lower frame, which the geometry cannot place: not a walker
    // of its own.
    let leaving = v.observe(at(100.0, 20.0, 60.0));
    assert!(leaving.seen.cut);
    assert_eq!(
        merge(vec![up.clone()], vec![leaving], &v.geometry, &ZONE, &gates),
        vec![up]
    );
}

/// A walker the upper camera loses on the approach (a child walking under it) while the lower
/// camera picks them up is one track, identified once, with no tailgating alarm; the lower
/// camera's box of the settled walker is what its tick skips.
#[test]
fn one_walker_seen_by_both_cameras_in_turn_is_one_track() {
    let v = lower(12.0);
    let mut d = LaneDecider::new(FusionParams::default(), ZONE, 300);
    let mut all = Vec::new();
    let horizon_low = 192.0 + FOCAL * 12f32.to_radians().tan();
    for i in 0..12u64 {
        let h = 40.0 + 8.0 * i as f32;
        let ups: Vec<Observation> = (i < 6)
            .then(|| {
                let mut o = at(320.0, row(1.15, 1.6, 192.0, h), h);
                // Seen from above: too pitched to count (a gate fails), still tracked.
                o.quality.yaw = 0.9;
                o.best = None;
                o
            })
            .into_iter()
            .collect();
        let lows: Vec<Observation> = (i >= 3)
            .then(|| v.observe(at(320.0, row(1.15, 1.1, horizon_low, h), h)))
            .into_iter()
            .collect();
        let obs = merge(
            ups,
            lows,
            &v.geometry,
            &ZONE,
            &FusionParams::default().gates,
        );
        assert_eq!(obs.len(), 1, "frame {i}");
        all.extend(d.update(i * 100, &obs));
    }
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))]);
    assert!(!all.iter().any(|e| matches!(e, Event::Tailgating { .. })));
    assert_eq!(d.identified_boxes(View::Lower).len(), 1);
    assert_eq!(d.identified_boxes(View::Upper).len(), 1);
}

/// Two walkers, one seen by each camera, inside their cameras' zones: two tracks, and the
/// identified one's alarm names the other.
#[test]
fn a_second_walker_only_the_lower_camera_sees_is_tailgating() {
    let v = lower(0.0);
    let mut d = LaneDecider::new(FusionParams::default(), ZONE, 300);
    let mut all = Vec::new();
    for i in 0..6u64 {
        let h = 100.0;
        let adult = at(250.0, row(1.6, 1.6, 192.0, h), h);
        // A child close behind, too low for the upper camera's frame once placed in it.
        let mut child = at(420.0, row(1.1, 1.1, 192.0, 140.0), 140.0);
        child.best = None;
        let child = v.observe(child);
        assert!(child.bbox.centre()[1] > 480.0, "{:?}", child.bbox);
        let obs = merge(
            vec![adult],
            vec![child],
            &v.geometry,
            &ZONE,
            &FusionParams::default().gates,
        );
        all.extend(d.update(i * 100, &obs));
    }
    assert_eq!(identified(&all).len(), 1);
    assert!(
        all.iter()
            .any(|e| matches!(e, Event::Tailgating { others, .. } if others.len() == 1)),
        "{all:?}"
    );
    assert_eq!(d.tracks_in_zone(), 2);
}

/// Both views pass the gates: the one that sees the face squarely up and down gives the
/// evidence — the lower camera for a face bent over a phone (foreshortened from above), the upper
/// one for an adult looking ahead — however the head is rolled.
#[test]
fn the_squarer_view_of_a_bent_face_gives_the_evidence() {
    let v = lower(0.0);
    // Eyes 40 px apart, the mouth `span` px below their midpoint, the whole face rolled by `roll`.
    let kp = |cx: f32, cy: f32, span: f32, roll: f32| {
        let (c, s) = (roll.cos(), roll.sin());
        let p = |x: f32, y: f32| [cx + c * x - s * y, cy + s * x + c * y];
        [
            p(-20.0, 0.0),
            p(20.0, 0.0),
            p(0.0, 0.5 * span),
            p(0.0, span),
            p(-35.0, 5.0),
            p(35.0, 5.0),
        ]
    };
    for roll in [0.0f32, 0.3, -0.4] {
        // Low in the upper frame, so the lower camera sees the face whole.
        let mut up = at(300.0, 350.0, 100.0);
        up.keypoints = kp(300.0, 340.0, 28.0, roll);
        up.best = cand(9, 0.4);
        let mut low = at(300.0, 350.0 - v.geometry.shift_px(100.0), 100.0);
        low.keypoints = kp(300.0, 90.0, 44.0, roll);
        let low = v.observe(low);
        let gates = QualityGates::default();
        let bent = &merge(
            vec![up.clone()],
            vec![low.clone()],
            &v.geometry,
            &ZONE,
            &gates,
        )[0];
        assert_eq!(bent.seen.view, View::Lower, "roll {roll}");
        assert_eq!(bent.best, low.best);
        assert_eq!(bent.keypoints, up.keypoints, "the upper camera's keypoints");
        // Swap the spans: the adult looking ahead is seen squarely by the upper camera.
        let mut up2 = up.clone();
        up2.keypoints = kp(300.0, 340.0, 44.0, roll);
        let mut low2 = low.clone();
        low2.keypoints = kp(300.0, 90.0, 30.0, roll);
        let ahead = &merge(vec![up2.clone()], vec![low2], &v.geometry, &ZONE, &gates)[0];
        assert_eq!(ahead.seen.view, View::Upper, "roll {roll}");
        assert_eq!(ahead.best, up2.best);
    }
}

/// Both cameras' frames of one instant meet whichever tick each came in; a frame whose twin never
/// comes goes alone after two tick ends; frames leave in time order.
#[test]
fn twins_meet_across_ticks_and_a_lone_frame_waits_two_ticks() {
    use super::views::Twins;
    let now = std::time::Instant::now();
    let one = |x: f32| vec![face(x, None, None)];
    let mut t = Twins::default();
    t.push(View::Upper, 0, now, one(1.0));
    t.push(View::Upper, 100, now, one(2.0));
    // The lower camera runs a tick behind.
    assert!(t.take(false).is_empty());
    t.push(View::Lower, 0, now, one(3.0));
    t.push(View::Upper, 200, now, one(4.0));
    let m = t.take(false);
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].at_ms, m[0].upper.len(), m[0].lower.len()), (0, 1, 1));
    t.push(View::Lower, 130, now, one(5.0));
    let m = t.take(false);
    // 100 and 130 are twins (within TWIN_MS); 200 waits for its own.
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].at_ms, m[0].upper.len(), m[0].lower.len()),
        (130, 1, 1)
    );
    // The lower camera dies: 200 goes alone once it has waited two tick ends and the lower
    // camera has been silent for two (before that it may only be late).
    assert!(t.take(false).is_empty());
    let m = t.take(false);
    assert_eq!(
        m.iter()
            .map(|m| (m.at_ms, m.upper.len(), m.lower.len()))
            .collect::<Vec<_>>(),
        [(200, 1, 0)]
    );
    assert!(t.take(false).is_empty());
    // Frames of different instants: the older leaves alone, in order.
    let mut t = Twins::default();
    t.push(View::Upper, 300, now, one(1.0));
    t.push(View::Lower, 100, now, one(2.0));
    let m = t.take(false);
    assert_eq!(
        m.iter()
            .map(|m| (m.at_ms, m.upper.len(), m.lower.len()))
            .collect::<Vec<_>>(),
        [(100, 0, 1)]
    );
    assert_eq!(t.take(false).len(), 0);
    assert_eq!(
        t.take(false).len(),
        1,
        "the lone upper frame after two tick ends"
    );
    t.push(View::Lower, 400, now, one(2.0));
    assert_eq!(t.take(true).len(), 1, "played out: everything leaves");
}

/// A lower camera that started five frames late and stays so (recorded footage: each camera's
/// queue paces its own decoder) has every frame after its first paired: a frame waits for its
/// twin while the other camera is behind it and delivering. With two tick ends only, none was.
#[test]
fn a_camera_that_runs_behind_still_meets_its_twins() {
    use super::views::Twins;
    let now = std::time::Instant::now();
    let one = |x: f32| vec![face(x, None, None)];
    let mut t = Twins::default();
    let mut met = Vec::new();
    for tick in 0..40u64 {
        t.push(View::Upper, tick * 100, now, one(1.0));
        if tick >= 5 {
            t.push(View::Lower, (tick - 5) * 100, now, one(2.0));
        }
        met.extend(t.take(false));
    }
    // Until the lower camera's first frame nothing says it is behind: the first frames of each
    // go alone (the lane clock never runs back for the late camera's), every one after meets
    // its twin, in time order.
    let paired: Vec<u64> = met
        .iter()
        .filter(|m| !m.upper.is_empty() && !m.lower.is_empty())
        .map(|m| m.at_ms)
        .collect();
    assert_eq!(paired, (3..35).map(|i| i * 100).collect::<Vec<_>>());
    assert!(
        met.iter()
            .all(|m| m.at_ms < 300 || paired.contains(&m.at_ms))
    );
    // The lower camera stops: what waits goes alone once it has been silent two tick ends.
    assert!(t.take(false).is_empty());
    assert_eq!(t.take(false).len(), 5);
}

/// On a lane whose upper camera has geometry and enforced PAD, a child only the lower camera
/// sees is granted on the learned cue: the upper camera's relief test has nothing to say of a
/// face it never saw (it would otherwise wait for relief until the walker left).
#[test]
fn a_walker_only_the_lower_camera_sees_is_granted_on_the_learned_cue() {
    let v = lower(12.0);
    let mut d = super::tests::with_geometry(crate::decide::PadMode::Enforce, true);
    let horizon_low = 192.0 + FOCAL * 12f32.to_radians().tan();
    let mut all = Vec::new();
    for i in 0..8u64 {
        let h = 60.0 + 10.0 * i as f32;
        let low = v.observe(at(320.0, row(1.1, 1.1, horizon_low, h), h));
        let obs = merge(
            Vec::new(),
            vec![low],
            &v.geometry,
            &ZONE,
            &FusionParams::default().gates,
        );
        all.extend(d.update(i * 100, &obs));
    }
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))], "{all:?}");
}

/// A child's face is narrower than the adult face the geometry assumes (0.15 m against 0.2), so
/// the lower camera's face is placed too high in the upper frame: the two views still pair (same
/// column, same width), and when the upper camera loses the child the track goes on in the lower
/// camera's own frame. One walker, one track, no tailgating alarm.
#[test]
fn a_narrow_face_placed_off_is_still_one_walker() {
    let v = lower(12.0);
    let mut d = LaneDecider::new(FusionParams::default(), ZONE, 300);
    let tilt = FOCAL * 12f32.to_radians().tan();
    let mut all = Vec::new();
    for i in 0..12u64 {
        // Pixels per metre at this distance; the face is 0.15 m wide.
        let s = 250.0 + 50.0 * i as f32;
        let w = 0.15 * s;
        let up_cy = 192.0 + (1.6 - 1.1) * s;
        let low_cy = 192.0 + tilt;
        let ups: Vec<Observation> = (up_cy + w / 2.0 < 480.0)
            .then(|| {
                let mut o = at(320.0, up_cy, w);
                o.best = None;
                o.quality.yaw = 0.9;
                o
            })
            .into_iter()
            .collect();
        let low = v.observe(at(320.0, low_cy, w));
        if !ups.is_empty() {
            let placed = low.bbox.centre()[1];
            assert!(
                up_cy - placed > 0.3 * w,
                "placed {placed} vs {up_cy}: too close to test"
            );
        }
        let obs = merge(
            ups,
            vec![low],
            &v.geometry,
            &ZONE,
            &FusionParams::default().gates,
        );
        assert_eq!(obs.len(), 1, "frame {i}: {obs:?}");
        all.extend(d.update(i * 100, &obs));
    }
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))]);
    assert!(
        !all.iter().any(|e| matches!(e, Event::Tailgating { .. })),
        "{all:?}"
    );
    assert_eq!(d.tracks_in_zone(), 1);
}

/// The PAD cues on two-camera walks: the shape cues, the pixels and the learned cue together.
#[path = "views_pad_tests.rs"]
mod pad;
