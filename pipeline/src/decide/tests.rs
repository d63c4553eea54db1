use super::*;

const ZONE: BBox = BBox([100.0, 0.0, 540.0, 480.0]);

pub(super) fn good() -> Quality {
    Quality {
        eye_px: 40.0,
        sharpness: 80.0,
        yaw: 0.05,
        luma: 120.0,
    }
}

pub(super) fn cand(s: u32, sim: f32) -> Option<Candidate> {
    Some(Candidate {
        subject: Subject(s),
        similarity: sim,
    })
}

/// A face at horizontal position `x` (a box 80 px wide) matching `best` and `second`.
pub(super) fn face(x: f32, best: Option<Candidate>, second: Option<Candidate>) -> Observation {
    Observation {
        bbox: BBox([x, 100.0, x + 80.0, 200.0]),
        quality: good(),
        best,
        second,
        embedding: None,
        // Shown live: the PAD tests below vary it.
        live: Some(0.95),
        keypoints: [[0.0; 2]; 6],
        seen: Default::default(),
        patches: Default::default(),
    }
}

fn decider() -> LaneDecider {
    LaneDecider::new(FusionParams::default(), ZONE, 300)
}

pub(super) fn identified(events: &[Event]) -> Vec<(TrackId, Subject)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Identified {
                track, evidence, ..
            } => Some((*track, evidence.subject)),
            _ => None,
        })
        .collect()
}

#[test]
fn k_agreeing_frames_identify_once_with_the_best_frame() {
    let mut d = decider();
    let sims = [0.50, 0.62, 0.55, 0.70, 0.58];
    let mut all = Vec::new();
    for (i, s) in sims.iter().enumerate() {
        let ev = d.update(
            i as u64 * 33,
            &[face(200.0 + i as f32, cand(7, *s), cand(3, 0.1))],
        );
        if i < 2 {
            assert!(ev.is_empty(), "frame {i}: {ev:?}");
        }
        all.extend(ev);
    }
    // Identified at the third frame, never again.
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))]);
    let Event::Identified {
        evidence, frames, ..
    } = &all[0]
    else {
        panic!("{all:?}")
    };
    assert_eq!(*frames, 3);
    // Best evidence kept, not the last: 0.62 of frame 1 (the decision was at frame 2).
    assert_eq!(evidence.similarity, 0.62);
    assert_eq!(evidence.at_ms, 33);
}

#[test]
fn below_threshold_or_margin_never_identifies_and_reports_why_on_leaving() {
    for (best, second, reason) in [
        (0.40, 0.1, "not confident"),  // below T = 0.45
        (0.60, 0.55, "not confident"), // margin 0.05 < M = 0.08
    ] {
        let mut d = decider();
        for i in 0..10 {
            let ev = d.update(i * 33, &[face(200.0, cand(7, best), cand(3, second))]);
            assert!(identified(&ev).is_empty());
        }
        // Gone for longer than lost_after (300 ms).
        let ev = d.update(9 * 33 + 301, &[]);
        assert!(
            matches!(ev[..], [Event::Unidentified { reason: r, gated: 10, .. }] if r == reason),
            "{ev:?}"
        );
    }
}

#[test]
fn a_frame_naming_someone_else_blocks_the_decision() {
    let mut d = decider();
    let subjects = [7, 7, 9, 7, 7, 7];
    let mut all = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        all.extend(d.update(i as u64 * 33, &[face(200.0, cand(*s, 0.7), cand(1, 0.1))]));
    }
    assert!(identified(&all).is_empty(), "{all:?}");
    let ev = d.update(1000, &[]);
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                reason: "frames named different subjects",
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn the_conflict_leaves_the_window_and_then_k_frames_decide() {
    let p = FusionParams {
        window: 4,
        ..FusionParams::default()
    };
    let mut d = LaneDecider::new(p, ZONE, 300);
    let mut all = Vec::new();
    for (i, s) in [9, 7, 7, 7, 7].iter().enumerate() {
        all.extend(d.update(i as u64 * 33, &[face(200.0, cand(*s, 0.7), None)]));
    }
    // Frames 1–3 still see the 9 in the window; frame 4 pushes it out.
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))]);
}

#[test]
fn gated_frames_are_not_evidence() {
    let mut d = decider();
    let mut all = Vec::new();
    let bad = [
        Quality {
            eye_px: 10.0,
            ..good()
        },
        Quality {
            sharpness: 2.0,
            ..good()
        },
        Quality { yaw: 0.6, ..good() },
        Quality {
            luma: 15.0,
            ..good()
        },
        Quality {
            eye_px: f32::NAN,
            ..good()
        },
    ];
    for (i, q) in bad.iter().enumerate() {
        let mut f = face(200.0, cand(7, 0.9), None);
        f.quality = *q;
        all.extend(d.update(i as u64 * 33, &[f]));
    }
    assert!(identified(&all).is_empty());
    let ev = d.update(2000, &[]);
    // The last failure is reported (NaN eye distance = too small).
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                reason: "face too small",
                gated: 0,
                frames: 5,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn two_walkers_are_two_tracks_and_tailgating_is_reported_once() {
    let mut d = decider();
    let mut all = Vec::new();
    for i in 0..6u64 {
        let x = i as f32 * 3.0;
        all.extend(d.update(
            i * 33,
            &[
                face(150.0 + x, cand(7, 0.7), cand(2, 0.2)),
                face(400.0 + x, cand(2, 0.3), None),
            ],
        ));
    }
    assert_eq!(identified(&all), vec![(TrackId(1), Subject(7))]);
    let tailgates: Vec<&Event> = all
        .iter()
        .filter(|e| matches!(e, Event::Tailgating { .. }))
        .collect();
    assert_eq!(
        tailgates,
        vec![&Event::Tailgating {
            identified: TrackId(1),
            others: vec![TrackId(2)],
            at_ms: 66
        }]
    );
    assert_eq!(d.tracks_in_zone(), 2);
}

#[test]
fn someone_outside_the_zone_is_not_tailgating() {
    let mut d = decider();
    let mut all = Vec::new();
    for i in 0..5u64 {
        // The second face's centre is at x = 20, outside the zone (100..540).
        all.extend(d.update(
            i * 33,
            &[face(200.0, cand(7, 0.7), None), face(-20.0, None, None)],
        ));
    }
    assert_eq!(identified(&all).len(), 1);
    assert!(!all.iter().any(|e| matches!(e, Event::Tailgating { .. })));
}

#[test]
fn a_track_survives_short_gaps_and_ends_after_lost_after() {
    let mut d = decider();
    d.update(0, &[face(200.0, None, None)]);
    // 250 ms without the face (a dropped detection): same track afterwards.
    d.update(250, &[]);
    d.update(280, &[face(205.0, None, None)]);
    assert_eq!(d.tracks_in_zone(), 1);
    let ev = d.update(600, &[]);
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                track: TrackId(1),
                frames: 2,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(d.tracks_in_zone(), 0);
    // A face far from the old one starts a new track.
    d.update(700, &[face(450.0, None, None)]);
    let ev = d.update(1100, &[]);
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                track: TrackId(2),
                ..
            }]
        ),
        "{ev:?}"
    );
}

/// A walker crossing in front of the camera, frames skipped as a live station skips them: two
/// frames 100 ms apart, then one every 300 ms, over which the face moves further than its width.
/// It moves as it moved: one track. A face seen once gives nothing to follow.
#[test]
fn a_face_followed_across_skipped_frames_stays_one_track() {
    let at = |ms: u64| {
        let x = 150.0 + 0.35 * ms as f32;
        Observation {
            bbox: BBox([x, 100.0, x + 80.0, 180.0]),
            ..face(0.0, None, None)
        }
    };
    assert_eq!(at(100).bbox.iou(&at(400).bbox), 0.0);
    let mut d = decider();
    let mut all = Vec::new();
    for ms in [0, 100, 400, 700, 1_000] {
        all.extend(d.update(ms, &[at(ms)]));
    }
    all.extend(d.update(2_000, &[]));
    assert!(
        matches!(
            all[..],
            [Event::Unidentified {
                track: TrackId(1),
                frames: 5,
                ..
            }]
        ),
        "{all:?}"
    );
    let mut d = decider();
    d.update(100, &[at(100)]);
    d.update(400, &[at(400)]);
    assert_eq!(d.update(2_000, &[]).len(), 2);
}

#[test]
fn hostile_numbers_never_identify_or_panic() {
    let mut d = decider();
    for i in 0..10u64 {
        let events = d.update(
            i * 33,
            &[
                face(200.0, cand(7, f32::NAN), None),
                face(300.0, cand(8, 0.9), cand(9, f32::NAN)),
                Observation {
                    bbox: BBox([f32::NAN, 0.0, 10.0, 10.0]),
                    ..face(0.0, cand(7, 0.9), None)
                },
                Observation {
                    bbox: BBox([50.0, 50.0, 40.0, 40.0]),
                    ..face(0.0, cand(7, 0.9), None)
                },
            ],
        );
        assert!(identified(&events).is_empty(), "{events:?}");
    }
    // Only the two valid boxes became tracks.
    assert_eq!(d.tracks_in_zone(), 2);
}

#[test]
fn iou_and_zone_geometry() {
    let a = BBox([0.0, 0.0, 10.0, 10.0]);
    let b = BBox([5.0, 0.0, 15.0, 10.0]);
    assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    assert_eq!(a.iou(&BBox([20.0, 20.0, 30.0, 30.0])), 0.0);
    assert!(a.centre_in(&BBox([0.0, 0.0, 5.0, 5.0])));
    assert!(!b.centre_in(&BBox([0.0, 0.0, 5.0, 5.0])));
}

/// What the gate says for the events of one update (no one resolvable: the gallery is empty).
/// The gate's verdicts on `events` with `in_zone` people in the zone, every subject unknown to
/// the gallery.
fn verdicts_in(events: &[Event], in_zone: usize) -> Vec<gate::GateVerdict> {
    let station = domain::StationId::new("s1").expect("id");
    let mut desk = gate::TicketDesk::single_station(station).expect("table");
    let at = chrono::NaiveDate::from_ymd_opt(2026, 5, 12)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .expect("date");
    gate::verdicts(
        events,
        in_zone,
        false,
        &mut |_| None,
        &mut desk,
        domain::tickets::Direction::Entry,
        at,
    )
}

pub(super) fn verdicts_of(events: &[Event]) -> Vec<(protocol::Outcome, String)> {
    verdicts_in(events, 0)
        .into_iter()
        .map(|v| (v.outcome, v.reason))
        .collect()
}

/// `n` frames of one walker, then gone for longer than `lost_after`: the events of the last update.
pub(super) fn walk(d: &mut LaneDecider, n: u64, f: impl Fn(u64) -> Observation) -> Vec<Event> {
    for i in 0..n {
        let ev = d.update(i * 33, &[f(i)]);
        assert!(identified(&ev).is_empty(), "{ev:?}");
    }
    d.update(n * 33 + 1000, &[])
}

#[test]
fn two_usable_frames_of_three_needed_are_not_decided() {
    // An overloaded station gets two frames of an enrolled walker, both confident for subject 7:
    // below k = 3, so the lane did not decide — not "unknown".
    let mut d = decider();
    let ev = walk(&mut d, 2, |_| face(200.0, cand(7, 0.7), cand(3, 0.1)));
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                gated: 2,
                needed: 3,
                reason: "not confident",
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(
        verdicts_of(&ev),
        vec![(
            protocol::Outcome::NotDecided,
            "too few usable frames (2 of 3)".to_owned()
        )]
    );
}

#[test]
fn k_usable_frames_naming_nobody_are_unknown() {
    let mut d = decider();
    // Three good frames, best below T = 0.45: the rule had its k frames and found no one.
    let ev = walk(&mut d, 3, |_| face(200.0, cand(7, 0.30), cand(3, 0.1)));
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                gated: 3,
                needed: 3,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(
        verdicts_of(&ev),
        vec![(protocol::Outcome::Closed, "unknown".to_owned())]
    );
}

#[test]
fn no_usable_frame_is_not_decided_with_the_gate_reason() {
    let mut d = decider();
    let ev = walk(&mut d, 6, |_| Observation {
        quality: Quality {
            eye_px: 10.0,
            ..good()
        },
        ..face(200.0, cand(7, 0.9), None)
    });
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                gated: 0,
                frames: 6,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(
        verdicts_of(&ev),
        vec![(protocol::Outcome::NotDecided, "face too small".to_owned())]
    );
}

#[test]
fn needed_follows_the_lane_k() {
    let p = FusionParams {
        k: 5,
        ..FusionParams::default()
    };
    let mut d = LaneDecider::new(p, ZONE, 300);
    let ev = walk(&mut d, 4, |_| face(200.0, cand(7, 0.7), None));
    assert_eq!(
        verdicts_of(&ev),
        vec![(
            protocol::Outcome::NotDecided,
            "too few usable frames (4 of 5)".to_owned()
        )]
    );
}

/// `n` frames of one walker matching subject 7, each with PAD score `live`.
fn shown(d: &mut LaneDecider, n: u64, live: Option<f32>) -> Vec<Event> {
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(d.update(
            i * 33,
            &[Observation {
                live,
                ..face(200.0, cand(7, 0.7), cand(3, 0.1))
            }],
        ));
    }
    all.extend(d.update(n * 33 + 1000, &[]));
    all
}

fn with_pad(mode: crate::decide::PadMode) -> LaneDecider {
    let p = FusionParams {
        pad: crate::decide::PadParams {
            mode,
            ..Default::default()
        },
        ..FusionParams::default()
    };
    LaneDecider::new(p, ZONE, 300)
}

#[test]
fn a_picture_of_an_enrolled_passenger_is_an_attack_never_a_grant() {
    use crate::decide::PadMode;
    let mut d = with_pad(PadMode::Enforce);
    let ev = shown(&mut d, 6, Some(0.08));
    assert!(identified(&ev).is_empty(), "{ev:?}");
    let attacks: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Attack {
                evidence, scored, ..
            } => Some((evidence.map(|e| e.subject), *scored)),
            _ => None,
        })
        .collect();
    // Judged once: the frames agreed on subject 7 at 3 (k), the alarm waits for `attack_frames`
    // (4) scored frames.
    assert_eq!(attacks, vec![(Some(Subject(7)), 4)]);
    let v = verdicts_in(&ev, 1);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].outcome, v[0].reason.as_str()),
        (protocol::Outcome::Attack, gate::ATTACK)
    );
    assert_eq!(
        (v[0].door, v[0].arch),
        (
            Some(protocol::DoorAction::Close),
            Some(protocol::ArchColour::Alarm)
        )
    );
    assert!(v[0].live.is_some_and(|l| l < 0.5));
}

#[test]
fn a_picture_of_someone_unknown_raises_the_alarm_when_it_leaves() {
    use crate::decide::PadMode;
    let mut d = with_pad(PadMode::Enforce);
    let ev = walk(&mut d, 5, |_| Observation {
        live: Some(0.1),
        ..face(200.0, None, None)
    });
    assert!(
        matches!(
            ev[..],
            [Event::Attack {
                evidence: None,
                scored: 5,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn no_liveness_evidence_is_not_decided_never_an_open() {
    use crate::decide::PadMode;
    // Subject 7 on every frame, but PAD never scored a frame (e.g. its networks did not run), or
    // scored it between the two thresholds to the end: the card reader, no alarm.
    for live in [None, Some(0.4)] {
        let mut d = with_pad(PadMode::Enforce);
        let ev = shown(&mut d, 6, live);
        assert!(identified(&ev).is_empty(), "{live:?}: {ev:?}");
        assert_eq!(
            verdicts_of(&ev),
            vec![(
                protocol::Outcome::NotDecided,
                track::LIVENESS_NOT_SHOWN.to_owned()
            )],
            "{live:?}"
        );
    }
    // A live face is identified as before, with its score.
    let mut d = with_pad(PadMode::Enforce);
    let ev = shown(&mut d, 6, Some(0.9));
    assert_eq!(identified(&ev), vec![(TrackId(1), Subject(7))]);
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Identified { live: Some(l), .. } if (*l - 0.9).abs() < 1e-6)
        )
    );
}

#[test]
fn observe_mode_reports_the_score_and_changes_nothing() {
    use crate::decide::PadMode;
    for mode in [PadMode::Observe, PadMode::Off] {
        let mut d = with_pad(mode);
        let ev = shown(&mut d, 6, Some(0.05));
        assert_eq!(identified(&ev), vec![(TrackId(1), Subject(7))], "{mode:?}");
        let live = ev.iter().find_map(|e| match e {
            Event::Identified { live, .. } => Some(*live),
            _ => None,
        });
        // Observe reports the mean; off never looked.
        assert_eq!(live.flatten().is_some(), mode == PadMode::Observe);
        assert!(!ev.iter().any(|e| matches!(e, Event::Attack { .. })));
    }
}

#[test]
fn nobody_tailgates_behind_an_attack() {
    use crate::decide::PadMode;
    let mut d = with_pad(PadMode::Enforce);
    let mut all = Vec::new();
    for i in 0..6u64 {
        let picture = Observation {
            live: Some(0.1),
            ..face(200.0, cand(7, 0.7), cand(3, 0.1))
        };
        // A second person enters the zone after the picture was judged.
        let mut faces = vec![picture];
        if i >= 4 {
            faces.push(face(320.0, None, None));
        }
        all.extend(d.update(i * 33, &faces));
    }
    assert!(all.iter().any(|e| matches!(e, Event::Attack { .. })));
    assert!(
        !all.iter().any(|e| matches!(e, Event::Tailgating { .. })),
        "{all:?}"
    );
    // The judged picture needs no more embedding.
    assert_eq!(d.identified_boxes(crate::decide::View::Upper).len(), 1);
}

/// A lane camera 0.25 m beside the walking line, turned toward it, as `--camera-offset 0.25`
/// footage is drawn.
pub(super) const GEOMETRY: crate::decide::LaneGeometry = crate::decide::LaneGeometry {
    focal_px: 473.0,
    aim_deg: 10.1,
    decide_by_m: 0.8,
};

/// A walk from 2.4 m to 0.45 m toward that camera, 10 frames a second, subject 7 on every frame
/// with the learned cue's score `live`: a head, or (`flat`) a picture of one held at face height.
/// Keypoints as a head (or the picture's plane) holds them under the changing viewing angle.
fn walk_past_the_camera(d: &mut LaneDecider, flat: bool, live: f32) -> Vec<Event> {
    walk_scored(d, flat, &|_| Some(live))
}

/// The same walk with the learned cue's score of frame `n` (`None`: not scored).
fn walk_scored(d: &mut LaneDecider, flat: bool, live: &dyn Fn(usize) -> Option<f32>) -> Vec<Event> {
    use super::planarity::TEST_HEAD as HEAD;
    let g = GEOMETRY;
    let mut all = Vec::new();
    let mut dist = 2.4f32;
    let mut at = 0;
    let mut n = 0;
    while dist > 0.45 {
        let eye = g.focal_px * super::planarity::EYE_M / dist;
        let view = (0.25 / dist).atan();
        let x = 320.0 + g.focal_px * (view - g.aim_deg.to_radians()).tan();
        let (c, sn) = (view.cos(), view.sin());
        let keypoints = HEAD.map(|[px, py, pz]| {
            let pz = if flat { 0.0 } else { pz };
            [x + eye * (px * c + pz * sn), 200.0 + eye * py]
        });
        let o = Observation {
            bbox: BBox([x - 1.2 * eye, 200.0 - eye, x + 1.2 * eye, 200.0 + 2.0 * eye]),
            quality: Quality {
                eye_px: eye,
                ..good()
            },
            keypoints,
            live: live(n),
            ..face(0.0, cand(7, 0.7), cand(3, 0.1))
        };
        all.extend(d.update(at, &[o]));
        n += 1;
        at += 100;
        dist *= 0.93;
    }
    all.extend(d.update(at + 1000, &[]));
    all
}

pub(super) fn with_geometry(mode: crate::decide::PadMode, geometry: bool) -> LaneDecider {
    let mut p = FusionParams::default();
    p.pad.mode = mode;
    p.pad.planar.geometry = geometry.then_some(GEOMETRY);
    LaneDecider::new(p, BBox([0.0, 0.0, 640.0, 480.0]), 300)
}

#[test]
fn a_flat_face_never_opens_where_the_lane_knows_its_geometry() {
    use crate::decide::PadMode;
    // The learned cue is fooled (0.95 on every frame); the picture's keypoints keep a plane's
    // relief while the viewing angle grows from 3° to 29°. The cues disagree: no grant, and no
    // alarm on the geometry alone (the card reader).
    let ev = walk_past_the_camera(&mut with_geometry(PadMode::Enforce, true), true, 0.95);
    assert!(identified(&ev).is_empty(), "{ev:?}");
    assert!(
        matches!(
            ev[..],
            [Event::Unidentified {
                reason: track::LIVENESS_NOT_SHOWN,
                ..
            }]
        ),
        "{ev:?}"
    );
    // The learned cue doubtful (0.4) and the face flat: an attack, found by the geometry.
    let ev = walk_past_the_camera(&mut with_geometry(PadMode::Enforce, true), true, 0.4);
    assert!(identified(&ev).is_empty(), "{ev:?}");
    let attacks: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Attack {
                evidence,
                live,
                flat,
                ..
            } => Some((evidence.map(|e| e.subject), *live, *flat)),
            _ => None,
        })
        .collect();
    assert!(
        matches!(attacks[..], [(Some(Subject(7)), Some(l), Some(f))] if l < 0.5 && f.abs() < 0.1),
        "{attacks:?}"
    );
    // A head on the same walk is granted, and a picture is too where the lane has no geometry
    // (the learned cue alone) or PAD only observes.
    for (mode, geometry, flat) in [
        (PadMode::Enforce, true, false),
        (PadMode::Enforce, false, true),
        (PadMode::Observe, true, true),
    ] {
        let ev = walk_past_the_camera(&mut with_geometry(mode, geometry), flat, 0.95);
        assert_eq!(
            identified(&ev).len(),
            1,
            "{mode:?} geometry {geometry} flat {flat}: {ev:?}"
        );
        assert!(!ev.iter().any(|e| matches!(e, Event::Attack { .. })));
    }
}

#[test]
fn one_score_of_a_picture_and_a_flat_face_raise_the_alarm() {
    use crate::decide::PadMode;
    // The learned cue scores one frame of the walk (the others fail the gates it scores
    // behind, as a backlit lane's do): too few for its own verdict. At a picture's score on a
    // flat face: the alarm; at a head's, or on a face in relief: none.
    let once = |score: f32| move |n: usize| (n == 12).then_some(score);
    let attacks = |flat: bool, score: f32| {
        let ev = walk_scored(
            &mut with_geometry(PadMode::Enforce, true),
            flat,
            &once(score),
        );
        assert!(identified(&ev).is_empty(), "{ev:?}");
        ev.iter()
            .filter(|e| matches!(e, Event::Attack { scored: 1, .. }))
            .count()
    };
    assert_eq!(attacks(true, 0.05), 1);
    assert_eq!(attacks(true, 0.4), 0);
    assert_eq!(attacks(false, 0.05), 0);
    // Far below any honest face's score, one frame is an alarm on its own as the walker leaves,
    // but not against a face the keypoints showed in relief.
    assert_eq!(attacks(true, 0.005), 1);
    assert_eq!(attacks(false, 0.005), 0);
}

#[test]
fn one_score_far_below_an_honest_face_raises_the_alarm_when_the_walker_leaves() {
    use crate::decide::PadMode;
    // A lane without geometry: no shape cue at all, one frame of a walk of thirty (a second at
    // 30 fps) scored, the rest failing the gates as a backlit lane's do. A picture's score far
    // below any honest face's (seed 47's backlit glossy print: 0.0036): the alarm, named for the
    // rule; the lowest honest lone frame measured (0.048): not decided, no alarm.
    let run = |n: u64, scored: &[u64], score: f32| {
        let mut d = with_pad(PadMode::Enforce);
        walk(&mut d, n, |i| Observation {
            live: scored.contains(&i).then_some(score),
            ..face(200.0, None, None)
        })
    };
    let ev = run(30, &[12], 0.0036);
    assert!(
        matches!(
            ev[..],
            [Event::Attack {
                evidence: None,
                scored: 1,
                cue: track::Cue::LearnedFew,
                ..
            }]
        ),
        "{ev:?}"
    );
    let ev = run(30, &[12], 0.048);
    assert!(
        matches!(ev[..], [Event::Unidentified { live: Some(_), .. }]),
        "{ev:?}"
    );
    // A fragment (three frames: a face at the frame's edge as its walker leaves, found again as
    // a new track) is judged on fewer scores than an alarm in view needs by no rule: one score
    // or two, however low, raise nothing; the same two scores over a walk are an alarm.
    for scored in [&[1][..], &[1, 2]] {
        let ev = run(3, scored, 0.0036);
        assert!(
            matches!(ev[..], [Event::Unidentified { live: Some(_), .. }]),
            "{scored:?}: {ev:?}"
        );
    }
    let ev = run(30, &[11, 12], 0.05);
    assert!(
        matches!(
            ev[..],
            [Event::Attack {
                scored: 2,
                cue: track::Cue::Learned,
                ..
            }]
        ),
        "{ev:?}"
    );
}
