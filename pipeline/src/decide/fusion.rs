//! Multi-frame evidence of one track: quality gates per frame, then the k-of-window rule.

use super::{Candidate, Quality, Subject};

/// A frame's face counts as evidence only inside these bounds (lane config; the calibration tool
/// sets them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityGates {
    pub min_eye_px: f32,
    pub min_sharpness: f32,
    pub max_abs_yaw: f32,
    pub luma: (f32, f32),
}

impl Default for QualityGates {
    fn default() -> Self {
        Self {
            min_eye_px: 20.0,
            min_sharpness: 20.0,
            max_abs_yaw: 0.35,
            luma: (40.0, 220.0),
        }
    }
}

impl QualityGates {
    /// `None` when the face passes; otherwise the first gate it fails. NaN fails every gate
    /// (written as "passes" tests, which are false for NaN).
    pub fn fails(&self, q: &Quality) -> Option<&'static str> {
        let big_enough = q.eye_px >= self.min_eye_px;
        let sharp = q.sharpness >= self.min_sharpness;
        let frontal = q.yaw.abs() <= self.max_abs_yaw;
        let exposed = q.luma >= self.luma.0 && q.luma <= self.luma.1;
        [
            (big_enough, "face too small"),
            (sharp, "blurred"),
            (frontal, "not frontal"),
            (exposed, "badly exposed"),
        ]
        .into_iter()
        .find_map(|(ok, why)| (!ok).then_some(why))
    }
}

/// The decision rule's parameters (lane config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionParams {
    /// Same-person threshold T on cosine similarity.
    pub threshold: f32,
    /// Required lead M of the best subject over the second best.
    pub margin: f32,
    /// Frames that must agree.
    pub k: usize,
    /// How many of the track's latest gated frames are considered.
    pub window: usize,
    pub gates: QualityGates,
}

impl Default for FusionParams {
    fn default() -> Self {
        Self {
            threshold: 0.45,
            margin: 0.08,
            k: 3,
            window: 12,
            gates: QualityGates::default(),
        }
    }
}

/// One frame's confident vote: the best subject, its similarity and its margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    pub subject: Subject,
    pub similarity: f32,
    pub margin: f32,
    /// Frame time, milliseconds on the lane's clock.
    pub at_ms: u64,
}

/// The gated frames of one track, newest last, at most `window` of them.
#[derive(Debug, Default, Clone)]
pub(super) struct Fusion {
    /// `Some` for a confident frame, `None` for a gated frame that named nobody confidently.
    frames: Vec<Option<Evidence>>,
}

impl Fusion {
    /// Adds one gated frame (quality already checked by the caller).
    pub(super) fn push(
        &mut self,
        p: &FusionParams,
        at_ms: u64,
        best: Option<Candidate>,
        second: Option<Candidate>,
    ) {
        let vote = best.and_then(|b| {
            let runner_up = second.map_or(-1.0, |s| s.similarity);
            let margin = b.similarity - runner_up;
            // NaN compares false: no vote.
            (b.similarity >= p.threshold && margin >= p.margin).then_some(Evidence {
                subject: b.subject,
                similarity: b.similarity,
                margin,
                at_ms,
            })
        });
        self.frames.push(vote);
        let excess = self.frames.len().saturating_sub(p.window.max(1));
        self.frames.drain(..excess);
    }

    /// The subject `k` frames agree on, with the best of those frames, when no frame in the window
    /// confidently names anyone else.
    pub(super) fn decide(&self, p: &FusionParams) -> Option<Evidence> {
        let mut votes = self.frames.iter().flatten();
        let first = votes.next()?;
        if votes.any(|e| e.subject != first.subject) {
            return None;
        }
        let agreeing: Vec<&Evidence> = self.frames.iter().flatten().collect();
        if agreeing.len() < p.k.max(1) {
            return None;
        }
        agreeing
            .into_iter()
            .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
            .copied()
    }

    /// Whether frames disagree (two subjects voted): reported when the track ends undecided.
    pub(super) fn conflicting(&self) -> bool {
        let mut votes = self.frames.iter().flatten();
        votes
            .next()
            .is_some_and(|f| votes.any(|e| e.subject != f.subject))
    }
}
