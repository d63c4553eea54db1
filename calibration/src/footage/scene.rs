//! What a lane camera sees, before it is drawn: how a walker moves (a pinhole camera at the gate,
//! the walker approaching at constant speed), the lane's lighting scenario, and its static
//! background.

use std::f32::consts::TAU;

use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use super::view::{Carriage, FACE_M, Posture, UPPER_M, View};

/// Distance from the lens at the last sighting, metres (the face 220 px high at 480 lines).
const Z_LAST_M: f32 = 0.43;

/// Where an off-line camera is aimed: the walking line at this distance (about mid-walk), so the
/// walker crosses the frame instead of leaving it.
const AIM_M: f32 = 1.4;

/// The lane camera's focal length in pixels for frames `frame_h` lines high: a face `FACE_M` high
/// at `Z_LAST_M` is 220 px at 480 lines (written to the truth, so a station run on the footage
/// knows its lane geometry as calibration would measure it).
pub fn focal_px(frame_h: f32) -> f32 {
    220.0 * Motion::scale(frame_h) * Z_LAST_M / FACE_M
}

/// How far (degrees) a camera `offset_m` beside the walking line is turned toward it.
pub fn aim_deg(offset_m: f32) -> f32 {
    (offset_m / AIM_M).atan().to_degrees()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Normal,
    Dim,
    Backlit,
    Cast,
    Flicker,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Normal,
        Scenario::Dim,
        Scenario::Backlit,
        Scenario::Cast,
        Scenario::Flicker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::Dim => "dim",
            Scenario::Backlit => "backlit",
            Scenario::Cast => "cast",
            Scenario::Flicker => "flicker",
        }
    }

    pub fn parse(s: &str) -> Result<Scenario> {
        match Scenario::ALL.iter().find(|x| x.name() == s.trim()) {
            Some(x) => Ok(*x),
            None => bail!(
                "unknown scenario '{}' (known: normal, dim, backlit, cast, flicker)",
                s.trim()
            ),
        }
    }

    /// The lane's camera response under this scenario; `rng` picks the cast and flicker phase.
    pub fn lighting(self, rng: &mut StdRng) -> Lighting {
        let mut l = Lighting {
            gain: 1.0,
            fg_gain: 1.0,
            channel: [1.0; 3],
            flicker_amp: 0.0,
            flicker_hz: 0.0,
            flicker_phase: 0.0,
            read_noise: 1.5,
            shot_noise: 0.03,
            exposure_s: 1.0 / 120.0,
            backlit: false,
        };
        match self {
            Scenario::Normal => {}
            // Little light: the camera's gain is low and the sensor's noise shows; a long shutter.
            Scenario::Dim => {
                l.gain = 0.38;
                l.read_noise = 4.5;
                l.shot_noise = 0.25;
                l.exposure_s = 1.0 / 30.0;
            }
            // A bright concourse or window behind; the camera exposes for it, faces go dark.
            Scenario::Backlit => {
                l.fg_gain = 0.36;
                l.backlit = true;
                l.exposure_s = 1.0 / 250.0;
            }
            Scenario::Cast => {
                const CASTS: [[f32; 3]; 3] =
                    [[1.2, 1.0, 0.7], [0.82, 0.98, 1.22], [0.92, 1.12, 0.82]];
                l.channel = CASTS[rng.random_range(0..CASTS.len())];
                l.exposure_s = 1.0 / 100.0;
            }
            // Mains-driven lamps sampled by a camera not locked to them: a slow beat between frames.
            Scenario::Flicker => {
                l.flicker_amp = 0.25;
                l.flicker_hz = rng.random_range(2.3..3.7);
                l.flicker_phase = rng.random_range(0.0..TAU);
                l.exposure_s = 1.0 / 100.0;
            }
        }
        l
    }
}

#[derive(Debug, Clone)]
pub struct Lighting {
    /// Overall gain on the composed frame.
    pub gain: f32,
    /// Extra gain on the walkers only (backlight).
    pub fg_gain: f32,
    pub channel: [f32; 3],
    pub flicker_amp: f32,
    pub flicker_hz: f32,
    pub flicker_phase: f32,
    /// Noise standard deviation in 8-bit units: sqrt(read² + shot·level).
    pub read_noise: f32,
    pub shot_noise: f32,
    pub exposure_s: f32,
    pub backlit: bool,
}

impl Lighting {
    pub fn frame_gain(&self, t: f64) -> f32 {
        self.gain
            * (1.0
                + self.flicker_amp * (TAU * self.flicker_hz * t as f32 + self.flicker_phase).sin())
    }
}

/// A walker's path through the lane, in its own time τ = t − start.
#[derive(Debug, Clone)]
pub struct Motion {
    pub start_s: f64,
    pub duration_s: f64,
    /// Face height in pixels when first and last seen.
    pub h_first: f32,
    pub h_last: f32,
    /// Metres right of the camera axis, and of the face centre above it.
    pub lateral_m: f32,
    /// Metres the camera stands beside the walking line (0: on it). The camera is turned toward
    /// the line, so the walker stays in frame while the angle it sees the face from grows on the
    /// approach: what tells a head from a flat picture (docs/pad.md).
    pub camera_offset_m: f32,
    pub height_m: f32,
    pub sway_m: f32,
    pub sway_hz: f32,
    pub sway_phase: f32,
    /// Head angles (radians): amplitude, frequency, phase.
    pub yaw: [f32; 3],
    pub pitch: [f32; 3],
    pub roll: [f32; 3],
    pub stride_hz: f32,
    pub frame: (f32, f32),
    /// How the face is carried (`Standing` unless `--postures` drew another).
    pub posture: Posture,
    /// Head pitch held the whole walk on top of the oscillation, radians, chin down.
    pub pitch_bias: f32,
}

/// Where a walker is at one instant, in frame pixels.
#[derive(Debug, Clone, Copy)]
pub struct Pose {
    /// Face centre and face box height.
    pub cx: f32,
    pub cy: f32,
    pub h: f32,
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
    pub stride: f32,
    /// Angle (radians) between the walking direction and the camera's ray to the face: the face
    /// is seen turned by this much more than its own yaw.
    pub view: f32,
}

impl Motion {
    /// Frame scale: sizes are specified for 480 lines.
    pub fn scale(frame_h: f32) -> f32 {
        frame_h / 480.0
    }

    pub fn random(
        rng: &mut StdRng,
        start_s: f64,
        speed: f32,
        lateral_m: f32,
        camera_offset_m: f32,
        frame: (f32, f32),
    ) -> Motion {
        let k = Motion::scale(frame.1);
        // 40 → 220 px at 480 lines: the face grows 5.5×, so the distance shrinks 5.5× over the walk;
        // with the last sighting ~0.43 m from the lens that is ~1.95 m of walking.
        let h_first = 40.0 * k * rng.random_range(0.92..1.08);
        let h_last = 220.0 * k * rng.random_range(0.93..1.04);
        let walk_m = Z_LAST_M * (h_last / h_first - 1.0);
        let ph = |rng: &mut StdRng| rng.random_range(0.0..TAU);
        Motion {
            start_s,
            duration_s: (walk_m / speed) as f64,
            h_first,
            h_last,
            lateral_m,
            camera_offset_m,
            height_m: rng.random_range(-0.02..0.05),
            sway_m: rng.random_range(0.015..0.035),
            sway_hz: rng.random_range(0.8..1.0),
            sway_phase: ph(rng),
            yaw: [
                rng.random_range(0.08..0.22),
                rng.random_range(0.3..0.7),
                ph(rng),
            ],
            pitch: [
                rng.random_range(0.03..0.1),
                rng.random_range(0.4..0.9),
                ph(rng),
            ],
            roll: [
                rng.random_range(0.01..0.05),
                rng.random_range(0.3..0.6),
                ph(rng),
            ],
            stride_hz: rng.random_range(0.85..1.0),
            frame,
            posture: Posture::Standing,
            pitch_bias: 0.0,
        }
    }

    /// Takes on a posture drawn by `view::Postures`; the walk's length stays, its pace changes.
    pub fn carry(&mut self, c: &Carriage) {
        self.posture = c.posture;
        self.pitch_bias = c.pitch_bias;
        if let Some(m) = c.face_m {
            self.height_m = m - UPPER_M;
        }
        self.duration_s /= c.speed as f64;
    }

    /// Where camera `cam` sees the walker at `t`. Both cameras stand on one spot, so the face's
    /// size and column are the same in both; its row and the pitch it is seen at are not.
    pub fn pose(&self, t: f64, cam: View) -> Pose {
        let tau = (t - self.start_s) as f32;
        let u = (tau / self.duration_s as f32).clamp(-0.2, 1.1);
        // Distance in units of the last distance: h ∝ 1/z.
        let r = self.h_last / self.h_first;
        let z = (r + (1.0 - r) * u).max(0.5);
        let h = self.h_last / z;
        let (w, fh) = self.frame;
        let lat = self.lateral_m + self.sway_m * (TAU * self.sway_hz * tau + self.sway_phase).sin();
        let horizon = 0.4 * fh;
        let margin = 0.56 * h + 1.0;
        // A pinhole turned toward the walking line: the face is seen at `view` from the walking
        // direction and lands `tan(view - aim)` focal lengths off the frame's centre (on the line,
        // `lat / FACE_M · h` as before).
        let dist = Z_LAST_M * z;
        let focal = h * dist / FACE_M;
        let view = ((lat + self.camera_offset_m) / dist).atan();
        let aim = aim_deg(self.camera_offset_m).to_radians();
        let x = w / 2.0 + focal * (view - aim).tan();
        let osc = |a: [f32; 3]| a[0] * (TAU * a[1] * tau + a[2]).sin();
        let head_pitch = osc(self.pitch);
        // A standing walker in the upper camera is drawn as before there was a lower one: kept
        // inside the frame, and level with the camera (the 5 cm at most between them is left out
        // of the pitch), so footage without the new options keeps its seed's frames. Everyone
        // else is where the camera puts them, cut off by the frame's edge as a camera would.
        let (cx, cy, pitch) = if self.posture == Posture::Standing && cam == View::Upper {
            let cy =
                (horizon - self.height_m / FACE_M * h).clamp(margin, (fh - margin).max(margin));
            (x.clamp(margin, (w - margin).max(margin)), cy, head_pitch)
        } else {
            let face_m = UPPER_M + self.height_m;
            let pitch = cam.seen_pitch(self.pitch_bias + head_pitch, face_m, dist);
            (x, cam.row(face_m, h, fh, focal), pitch)
        };
        Pose {
            cx,
            cy,
            h,
            yaw: osc(self.yaw),
            pitch,
            roll: osc(self.roll),
            stride: TAU * self.stride_hz * tau,
            view,
        }
    }
}

/// A muted colour: low saturation, mid value.
pub fn muted(rng: &mut StdRng, v: (f32, f32)) -> [f32; 3] {
    let base = rng.random_range(v.0..v.1) * 255.0;
    let tint = [
        rng.random_range(-0.18..0.18f32),
        rng.random_range(-0.18..0.18f32),
        rng.random_range(-0.18..0.18f32),
    ];
    tint.map(|t| (base * (1.0 + t)).clamp(0.0, 255.0))
}

/// The lane's static background (RGB, 0–255 floats): wall with a ceiling-light gradient, posters
/// and signs, a floor with tiles converging on the vanishing point, and the gate's side cabinets.
/// `drop` moves it all down that many rows, as a camera turned up sees it (the lower camera): the
/// same draws from `rng`, so both views of a lane show the same concourse.
pub fn background(rng: &mut StdRng, w: usize, h: usize, l: &Lighting, drop: f32) -> Vec<[f32; 3]> {
    let (wf, hf) = (w as f32, h as f32);
    let wall = muted(rng, (0.45, 0.72));
    let floor = muted(rng, (0.28, 0.45));
    let floor_y0 = hf * rng.random_range(0.56..0.62);
    let floor_y = floor_y0 + drop;
    let (vx, vy) = (wf / 2.0, 0.4 * hf + drop);
    let tiles = rng.random_range(6..12) as f32;
    let mut px = vec![[0.0f32; 3]; w * h];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            px[y * w + x] = if fy < floor_y {
                let g = 1.12 - 0.3 * (fy - drop) / floor_y0;
                wall.map(|c| c * g)
            } else {
                // Floor seams: lines through the vanishing point, and rows spaced as 1/depth.
                let depth = (fy - vy).max(1.0);
                let seam_x = ((fx - vx) / depth * tiles).fract().abs();
                let seam_y = (hf * 2.0 / depth).fract();
                let seam = if seam_x < 0.04 || seam_y < 0.05 {
                    0.82
                } else {
                    1.0
                };
                let g = 0.8 + 0.35 * (fy - floor_y) / (hf - floor_y);
                floor.map(|c| c * g * seam)
            };
        }
    }
    let shapes = rng.random_range(6..12);
    for _ in 0..shapes {
        let col = muted(rng, (0.25, 0.85));
        let (sw, sh) = (
            rng.random_range(0.04..0.2) * wf,
            rng.random_range(0.05..0.25) * hf,
        );
        let (sx, sy) = (
            rng.random_range(0.0..wf - sw),
            rng.random_range(0.02 * hf..(floor_y0 - sh).max(0.03 * hf)) + drop,
        );
        let round = rng.random_bool(0.3);
        for y in sy as usize..((sy + sh) as usize).min(h) {
            for x in sx as usize..((sx + sw) as usize).min(w) {
                if round {
                    let (dx, dy) = (
                        (x as f32 - sx - sw / 2.0) / (sw / 2.0),
                        (y as f32 - sy - sh / 2.0) / (sh / 2.0),
                    );
                    if dx * dx + dy * dy > 1.0 {
                        continue;
                    }
                }
                px[y * w + x] = col;
            }
        }
    }
    // Gate cabinets at both sides, from the floor line down.
    let cab = muted(rng, (0.2, 0.35));
    let cab_w = rng.random_range(0.08..0.13) * wf;
    for y in (floor_y as usize).saturating_sub((0.12 * hf) as usize)..h {
        let grow = (y as f32 - floor_y + 0.12 * hf) / hf;
        let wd = cab_w * (1.0 + grow);
        for x in 0..w {
            let xf = x as f32;
            if xf < wd || xf > wf - wd {
                px[y * w + x] = cab.map(|c| c * (0.9 + 0.2 * grow));
            }
        }
    }
    // Static texture so flat areas are not perfectly flat to the encoder or the detectors.
    for p in px.iter_mut() {
        let n = (rng.next_u32() & 0xff) as f32 / 255.0 * 6.0 - 3.0;
        *p = p.map(|c| (c + n).clamp(0.0, 255.0));
    }
    if l.backlit {
        for (i, p) in px.iter_mut().enumerate() {
            // Brighter toward the top: a glazed concourse roof.
            let top = 1.0 - ((i / w) as f32 - drop) / hf;
            let lift = 150.0 + 80.0 * top;
            *p = p.map(|c| (c * 0.35 + lift).min(255.0));
        }
    }
    px
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::footage::view::{BELOW_M, Carriage, Posture, TILT_DEG};

    /// A walker on the camera's axis, 1 m/s from 40 to 220 px (480 lines), no sway or head motion.
    pub fn standing() -> Motion {
        Motion {
            start_s: 0.0,
            duration_s: (Z_LAST_M * 4.5) as f64,
            h_first: 40.0,
            h_last: 220.0,
            lateral_m: 0.0,
            camera_offset_m: 0.0,
            height_m: 0.02,
            sway_m: 0.0,
            sway_hz: 0.9,
            sway_phase: 0.0,
            yaw: [0.0; 3],
            pitch: [0.0; 3],
            roll: [0.0; 3],
            stride_hz: 0.9,
            frame: (640.0, 480.0),
            posture: Posture::Standing,
            pitch_bias: 0.0,
        }
    }

    fn carrying(posture: Posture, face_m: Option<f32>, pitch_bias: f32) -> Motion {
        let mut m = standing();
        m.carry(&Carriage {
            posture,
            face_m,
            pitch_bias,
            speed: 1.0,
        });
        m
    }

    #[test]
    fn a_child_sits_lower_in_the_upper_view_and_higher_in_the_lower_one() {
        let adult = standing();
        let child = carrying(Posture::Child, Some(1.1), 0.0);
        for t in [0.2, 0.6, 1.0] {
            let (a, c) = (adult.pose(t, View::Upper), child.pose(t, View::Upper));
            assert_eq!(a.h, c.h);
            assert!(c.cy > a.cy + 2.0 * c.h, "{t}: {} {}", c.cy, a.cy);
            // The lower view: the same size and column, higher by the cameras' 0.5 m apart less
            // the turn up, both in face heights.
            let l = child.pose(t, View::Lower);
            let dist = Z_LAST_M * child.h_last / c.h;
            let focal = c.h * dist / FACE_M;
            let rise = BELOW_M / FACE_M * c.h - focal * TILT_DEG.to_radians().tan();
            assert_eq!((l.h, l.cx), (c.h, c.cx));
            assert!(
                (c.cy - l.cy - rise).abs() < 1e-2,
                "{t}: {} {} {rise}",
                c.cy,
                l.cy
            );
            assert!(l.cy < c.cy, "{t}");
        }
    }

    #[test]
    fn a_standing_walker_is_in_the_lower_view_at_mid_walk_and_unchanged_in_the_upper() {
        let m = standing();
        let mid = m.duration_s / 2.0;
        let p = m.pose(mid, View::Lower);
        assert!(p.cy - p.h / 2.0 > 0.0 && p.cy + p.h / 2.0 < 480.0, "{p:?}");
        assert!(p.cx - p.h / 2.0 > 0.0 && p.cx + p.h / 2.0 < 640.0, "{p:?}");
        // Seen from 0.5 m below the face at about 1.4 m: pitched back (chin up) by about 20°.
        assert!(
            (p.pitch + (0.52f32 / 1.4).atan()).abs() < 0.05,
            "{}",
            p.pitch
        );
        // The upper view as before there was a lower one: level, kept inside the frame.
        let u = m.pose(m.duration_s, View::Upper);
        assert_eq!(u.pitch, 0.0);
        assert!((u.cy - (0.4 * 480.0 - 0.02 / FACE_M * u.h)).abs() < 1e-3);
    }

    #[test]
    fn a_phone_looker_is_pitched_down_from_above_and_near_frontal_from_below() {
        let m = carrying(Posture::Phone, None, 40f32.to_radians());
        let end = m.duration_s * 0.9;
        let (u, l) = (m.pose(end, View::Upper), m.pose(end, View::Lower));
        assert!(u.pitch > 0.65, "{}", u.pitch);
        assert!(l.pitch.abs() < 0.2, "{}", l.pitch);
    }
}
