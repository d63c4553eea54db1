//! The dense two-camera cue's tests (`parallax`): planes, bent sheets and noses, noise over
//! frames, jittering boxes, and the two views' smears.

use super::*;

/// A smooth random texture (sum of a few sines), sampled where `shift` moves each pixel: the
/// upper camera's view with `shift = 0`, the lower's with the parallax of a surface.
pub(in crate::decide) fn view(shift: impl Fn(f32, f32) -> [f32; 2]) -> Patch {
    let mut px = Vec::with_capacity(SIDE * SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let [dx, dy] = shift(x as f32, y as f32);
            px.push(wave(x as f32 + dx, y as f32 + dy).clamp(0.0, 255.0) as u8);
        }
    }
    Patch::from_luma(px).expect("64x64")
}

/// The texture's luma at (`x`, `y`), patch pixels.
fn wave(x: f32, y: f32) -> f32 {
    let waves = [
        (0.21, 0.07, 0.3, 40.0),
        (-0.05, 0.29, 1.1, 35.0),
        (0.37, -0.23, 2.0, 25.0),
        (0.11, 0.43, 0.7, 20.0),
        (-0.47, 0.17, 2.6, 15.0),
    ];
    let v: f32 = waves
        .iter()
        .map(|(fx, fy, ph, a)| a * (fx * x + fy * y + ph).sin())
        .sum();
    128.0 + v
}

/// Keypoints at the same places of two patches cut one image pixel for one at the origin:
/// the alignment starts from the identity.
pub(in crate::decide) const SAME: [[f32; 2]; 6] = [
    [22.0, 26.0],
    [42.0, 26.0],
    [32.0, 36.0],
    [32.0, 46.0],
    [12.0, 30.0],
    [52.0, 30.0],
];

fn centred(x: f32, y: f32) -> (f32, f32) {
    let c = (SIDE as f32 - 1.0) / 2.0;
    ((x - c) / c, (y - c) / c)
}

#[test]
fn a_plane_and_a_bent_sheet_show_no_structure_along_y_and_a_nose_does() {
    let upper = view(|_, _| [0.0, 0.0]);
    // A picture seen from lower down: an affine change of the whole view.
    let plane = view(|x, y| [0.5 + 0.02 * (y - 32.0), 1.5 + 0.06 * (y - 32.0) - 0.01 * x]);
    // A print bent about a vertical line: each column shifted by its own amount.
    let bent = view(|x, _| {
        let (u, _) = centred(x, 0.0);
        [0.0, 1.0 + 2.5 * u * u]
    });
    // A head: the nose (a bump below the centre) shifted against the cheeks and brow.
    let head = view(|x, y| {
        let (u, v) = centred(x, y);
        let nose = 2.5 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp();
        [0.0, 1.0 + 2.5 * u * u + nose]
    });
    let s = |lower: &Patch| {
        structure(&upper, lower, &SAME, &SAME, None)
            .expect("aligned")
            .along_y
    };
    let (flat, sheet, nose) = (s(&plane), s(&bent), s(&head));
    assert!(flat < 0.1, "plane: {flat}");
    assert!(sheet < 0.15, "bent sheet: {sheet}");
    assert!(
        nose > 0.2 && nose > 5.0 * sheet,
        "head: {nose} (sheet {sheet})"
    );
}

#[test]
fn blank_or_unrelated_patches_are_no_evidence() {
    let face = view(|_, _| [0.0, 0.0]);
    let blank = Patch::from_luma(vec![90; SIDE * SIDE]).expect("64x64");
    assert_eq!(structure(&face, &blank, &SAME, &SAME, None), None);
    assert_eq!(structure(&blank, &face, &SAME, &SAME, None), None);
    // Keypoints all in one place say nothing of where to start.
    assert_eq!(
        structure(&face, &face, &[[30.0, 30.0]; 6], &SAME, None),
        None
    );
}

/// `p` with uniform noise of ±`amp` luma added (a dim lane's sensor noise, lifted by the
/// lighting normalisation), drawn from `seed`.
fn noisy(p: &Patch, amp: f32, seed: u32) -> Patch {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let px = (p.luma().iter())
        .map(|&v| {
            // xorshift32: enough for test noise, and the same on every machine.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let u = state as f32 / u32::MAX as f32 * 2.0 - 1.0;
            (v as f32 + amp * u).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Patch::from_luma(px).expect("64x64")
}

/// Noise lifts each frame's structure of a plane toward a head's; averaged point by point
/// over the frames it falls, while the nose, the same in every frame, stays.
#[test]
fn noise_averages_away_over_frames_and_a_nose_does_not() {
    let clean = view(|_, _| [0.0, 0.0]);
    let plane = view(|x, y| [0.5 + 0.02 * (y - 32.0), 1.5 + 0.06 * (y - 32.0) - 0.01 * x]);
    let head = view(|x, y| {
        let (u, v) = centred(x, y);
        [
            0.0,
            1.0 + 1.2 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp(),
        ]
    });
    let frames = |lower: &Patch| -> Vec<Structure> {
        (0..8)
            .filter_map(|f| {
                let (u, l) = (noisy(&clean, 30.0, 2 * f), noisy(lower, 30.0, 2 * f + 1));
                structure(&u, &l, &SAME, &SAME, None)
            })
            .collect()
    };
    let (flat, nose) = (frames(&plane), frames(&head));
    assert_eq!((flat.len(), nose.len()), (8, 8));
    let least = |v: &[Structure]| v.iter().map(Structure::relief).fold(f32::MAX, f32::min);
    let most = |v: &[Structure]| v.iter().map(Structure::relief).fold(0.0, f32::max);
    let (flat_all, nose_all) = (
        Structure::together(&flat.iter().collect::<Vec<_>>()).expect("measured"),
        Structure::together(&nose.iter().collect::<Vec<_>>()).expect("measured"),
    );
    eprintln!(
        "plane frames {}..{} together {flat_all}; head frames {}..{} together {nose_all}",
        least(&flat),
        most(&flat),
        least(&nose),
        most(&nose)
    );
    assert!(flat_all < 0.6 * least(&flat), "plane together: {flat_all}");
    assert!(
        nose_all > 2.0 * flat_all,
        "head {nose_all}, plane {flat_all}"
    );
    // One pair gone askew (here a face with a nose twice as deep) does not swing the plane's.
    let askew = view(|x, y| {
        let (u, v) = centred(x, y);
        [
            0.0,
            1.0 + 4.0 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp(),
        ]
    });
    let odd = structure(&clean, &askew, &SAME, &SAME, None).expect("aligned");
    let mut with_odd: Vec<&Structure> = flat.iter().collect();
    with_odd.push(&odd);
    let swung = Structure::together(&with_odd).expect("measured");
    assert!(
        swung < 0.6 * least(&flat),
        "plane with one odd frame: {swung}"
    );
    assert_eq!(Structure::together(&[]), None);
}

/// A face with texture in part of it only (a screen's low contrast: seed 67's tablet video under
/// its lane's colour cast measured its horizontal shifts in 15 to 26 of the grid's 64 points a
/// frame, seed 71's on the normal lane both in 17 to 29): `wave`'s texture inside the columns
/// `band`, shading along y alone outside them when `rows`, else an even grey, sampled where
/// `shift` moves each pixel.
fn patchy(shift: impl Fn(f32, f32) -> [f32; 2], band: std::ops::Range<f32>, rows: bool) -> Patch {
    let mut px = Vec::with_capacity(SIDE * SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let [dx, dy] = shift(x as f32, y as f32);
            let (sx, sy) = (x as f32 + dx, y as f32 + dy);
            let shading = match rows {
                true => 45.0 * (0.31 * sy + 0.4).sin() + 30.0 * (0.53 * sy + 1.9).sin(),
                false => 0.0,
            };
            let texture = match band.contains(&sx) {
                true => 0.8 * (wave(sx, sy) - 128.0),
                false => 0.0,
            };
            px.push((128.0 + shading + texture).clamp(0.0, 255.0) as u8);
        }
    }
    Patch::from_luma(px).expect("64x64")
}

/// A frame whose shifts cover part of the grid still counts (a quarter of it along y, the
/// parallax's own direction); each measure's points are pooled over the track's frames and
/// judged where together they cover half the grid. A plane stays flat and a nose deep.
#[test]
fn texture_in_part_of_each_frame_is_pooled_over_the_frames() {
    let plane = |x: f32, y: f32| [0.5 + 0.02 * (y - 32.0), 1.5 + 0.06 * (y - 32.0) - 0.01 * x];
    let head = |x: f32, y: f32| {
        let (u, v) = centred(x, y);
        [
            0.0,
            1.0 + 2.5 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp(),
        ]
    };
    let measured = |s: &Structure, axis: usize| s.field[axis].iter().filter(|p| p.w > 0.0).count();
    let frame = |shift: &dyn Fn(f32, f32) -> [f32; 2], band: std::ops::Range<f32>, rows: bool| {
        let upper = patchy(|_, _| [0.0, 0.0], band.clone(), rows);
        structure(&upper, &patchy(shift, band, rows), &SAME, &SAME, None)
    };
    let together = |shift: &dyn Fn(f32, f32) -> [f32; 2], rows: bool| {
        let (left, right) = (
            frame(shift, 0.0..26.0, rows).expect("a quarter of the grid measures the frame"),
            frame(shift, 40.0..64.0, rows).expect("a quarter of the grid measures the frame"),
        );
        for f in [&left, &right] {
            let (along, across) = (measured(f, 1), measured(f, 0));
            assert!(across < GRID * GRID / 2, "across measured at {across}");
            assert!(
                rows || along < GRID * GRID / 2,
                "along y measured at {along}"
            );
        }
        // One side's points, however many frames show them, are under half the grid.
        assert_eq!(Structure::together(&[&left, &left]), None);
        Structure::together(&[&left, &right]).expect("both sides together")
    };
    let (flat, nose) = (together(&plane, true), together(&head, true));
    assert!(flat < 0.15, "plane: {flat}");
    assert!(nose > 2.5 * flat && nose > 0.2, "head {nose}, plane {flat}");
    // Texture on both sides of the face alone, both measures pooled (the nose between them
    // unseen: no depth to find there).
    let flat = together(&plane, false);
    assert!(flat < 0.15, "plane, texture on both sides alone: {flat}");
    // Texture in one column of the grid or so is no frame.
    assert_eq!(frame(&plane, 0.0..20.0, false), None);
}

/// `view`'s texture under a shutter open while the face moved `streak` patch pixels: the mean
/// of the views along the path.
fn smeared(shift: impl Fn(f32, f32) -> [f32; 2], streak: [f32; 2]) -> Patch {
    let n = 24;
    let mut acc = vec![0.0f32; SIDE * SIDE];
    for k in 0..n {
        let t = (k as f32 + 0.5) / n as f32 - 0.5;
        for y in 0..SIDE {
            for x in 0..SIDE {
                let [dx, dy] = shift(x as f32, y as f32);
                acc[y * SIDE + x] +=
                    sharp(x as f32 + dx + t * streak[0], y as f32 + dy + t * streak[1]);
            }
        }
    }
    let px = acc
        .iter()
        .map(|v| (v / n as f32).round().clamp(0.0, 255.0) as u8)
        .collect();
    Patch::from_luma(px).expect("64x64")
}

/// A texture with edges (a face's brows, lids and lips have them; `wave`'s sines do not):
/// blobs of light and dark, their rims steep.
fn sharp(x: f32, y: f32) -> f32 {
    let v = wave(x, y) - 128.0;
    128.0 + 90.0 * (v / 25.0).tanh()
}

/// Under a long shutter the lower camera, which sees the walker rise as they come, smears a
/// picture along y while the upper one smears it a little across: the shifts between a smeared
/// and a sharp texture follow the texture, and the plane measures deep. Each view smeared by
/// the other's motion, the plane is flat again; a nose keeps its depth.
#[test]
fn a_long_shutter_smears_the_views_apart_and_equalising_brings_a_plane_back() {
    // Patch pixels per second; at 1/30 s the lower view smears 6 px along y, the upper 2 across.
    let motion = Motion {
        upper: [60.0, 0.0],
        lower: [60.0, -180.0],
    };
    let streak = |v: [f32; 2]| v.map(|c| c / 30.0);
    let upper = smeared(|_, _| [0.0, 0.0], streak(motion.upper));
    let plane = smeared(
        |x, y| [0.5 + 0.02 * (y - 32.0), 1.5 + 0.06 * (y - 32.0) - 0.01 * x],
        streak(motion.lower),
    );
    let head = smeared(
        |x, y| {
            let (u, v) = centred(x, y);
            [
                0.0,
                1.0 + 2.5 * u * u + 2.5 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp(),
            ]
        },
        streak(motion.lower),
    );
    let s = |lower: &Patch, m: Option<&Motion>| {
        let mut lane = Shutter::default();
        structure(&upper, lower, &SAME, &SAME, m.map(|m| (m, &mut lane)))
            .expect("aligned")
            .relief()
    };
    let (flat_raw, flat_eq) = (s(&plane, None), s(&plane, Some(&motion)));
    let (nose_raw, nose_eq) = (s(&head, None), s(&head, Some(&motion)));
    eprintln!("plane {flat_raw} -> {flat_eq}; head {nose_raw} -> {nose_eq}");
    assert!(
        flat_raw > 0.15,
        "the smear should lift the plane: {flat_raw}"
    );
    assert!(
        flat_eq < 0.5 * flat_raw && flat_eq < 0.1,
        "plane equalised: {flat_eq}"
    );
    assert!(nose_eq > 3.0 * flat_eq, "head {nose_eq}, plane {flat_eq}");
    // Still: no motion, no change.
    let still = Motion {
        upper: [0.0, 0.0],
        lower: [0.0, 0.0],
    };
    assert_eq!(s(&plane, Some(&still)), flat_raw);
    // Views a short shutter left sharp, noisy as a dark lane's: smoothing makes them agree a
    // little better, not by enough to smear them (which would smear them apart).
    let sharp_upper = noisy(&smeared(|_, _| [0.0, 0.0], [0.0, 0.0]), 20.0, 1);
    let sharp_plane = noisy(
        &smeared(
            |x, y| [0.5 + 0.02 * (y - 32.0), 1.5 + 0.06 * (y - 32.0) - 0.01 * x],
            [0.0, 0.0],
        ),
        20.0,
        2,
    );
    let measured = |m: Option<&Motion>| {
        let mut lane = Shutter::default();
        structure(
            &sharp_upper,
            &sharp_plane,
            &SAME,
            &SAME,
            m.map(|m| (m, &mut lane)),
        )
        .expect("aligned")
        .relief()
    };
    assert_eq!(measured(Some(&motion)), measured(None));
}

/// An image of the waves `view` draws, seen where `shift` moves each image pixel.
struct Scene<F: Fn(f32, f32) -> [f32; 2]>(F);

impl<F: Fn(f32, f32) -> [f32; 2]> engine::face::pad::Pixels for Scene<F> {
    fn size(&self) -> (usize, usize) {
        (320, 240)
    }
    fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        // The patch-sized waves stretched over an 80-px face from (100, 100).
        let [dx, dy] = (self.0)(x as f32, y as f32);
        let (sx, sy) = ((x as f32 + dx - 100.0) * 0.8, (y as f32 + dy - 100.0) * 0.8);
        let v = wave(sx, sy).clamp(0.0, 255.0) as u8;
        [v, v, v]
    }
}

/// The two cameras' boxes jitter on their own (a shift of 7 px and a tenth in scale here, as
/// BlazeFace's do), so the patches cover different parts of the face: started from the
/// keypoints (themselves a pixel off) and compared over the same part, the plane is still
/// aligned everywhere and the nose still stands out.
#[test]
fn boxes_that_jitter_between_the_cameras_still_align() {
    let upper_box = [100.0, 100.0, 80.0, 80.0];
    let lower_box = [107.0, 94.0, 88.0, 88.0];
    let image_keys: [[f32; 2]; 6] = SAME.map(|[x, y]| [100.0 + x * 1.25, 100.0 + y * 1.25]);
    // The lower camera sees each point 2 px higher, and a pixel off where BlazeFace puts it.
    let lower_keys = image_keys.map(|[x, y]| [x + 0.7, y - 2.0 - 0.8]);
    let upper = Patch::cut(&Scene(|_, _| [0.0, 0.0]), upper_box).expect("a patch");
    let plane =
        Patch::cut(&Scene(|_, y| [0.0, 2.0 + 0.02 * (y - 140.0)]), lower_box).expect("a patch");
    let head = Patch::cut(
        &Scene(|x, y| {
            let (u, v) = ((x - 140.0) / 40.0, (y - 140.0) / 40.0);
            [
                0.0,
                2.0 + 3.0 * (-(u * u / 0.08 + (v - 0.1).powi(2) / 0.12)).exp(),
            ]
        }),
        lower_box,
    )
    .expect("a patch");
    let s = |lower: &Patch| {
        structure(&upper, lower, &image_keys, &lower_keys, None)
            .expect("aligned")
            .along_y
    };
    let (flat, nose) = (s(&plane), s(&head));
    assert!(flat < 0.1, "plane: {flat}");
    assert!(
        nose > 0.2 && nose > 3.0 * flat,
        "head: {nose} (plane {flat})"
    );
}
