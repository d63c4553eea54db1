//! Who walks where and when: the cast (people, their enrolment and walking photos), the passages of
//! each lane, and the timeline that turns them into actors and ground truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use engine::face::FaceChain;
use engine::face::blazeface::Detection;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::attack::{self, Species};
use super::render::{self, Actor};
use super::scene::{self, Motion, Scenario};
use super::source::{self, Identity, Located, Sprite};
use super::truth::{self, Enrol, Ticket, round1};
use super::view::{Postures, View};
use super::{Config, POSTURE_STREAM, sub_seed};

/// One face in one photo.
#[derive(Clone)]
pub struct FaceRef {
    pub path: PathBuf,
    pub located: Arc<Located>,
    pub index: usize,
}

impl FaceRef {
    pub fn detection(&self) -> &Detection {
        &self.located.faces[self.index]
    }

    /// x, y, w, h in the photo's pixels.
    pub fn photo_box(&self) -> [f32; 4] {
        let d = self.detection();
        [
            round1(d.center[0] - d.size[0] / 2.0),
            round1(d.center[1] - d.size[1] / 2.0),
            round1(d.size[0]),
            round1(d.size[1]),
        ]
    }

    fn same(&self, o: &FaceRef) -> bool {
        self.path == o.path && self.index == o.index
    }
}

pub struct Person {
    pub name: String,
    pub enrol: Option<(FaceRef, Ticket)>,
    /// Photos to walk with (one is picked per walk).
    pub walk: Vec<FaceRef>,
}

pub struct Passage {
    pub lead: usize,
    pub lead_mask: bool,
    /// Person, delay behind the lead in seconds, mask.
    pub follower: Option<(usize, f64, bool)>,
    /// Empty time after this passage.
    pub gap_s: f64,
    /// A presentation attack: the lead's face is this species of picture of the lead (someone
    /// else holds it; who does not matter to the camera, which sees only the picture).
    pub attack: Option<Species>,
}

pub struct LaneSpec {
    pub scenario: Scenario,
    pub passages: Vec<Passage>,
}

pub struct Cast {
    pub people: Vec<Person>,
    pub lanes: Vec<LaneSpec>,
}

pub struct Rates {
    pub mask: f64,
    pub tailgate: f64,
    pub unknown: f64,
    pub expired: f64,
    /// Share of passages that are presentation attacks, showing an enrolled passenger.
    pub attack: f64,
    /// The attack species drawn, in turn.
    pub species: Vec<Species>,
}

impl Rates {
    /// Every walker enrolled, alone, unmasked, with a valid ticket and no picture held up: what the
    /// preset and the small test plans draw.
    pub fn none() -> Self {
        Rates {
            mask: 0.0,
            tailgate: 0.0,
            unknown: 0.0,
            expired: 0.0,
            attack: 0.0,
            species: Vec::new(),
        }
    }
}

/// Photos of one identity that are tried before giving up on it: enough for an enrolment and a
/// different walking photo, without detecting faces in whole large sets.
const PHOTOS_TRIED: usize = 4;

/// Border for photos of one person (as `gate-calibrate eval` uses): tightly cropped sets need it.
pub const PORTRAIT_PAD: f32 = 0.5;

/// Resolves identities to people on demand (face detection is the slow part).
struct Resolver<'a> {
    pipe: &'a FaceChain,
    /// Labels mode: a photo without a face is an error; folder mode skips it.
    strict: bool,
    skipped: usize,
    done: BTreeMap<String, Option<usize>>,
}

impl Resolver<'_> {
    fn usable(&mut self, id: &Identity) -> Result<Vec<FaceRef>> {
        let mut out = Vec::new();
        for path in id.photos.iter().take(PHOTOS_TRIED) {
            let located = match source::locate(self.pipe, path, PORTRAIT_PAD) {
                Ok(l) => l,
                Err(e) if !self.strict => {
                    eprintln!("warning: skipping {}: {e:#}", path.display());
                    self.skipped += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if located.faces.is_empty() {
                if self.strict {
                    bail!("{}: no face found (identity {})", path.display(), id.name);
                }
                eprintln!("warning: skipping {}: no face found", path.display());
                self.skipped += 1;
                continue;
            }
            out.push(FaceRef {
                path: path.clone(),
                located: Arc::new(located),
                index: 0,
            });
        }
        Ok(out)
    }

    fn person(
        &mut self,
        id: &Identity,
        enrolled: bool,
        expired: bool,
        people: &mut Vec<Person>,
    ) -> Result<Option<usize>> {
        if let Some(r) = self.done.get(&id.name) {
            return Ok(*r);
        }
        let usable = self.usable(id)?;
        let r = if usable.is_empty() {
            eprintln!(
                "warning: identity {} has no usable photo, left out",
                id.name
            );
            None
        } else {
            let ticket = if expired {
                Ticket::Expired
            } else {
                Ticket::Valid
            };
            let (enrol, walk) = match (enrolled, usable.len()) {
                (true, 1) => (Some((usable[0].clone(), ticket)), usable.clone()),
                (true, _) => (Some((usable[0].clone(), ticket)), usable[1..].to_vec()),
                (false, _) => (None, usable),
            };
            people.push(Person {
                name: id.name.clone(),
                enrol,
                walk,
            });
            Some(people.len() - 1)
        };
        self.done.insert(id.name.clone(), r);
        Ok(r)
    }
}

/// A cycling draw from a pool of identities, skipping those without a usable photo.
struct Pool {
    ids: Vec<Identity>,
    next: usize,
    enrolled: bool,
    expired: Vec<bool>,
}

impl Pool {
    fn draw(
        &mut self,
        res: &mut Resolver,
        people: &mut Vec<Person>,
        avoid: Option<usize>,
    ) -> Result<Option<usize>> {
        for _ in 0..self.ids.len() {
            let i = self.next % self.ids.len();
            self.next += 1;
            if let Some(p) = res.person(&self.ids[i], self.enrolled, self.expired[i], people)?
                && Some(p) != avoid
            {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// A random cast from a labelled set: `unknown` of the identities are not enrolled, `expired` of
/// the enrolled ones hold an expired ticket. Returns the cast and the number of photos skipped.
#[allow(clippy::too_many_arguments)]
pub fn random_cast(
    mut ids: Vec<Identity>,
    strict: bool,
    pipe: &FaceChain,
    rng: &mut StdRng,
    scenarios: &[Scenario],
    lanes: usize,
    walkers: usize,
    rates: &Rates,
) -> Result<(Cast, usize)> {
    ids.shuffle(rng);
    let n = ids.len();
    let mut n_unknown = (rates.unknown * n as f64).round() as usize;
    if rates.unknown > 0.0 && n >= 2 {
        n_unknown = n_unknown.max(1);
    }
    if rates.unknown < 1.0 {
        n_unknown = n_unknown.min(n.saturating_sub(1));
    }
    let known_ids = ids.split_off(n_unknown);
    let expired = known_ids
        .iter()
        .map(|_| rng.random_bool(rates.expired))
        .collect();
    let mut known = Pool {
        ids: known_ids,
        next: 0,
        enrolled: true,
        expired,
    };
    let mut unknown = Pool {
        expired: vec![false; ids.len()],
        ids,
        next: 0,
        enrolled: false,
    };
    let mut res = Resolver {
        pipe,
        strict,
        skipped: 0,
        done: BTreeMap::new(),
    };
    let mut people = Vec::new();
    let mut out = Vec::new();
    let mut species = rates.species.iter().copied().cycle();
    for lane in 0..lanes {
        let mut passages = Vec::new();
        for _ in 0..walkers {
            // Drawn only when attacks are asked for, so footage without them keeps its seed's frames.
            if rates.attack > 0.0 && rng.random_bool(rates.attack) {
                let victim = match known.draw(&mut res, &mut people, None)? {
                    Some(p) => p,
                    None => bail!("an attack needs an enrolled identity with a usable photo"),
                };
                passages.push(Passage {
                    lead: victim,
                    lead_mask: false,
                    follower: None,
                    gap_s: rng.random_range(0.6..1.2),
                    attack: Some(species.next().unwrap_or(Species::Phone)),
                });
                continue;
            }
            let want_unknown = rng.random_bool(rates.unknown);
            let (first, second) = if want_unknown {
                (&mut unknown, &mut known)
            } else {
                (&mut known, &mut unknown)
            };
            let lead = match first.draw(&mut res, &mut people, None)? {
                Some(p) => p,
                None => match second.draw(&mut res, &mut people, None)? {
                    Some(p) => p,
                    None => bail!("no identity with a usable photo"),
                },
            };
            let lead_mask = rng.random_bool(rates.mask);
            let follower = if rng.random_bool(rates.tailgate) {
                let f = match unknown.draw(&mut res, &mut people, Some(lead))? {
                    Some(p) => Some(p),
                    None => known.draw(&mut res, &mut people, Some(lead))?,
                };
                f.map(|f| (f, rng.random_range(0.3..0.5), rng.random_bool(rates.mask)))
            } else {
                None
            };
            passages.push(Passage {
                lead,
                lead_mask,
                follower,
                gap_s: rng.random_range(0.6..1.2),
                attack: None,
            });
        }
        out.push(LaneSpec {
            scenario: scenarios[lane % scenarios.len()],
            passages,
        });
    }
    Ok((Cast { people, lanes: out }, res.skipped))
}

/// A lane ready to render: its actors, and the ground truth that goes with them.
pub struct LaneBuild {
    pub name: String,
    pub scenario: Scenario,
    pub frames: u32,
    pub actors: Vec<Actor>,
    pub truth: Vec<truth::Walker>,
}

const LEAD_IN_S: f64 = 0.3;
const TAIL_S: f64 = 0.3;
const SPEED_M_S: (f32, f32) = (1.2, 1.4);

/// `[frame, x, y, w, h]` of every frame the actor is drawn in where camera `cam` shows most of
/// its face.
fn boxes(actor: &Actor, cam: View, fpsf: f64, frame: (f32, f32)) -> Vec<truth::Box5> {
    let mut out = Vec::new();
    for f in actor.frames.0..=actor.frames.1 {
        let pose = actor.motion.pose(f as f64 / fpsf, cam);
        if let Some(b) = render::face_box(actor, &pose, frame.0, frame.1) {
            out.push((f, round1(b[0]), round1(b[1]), round1(b[2]), round1(b[3])));
        }
    }
    out
}

/// Lays the cast's passages out in time, draws each walker's motion and clothing, and computes the
/// face box of every frame in each camera.
pub fn build(cast: &Cast, rng: &mut StdRng, cfg: &Config) -> Result<(Vec<LaneBuild>, Vec<Enrol>)> {
    let fpsf = cfg.fps as f64;
    let frame = (cfg.w as f32, cfg.h as f32);
    let mut sprites: BTreeMap<(PathBuf, usize), Sprite> = BTreeMap::new();
    let mut lanes = Vec::new();
    for (li, spec) in cast.lanes.iter().enumerate() {
        let lane = format!("L{}", li + 1);
        let mut actors = Vec::new();
        let mut walkers = Vec::new();
        // Its own stream, so that footage without postures draws what it always drew from `rng`.
        let mut postures = (!cfg.postures.is_empty()).then(|| {
            let seed = sub_seed(cfg.seed, li, POSTURE_STREAM);
            Postures::new(
                StdRng::seed_from_u64(seed),
                cfg.postures.clone(),
                cfg.posture_rate,
                li,
            )
        });
        let mut cursor = (LEAD_IN_S * fpsf).round() as u32;
        let mut end = cursor;
        for (gi, p) in spec.passages.iter().enumerate() {
            let group = p.follower.map(|_| format!("{lane}-G{}", gi + 1));
            let lateral = rng.random_range(-0.08..0.08f32);
            let mut members = vec![(p.lead, 0.0, p.lead_mask, lateral, true)];
            if let Some((f, delay, mask)) = p.follower {
                // Opposite side of the lane centre, so the follower stays partly in view.
                let side = if lateral > 0.0 { -1.0 } else { 1.0 };
                members.push((f, delay, mask, lateral + side * 0.3, false));
            }
            let mut group_end = cursor;
            for (who, delay, mask, lat, lead) in members {
                let person = &cast.people[who];
                let face = person.walk[rng.random_range(0..person.walk.len())].clone();
                let first = cursor + (delay * fpsf).round() as u32;
                let speed = rng.random_range(SPEED_M_S.0..SPEED_M_S.1);
                let mut motion = Motion::random(
                    rng,
                    first as f64 / fpsf,
                    speed,
                    lat,
                    cfg.camera_offset_m,
                    frame,
                );
                let species = p.attack.filter(|_| lead);
                // Someone else holds an attack's picture up, at face height: it keeps standing.
                let carriage = match &mut postures {
                    Some(ps) if species.is_none() => ps.draw(),
                    _ => None,
                };
                if let Some(c) = &carriage {
                    motion.carry(c);
                }
                // Whole frames, so the last frame shows the walker at the end of the walk.
                let n = (motion.duration_s * fpsf).round().max(2.0) as u32;
                motion.duration_s = n as f64 / fpsf;
                let last = first + n;
                let key = (face.path.clone(), face.index);
                let mut sprite = match sprites.get(&key) {
                    Some(s) => s.clone(),
                    None => {
                        let s = Sprite::cut(&face.located.photo, face.detection());
                        sprites.insert(key, s.clone());
                        s
                    }
                };
                if let Some(s) = species {
                    let photo = Sprite::cut_rect(&face.located.photo, face.detection());
                    sprite = attack::picture(&photo, s, rng);
                } else if mask {
                    let styles = &crate::mask::STYLES;
                    sprite.add_mask(styles[rng.random_range(0..styles.len())].1);
                }
                let clothes = scene::muted(rng, (0.12, 0.6));
                let trousers = scene::muted(rng, (0.12, 0.4));
                let actor = Actor {
                    sprite,
                    motion,
                    clothes,
                    trousers,
                    frames: (first, last),
                };
                let upper = boxes(&actor, View::Upper, fpsf, frame);
                let lower = cfg.lower.then(|| boxes(&actor, View::Lower, fpsf, frame));
                // The frames either camera shows the face in; a walker no camera shows (not
                // expected at the sizes the footage draws) keeps the frames it is drawn in.
                let seen = || upper.iter().chain(lower.iter().flatten()).map(|b| b.0);
                let (first_seen, last_seen) =
                    (seen().min().unwrap_or(first), seen().max().unwrap_or(last));
                let enrol = person.enrol.as_ref();
                let in_group = group.is_some();
                let (expected, reason) = match species {
                    Some(_) => (
                        truth::Expected::Attack,
                        Some("presentation attack".to_owned()),
                    ),
                    None => truth::expected(enrol.is_some(), enrol.map(|e| e.1), in_group),
                };
                walkers.push(truth::Walker {
                    walker: format!("{lane}-W{}", walkers.len() + 1),
                    identity: person.name.clone(),
                    enrolled: enrol.is_some(),
                    photo: path_str(&face.path),
                    face: face.photo_box(),
                    same_photo: enrol.is_some_and(|e| e.0.same(&face)),
                    first_frame: first_seen,
                    last_frame: last_seen,
                    t_first: first_seen as f64 / fpsf,
                    t_last: last_seen as f64 / fpsf,
                    mask,
                    group: group.clone(),
                    lead: in_group && lead,
                    expected,
                    reason,
                    attack: species.map(|s| s.name().to_owned()),
                    posture: carriage.map(|c| c.posture),
                    boxes: upper,
                    lower_boxes: lower,
                });
                actors.push(actor);
                group_end = group_end.max(last);
            }
            end = group_end;
            cursor = group_end + 1 + (p.gap_s * fpsf).round() as u32;
        }
        lanes.push(LaneBuild {
            name: lane,
            scenario: spec.scenario,
            frames: end + 1 + (TAIL_S * fpsf).round() as u32,
            actors,
            truth: walkers,
        });
    }
    let mut enrol: Vec<Enrol> = cast
        .people
        .iter()
        .filter_map(|p| {
            p.enrol.as_ref().map(|(f, ticket)| Enrol {
                identity: p.name.clone(),
                photo: path_str(&f.path),
                face: f.photo_box(),
                ticket: *ticket,
            })
        })
        .collect();
    enrol.sort_by(|a, b| a.identity.cmp(&b.identity));
    Ok((lanes, enrol))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
