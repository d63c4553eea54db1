//! The lane's two cameras and the walkers' postures. The 2019 Osaka pilot found that a camera at
//! adult face height loses passengers looking down at their phones, children and wheelchair users,
//! and that a second camera below it, turned up, sees them; `--lower-camera` renders that second
//! view of every lane and `--postures` walks people who need it (docs/footage.md).
//!
//! Heights are metres above the floor. Both cameras stand on one spot (same distance from the
//! walker, same lateral offset, same focal length and frame), so a face's box is the same size in
//! both views and only its row and the angle it is seen from differ.

use anyhow::{Result, bail};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The upper camera (the lane's only one before `--lower-camera`): about an adult's face height,
/// which is what the standing walkers' `height_m` (−0.02..0.05 m around it) was drawn against.
pub const UPPER_M: f32 = 1.60;

/// How far the lower camera stands below the upper one: at 1.10 m it is level with a seated
/// adult's or a child's face.
pub const BELOW_M: f32 = 0.50;

/// How far the lower camera is turned up (degrees), so standing adults stay in view for the first
/// half of the walk while children and wheelchair users stay in it to the end.
pub const TILT_DEG: f32 = 12.0;

/// Real face height the pixel sizes are measured against (BlazeFace's box, brow to chin, roughly).
pub const FACE_M: f32 = 0.2;

/// The steepest pitch a face is drawn at (radians, ~52°): beyond it a real face shows mostly
/// forehead and hair, which a cut photo does not have, and the foreshortening alone would squash
/// it to a sliver. Only a phone-looker seen from above, or a child close under the upper camera
/// (by then below its frame), gets there.
const PITCH_MAX: f32 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Upper,
    Lower,
}

impl View {
    /// The camera's height above the floor.
    pub fn camera_m(self) -> f32 {
        match self {
            View::Upper => UPPER_M,
            View::Lower => UPPER_M - BELOW_M,
        }
    }

    /// How far the camera is turned up, radians.
    pub fn tilt(self) -> f32 {
        match self {
            View::Upper => 0.0,
            View::Lower => TILT_DEG.to_radians(),
        }
    }

    /// The horizon's row for a frame `fh` lines high and a focal length of `focal` px: a camera
    /// turned up sees it lower in its image.
    pub fn horizon(self, fh: f32, focal: f32) -> f32 {
        0.4 * fh + focal * self.tilt().tan()
    }

    /// Appended to the lane's name for this view's files (`L1.mp4`, `L1_lower.mp4`).
    pub fn suffix(self) -> &'static str {
        match self {
            View::Upper => "",
            View::Lower => "_lower",
        }
    }

    /// The row of a face centre `face_m` above the floor whose box is `h` px high: its height
    /// above the camera, in face heights, up from the horizon (`focal` as in `horizon`).
    pub fn row(self, face_m: f32, h: f32, fh: f32, focal: f32) -> f32 {
        self.horizon(fh, focal) - (face_m - self.camera_m()) / FACE_M * h
    }

    /// The pitch this camera sees a face at, `dist` metres away with its centre `face_m` above the
    /// floor and pitched `head` radians (positive: chin down, as `render` draws it): a camera
    /// above the face looks down onto it, which reads as more chin-down, one below as less.
    pub fn seen_pitch(self, head: f32, face_m: f32, dist: f32) -> f32 {
        let elevation = ((self.camera_m() - face_m) / dist).atan();
        (head + elevation).clamp(-PITCH_MAX, PITCH_MAX)
    }
}

/// How a walker carries their face past the gate. `Standing` is everyone before `--postures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Posture {
    Standing,
    /// An adult looking down at a phone the whole way, head pitched 30–45°.
    Phone,
    /// Face centre 1.00–1.25 m above the floor.
    Child,
    /// Seated: face centre 1.15–1.30 m, moving at `WHEELCHAIR_SPEED` of a walker's pace.
    Wheelchair,
}

/// A wheelchair's pace beside a walker's 1.2–1.4 m/s.
const WHEELCHAIR_SPEED: f32 = 0.7;

impl Posture {
    pub const NAMED: [Posture; 3] = [Posture::Phone, Posture::Child, Posture::Wheelchair];

    pub fn name(self) -> &'static str {
        match self {
            Posture::Standing => "standing",
            Posture::Phone => "phone",
            Posture::Child => "child",
            Posture::Wheelchair => "wheelchair",
        }
    }

    pub fn parse(s: &str) -> Result<Posture> {
        match Posture::NAMED.iter().find(|p| p.name() == s.trim()) {
            Some(p) => Ok(*p),
            None => bail!(
                "unknown posture '{}' (known: phone, child, wheelchair)",
                s.trim()
            ),
        }
    }
}

/// What one walker's posture changes in their motion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Carriage {
    pub posture: Posture,
    /// Face centre above the floor, when the posture sets it (standing keeps its own draw).
    pub face_m: Option<f32>,
    /// Head pitch held the whole walk, radians, chin down.
    pub pitch_bias: f32,
    /// Factor on the walking speed.
    pub speed: f32,
}

/// Draws postures for one lane's walkers from their own stream, so footage without `--postures`
/// keeps its seed's frames: `rate` of the walkers (attacks excepted) take the next posture of
/// `list` in turn, starting where the lane's index puts it so lanes differ.
pub struct Postures {
    rng: StdRng,
    list: Vec<Posture>,
    rate: f64,
    next: usize,
}

impl Postures {
    pub fn new(rng: StdRng, list: Vec<Posture>, rate: f64, lane: usize) -> Postures {
        Postures {
            rng,
            list,
            rate,
            next: lane,
        }
    }

    /// The next walker's carriage; `None` for one who stands.
    pub fn draw(&mut self) -> Option<Carriage> {
        if self.list.is_empty() || !self.rng.random_bool(self.rate) {
            return None;
        }
        let posture = self.list[self.next % self.list.len()];
        self.next += 1;
        let stand = Carriage {
            posture,
            face_m: None,
            pitch_bias: 0.0,
            speed: 1.0,
        };
        Some(match posture {
            Posture::Standing => stand,
            Posture::Phone => Carriage {
                pitch_bias: self.rng.random_range(30.0f32..45.0).to_radians(),
                ..stand
            },
            Posture::Child => Carriage {
                face_m: Some(self.rng.random_range(1.00..1.25)),
                ..stand
            },
            Posture::Wheelchair => Carriage {
                face_m: Some(self.rng.random_range(1.15..1.30)),
                speed: WHEELCHAIR_SPEED,
                ..stand
            },
        })
    }
}

/// Parses `--postures`: comma-separated names, at least one.
pub fn parse_list(s: &str) -> Result<Vec<Posture>> {
    let list = s
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(Posture::parse)
        .collect::<Result<Vec<_>>>()?;
    if list.is_empty() {
        bail!("--postures is empty (known: phone, child, wheelchair)");
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_lower_camera_sees_the_horizon_lower_and_a_low_face_higher() {
        let (fh, focal, h) = (480.0, 473.0, 60.0);
        assert_eq!(View::Upper.horizon(fh, focal), 192.0);
        let drop = View::Lower.horizon(fh, focal) - 192.0;
        assert!(
            (drop - 473.0 * 12f32.to_radians().tan()).abs() < 1e-3,
            "{drop}"
        );
        // A child's face (1.1 m) level with the lower camera sits on its horizon, and 2.5 face
        // heights below the upper camera's.
        let child = 1.1;
        assert!((View::Lower.row(child, h, fh, focal) - (192.0 + drop)).abs() < 1e-3);
        assert!((View::Upper.row(child, h, fh, focal) - (192.0 + 2.5 * h)).abs() < 1e-3);
    }

    #[test]
    fn a_camera_above_a_face_sees_it_more_chin_down_and_one_below_less() {
        let dist = 1.0;
        // A phone-looker's head, 40° down, at standing height: the lower camera sees it nearer
        // frontal than the upper one, which stands level with it.
        let head = 40f32.to_radians();
        let upper = View::Upper.seen_pitch(head, UPPER_M, dist);
        let lower = View::Lower.seen_pitch(head, UPPER_M, dist);
        assert_eq!(upper, head);
        assert!(lower > 0.0 && lower < head - 0.4, "{lower}");
        // A child's level face under the upper camera looks pitched down, frontal to the lower.
        let child = View::Upper.seen_pitch(0.0, 1.1, dist);
        assert!(child > 0.4, "{child}");
        assert!(View::Lower.seen_pitch(0.0, 1.1, dist).abs() < 1e-6);
        // Steeper than the renderer draws is held at its limit.
        assert_eq!(View::Upper.seen_pitch(1.2, 1.0, 0.3), PITCH_MAX);
    }

    #[test]
    fn postures_parse_and_draw_at_their_rate_in_turn() {
        assert_eq!(
            parse_list("phone, child,wheelchair").ok(),
            Some(Posture::NAMED.to_vec())
        );
        assert!(parse_list("standing").is_err());
        assert!(parse_list(" , ").is_err());
        let mut p = Postures::new(StdRng::seed_from_u64(5), Posture::NAMED.to_vec(), 1.0, 1);
        let drawn: Vec<Carriage> = (0..6).filter_map(|_| p.draw()).collect();
        let names: Vec<&str> = drawn.iter().map(|c| c.posture.name()).collect();
        assert_eq!(
            names,
            [
                "child",
                "wheelchair",
                "phone",
                "child",
                "wheelchair",
                "phone"
            ]
        );
        for c in drawn {
            match c.posture {
                Posture::Phone => {
                    assert!((0.52..0.79).contains(&c.pitch_bias) && c.face_m.is_none());
                }
                Posture::Child => assert!(c.face_m.is_some_and(|m| (1.0..1.25).contains(&m))),
                Posture::Wheelchair => {
                    assert!(c.face_m.is_some_and(|m| (1.15..1.3).contains(&m)) && c.speed < 1.0);
                }
                Posture::Standing => unreachable!(),
            }
        }
        let mut none = Postures::new(StdRng::seed_from_u64(5), Posture::NAMED.to_vec(), 0.0, 0);
        assert!((0..20).all(|_| none.draw().is_none()));
    }
}
