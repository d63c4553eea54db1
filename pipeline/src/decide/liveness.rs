//! Presentation-attack evidence of one track: the PAD pair's live probability on its gated frames
//! (`engine::face::pad`), judged over the track like the identity is, never on one frame.
//!
//! Why over the track: one frame's score swings with blur, pose and the face's size; a print or a
//! screen stays a print over every frame of a walk. The verdict is the mean of the latest scores
//! once at least `min_frames` of them exist, so a walker is neither refused nor let through on a
//! single unlucky or lucky frame.
//!
//! Why three ways (live at or above `threshold`, attack below `attack_below`, doubtful between):
//! the two errors cost differently. A picture let through opens a door for someone else; a real
//! face called a picture raises an alarm at an honest passenger. Between the two thresholds the
//! track waits for more frames and, if it leaves still doubtful, is `not_decided`: the card
//! reader, never an open and never an alarm (docs/pad.md has the measured trade-off).

use serde::Deserialize;

use super::planarity::PlanarParams;

/// What the station does with PAD (`[pad] mode`, per lane overridable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// A grant needs the face shown live; a likely attack closes the door and raises the alarm.
    #[default]
    Enforce,
    /// Scores are measured, logged and exported, but never change a decision: for measuring at a
    /// new station before enforcing.
    Observe,
    /// No PAD at all (no network runs).
    Off,
}

/// The liveness rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadParams {
    pub mode: PadMode,
    /// Mean live probability (0–1) a track needs to be shown live.
    pub threshold: f32,
    /// Below this mean the track is judged an attack (door held, alarm); between the two it is
    /// doubtful.
    pub attack_below: f32,
    /// Scored frames needed before the track is judged either way.
    pub min_frames: usize,
    /// A track that left with fewer than `min_frames` scores is an attack when their mean is
    /// below this (0: never): a backlit lane passes one frame of a walk, or none, to the learned
    /// cue, and one picture's frame scored 0.0036 there (seed 47) where the lowest honest lone
    /// frame of 55 scored 0.048 (docs/pad.md, "One frame").
    pub attack_alone_below: f32,
    /// Scored frames needed, while the walker is in view, before a low mean is an attack.
    pub attack_frames: usize,
    /// How many of the track's latest scores count.
    pub window: usize,
    /// The geometric cue (`planarity`): a face that moves like a plane is an attack.
    pub planar: PlanarParams,
}

impl Default for PadParams {
    fn default() -> Self {
        Self {
            mode: PadMode::Enforce,
            threshold: 0.6,
            attack_below: 0.2,
            min_frames: 2,
            attack_alone_below: 0.02,
            attack_frames: 4,
            window: 8,
            planar: PlanarParams::default(),
        }
    }
}

/// What the scores so far say of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LiveVerdict {
    /// Shown live: mean live probability over `frames` scored frames.
    Live { mean: f32, frames: usize },
    /// A likely presentation attack.
    Attack { mean: f32, frames: usize },
    /// Between the two thresholds: neither shown live nor judged an attack.
    Doubtful { mean: f32, frames: usize },
    /// Fewer than `needed` scored frames so far.
    Unsure { frames: usize, needed: usize },
}

impl LiveVerdict {
    /// The mean live probability, when judged.
    pub fn mean(&self) -> Option<f32> {
        match self {
            Self::Live { mean, .. } | Self::Attack { mean, .. } | Self::Doubtful { mean, .. } => {
                Some(*mean)
            }
            Self::Unsure { .. } => None,
        }
    }
}

/// The latest live probabilities of one track's gated frames, newest last.
#[derive(Debug, Default, Clone)]
pub(super) struct Liveness {
    scores: Vec<f32>,
}

impl Liveness {
    /// Adds one gated frame's score; a score that is not a probability is no evidence.
    pub(super) fn push(&mut self, p: &PadParams, live: f32) {
        if !(0.0..=1.0).contains(&live) {
            return;
        }
        self.scores.push(live);
        let excess = self.scores.len().saturating_sub(p.window.max(1));
        self.scores.drain(..excess);
    }

    /// The mean of the scores so far, however few.
    pub(super) fn mean(&self) -> Option<f32> {
        (!self.scores.is_empty())
            .then(|| self.scores.iter().sum::<f32>() / self.scores.len() as f32)
    }

    /// The verdict while the walker is still in view. An attack needs `attack_frames` scores: a
    /// far face's first scores can run low (an honest walker of the default footage scored
    /// 0.16–0.30 over its first frames, 20–25 px between the eyes, then 0.6–0.97 as it came near),
    /// and an alarm at an honest passenger cannot be taken back. A grant is unchanged: the mean
    /// of `min_frames` or more at or above `threshold`.
    pub(super) fn verdict(&self, p: &PadParams) -> LiveVerdict {
        self.judge(p, p.attack_frames.max(p.min_frames))
    }

    /// The verdict of a track that has left: no more frames will come, so what was scored is
    /// judged as it is (`min_frames` or more), and fewer scores are an attack only when their
    /// mean is far below any honest face's (`attack_alone_below`); otherwise still unsure.
    pub(super) fn final_verdict(&self, p: &PadParams) -> LiveVerdict {
        match (self.judge(p, p.min_frames), self.mean()) {
            (LiveVerdict::Unsure { frames, .. }, Some(mean)) if mean < p.attack_alone_below => {
                LiveVerdict::Attack { mean, frames }
            }
            (verdict, _) => verdict,
        }
    }

    /// `attack_frames`: scored frames needed before a low mean is an attack.
    fn judge(&self, p: &PadParams, attack_frames: usize) -> LiveVerdict {
        let frames = self.scores.len();
        let needed = p.min_frames.max(1);
        let Some(mean) = self.mean().filter(|_| frames >= needed) else {
            return LiveVerdict::Unsure { frames, needed };
        };
        if mean >= p.threshold {
            LiveVerdict::Live { mean, frames }
        } else if mean < p.attack_below && frames >= attack_frames {
            LiveVerdict::Attack { mean, frames }
        } else {
            LiveVerdict::Doubtful { mean, frames }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judged_on_the_mean_of_enough_frames() {
        let p = PadParams::default();
        let mut l = Liveness::default();
        assert_eq!(
            l.verdict(&p),
            LiveVerdict::Unsure {
                frames: 0,
                needed: 2
            }
        );
        l.push(&p, 0.1);
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Unsure { frames: 1, .. }
        ));
        l.push(&p, 0.95);
        // One low frame among good ones does not make an attack: (0.1 + 0.95) / 2 is doubtful.
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Doubtful { frames: 2, .. }
        ));
        l.push(&p, 0.95);
        assert!(matches!(l.verdict(&p), LiveVerdict::Live { frames: 3, .. }));
        // A walk of pictures: once the window holds only them, an attack.
        for _ in 0..6 {
            l.push(&p, 0.02);
        }
        assert!(matches!(l.verdict(&p), LiveVerdict::Doubtful { .. }));
        l.push(&p, 0.02);
        l.push(&p, 0.02);
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Attack { frames: 8, .. }
        ));
    }

    #[test]
    fn a_few_low_scores_are_an_attack_only_once_the_track_has_left() {
        let p = PadParams::default();
        let mut l = Liveness::default();
        for v in [0.16, 0.19, 0.15] {
            l.push(&p, v);
        }
        // In view: three low scores of a far face are not yet an alarm (four are).
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Doubtful { frames: 3, .. }
        ));
        // Gone: nothing more will come, so what was scored decides.
        assert!(matches!(
            l.final_verdict(&p),
            LiveVerdict::Attack { frames: 3, .. }
        ));
        l.push(&p, 0.1);
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Attack { frames: 4, .. }
        ));
        // A face that came near and scored live: the window's mean decides, as before.
        for _ in 0..7 {
            l.push(&p, 0.97);
        }
        assert!(matches!(l.verdict(&p), LiveVerdict::Live { frames: 8, .. }));
    }

    #[test]
    fn a_lone_score_is_an_attack_only_far_below_and_once_the_track_has_left() {
        let p = PadParams::default();
        let mut l = Liveness::default();
        l.push(&p, 0.0036);
        // In view: one frame never decides.
        assert!(matches!(
            l.verdict(&p),
            LiveVerdict::Unsure { frames: 1, .. }
        ));
        assert!(matches!(
            l.final_verdict(&p),
            LiveVerdict::Attack { frames: 1, .. }
        ));
        // The lowest honest lone frame measured (0.048) stays unsure, as does any frame when the
        // rule is off.
        let mut honest = Liveness::default();
        honest.push(&p, 0.048);
        assert!(matches!(
            honest.final_verdict(&p),
            LiveVerdict::Unsure { frames: 1, .. }
        ));
        let off = PadParams {
            attack_alone_below: 0.0,
            ..p
        };
        assert!(matches!(
            l.final_verdict(&off),
            LiveVerdict::Unsure { frames: 1, .. }
        ));
        // No score at all is no evidence.
        assert!(matches!(
            Liveness::default().final_verdict(&p),
            LiveVerdict::Unsure { frames: 0, .. }
        ));
    }

    #[test]
    fn the_window_keeps_the_latest_and_nan_is_no_evidence() {
        let p = PadParams {
            window: 3,
            ..PadParams::default()
        };
        let mut l = Liveness::default();
        for v in [0.0, 0.0, 0.0, 0.9, 0.9, 0.9] {
            l.push(&p, v);
        }
        assert!(matches!(l.verdict(&p), LiveVerdict::Live { frames: 3, .. }));
        l.push(&p, f32::NAN);
        l.push(&p, 7.0);
        assert!(matches!(l.verdict(&p), LiveVerdict::Live { frames: 3, .. }));
    }
}
