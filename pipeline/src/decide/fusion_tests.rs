//! The `mean` fusion rule beside the vote, on synthetic unit embeddings whose similarities are
//! known exactly (orthogonal directions of the 128-dim space).

use std::collections::HashMap;
use std::sync::Arc;

use super::tests::{cand, face, good, identified, verdicts_of};
use super::*;

const ZONE: BBox = BBox([100.0, 0.0, 540.0, 480.0]);

/// Unit vector along axis `i`.
fn axis(i: usize) -> [f32; 128] {
    let mut v = [0.0; 128];
    v[i] = 1.0;
    v
}

/// `Σ c·axis(i)`, normalised.
fn mix(parts: &[(usize, f32)]) -> Arc<[f32]> {
    let mut v = [0.0f32; 128];
    for &(i, c) in parts {
        v[i] += c;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Subject `s`'s template is `axis(s)`, for the subjects given.
struct Axes(HashMap<u32, [f32; 128]>);

impl Axes {
    fn of(subjects: &[u32]) -> Arc<dyn Templates> {
        Arc::new(Axes(
            subjects.iter().map(|&s| (s, axis(s as usize))).collect(),
        ))
    }
}

impl Templates for Axes {
    fn template(&self, s: Subject) -> Option<[f32; 128]> {
        self.0.get(&s.0).copied()
    }
}

fn params(rule: FusionRule) -> FusionParams {
    FusionParams {
        rule,
        ..FusionParams::default()
    }
}

/// A face whose embedding is `e`, reported by the matcher as `best` / `second`.
fn embedded(e: Arc<[f32]>, best: Option<Candidate>, second: Option<Candidate>) -> Observation {
    Observation {
        embedding: Some(e),
        ..face(200.0, best, second)
    }
}

/// Frame `i` of a walker enrolled as subject 1 (`axis(1)`): cosine `sim` with their template and
/// the rest along a direction of its own (what differs from frame to frame: pose, light, noise).
fn noisy_frame(i: usize, sim: f32) -> Observation {
    let rest = (1.0 - sim * sim).sqrt();
    embedded(mix(&[(1, sim), (20 + i, rest)]), cand(1, sim), cand(2, 0.0))
}

/// Feeds frames one by one at 33 ms; the events of every update.
fn feed(d: &mut LaneDecider, frames: &[Observation]) -> Vec<Event> {
    let mut all = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        all.extend(d.update(i as u64 * 33, std::slice::from_ref(f)));
    }
    all
}

#[test]
fn frames_each_below_the_threshold_identify_when_their_mean_is_above_it() {
    let frames: Vec<Observation> = (0..6).map(|i| noisy_frame(i, 0.42)).collect();
    // The vote never decides: no frame reaches T = 0.45.
    let mut vote = LaneDecider::new(params(FusionRule::Vote), ZONE, 300);
    assert!(identified(&feed(&mut vote, &frames)).is_empty());

    let mut mean =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[1, 2]));
    let ev = feed(&mut mean, &frames);
    assert_eq!(identified(&ev), vec![(TrackId(1), Subject(1))]);
    let Some(Event::Identified {
        evidence, frames, ..
    }) = ev.first()
    else {
        panic!("{ev:?}")
    };
    // At the k-th (third) frame: three equal unit vectors sharing 0.42 along the template and
    // orthogonal elsewhere average to 3·0.42 / √(9·0.42² + 3·(1 − 0.42²)) ≈ 0.625.
    assert_eq!(*frames, 3);
    assert_eq!(evidence.at_ms, 66);
    let expected = 3.0 * 0.42 / (9.0 * 0.42f32.powi(2) + 3.0 * (1.0 - 0.42f32.powi(2))).sqrt();
    assert!(
        (evidence.similarity - expected).abs() < 1e-5,
        "{} vs {expected}",
        evidence.similarity
    );
}

#[test]
fn the_mean_is_held_to_its_own_threshold() {
    let frames: Vec<Observation> = (0..6).map(|i| noisy_frame(i, 0.42)).collect();
    // The fused similarity at the third frame is 0.625 (above): not enough at 0.65.
    let p = FusionParams {
        mean_threshold: 0.65,
        ..params(FusionRule::Mean)
    };
    let mut d = LaneDecider::new(p, ZONE, 300).with_templates(Axes::of(&[1, 2]));
    let ev = feed(&mut d, &frames[..3]);
    assert!(identified(&ev).is_empty(), "{ev:?}");
    let p = FusionParams {
        mean_threshold: 0.6,
        ..p
    };
    let mut d = LaneDecider::new(p, ZONE, 300).with_templates(Axes::of(&[1, 2]));
    assert_eq!(identified(&feed(&mut d, &frames[..3])).len(), 1);
}

#[test]
fn without_templates_the_mean_rule_identifies_nobody() {
    let frames: Vec<Observation> = (0..6).map(|i| noisy_frame(i, 0.7)).collect();
    let mut d = LaneDecider::new(params(FusionRule::Mean), ZONE, 300);
    assert!(identified(&feed(&mut d, &frames)).is_empty());
}

#[test]
fn a_frame_naming_someone_else_confidently_blocks_the_mean_too() {
    let mut frames: Vec<Observation> = (0..6).map(|i| noisy_frame(i, 0.6)).collect();
    frames[1] = embedded(mix(&[(2, 0.8), (40, 0.6)]), cand(2, 0.8), cand(1, 0.1));
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[1, 2]));
    let mut ev = feed(&mut d, &frames);
    assert!(identified(&ev).is_empty(), "{ev:?}");
    ev.extend(d.update(10_000, &[]));
    assert_eq!(
        verdicts_of(&ev),
        vec![(protocol::Outcome::Closed, track::CONFLICTING.to_string())]
    );
}

#[test]
fn a_lone_confident_frame_for_someone_else_blocks_the_mean() {
    // Four frames near subject 2 but under T (no vote), one confident frame for subject 1 (a
    // vote, and no other vote to conflict with): the mean names 2, the lone vote says 1.
    // The vote comes first: three frames of 2 alone would be identified before it arrived.
    let mut frames = vec![embedded(
        mix(&[(1, 0.5), (2, 0.3), (40, 0.8)]),
        cand(1, 0.5),
        cand(2, 0.3),
    )];
    frames.extend((0..4).map(|i| {
        embedded(
            mix(&[(2, 0.42), (20 + i, 0.9)]),
            cand(2, 0.42),
            cand(1, 0.1),
        )
    }));
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[1, 2]));
    let ev = feed(&mut d, &frames);
    assert!(identified(&ev).is_empty(), "{ev:?}");
    // Without it the mean names 2.
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[1, 2]));
    assert_eq!(
        identified(&feed(&mut d, &frames[1..])),
        vec![(TrackId(1), Subject(2))]
    );
}

#[test]
fn a_nan_runner_up_never_lets_the_mean_decide() {
    let mut frames: Vec<Observation> = (0..4).map(|i| noisy_frame(i, 0.6)).collect();
    frames[2].second = cand(3, f32::NAN);
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[1, 2, 3]));
    assert!(identified(&feed(&mut d, &frames)).is_empty());
}

#[test]
fn the_lead_must_beat_what_a_subject_no_frame_named_could_reach() {
    // Each frame: 0.62 to subject 1, and 0.58 to a runner-up of its own (named once, so its fused
    // similarity is small), 0.53 elsewhere. A subject no frame ranked could be 0.58 in every frame;
    // the fused lead over that bound is 0.87 − 0.81 < M, so nobody is identified. Per frame the lead
    // is 0.04 < M too.
    // Frame i: 0.62 to subject 1, `runner` to subject 10 + i, the rest on an axis of its own.
    let walk = |runner: f32| -> Vec<Observation> {
        (0..6)
            .map(|i| {
                let rest = (1.0 - 0.62f32 * 0.62 - runner * runner).sqrt();
                embedded(
                    mix(&[(1, 0.62), (10 + i, runner), (30 + i, rest)]),
                    cand(1, 0.62),
                    cand(10 + i as u32, runner),
                )
            })
            .collect()
    };
    let frames = walk(0.58);
    let all: Vec<u32> = (1..=20).collect();
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&all));
    assert!(identified(&feed(&mut d, &frames)).is_empty());
    // The same frames with a far runner-up everywhere are identified.
    let clear = walk(0.2);
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&all));
    assert_eq!(
        identified(&feed(&mut d, &clear)),
        vec![(TrackId(1), Subject(1))]
    );
}

#[test]
fn a_subject_no_longer_enrolled_is_never_identified_by_the_mean() {
    let frames: Vec<Observation> = (0..6).map(|i| noisy_frame(i, 0.7)).collect();
    // Subject 1 erased: only 2 has a template.
    let mut d =
        LaneDecider::new(params(FusionRule::Mean), ZONE, 300).with_templates(Axes::of(&[2]));
    assert!(identified(&feed(&mut d, &frames)).is_empty());
}

#[test]
fn the_best_weighted_frames_are_the_ones_averaged() {
    // Two small turned frames, then a large frontal one; with top = 1 the fused embedding is the
    // large frame's own, whatever the order.
    let small = |i: usize| {
        let mut o = noisy_frame(i, 0.5);
        o.quality = Quality {
            eye_px: 22.0,
            yaw: 0.3,
            ..good()
        };
        o
    };
    let frames = [small(0), small(1), noisy_frame(2, 0.7)];
    let p = FusionParams {
        top: 1,
        ..params(FusionRule::Mean)
    };
    let mut d = LaneDecider::new(p, ZONE, 300).with_templates(Axes::of(&[1, 2]));
    let ev = feed(&mut d, &frames);
    let Some(Event::Identified { evidence, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert!((evidence.similarity - 0.7).abs() < 1e-5, "{evidence:?}");
    assert_eq!(evidence.at_ms, 66);
}

#[test]
fn frame_weight_grows_with_size_to_40_px_and_halves_at_the_yaw_gate() {
    let g = QualityGates::default();
    let w = |eye_px: f32, yaw: f32| {
        frame_weight(
            &Quality {
                eye_px,
                yaw,
                ..good()
            },
            &g,
        )
    };
    assert_eq!(w(20.0, 0.0), 0.5);
    assert_eq!(w(40.0, 0.0), 1.0);
    assert_eq!(w(120.0, 0.0), 1.0);
    assert_eq!(w(40.0, g.max_abs_yaw), 0.5);
    assert_eq!(w(40.0, -g.max_abs_yaw), 0.5);
    assert_eq!(w(f32::NAN, 0.0), 0.0);
    assert_eq!(w(40.0, f32::NAN), 0.0);
}

#[test]
fn the_rule_is_read_from_the_station_file() {
    let cfg: DecisionConfig =
        toml::from_str("fusion = \"mean\"\nfusion_top = 4\nmean_threshold = 0.52").expect("parse");
    assert!(cfg.check().is_ok());
    let p = cfg.fusion(None, None, None, PadParams::default());
    assert_eq!(
        (p.rule, p.top, p.mean_threshold),
        (FusionRule::Mean, 4, 0.52)
    );
    // The mean rule has no default threshold: T is a single frame's, too low for a mean.
    let unset: DecisionConfig = toml::from_str("fusion = \"mean\"").expect("parse");
    assert!(unset.check().unwrap_err().contains("mean_threshold"));
    let p = unset.fusion(None, None, None, PadParams::default());
    assert!(p.mean_threshold.is_nan());
    assert_eq!(DecisionConfig::default().fusion, FusionRule::Vote);
    let bad: DecisionConfig =
        toml::from_str("fusion = \"mean\"\nmean_threshold = 0.5\nfusion_top = 0").expect("parse");
    assert!(bad.check().unwrap_err().contains("fusion_top"));
    // The vote never reads fusion_top: a small window stays valid with it at its default.
    let small: DecisionConfig = toml::from_str("k = 2\nwindow = 3").expect("parse");
    assert!(small.check().is_ok());
    assert!(toml::from_str::<DecisionConfig>("fusion = \"median\"").is_err());
}
