//! The plan and its truth with and without the lower camera and postures, on a made-up photo and
//! small frames: nothing here needs the detector models or the encoder.

use std::path::PathBuf;
use std::sync::Arc;

use engine::face::blazeface::Detection;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::attack::Species;
use super::plan::{self, Cast, FaceRef, LaneBuild, LaneSpec, Passage, Person, Rates};
use super::render::LaneRenderer;
use super::scene::{self, Scenario};
use super::source::Located;
use super::truth::{self, LowerCamera, Ticket, Truth};
use super::view::{Posture, View};
use super::{Config, lane_truth, truth_text};
use crate::photo::Photo;

/// A grey photo with one frontal face in the middle.
fn face(name: &str) -> FaceRef {
    let (w, h) = (120, 120);
    let photo = Photo {
        rgb: vec![128; w * h * 3],
        w,
        h,
        border: 0,
    };
    let d = Detection {
        score: 0.9,
        center: [60.0, 60.0],
        size: [40.0, 40.0],
        keypoints: [
            [52.0, 54.0],
            [68.0, 54.0],
            [60.0, 62.0],
            [60.0, 71.0],
            [42.0, 57.0],
            [78.0, 57.0],
        ],
    };
    FaceRef {
        path: PathBuf::from(format!("{name}.png")),
        located: Arc::new(Located {
            photo,
            faces: vec![d],
        }),
        index: 0,
    }
}

/// One lane: three alone, a tailgating pair, an attack.
fn cast() -> Cast {
    let person = |n: &str| Person {
        name: n.into(),
        enrol: Some((face(n), Ticket::Valid)),
        walk: vec![face(n)],
    };
    let alone = |lead| Passage {
        lead,
        lead_mask: false,
        follower: None,
        gap_s: 0.6,
        attack: None,
    };
    let passages = vec![
        alone(0),
        Passage {
            follower: Some((1, 0.4, false)),
            ..alone(2)
        },
        alone(1),
        Passage {
            attack: Some(Species::Phone),
            ..alone(0)
        },
        alone(2),
    ];
    Cast {
        people: vec![person("ana"), person("ben"), person("cy")],
        lanes: vec![LaneSpec {
            scenario: Scenario::Normal,
            passages,
        }],
    }
}

fn config(lower: bool, postures: &[Posture], rate: f64) -> Config {
    Config {
        lanes: 1,
        walkers: 0,
        fps: 10,
        w: 160,
        h: 120,
        seed: 11,
        scenarios: vec![Scenario::Normal],
        rates: Rates::none(),
        camera_offset_m: 0.0,
        lower,
        postures: postures.to_vec(),
        posture_rate: rate,
    }
}

fn lanes(cfg: &Config) -> (Vec<LaneBuild>, Vec<truth::Enrol>) {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    plan::build(&cast(), &mut rng, cfg).expect("a plan")
}

fn truth_of(cfg: &Config) -> Truth {
    let (lanes, enrol) = lanes(cfg);
    Truth {
        version: truth::VERSION,
        seed: cfg.seed,
        fps: cfg.fps,
        width: cfg.w as u32,
        height: cfg.h as u32,
        lanes: lanes.into_iter().map(|l| lane_truth(l, cfg)).collect(),
        enrol,
    }
}

#[test]
fn default_options_write_no_lower_camera_and_no_postures() {
    let plain = truth_of(&config(false, &[], 0.5));
    let text = truth_text(&plain).expect("json");
    assert!(
        !text.contains("lower") && !text.contains("posture"),
        "{text}"
    );
    // A lower camera adds its view and leaves the upper one's truth as it was.
    let both = truth_of(&config(true, &[], 0.5));
    assert!(both.lanes[0].lower.is_some());
    for (a, b) in plain.lanes[0].walkers.iter().zip(&both.lanes[0].walkers) {
        assert_eq!(a.boxes, b.boxes);
        assert_eq!((a.first_frame, a.last_frame), (b.first_frame, b.last_frame));
        assert!(b.lower_boxes.as_ref().is_some_and(|l| !l.is_empty()));
    }
}

#[test]
fn the_truth_round_trips_with_a_lower_camera_and_postures() {
    let t = truth_of(&config(true, &Posture::NAMED, 1.0));
    let text = truth_text(&t).expect("json");
    let back: Truth = serde_json::from_str(&text).expect("parses");
    assert_eq!(truth_text(&back).expect("json"), text);
    let lane = &back.lanes[0];
    assert_eq!(
        lane.lower,
        Some(LowerCamera {
            file: "L1_lower.mp4".into(),
            below_m: 0.5,
            tilt_deg: 12.0,
            focal_px: lane.camera.focal_px,
        })
    );
    assert!(text.contains(r#""file": "L1_lower.mp4""#), "{text}");
    for w in &lane.walkers {
        // An attack's picture is held at face height by someone standing.
        assert_eq!(w.posture.is_some(), w.attack.is_none(), "{}", w.walker);
        let lower = w.lower_boxes.as_ref().expect("lower boxes");
        let frames = w.boxes.iter().chain(lower).map(|b| b.0);
        assert_eq!(frames.clone().min(), Some(w.first_frame));
        assert_eq!(frames.max(), Some(w.last_frame));
    }
    for p in Posture::NAMED {
        assert!(
            text.contains(&format!(r#""posture": "{}""#, p.name())),
            "{p:?}"
        );
    }
}

#[test]
fn a_child_leaves_the_upper_view_and_stays_in_the_lower_one() {
    let t = truth_of(&config(true, &[Posture::Child], 1.0));
    let children: Vec<_> = t.lanes[0]
        .walkers
        .iter()
        .filter(|w| w.posture == Some(Posture::Child))
        .collect();
    assert_eq!(children.len(), 5);
    for w in children {
        let lower = w.lower_boxes.as_deref().unwrap_or_default();
        let (up_first, up_last) = (w.boxes[0].0, w.boxes[w.boxes.len() - 1].0);
        let low_last = lower.last().map(|b| b.0);
        // Seen from afar by both; close up, below the upper camera's frame but not the lower's.
        assert_eq!(up_first, w.first_frame, "{}", w.walker);
        assert!(up_last < w.last_frame, "{}: {up_last}", w.walker);
        assert_eq!(low_last, Some(w.last_frame), "{}", w.walker);
    }
}

#[test]
fn a_wheelchair_takes_longer_over_the_same_walk() {
    let (standing, _) = lanes(&config(false, &[], 0.5));
    let (seated, _) = lanes(&config(false, &[Posture::Wheelchair], 1.0));
    for (a, b) in standing[0].actors.iter().zip(&seated[0].actors) {
        let (na, nb) = (a.frames.1 - a.frames.0, b.frames.1 - b.frames.0);
        assert_eq!(a.motion.h_first, b.motion.h_first);
        if b.motion.posture == Posture::Wheelchair {
            let ratio = nb as f32 / na as f32;
            assert!((ratio - 1.0 / 0.7).abs() < 0.15, "{na} {nb}");
        } else {
            assert_eq!(na, nb);
        }
    }
}

#[test]
fn both_views_render_faces_the_frame_cuts_off() {
    let cfg = config(true, &Posture::NAMED, 1.0);
    let (lanes, _) = lanes(&cfg);
    let lane = &lanes[0];
    let mut frames = Vec::new();
    for cam in [View::Upper, View::Lower] {
        let mut rng = StdRng::seed_from_u64(1);
        let lighting = Scenario::Normal.lighting(&mut rng);
        let drop = scene::focal_px(cfg.h as f32) * cam.tilt().tan();
        let bg = scene::background(&mut rng, cfg.w, cfg.h, &lighting, drop);
        let noise = StdRng::seed_from_u64(2);
        let mut r = LaneRenderer::new(
            cam,
            cfg.w,
            cfg.h,
            cfg.fps,
            bg,
            lighting,
            &lane.actors,
            noise,
        );
        let mut all = Vec::new();
        let mut rgb = Vec::new();
        for f in 0..lane.frames {
            r.frame(f, &mut rgb);
            assert_eq!(rgb.len(), cfg.w * cfg.h * 3);
            all.extend_from_slice(&rgb);
        }
        frames.push(all);
    }
    assert_ne!(frames[0], frames[1]);
}
