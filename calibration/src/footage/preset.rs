//! `--preset default`: the small fixed set that `scripts/setup` generates into
//! `testdata/footage/default` for the demo and the tests, from the photos setup already fetches.
//!
//! L1 (normal): obama (enrolled from obama.jpg, walks with obama3.jpg) → open; an unknown face-api
//! person → closed "unknown"; an enrolled face-api person with an expired pass → closed "expired".
//! L2 (dim): biden (enrolled, valid) with an unknown face-api person 0.4 s behind → tailgating; then
//! another unknown alone → closed "unknown".

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use engine::face::FaceChain;
use engine::face::blazeface::Detection;

use super::plan::{Cast, FaceRef, LaneSpec, PORTRAIT_PAD, Passage, Person};
use super::scene::Scenario;
use super::source;
use super::truth::Ticket;

pub const SEED: u64 = 7;
pub const FPS: u32 = 10;
/// The preset's cameras stand on the walking line.
pub const CAMERA_OFFSET_M: f32 = 0.0;
pub const SIZE: (usize, usize) = (640, 480);
const GAP_S: f64 = 0.6;
const TAILGATE_DELAY_S: f64 = 0.4;

/// Smallest face (box side, photo pixels) taken from a group photo: below this the sprite is an
/// upscaled blur at the sizes the footage shows.
const MIN_GROUP_FACE: f32 = 60.0;

/// Nose near the middle of the eyes and eyes level: a face turned or tilted this little still
/// looks frontal at the gate.
fn frontal(d: &Detection) -> bool {
    let [re, le, nose, _, _, _] = d.keypoints;
    let eye_dx = le[0] - re[0];
    let eye_dy = le[1] - re[1];
    let eye_dist = (eye_dx * eye_dx + eye_dy * eye_dy).sqrt();
    if eye_dist < 0.25 * d.size[0] {
        return false;
    }
    let mid = 0.5 * (le[0] + re[0]);
    (nose[0] - mid).abs() <= 0.22 * eye_dist && eye_dy.abs() <= 0.3 * eye_dist
}

/// A face that `--preset` may use from a group photo.
pub struct GroupFace {
    pub name: String,
    pub face: FaceRef,
    pub side: f32,
}

/// Every face the back-256 model finds in `sample1..6.jpg`, named `faceapi-sample<k>-<i>` with
/// `i` the rank by size within its photo (1 = biggest); those big and frontal enough, biggest
/// first (ties by name, so the order never depends on the detector's).
pub fn group_faces(pipe: &FaceChain, dir: &Path) -> Result<Vec<GroupFace>> {
    let mut out = Vec::new();
    for k in 1..=6 {
        let path = dir.join(format!("sample{k}.jpg"));
        let located = Arc::new(source::locate(pipe, &path, 0.0)?);
        let mut order: Vec<usize> = (0..located.faces.len()).collect();
        let side = |i: usize| located.faces[i].size[0].max(located.faces[i].size[1]);
        order.sort_by(|&a, &b| {
            side(b)
                .total_cmp(&side(a))
                .then(located.faces[a].center[0].total_cmp(&located.faces[b].center[0]))
        });
        for (rank, &i) in order.iter().enumerate() {
            let d = &located.faces[i];
            if side(i) < MIN_GROUP_FACE || !frontal(d) || d.score < 0.7 {
                continue;
            }
            out.push(GroupFace {
                name: format!("faceapi-sample{k}-{}", rank + 1),
                face: FaceRef {
                    path: path.clone(),
                    located: located.clone(),
                    index: i,
                },
                side: side(i),
            });
        }
    }
    out.sort_by(|a, b| b.side.total_cmp(&a.side).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn portrait(pipe: &FaceChain, path: &Path) -> Result<FaceRef> {
    let located = source::locate(pipe, path, PORTRAIT_PAD)?;
    if located.faces.is_empty() {
        bail!(
            "{}: no face found (run scripts/setup to fetch the test photos)",
            path.display()
        );
    }
    Ok(FaceRef {
        path: path.to_owned(),
        located: Arc::new(located),
        index: 0,
    })
}

pub fn default_cast(pipe: &FaceChain, testdata: &Path) -> Result<Cast> {
    let fr = testdata.join("face_recognition");
    let obama_enrol = portrait(pipe, &fr.join("obama.jpg"))?;
    let obama_walk = portrait(pipe, &fr.join("obama3.jpg"))?;
    let biden = portrait(pipe, &fr.join("biden.jpg"))?;
    let group = group_faces(pipe, &testdata.join("face-api"))?;
    if group.len() < 4 {
        bail!(
            "{}: only {} faces ≥ {MIN_GROUP_FACE} px and frontal in sample1..6.jpg; the preset needs 4",
            testdata.join("face-api").display(),
            group.len()
        );
    }
    let person = |g: &GroupFace, ticket: Option<Ticket>| Person {
        name: g.name.clone(),
        enrol: ticket.map(|t| (g.face.clone(), t)),
        walk: vec![g.face.clone()],
    };
    // The biggest group face is the enrolled one: its "expired" needs the gate to recognise it.
    let people = vec![
        Person {
            name: "obama".into(),
            enrol: Some((obama_enrol, Ticket::Valid)),
            walk: vec![obama_walk],
        },
        person(&group[1], None),
        person(&group[0], Some(Ticket::Expired)),
        Person {
            name: "biden".into(),
            enrol: Some((biden.clone(), Ticket::Valid)),
            walk: vec![biden],
        },
        person(&group[2], None),
        person(&group[3], None),
    ];
    let alone = |who: usize| Passage {
        lead: who,
        lead_mask: false,
        follower: None,
        gap_s: GAP_S,
        attack: None,
    };
    let lanes = vec![
        LaneSpec {
            scenario: Scenario::Normal,
            passages: vec![alone(0), alone(1), alone(2)],
        },
        LaneSpec {
            scenario: Scenario::Dim,
            passages: vec![
                Passage {
                    lead: 3,
                    lead_mask: false,
                    follower: Some((4, TAILGATE_DELAY_S, false)),
                    gap_s: GAP_S,
                    attack: None,
                },
                alone(5),
                // Obama's walking photo shown on a phone, last, so that nothing drawn before it
                // changes: the demo's one presentation attack.
                Passage {
                    attack: Some(super::attack::Species::Phone),
                    ..alone(0)
                },
            ],
        },
    ];
    Ok(Cast { people, lanes })
}
