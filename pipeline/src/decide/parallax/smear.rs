//! The two views smeared alike before their shifts are measured (`equalised`), and the lane's
//! shutter the smear is drawn with (`Shutter`).
//!
//! Why: a walker's face moves across each camera's picture by a different path (the lower camera
//! sees it rise as it comes), so under a long shutter one view is smeared along y and the other
//! hardly; the shift estimates between a smeared and a sharp texture then err by amounts that
//! follow the texture, the same in every frame, so averaging does not take them away, and a dim
//! lane's pictures measured as deep as shallow heads (docs/pad.md, "Smear").

use super::{Image, Map, SIDE, align, bilinear};

/// Each camera's image motion at one instant, in its own patch's pixels per second: where the
/// face's eyes and mouth went since the pair before (`stereo::Stereo::push`). What the shutter
/// smears each view along.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::decide) struct Motion {
    pub upper: [f32; 2],
    pub lower: [f32; 2],
}

/// Shutter times the equalisation tries, seconds, each about √2 from the next: a smear equalised
/// with a shutter within √2 of the camera's is better than none, one twice as long is worse than
/// none (a view's smear grows as the square of it). The lane's cameras do not say theirs.
pub(super) const SHUTTERS_S: [f32; 8] = [
    1.0 / 250.0,
    1.0 / 180.0,
    1.0 / 120.0,
    1.0 / 90.0,
    1.0 / 60.0,
    1.0 / 45.0,
    1.0 / 30.0,
    1.0 / 20.0,
];

/// How much better the views must agree smeared alike than as they are for the smear to be taken
/// as the camera's: their disagreement (1 − agreement) at most this share of what it was. Any
/// smoothing makes two noisy views agree a little better, and a shutter guessed too long smears
/// the views apart instead (a backlit lane's 1/250 s pictures measured deeper); on seed 13's
/// footage the best shutter left 0.67–0.87 of the disagreement on the backlit lane (10th–90th
/// percentile) and 0.22–0.69 on the dim lane's 1/30 s (docs/pad.md, "Smear").
const EQUALISE_BELOW: f32 = 0.6;

/// The longest smear, patch pixels, the equalisation applies: past it the motion is a track's
/// jump, not a walk (a walker at the door moves about 20 patch pixels in 1/20 s).
const MOST_STREAK: f32 = 24.0;

/// `px` smeared along `streak` (patch pixels, the path a point of the image travels while the
/// shutter is open): each pixel the mean of the image along that segment about it, what a
/// moving face leaves on one frame. Under half a pixel it is the image itself.
pub(super) fn streaked(px: &[f32], [sx, sy]: [f32; 2]) -> Vec<f32> {
    let len = sx.hypot(sy);
    if len.is_nan() || len < 0.5 {
        return px.to_vec();
    }
    // Samples a pixel apart or closer: the image is already smooth over three pixels
    // (`smooth`), so finer steps change nothing measurable, and this runs for every shutter tried
    // on a paired frame.
    let n = len.ceil() as usize + 1;
    let steps: Vec<[f32; 2]> = (0..n)
        .map(|k| {
            let t = (k as f32 + 0.5) / n as f32 - 0.5;
            [t * sx, t * sy]
        })
        .collect();
    let mut out = vec![0.0f32; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let s: f32 = (steps.iter())
                .map(|[dx, dy]| bilinear(px, x as f32 + dx, y as f32 + dy))
                .sum();
            out[y * SIDE + x] = s / n as f32;
        }
    }
    out
}

/// A lane's shutter as the equalisation has found it, frame after frame: which of `SHUTTERS_S`
/// (or none) left the two views agreeing best, whether or not by enough to be applied to that
/// frame (`EQUALISE_BELOW`: a far face's smear is too small to gain much, and the first build,
/// which counted only the frames that cleared it, settled the dim lane on none), in votes that
/// fade, so an exposure that changes (a camera's automatic exposure following the lighting
/// driver) is followed within a few walkers.
///
/// Why one per lane and not a search per frame: the shutter is the camera's, not the walker's,
/// and trying all eight on every paired frame made the deciding thread half again as dear
/// (docs/pad.md, "Smear"). Once one choice and its neighbours hold most of the votes, a frame
/// tries those three (an exposure drifting a step is followed), or nothing where no smear
/// improves on the lane's views at all; every `ALL_EVERY`th frame still tries them all, so a
/// jump is found.
#[derive(Debug, Clone, Default)]
pub(in crate::decide) struct Shutter {
    /// Each of `SHUTTERS_S`'s wins, then (`NONE`) the views' own, each vote fading the ones before
    /// by `VOTE_KEPT`.
    wins: [f32; SHUTTERS_S.len() + 1],
    /// Frames with motion since every shutter was last tried.
    since_all: u32,
}

/// Where `Shutter::wins` counts the frames on which no smear improved on the views.
const NONE: usize = SHUTTERS_S.len();

/// What each vote keeps of the ones before: the last ~20 votes count (1 / (1 − 0.95)), a few
/// walkers' paired frames on a busy lane.
const VOTE_KEPT: f32 = 0.95;

/// Votes (faded) a lane needs before its choice narrows the search, and the share of them the
/// leading choice must hold.
const SETTLE_VOTES: f32 = 8.0;
const SETTLE_SHARE: f32 = 0.5;

/// Even settled, every this many frames with motion every shutter is tried: about 3.6 shutters a
/// frame settled on one (8 before), 1 settled on none. A jump of the exposure from 1/30 s to
/// 1/120 s is followed within 30 frames with motion (the test below: once the old choice has
/// faded under half the votes, every frame tries every shutter again), three or four walkers.
const ALL_EVERY: u32 = 8;

/// The shutters a lane settled on `i` tries: it and its neighbours in `SHUTTERS_S`; none for
/// `NONE`.
fn around(i: usize) -> std::ops::Range<usize> {
    match i {
        NONE => 0..0,
        i => i.saturating_sub(1)..(i + 2).min(NONE),
    }
}

impl Shutter {
    /// The leading choice (index into `wins`) once it and its neighbours, the shutters a settled
    /// lane tries, hold `SETTLE_SHARE` of at least `SETTLE_VOTES`; ties to the one with more
    /// votes of its own. With neighbours: a dim lane's votes split between two shutters √2 apart
    /// (1/30 and 1/20 s on seed 31), and counted alone neither held half for long.
    fn settled(&self) -> Option<usize> {
        let total: f32 = self.wins.iter().sum();
        let near = |i: usize| match i {
            NONE => self.wins[NONE],
            i => self.wins[around(i)].iter().sum(),
        };
        let lead = (0..=NONE).max_by(|&a, &b| {
            (near(a).total_cmp(&near(b))).then(self.wins[a].total_cmp(&self.wins[b]))
        })?;
        (total >= SETTLE_VOTES && near(lead) >= SETTLE_SHARE * total).then_some(lead)
    }

    /// The lane's shutter in seconds, once settled: `Some(None)` where the views are best left
    /// unsmeared. For the log.
    pub(in crate::decide) fn estimate(&self) -> Option<Option<f32>> {
        self.settled().map(|i| SHUTTERS_S.get(i).copied())
    }

    /// Whether the next `plan` tries any shutter: not on a lane settled on its views as they are,
    /// between full searches.
    pub(super) fn will_try(&self) -> bool {
        self.since_all + 1 >= ALL_EVERY || self.settled() != Some(NONE)
    }

    /// The indices of `SHUTTERS_S` to try on the next frame with motion (module docs): empty
    /// where the lane settled on its views as they are.
    pub(super) fn plan(&mut self) -> std::ops::Range<usize> {
        self.since_all += 1;
        match self.settled() {
            Some(lead) if self.since_all < ALL_EVERY => around(lead),
            _ => {
                self.since_all = 0;
                0..NONE
            }
        }
    }

    /// One frame's outcome: the index of the shutter that won, or `NONE`.
    fn vote(&mut self, won: usize) {
        let before = self.settled();
        self.wins.iter_mut().for_each(|w| *w *= VOTE_KEPT);
        if let Some(w) = self.wins.get_mut(won) {
            *w += 1.0;
        }
        let now = self.settled();
        if now != before {
            tracing::debug!(
                shutter_s = ?self.estimate(),
                "the lane's shutter, as the two views' smears show it"
            );
        }
    }
}

/// The two views smeared alike: each view streaked along the *other* camera's motion over a
/// shutter time, so both carry both smears (streaks commute), and the map realigned on them. The
/// shutter is the one of those the lane's `shutter` proposes under which the views agree best,
/// applied only where it improves on the views as they are by `EQUALISE_BELOW`; the best (or
/// none, where no smear improves on them at all) is a vote for the lane's. Frames on which no
/// shutter gives a smear worth drawing (between half a pixel and `MOST_STREAK`) do not vote.
pub(super) fn equalised(
    smooth_upper: &[f32],
    smooth_lower: &[f32],
    views: (Image, Image, Map),
    motion: &Motion,
    shutter: &mut Shutter,
) -> (Image, Image, Map) {
    let (u, l, m) = views;
    let tried = shutter.plan();
    if tried.is_empty() {
        return (u, l, m);
    }
    let Some(raw) = m.agreement(&u, &l) else {
        return (u, l, m);
    };
    // The best of the views as they are and each smear tried: the lane's vote, whether or not
    // it clears `EQUALISE_BELOW` on this frame (a frame whose views a smear improves, but not by
    // that much, still says which shutter the camera has).
    let mut top: (f32, usize, Option<(Image, Image)>) = (raw, NONE, None);
    let mut drawn = false;
    for i in tried {
        let s = SHUTTERS_S[i];
        let (su, sl) = (motion.lower.map(|v| v * s), motion.upper.map(|v| v * s));
        let (lu, ll) = (su[0].hypot(su[1]), sl[0].hypot(sl[1]));
        if !(lu.max(ll) >= 0.5 && lu.max(ll) <= MOST_STREAK) {
            continue;
        }
        drawn = true;
        let (Some(a), Some(b)) = (
            Image::normalised(streaked(smooth_upper, su)),
            Image::normalised(streaked(smooth_lower, sl)),
        ) else {
            continue;
        };
        let score = Map::under(&b, &m.p).and_then(|mb| mb.agreement(&a, &b));
        if let Some(score) = score.filter(|s| *s > top.0) {
            top = (score, i, Some((a, b)));
        }
    }
    if drawn {
        shutter.vote(top.1);
    }
    match top {
        (score, _, Some((a, b))) if 1.0 - score <= EQUALISE_BELOW * (1.0 - raw) => {
            match align(&a, &b, m.p) {
                Some(m2) => (a, b, m2),
                None => (u, l, m),
            }
        }
        _ => (u, l, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans `frames` frames of a lane whose camera's shutter is `SHUTTERS_S[true_at]`, where a
    /// frame's search finds it whenever it is tried and otherwise finds nothing better than the
    /// views as they are; returns how many shutters were tried in all.
    fn run(s: &mut Shutter, true_at: usize, frames: usize) -> usize {
        let mut tried_in_all = 0;
        for _ in 0..frames {
            let tried = s.plan();
            tried_in_all += tried.len();
            if !tried.is_empty() {
                s.vote(if tried.contains(&true_at) {
                    true_at
                } else {
                    NONE
                });
            }
        }
        tried_in_all
    }

    #[test]
    fn a_lane_settles_on_its_shutter_and_then_tries_it_and_its_neighbours() {
        let mut s = Shutter::default();
        assert_eq!(s.estimate(), None);
        assert_eq!(s.plan(), 0..NONE);
        s.vote(6);
        // Unsettled: every shutter, every frame, until ten votes (faded, over `SETTLE_VOTES`).
        assert_eq!(run(&mut s, 6, 8), 8 * NONE);
        assert_eq!(s.estimate(), None);
        assert_eq!(run(&mut s, 6, 1), NONE);
        assert_eq!(s.estimate(), Some(Some(1.0 / 30.0)));
        // Settled: three a frame, all eight on every `ALL_EVERY`th.
        let n = 10 * ALL_EVERY as usize;
        assert_eq!(
            run(&mut s, 6, n),
            10 * (3 * (ALL_EVERY as usize - 1) + NONE)
        );
        assert_eq!(s.estimate(), Some(Some(1.0 / 30.0)));
        // The ends of the list have one neighbour.
        let mut short = Shutter::default();
        run(&mut short, 0, 20);
        assert_eq!(short.plan(), 0..2);
    }

    #[test]
    fn votes_split_between_neighbours_still_settle_the_lane() {
        let mut s = Shutter::default();
        for k in 0..40 {
            s.plan();
            s.vote(if k % 2 == 0 { 6 } else { 7 });
        }
        assert!(matches!(s.estimate(), Some(Some(t)) if t == 1.0 / 30.0 || t == 1.0 / 20.0));
        let tried = s.plan();
        assert!(
            tried != (0..NONE) && tried.contains(&6) && tried.contains(&7),
            "{tried:?}"
        );
    }

    #[test]
    fn a_lane_whose_views_are_best_left_alone_tries_nothing_between_full_searches() {
        let mut s = Shutter::default();
        run(&mut s, NONE, 10);
        assert_eq!(s.estimate(), Some(None));
        // `will_try` foretells it (`structure` keeps the smoothed pixels by it).
        let plans: Vec<_> = (0..ALL_EVERY)
            .map(|_| {
                let will = s.will_try();
                let plan = s.plan();
                assert_eq!(will, !plan.is_empty());
                plan
            })
            .collect();
        assert!(plans[..ALL_EVERY as usize - 1].iter().all(|p| p.is_empty()));
        assert_eq!(plans[ALL_EVERY as usize - 1], 0..NONE);
    }

    #[test]
    fn an_exposure_that_jumps_is_followed() {
        let mut s = Shutter::default();
        run(&mut s, 6, 200);
        assert_eq!(s.estimate(), Some(Some(1.0 / 30.0)));
        // The camera now exposes for 1/120 s, two steps from its neighbours' reach.
        run(&mut s, 2, 30);
        assert_eq!(s.estimate(), Some(Some(1.0 / 120.0)));
    }
}
