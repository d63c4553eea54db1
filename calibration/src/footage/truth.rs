//! Ground truth written beside the footage (`truth.json`); the format is specified in
//! docs/footage.md. Field order is the serialisation order, so keep it stable: the file is compared
//! byte for byte between runs.

use serde::{Deserialize, Serialize};

use super::view::Posture;

/// Bumped whenever the file's shape or meaning changes, or the renderer changes what a given seed
/// draws; `scripts/setup` regenerates the default set when it differs.
pub const VERSION: u32 = 4;

#[derive(Debug, Serialize, Deserialize)]
pub struct Truth {
    pub version: u32,
    pub seed: u64,
    pub fps: u32,
    pub width: u32,
    pub height: u32,
    pub lanes: Vec<Lane>,
    pub enrol: Vec<Enrol>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Lane {
    pub lane: String,
    pub file: String,
    pub scenario: String,
    pub frames: u32,
    /// The lane camera's geometry (version 3): what a station engineer measures at the lane and
    /// writes into the lane's `[lane.geometry]` for the planarity cue.
    #[serde(default)]
    pub camera: Camera,
    /// The lane's second camera, below `camera` and turned up (`--lower-camera`); absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<LowerCamera>,
    pub walkers: Vec<Walker>,
}

/// The lower camera: on the upper one's spot (same offset, aim and focal length, same frame),
/// `below_m` metres lower and turned up by `tilt_deg`; its MP4 is `file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowerCamera {
    pub file: String,
    pub below_m: f32,
    pub tilt_deg: f32,
    pub focal_px: f32,
}

/// `[frame, x, y, w, h]`, frame pixels.
pub type Box5 = (u32, f32, f32, f32, f32);

/// Where a lane's camera stands: metres beside the walking line, its focal length in pixels, and
/// how far it is turned toward the line (degrees; `[lane.geometry] aim_deg`). Version 3 added it;
/// an older file reads as a camera on the line with no focal length known (0).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Camera {
    pub offset_m: f32,
    pub focal_px: f32,
    pub aim_deg: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Open,
    Closed,
    Tailgating,
    /// A picture of the identity held up: refused as a presentation attack, alarm raised.
    Attack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ticket {
    Valid,
    Expired,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Walker {
    pub walker: String,
    pub identity: String,
    pub enrolled: bool,
    pub photo: String,
    /// The face used in `photo` (x, y, w, h in the photo's pixels): group photos hold several.
    pub face: [f32; 4],
    pub same_photo: bool,
    pub first_frame: u32,
    pub last_frame: u32,
    pub t_first: f64,
    pub t_last: f64,
    pub mask: bool,
    pub group: Option<String>,
    pub lead: bool,
    pub expected: Expected,
    pub reason: Option<String>,
    /// The attack species when this walker is a picture of `identity` held up (absent otherwise;
    /// version 2 added it and the preset's attack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<String>,
    /// How the walker carries the face (`--postures`); absent for one standing, as everyone did
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
    /// The upper camera's boxes: frames where at least 60 % of the face box is in the frame.
    pub boxes: Vec<Box5>,
    /// The same for the lower camera (`--lower-camera`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_boxes: Option<Vec<Box5>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Enrol {
    pub identity: String,
    pub photo: String,
    pub face: [f32; 4],
    pub ticket: Ticket,
}

/// The decision a correct gate reaches for a walker, and why it stays shut.
pub fn expected(
    enrolled: bool,
    ticket: Option<Ticket>,
    in_group: bool,
) -> (Expected, Option<String>) {
    if in_group {
        return (Expected::Tailgating, None);
    }
    match (enrolled, ticket) {
        (true, Some(Ticket::Valid)) => (Expected::Open, None),
        (true, Some(Ticket::Expired)) => (Expected::Closed, Some("expired".into())),
        _ => (Expected::Closed, Some("unknown".into())),
    }
}

/// One decimal is far below any detector's box noise and keeps the file readable.
pub fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}
