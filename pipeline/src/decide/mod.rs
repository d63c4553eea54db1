//! Per lane: who is walking in, decided from many frames. Faces are associated into tracks across
//! frames (`track`), each track collects gated evidence (`fusion`), and a track is identified only
//! when `k` frames agree on one subject with similarity ≥ T and a margin ≥ M over the second best,
//! and no frame confidently says someone else. Everything else stays unidentified — the door stays
//! shut and the lane stays in IC-card mode. Tailgating (a second person inside the lane zone for
//! one identification) is reported so the caller can hold the door and raise the alarm.
//!
//! Pure logic on timestamps and numbers: no GPU, no clock (time is passed in), so it is tested
//! exhaustively and the same code decides on live lanes and recorded footage.

pub mod cards;
mod config;
pub mod decisions;
mod fusion;
pub mod gate;
mod liveness;
mod parallax;
mod planarity;
mod stereo;
mod track;
pub mod views;

pub use config::{DecisionConfig, GateLane, LaneRole, PadConfig};
pub use fusion::{Evidence, FusionParams, FusionRule, QualityGates, Templates, frame_weight};
pub use liveness::{LiveVerdict, PadMode, PadParams};
pub use parallax::Patches;
pub use planarity::{LaneGeometry, PlanarParams, Planarity};
pub use track::{Cue, Event, LaneDecider, Observation, TrackId};
pub use views::{LowerGeometry, LowerView, Seen, View};

/// What recognition reports of a face, the deciders' input.
pub use crate::recognise::{BBox, Candidate, Quality, Subject};

#[cfg(test)]
mod fusion_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod views_tests;
