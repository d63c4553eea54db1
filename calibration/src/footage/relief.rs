//! A head's depth, for the parallax a turning head shows and a flat picture does not.

use super::scene::Pose;
use super::source::{Sprite, Surface};

/// The steepest pitch whose parallax is drawn (radians, ~26°): beyond it the nose's shift grows
/// faster than the points it passes over (a fold: the nose would hide what lies below it, which is
/// not modelled) and the fixed-point solve in `source` misses by pixels. A steeper pitch still
/// foreshortens the face in full (`render::head_affine`); walkers' own nods stay far below it.
const PITCH_MAX: f32 = 0.45;

/// The depth of a generic head fitted to a photo's keypoints, so a walker turning (or seen from a
/// changing angle) shows parallax as a head does: the nose moves across the cheeks, the ears
/// behind the eyes. A flat picture has none, and that difference is what the station's planarity
/// cue measures (docs/pad.md). Weak perspective: the face is small beside its distance, so the
/// depth shifts points sideways by `z·tan(turn)` (and `z·tan(pitch)` vertically) in the sprite
/// before the affine places it.
pub struct Relief {
    /// Eye midpoint and eye distance, sprite pixels.
    eyes: [f32; 2],
    ipd: f32,
    /// The nose keypoint in eye-distance units from the eye midpoint.
    nose: [f32; 2],
    /// A bent print's sag (`Surface::Bent`) instead of a head's depth.
    bent: Option<f32>,
    /// Sprite-pixel shift per unit of depth: (tan turn, tan pitch).
    tilt: [f32; 2],
}

impl Relief {
    /// Deepest point behind or in front of the eye plane, in eye distances (the bound of `depth`).
    pub const REACH: f32 = 1.8;

    pub fn of(s: &Sprite, p: &Pose) -> Option<Relief> {
        let [r, l] = [s.keypoints[0], s.keypoints[1]];
        let ipd = ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt();
        let bent = match s.surface {
            Surface::Flat => return None,
            Surface::Head => None,
            Surface::Bent { sag } => Some(sag),
        };
        if ipd < 1.0 {
            return None;
        }
        let eyes = [(r[0] + l[0]) / 2.0, (r[1] + l[1]) / 2.0];
        let n = s.keypoints[2];
        Some(Relief {
            eyes,
            ipd,
            nose: [(n[0] - eyes[0]) / ipd, (n[1] - eyes[1]) / ipd],
            bent,
            tilt: [
                (p.yaw + p.view).tan(),
                p.pitch.clamp(-PITCH_MAX, PITCH_MAX).tan(),
            ],
        })
    }

    /// Depth toward the camera at sprite point `q`, in eye distances: a head curving back to the
    /// ears (about 1.1 behind the eyes' level at the ear keypoints, as a head's tragion is ~7 cm
    /// behind the eye corners) and less from brow to chin, plus a nose ridge rising ~0.45 in front;
    /// a bent print, its parabola. Bounded, so the hair and the sprite's edge stay near the ears'
    /// depth (a bent print's sides past the bound stay flat: beyond the card's edge at most sags).
    pub fn depth(&self, q: [f32; 2]) -> f32 {
        let x = (q[0] - self.eyes[0]) / self.ipd;
        let y = (q[1] - self.eyes[1]) / self.ipd;
        if let Some(sag) = self.bent {
            // The paper's parabola, bounded like a head's depth.
            return (-sag * (x / 1.5).powi(2)).max(-Self::REACH);
        }
        let round = -1.1 * (x * x / 1.44).min(1.5) - 0.3 * ((y - 0.6) / 1.5).powi(2).min(1.5);
        let (nx, ny) = ((x - self.nose[0]) / 0.16, (y - self.nose[1] + 0.25) / 0.3);
        let nose = 0.45 * (-0.5 * (nx * nx + ny * ny)).exp();
        // Zero at the eyes' level (round() there is about -0.2), so the face box stays put.
        round + nose + 0.2
    }

    /// Shift of sprite point `q` by its depth, sprite pixels.
    pub fn shift(&self, q: [f32; 2]) -> [f32; 2] {
        let z = self.depth(q) * self.ipd;
        [z * self.tilt[0], z * self.tilt[1]]
    }

    /// The sprite point drawn at `q0` once depth is applied: solves `q + shift(q) = q0` by fixed
    /// point (the shift's slope stays below 1 at the turns the footage draws).
    pub fn source(&self, q0: [f32; 2]) -> [f32; 2] {
        let mut q = q0;
        for _ in 0..4 {
            let d = self.shift(q);
            q = [q0[0] - d[0], q0[1] - d[1]];
        }
        q
    }

    /// Farthest any point moves, sprite pixels.
    pub fn reach(&self) -> f32 {
        Self::REACH * self.ipd * (self.tilt[0].abs() + self.tilt[1].abs())
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::tests::{head, pose};
    use super::*;

    #[test]
    fn a_head_has_depth_and_a_picture_none() {
        assert!(Relief::of(&head(Surface::Flat), &pose(0.3)).is_none());
        let r = Relief::of(&head(Surface::Head), &pose(0.3)).expect("a head");
        let (nose, eye, ear) = (
            r.depth([85.0, 100.0]),
            r.depth([67.0, 85.0]),
            r.depth([42.0, 95.0]),
        );
        assert!(
            nose > 0.3 && eye.abs() < 0.15 && ear < -0.8,
            "{nose} {eye} {ear}"
        );
        // Drawing inverts the shift: the point found for a pixel lands back on it, within a sprite
        // pixel after the four fixed-point steps (worst where the head curves back steeply toward
        // the ears; the sprite is drawn from a mip level no finer than the frame, so under a frame
        // pixel). More steps would change what a seed draws, and the measured footage with it.
        for q0 in [[85.0, 100.0], [50.0, 90.0], [120.0, 140.0]] {
            let q = r.source(q0);
            let d = r.shift(q);
            let miss = ((q[0] + d[0] - q0[0]).powi(2) + (q[1] + d[1] - q0[1]).powi(2)).sqrt();
            assert!(miss < 1.0, "{q0:?} -> {q:?}: {miss}");
        }
        // Seen straight on nothing moves.
        let flat_on = Relief::of(&head(Surface::Head), &pose(0.0)).expect("a head");
        assert_eq!(flat_on.shift([85.0, 100.0]), [0.0, 0.0]);
    }

    #[test]
    fn a_steep_pitch_keeps_the_parallax_where_the_solve_converges() {
        let mut p = pose(0.0);
        p.pitch = 0.9;
        let r = Relief::of(&head(Surface::Head), &p).expect("a head");
        assert_eq!(r.tilt[1], PITCH_MAX.tan());
        for y in 0..200 {
            for x in 0..170 {
                let q0 = [x as f32, y as f32];
                let q = r.source(q0);
                let d = r.shift(q);
                let miss = ((q[0] + d[0] - q0[0]).powi(2) + (q[1] + d[1] - q0[1]).powi(2)).sqrt();
                assert!(miss < 1.0, "{q0:?}: {miss}");
            }
        }
    }

    /// Positive pitch is chin down, the sign `view::View::seen_pitch` adds for a camera above
    /// the face: the nose, in front of the eyes, drops toward the mouth; the ears, behind, rise.
    #[test]
    fn positive_pitch_moves_the_nose_down_and_the_ears_up() {
        let mut p = pose(0.0);
        p.pitch = 0.4;
        let r = Relief::of(&head(Surface::Head), &p).expect("a head");
        let (nose, ear) = (r.shift([85.0, 105.0]), r.shift([42.0, 95.0]));
        assert!(nose[1] > 2.0 && ear[1] < -2.0, "{nose:?} {ear:?}");
    }

    #[test]
    fn a_bent_print_falls_back_at_its_sides_and_has_no_nose() {
        let r = Relief::of(&head(Surface::Bent { sag: 0.6 }), &pose(0.3)).expect("bent");
        let (middle, nose, ear) = (
            r.depth([85.0, 85.0]),
            r.depth([85.0, 105.0]),
            r.depth([42.0, 95.0]),
        );
        // The eyes' vertical line is the fold: nothing rises in front of it.
        assert_eq!((middle, nose), (0.0, 0.0));
        // Ears 1.19 eye distances out: 0.6 · (1.19 / 1.5)² behind, about a third of a head's.
        assert!(
            (ear + 0.6 * (43.0f32 / 36.0 / 1.5).powi(2)).abs() < 1e-4,
            "{ear}"
        );
        let head = Relief::of(&head(Surface::Head), &pose(0.3)).expect("a head");
        assert!(ear > head.depth([42.0, 95.0]));
    }
}
