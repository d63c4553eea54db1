//! Multi-frame evidence of one track: quality gates per frame, then one of two rules (`[decision]
//! fusion`): the k-of-window vote, or the quality-weighted mean of the best frames' embeddings
//! matched again (docs/evaluation.md, "Per-track fusion", has both measured on footage).

use std::sync::Arc;

use serde::Deserialize;

pub use crate::recognise::QualityGates;

use super::{Candidate, Quality, Subject};

/// How a track's gated frames become one identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionRule {
    /// `k` frames each name one subject confidently (≥ T, lead ≥ M), and no frame names another.
    #[default]
    Vote,
    /// The unit embeddings of the track's best `top` gated frames (by [`frame_weight`]), averaged
    /// with those weights and matched again: one identification at ≥ `mean_threshold` with a lead
    /// ≥ M, once `k` frames were embedded and no frame in the window confidently names anyone but
    /// the fused best.
    Mean,
}

/// The decision rule's parameters (lane config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionParams {
    /// Same-person threshold T on cosine similarity.
    pub threshold: f32,
    /// Required lead M of the best subject over the second best.
    pub margin: f32,
    /// Frames that must agree (vote), or be embedded (mean).
    pub k: usize,
    /// How many of the track's latest gated frames are considered.
    pub window: usize,
    pub rule: FusionRule,
    /// `Mean`: how many of the window's best frames are averaged.
    pub top: usize,
    /// `Mean`: the threshold on the fused similarity. Not T: averaging raises a stranger's
    /// likeness as well as the person's, so at T the fused rule lets more strangers through than
    /// one frame does (docs/evaluation.md, "Fused embeddings").
    pub mean_threshold: f32,
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
            rule: FusionRule::Vote,
            top: 5,
            mean_threshold: 0.45,
            gates: QualityGates::default(),
            pad: super::PadParams::default(),
        }
    }
}

/// Enrolled templates by the matcher's subject number: what the `Mean` rule matches its fused
/// embedding against. The station's is the synced gallery (`decisions`).
pub trait Templates: Send + Sync {
    /// The unit template of `subject`, `None` when it is no longer enrolled.
    fn template(&self, subject: Subject) -> Option<[f32; 128]>;
}

impl std::fmt::Debug for dyn Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// How much a gated frame's embedding counts in the `Mean` rule: its size up to the 40 px between
/// the eyes at which SFace's 112 px chip (38 px between the eyes) stops gaining detail, times its
/// frontality (a face at the yaw gate counts half as much as a frontal one). Sharpness and luma are
/// left to the gates: their scale depends on the lane's light.
pub fn frame_weight(q: &Quality, gates: &QualityGates) -> f32 {
    let size = (q.eye_px / 40.0).clamp(0.0, 1.0);
    let turn = if gates.max_abs_yaw > 0.0 {
        (q.yaw.abs() / gates.max_abs_yaw).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let w = size * (1.0 - 0.5 * turn);
    if w.is_finite() { w } else { 0.0 }
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

/// What a gated frame adds to its track.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub at_ms: u64,
    pub best: Option<Candidate>,
    pub second: Option<Candidate>,
    pub embedding: Option<Arc<[f32]>>,
    pub weight: f32,
}

#[derive(Debug, Clone)]
struct Held {
    /// `Some` for a confident frame, `None` for a gated frame that named nobody confidently.
    vote: Option<Evidence>,
    frame: Frame,
}

/// The gated frames of one track, newest last, at most `window` of them.
#[derive(Debug, Default, Clone)]
pub(super) struct Fusion {
    frames: Vec<Held>,
}

impl Fusion {
    /// Adds one gated frame (quality already checked by the caller).
    pub(super) fn push(&mut self, p: &FusionParams, frame: Frame) {
        let runner_up = frame.second.map_or(-1.0, |s| s.similarity);
        let vote =
            (frame.best).and_then(|b| confident(p.threshold, p.margin, b, runner_up, frame.at_ms));
        self.frames.push(Held { vote, frame });
        let excess = self.frames.len().saturating_sub(p.window.max(1));
        self.frames.drain(..excess);
    }

    /// The subject the frames name under `p.rule`, when no frame in the window confidently names
    /// anyone else. Vote: the best of the `k` agreeing frames. Mean: the fused match, timed at the
    /// newest frame it used.
    pub(super) fn decide(
        &self,
        p: &FusionParams,
        templates: Option<&dyn Templates>,
    ) -> Option<Evidence> {
        if self.conflicting() {
            return None;
        }
        match p.rule {
            FusionRule::Vote => {
                let agreeing: Vec<&Evidence> =
                    self.frames.iter().filter_map(|h| h.vote.as_ref()).collect();
                if agreeing.len() < p.k.max(1) {
                    return None;
                }
                agreeing
                    .into_iter()
                    .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
                    .copied()
            }
            FusionRule::Mean => self.fused(p, templates?),
        }
    }

    fn fused(&self, p: &FusionParams, templates: &dyn Templates) -> Option<Evidence> {
        let mut usable: Vec<&Frame> = (self.frames.iter().map(|h| &h.frame))
            .filter(|f| f.best.is_some() && f.embedding.is_some() && f.weight > 0.0)
            .collect();
        if usable.len() < p.k.max(1) {
            return None;
        }
        // The best frames; among equals the newest.
        usable.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(b.at_ms.cmp(&a.at_ms)));
        usable.truncate(p.top.max(1));
        let parts: Vec<(f32, &[f32])> = (usable.iter())
            .filter_map(|f| Some((f.weight, f.embedding.as_deref()?)))
            .collect();
        let unit = engine::face::weighted_mean(parts.iter().copied())?;
        // The length of the weighted sum before it was normalised: the outside bound below is
        // in its units.
        let norm: f32 = (parts.iter())
            .map(|(w, e)| w * e.iter().zip(&unit).map(|(a, b)| a * b).sum::<f32>())
            .sum();
        if !(norm.is_finite() && norm > 0.0) {
            return None;
        }
        // Every subject a used frame ranked first or second is matched exactly. Anyone else was
        // below each frame's runner-up in that frame, so (weights ≥ 0, unit vectors) their fused
        // similarity is at most the weighted runner-ups over the norm: a bound the lead must beat.
        // It holds while the frames were ranked over the same candidates: a subject enrolled (or
        // narrowed in) during the walk is covered only by the frames after it, and an f16 gallery
        // ranks within ~1e-3 of these f32 products, far inside the margin M.
        let mut named: Vec<Subject> = (usable.iter())
            .flat_map(|f| [f.best, f.second])
            .flatten()
            .map(|c| c.subject)
            .collect();
        named.sort();
        named.dedup();
        let outside = usable
            .iter()
            .map(|f| f.weight * f.second.map_or(-1.0, |c| c.similarity))
            .sum::<f32>()
            / norm;
        let mut scored = Vec::with_capacity(named.len());
        for s in named {
            // A subject erased since: no decision until the frames stop naming them.
            let t = templates.template(s)?;
            scored.push(Candidate {
                subject: s,
                similarity: unit.iter().zip(&t).map(|(a, b)| a * b).sum(),
            });
        }
        scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let best = *scored.first()?;
        // A frame that confidently named someone else blocks the mean as it blocks the vote (with
        // one such frame there is no conflict between votes, but the mean may still name another).
        if (self.frames.iter().filter_map(|h| h.vote.as_ref())).any(|v| v.subject != best.subject) {
            return None;
        }
        // A NaN runner-up would vanish from `max` below: the bound would be lost, not met.
        if !outside.is_finite() {
            return None;
        }
        let second = scored.get(1).map_or(outside, |c| c.similarity.max(outside));
        let at_ms = usable.iter().map(|f| f.at_ms).max()?;
        confident(p.mean_threshold, p.margin, best, second, at_ms)
    }

    /// Whether frames disagree (two subjects voted): reported when the track ends undecided.
    pub(super) fn conflicting(&self) -> bool {
        let mut votes = self.frames.iter().filter_map(|h| h.vote.as_ref());
        votes
            .next()
            .is_some_and(|f| votes.any(|e| e.subject != f.subject))
    }
}

/// A match that names its best subject confidently: ≥ `threshold` and a lead ≥ `lead` over the
/// runner-up's similarity.
fn confident(
    threshold: f32,
    lead: f32,
    best: Candidate,
    runner_up: f32,
    at_ms: u64,
) -> Option<Evidence> {
    let margin = best.similarity - runner_up;
    // NaN compares false: no vote.
    (best.similarity >= threshold && margin >= lead).then_some(Evidence {
        subject: best.subject,
        similarity: best.similarity,
        margin,
        at_ms,
    })
}
