//! Ground truth written beside the footage (`truth.json`); the format is specified in
//! docs/footage.md. Field order is the serialisation order, so keep it stable: the file is compared
//! byte for byte between runs.

use serde::{Deserialize, Serialize};

/// Bumped whenever the file's shape or meaning changes, or the renderer changes what a given seed
/// draws; `scripts/setup` regenerates the default set when it differs.
pub const VERSION: u32 = 3;

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
    pub walkers: Vec<Walker>,
}

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
    /// `[frame, x, y, w, h]`, frame pixels.
    pub boxes: Vec<(u32, f32, f32, f32, f32)>,
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
