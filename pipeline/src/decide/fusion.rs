//! Multi-frame evidence of one track: quality gates per frame, then the k-of-window rule.

pub use crate::recognise::QualityGates;

use super::{Candidate, Subject};

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
    /// Presentation-attack detection over the track (`liveness`).
    pub pad: super::PadParams,
}

impl Default for FusionParams {
    fn default() -> Self {
        Self {
            threshold: 0.45,
            margin: 0.08,
            k: 3,
            window: 12,
            gates: QualityGates::default(),
            pad: super::PadParams::default(),
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
