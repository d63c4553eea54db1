//! The PAD cues of one track and the rules that turn them into an alarm (`Track::suspected`,
//! `Track::attack`), beside the track they judge: kept apart from the tracking so each reads alone.

use super::super::fusion::Evidence;
use super::super::liveness::{LiveVerdict, PadMode, PadParams};
use super::super::planarity::{PlanarParams, Planarity};
use super::super::stereo::StereoFit;
use super::{Event, Track};

/// A track followed for less than this is a fragment of a walk, not a walk: a face at the
/// frame's edge as its walker leaves, found again as a new track for one to three frames, scores
/// as a picture (seed 61: six of the eight alarms at honest walkers alone were such tracks,
/// 0–400 ms long, scored 0.0003–0.18), while the walks' own tracks lasted 900 ms and more
/// (seeds 59 and 61, 3,065 walkers). On a fragment the learned cue's verdict at the walker's
/// leaving, on fewer scores than an alarm in view needs (`attack_frames`), raises no alarm.
const FRAGMENT_MS: u64 = 600;

/// What the PAD cues say of a track at one decision, each computed once.
#[derive(Debug, Clone, Copy)]
pub(super) struct PadCues {
    pub(super) learned: LiveVerdict,
    /// Judged as the track leaves: no more frames will come.
    pub(super) left: bool,
    /// The one-camera cue's verdict.
    pub(super) planarity: Planarity,
    pub(super) stereo: StereoFit,
}

impl PadCues {
    /// The face's shape: the two-camera cue's verdict when it judged (both views of one instant:
    /// the head's own turn cancels, and a replayed video cannot show two cameras two
    /// parallaxes), else the one-camera cue's.
    pub(super) fn shape(&self, p: &PlanarParams) -> Planarity {
        match self.stereo.verdict(p) {
            Planarity::Unsure { .. } => self.planarity,
            judged => judged,
        }
    }
}

impl Track {
    pub(super) fn pad_cues(&self, pad: &PadParams, left: bool) -> PadCues {
        PadCues {
            left,
            learned: if left {
                self.liveness.final_verdict(pad)
            } else {
                self.liveness.verdict(pad)
            },
            planarity: self.keypoints.verdict(&pad.planar),
            stereo: self.stereo.fit(&pad.planar),
        }
    }

    /// Whether a grant can wait no longer for the face shown in relief.
    pub(super) fn near(&self, pad: &PadParams) -> bool {
        self.keypoints.near(&pad.planar) || self.stereo.near(&pad.planar)
    }

    /// The scored frames behind the cues calling this track a picture (PAD enforced):
    /// - the learned cue says so (on fewer scores than it judges on only once the walker left, and
    ///   far below any honest face's: `LiveVerdict`'s `final_verdict`);
    /// - it is doubtful, or has too few scores for a verdict whose mean is a picture's (a backlit
    ///   lane's faces seldom pass the gates it scores behind: one frame or two), and the face
    ///   looked flat (the one-camera cue's flat verdict, or `StereoFit::flat_for_alarm`), the
    ///   pixels not a head's (`StereoFit::pixels_head`) and, where the lane measures them,
    ///   measured or the walker gone;
    /// - or it is doubtful and nearer a picture's score than a head's (below the middle of its
    ///   doubtful band), and the two cameras found no head: the pixels short of a head's, the
    ///   keypoints' slope not a head's by one standard error (`StereoFit::shallow_without_relief`).
    ///   Three cues leaning one way, none the other: seed 73's dim-lane curved print (0.28, pixels
    ///   0.30, slope 0.42 ± 0.11) was refused only as unknown. The honest walks there on seven
    ///   draws (six of about 3,000) scored 0.43–0.59 (docs/pad.md);
    /// - or both keypoint cues called the face flat (the one-camera cue over the walk and the two
    ///   cameras at each instant) while the learned cue is less than halfway from its threshold to
    ///   certain: one of 762 paired head tracks on our footage fitted flat to both, scored 0.89,
    ///   and dim-lane screens 0.60–0.64 (docs/pad.md);
    /// - or the two cameras showed a picture beyond doubt (`StereoFit::pixels_alarm`: the pixels
    ///   far below a head's, or flat with the keypoints too), whatever the learned cue says (it
    ///   calls some bent prints and dim screens live, 0.6–0.9 on the footage) or before it has
    ///   said anything; one head in 516 measured that flat, and it was doubted (docs/pad.md);
    /// - or the walk's keypoints fitted a plane (the one-camera cue's flat verdict) and the two
    ///   cameras' pixels are short of a head's (`StereoFit::pixels_flat`), whatever the learned
    ///   cue says: two shape cues from different evidence, the angle the walk turned through and
    ///   the two heights at each instant. The heads the one-camera cue called flat measured
    ///   0.39–0.85 in their pixels (12 on seeds 13 and 31), dim-lane screens it called flat 0.21.
    ///
    /// Returns the frames scored and which of these it was (`Cue`, for the alarm's log line).
    pub(super) fn suspected(&self, pad: &PadParams, cues: &PadCues) -> Option<(usize, Cue)> {
        if pad.mode != PadMode::Enforce {
            return None;
        }
        let walk_flat = matches!(cues.planarity, Planarity::Flat { .. });
        // Flat keypoints turn the learned cue's doubt into an alarm only where the pixels did
        // not show a head's depth and, on a lane that measures them, once they are measured or
        // the walker has left: seed 47's dim lane alarmed four honest walkers doubted at
        // 0.48–0.56 with flat keypoints before their pixels (0.48–0.72) were measured, while
        // the pictures so alarmed on seed 59 (352) measured 0.27 at most (docs/pad.md).
        let alarming = (walk_flat || cues.stereo.flat_for_alarm(&pad.planar))
            && !cues.stereo.pixels_head(&pad.planar)
            && (cues.left || !cues.stereo.pixels_pending(&pad.planar));
        let leaning = self
            .liveness
            .mean()
            .is_some_and(|mean| mean < pad.attack_below);
        // Both keypoint cues: the walk's change of angle and the two cameras' one instant.
        let flat_twice = walk_flat && cues.stereo.keypoints_flat(&pad.planar);
        let shallow_twice = walk_flat && cues.stereo.pixels_flat(&pad.planar);
        let fragment = self.last_seen_ms.saturating_sub(self.first_seen_ms) < FRAGMENT_MS;
        match (cues.learned, alarming) {
            // Judged on fewer scores than an alarm in view needs, because the walker left: not
            // on a fragment of a walk.
            (LiveVerdict::Attack { frames, .. }, _) if frames < pad.attack_frames && fragment => {
                None
            }
            // One frame's word against a face the keypoints showed in relief: no alarm.
            (LiveVerdict::Attack { frames, .. }, _) if frames < pad.min_frames => {
                let relief = matches!(cues.shape(&pad.planar), Planarity::Relief { .. });
                (!relief).then_some((frames, Cue::LearnedFew))
            }
            (LiveVerdict::Attack { frames, .. }, _) => Some((frames, Cue::Learned)),
            (LiveVerdict::Doubtful { frames, .. }, true) => Some((frames, Cue::DoubtedAndFlat)),
            (LiveVerdict::Doubtful { mean, frames }, false)
                if mean < (pad.attack_below + pad.threshold) / 2.0
                    && cues.stereo.shallow_without_relief(&pad.planar) =>
            {
                Some((frames, Cue::DoubtedAndShallow))
            }
            (LiveVerdict::Unsure { frames, .. }, true) if leaning => {
                Some((frames, Cue::LeaningAndFlat))
            }
            (LiveVerdict::Live { mean, frames }, _)
                if flat_twice && mean < (pad.threshold + 1.0) / 2.0 =>
            {
                Some((frames, Cue::FlatTwice))
            }
            (LiveVerdict::Live { frames, .. } | LiveVerdict::Unsure { frames, .. }, _)
                if cues.stereo.pixels_alarm(&pad.planar) =>
            {
                Some((frames, Cue::Pixels))
            }
            (LiveVerdict::Live { frames, .. } | LiveVerdict::Unsure { frames, .. }, _)
                if shallow_twice =>
            {
                Some((frames, Cue::FlatAndShallow))
            }
            _ => None,
        }
    }

    /// The attack event when the track is `suspected` and, on a lane with a lower camera, the
    /// two cameras have had their best look (the walker near or gone; the door stays shut
    /// meanwhile) and did not see a head's depth. Where the cues disagree there is no alarm and
    /// never a grant (`update` waits, then `not_decided`): a flat face the learned cue calls
    /// live, since about 2 % of honest walks look flat on our footage, and a face in depth the
    /// cues call a picture, since the learned cue's false alarms fall again and again on the same
    /// few faces and the one-camera cue calls a head that turns as it walks flat (docs/pad.md).
    pub(super) fn attack(
        &self,
        pad: &PadParams,
        cues: &PadCues,
        evidence: Option<Evidence>,
    ) -> Option<Event> {
        let (scored, cue) = self.suspected(pad, cues)?;
        let p = &pad.planar;
        let depth =
            !matches!(cues.stereo.verdict(p), Planarity::Flat { .. }) && cues.stereo.head_like(p);
        let heard = p.lower.is_none() || cues.left || self.near(pad);
        if depth || !heard {
            return None;
        }
        Some(Event::Attack {
            track: self.id,
            evidence,
            first_seen_ms: self.first_seen_ms,
            frames: self.frames,
            live: self.liveness.mean(),
            scored,
            flat: cues.shape(p).flat_slope(),
            cue,
        })
    }
}

/// Which of `Track::suspected`'s rules called a track a picture: what the alarm's log line names,
/// so a station engineer (and a benchmark's reader) can tell which cue to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// The learned cue's own verdict.
    Learned,
    /// The learned cue's verdict on a track that left with fewer scores than it judges on, their
    /// mean far below an honest face's (`PadParams::attack_alone_below`).
    LearnedFew,
    /// The learned cue doubtful, the face flat.
    DoubtedAndFlat,
    /// The learned cue doubtful and leaning to a picture, the two cameras short of a head.
    DoubtedAndShallow,
    /// Too few learned scores for a verdict, their mean a picture's, the face flat.
    LeaningAndFlat,
    /// Both keypoint cues flat, the learned cue not confidently live.
    FlatTwice,
    /// The two cameras' pixels showed a picture.
    Pixels,
    /// The walk flat, the two cameras' pixels short of a head's.
    FlatAndShallow,
}

impl Cue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::LearnedFew => "learned, few frames",
            Self::DoubtedAndFlat => "doubted and flat",
            Self::DoubtedAndShallow => "doubted, no head to the two cameras",
            Self::LeaningAndFlat => "leaning and flat",
            Self::FlatTwice => "flat to both keypoint cues",
            Self::Pixels => "two-camera pixels",
            Self::FlatAndShallow => "walk flat, pixels shallow",
        }
    }
}
