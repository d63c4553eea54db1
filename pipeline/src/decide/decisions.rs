//! The station side of `decide`: each lane's faces → tracks and events → verdicts (ticket rules,
//! tailgating) → the door, arch and decision [`Command`]s that carry them out, and the latency
//! histograms (capture → identified → door command published → door open acknowledged). Nothing
//! here sends anything: the station hands the commands to `drive::Outbox`, and tells
//! [`Decisions::door_sent`] what sequence number a door command got.
//!
//! A grant's fare state (its trip change, the ride it spent, its passage record) and its decision's
//! journal line are written to the store in one transaction before its door command is handed on
//! (`store::trips`): a station that crashes either kept the grant whole or never opened for it. A
//! store that refuses the write withdraws the grant: the door stays shut (`store_failed`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use protocol::{ArchColour, CardState, DoorAction, DoorState, Flap, Outcome, VERSION, unix_ms};
use tracing::{error, info, warn};

use super::cards::{CardLane, CardStep, CardTerms, Payer};
use super::gate::{GateVerdict, GrantDelay, TicketDesk, TripChange, verdicts};
use super::parallax::Patches;
use super::views::{LowerView, Seen, Twins, View, merge};
use super::{
    BBox, DecisionConfig, Event, GateLane, LaneDecider, LaneRole, Observation, Quality, Subject,
    Templates,
};
use crate::drive::command::{Command, Decided, DoorCause};
use crate::recognise::{LaneFaces, SubjectNumbers};
use crate::store::{JournalEntry, Passage, Store, StoreError};
use crate::telemetry::names;

/// Everything one run decided, for the report and the tests.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub lane: String,
    pub message: protocol::Decision,
    /// The lane's clock at the decision (ms; the footage's time for recorded files).
    pub at_ms: u64,
    /// Capture of the deciding frame → door command published / door open acknowledged, ms.
    pub door_command_ms: Option<f64>,
    pub door_open_ms: Option<f64>,
}

/// Decision records kept for the run's report (the benchmarks' scoring): the first this many. A
/// station runs for weeks; the journal and the metrics keep every decision.
const MAX_RECORDS: usize = 200_000;

struct LaneGate {
    id: String,
    direction: domain::tickets::Direction,
    decider: LaneDecider,
    delay: GrantDelay,
    /// Door open commands waiting for the driver's open state: (seq, capture of the deciding frame,
    /// index of the decision record).
    awaiting_open: Vec<(u64, Instant, usize)>,
    /// The lane clock of the last frame decided on.
    last_ms: Option<u64>,
    /// The card reader beside the face, and who paid for the lane's passage.
    card: CardLane,
    /// The lane's lower camera, when it has one: each camera's faces wait in `twins` for the
    /// other camera's frame of the same instant, decided together at a tick's end
    /// ([`Decisions::tick_end`]).
    lower: Option<LowerView>,
    twins: Twins,
}

pub struct Decisions {
    lanes: Vec<LaneGate>,
    desk: TicketDesk,
    store: Arc<Store>,
    numbers: SubjectNumbers,
    gallery: crate::sync::Gallery,
    pub records: Vec<DecisionRecord>,
    lost_after_ms: u64,
    card_window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionsError {
    #[error("[decision] fare_table")]
    Fares(#[from] domain::tickets::FareTableError),
    #[error("station.id")]
    Station(#[from] domain::IdError),
    #[error("reading the open trips from the store")]
    Store(#[from] StoreError),
}

impl Decisions {
    /// The deciders of the station's lanes (`lanes`, in lane-index order) under `[decision]`, with
    /// the open trips and spent rides `store` kept.
    pub fn new(
        station: &str,
        cfg: &DecisionConfig,
        lanes: Vec<GateLane>,
        numbers: SubjectNumbers,
        gallery: crate::sync::Gallery,
        store: Arc<Store>,
    ) -> Result<Self, DecisionsError> {
        let station = domain::StationId::new(station)?;
        let mut desk = match &cfg.fare_table {
            Some(p) => TicketDesk::new(domain::tickets::FareTable::load(p)?, station),
            None => TicketDesk::single_station(station)?,
        };
        desk.keep_trips = cfg.trips;
        let fare = store.fare_state()?;
        info!(
            open_trips = fare.open_trips.len(),
            spent_rides = fare.spent.len(),
            passages = fare.passages,
            "fare state restored"
        );
        desk.restore(fare);
        let templates: Arc<dyn Templates> = Arc::new(SyncedTemplates {
            numbers: numbers.clone(),
            gallery: gallery.clone(),
        });
        let lanes: Vec<LaneGate> = lanes
            .into_iter()
            .map(|l| LaneGate {
                direction: match l.role {
                    LaneRole::Entry => domain::tickets::Direction::Entry,
                    LaneRole::Exit => domain::tickets::Direction::Exit,
                },
                decider: LaneDecider::new(l.fusion, l.zone, cfg.lost_after_ms)
                    .with_templates(templates.clone()),
                lower: l.lower,
                twins: Twins::default(),
                id: l.id,
                delay: GrantDelay::new(cfg.confirm_ms),
                awaiting_open: Vec::new(),
                last_ms: None,
                card: CardLane::default(),
            })
            .collect();
        Ok(Self {
            lost_after_ms: cfg.lost_after_ms,
            card_window: Duration::from_millis(cfg.card_window_ms),
            lanes,
            desk,
            store,
            numbers,
            gallery,
            records: Vec::new(),
        })
    }

    /// One frame's faces of lane `lane`'s camera `view`, at `at_ms` on the lane's clock;
    /// `captured` is when the frame left the camera pipeline. Returns what the verdicts ask to be
    /// sent, in order. On a lane with two cameras nothing is decided before [`Self::tick_end`];
    /// a lower camera's frames on a lane without one are ignored.
    pub fn on_faces(
        &mut self,
        lane: usize,
        view: View,
        at_ms: u64,
        captured: Instant,
        faces: &LaneFaces,
    ) -> Vec<Command> {
        let obs: Vec<Observation> = faces
            .faces
            .iter()
            .map(|f| Observation {
                bbox: f.bbox,
                // A face that was not embedded fails every gate but size (NaN compares false).
                quality: f.quality.unwrap_or(Quality {
                    eye_px: f.detection.eye_distance(),
                    sharpness: f32::NAN,
                    yaw: f32::NAN,
                    luma: f32::NAN,
                }),
                best: f.best,
                second: f.second,
                embedding: f.embedding.clone(),
                live: f.live,
                keypoints: f.detection.keypoints,
                seen: Seen::default(),
                patches: match view {
                    View::Upper => Patches {
                        upper: f.patch.clone(),
                        lower: None,
                    },
                    View::Lower => Patches {
                        upper: None,
                        lower: f.patch.clone(),
                    },
                },
            })
            .collect();
        let Some(g) = self.lanes.get_mut(lane) else {
            return Vec::new();
        };
        let Some(lower) = g.lower else {
            return match view {
                View::Upper => self.decide(lane, at_ms, captured, &obs),
                View::Lower => Vec::new(),
            };
        };
        let obs = match view {
            View::Upper => obs,
            View::Lower => obs.into_iter().map(|o| lower.observe(o)).collect(),
        };
        g.twins.push(view, at_ms, captured, obs);
        Vec::new()
    }

    /// The tick's frames have all been handed over: every two-camera lane decides on the instants
    /// both its cameras have shown (or one, when the other's frame did not come), both views of a
    /// walker as one observation (`views::merge`).
    /// `fresh` says whether a frame captured then may still be decided on (a frame from before a
    /// recogniser stall may not); those that may not are dropped.
    pub fn tick_end(&mut self, fresh: &dyn Fn(Instant) -> bool) -> Vec<Command> {
        (0..self.lanes.len())
            .flat_map(|lane| self.flush(lane, false, fresh))
            .collect()
    }

    /// Decides lane `lane`'s instants that are ready (`all`: every one waiting).
    fn flush(&mut self, lane: usize, all: bool, fresh: &dyn Fn(Instant) -> bool) -> Vec<Command> {
        let Some(g) = self.lanes.get_mut(lane) else {
            return Vec::new();
        };
        let mut cmds = Vec::new();
        for i in g.twins.take(all).into_iter().filter(|i| fresh(i.captured)) {
            let Some(g) = self.lanes.get_mut(lane) else {
                break;
            };
            // The lane clock never runs back, whichever camera's clock is behind.
            let at_ms = i.at_ms.max(g.last_ms.unwrap_or(0));
            let Some(lower) = g.lower else {
                break;
            };
            let obs = merge(
                i.upper,
                i.lower,
                &lower.geometry,
                g.decider.zone(),
                g.decider.gates(),
            );
            cmds.extend(self.decide(lane, at_ms, i.captured, &obs));
        }
        cmds
    }

    /// Recorded footage played out: every lane's walkers still in view are taken as gone, as if the
    /// lane had gone on showing nobody, so each gets its decision (a walker at the end of a file
    /// would otherwise get none) and grants still held for `confirm_ms` are released.
    pub fn played_out(&mut self) -> Vec<Command> {
        let mut cmds: Vec<Command> = (0..self.lanes.len())
            .flat_map(|lane| self.flush(lane, true, &|_| true))
            .collect();
        for lane in 0..self.lanes.len() {
            let g = &self.lanes[lane];
            let Some(last) = g.last_ms else { continue };
            let at_ms = last + self.lost_after_ms.max(g.delay.confirm_ms) + 1;
            cmds.extend(self.decide(lane, at_ms, Instant::now(), &[]));
        }
        cmds
    }

    /// The boxes of lane `lane`'s identified walkers still in view, in camera `view`'s frame:
    /// the recogniser need not embed them again.
    pub fn settled(&self, lane: usize, view: View) -> Vec<BBox> {
        self.lanes
            .get(lane)
            .map(|g| g.decider.identified_boxes(view))
            .unwrap_or_default()
    }

    fn decide(
        &mut self,
        lane: usize,
        at_ms: u64,
        captured: Instant,
        obs: &[Observation],
    ) -> Vec<Command> {
        let mut cmds = Vec::new();
        let Some(g) = self.lanes.get_mut(lane) else {
            return cmds;
        };
        g.last_ms = Some(at_ms);
        let events =
            tracing::debug_span!("decide", lane = %g.id).in_scope(|| g.decider.update(at_ms, obs));
        let in_zone = g.decider.tracks_in_zone();
        let events = g.delay.feed(at_ms, events, in_zone);
        if events.is_empty() {
            return cmds;
        }
        let (numbers, gallery) = (&self.numbers, &self.gallery);
        let mut resolve = |n: u32| {
            let id = numbers.get(n)?;
            let g = gallery.read();
            let wallet = g.wallet(&id)?.clone();
            Some((id, (wallet, g.trip(&id).cloned())))
        };
        let now = chrono::Local::now().naive_local();
        // Asked only when a walker was identified: the answer uses the card's passage up.
        let identified = events.iter().any(|e| matches!(e, Event::Identified { .. }));
        let paid_by_card = identified
            && g.card
                .take_paid(Payer::Face, in_zone, Instant::now(), self.card_window);
        let mut vs = verdicts(
            &events,
            in_zone,
            paid_by_card,
            &mut resolve,
            &mut self.desk,
            g.direction,
            now,
        );
        let identified = Instant::now();
        let latency = identified.duration_since(captured);
        let mut msgs: Vec<protocol::Decision> =
            vs.iter().map(|v| message(&g.id, v, latency)).collect();
        let changes = self.desk.take_changes();
        let mut journaled = false;
        if !changes.is_empty() {
            let t = Instant::now();
            match commit(&self.store, &g.id, &vs, &msgs, &changes) {
                Ok(()) => {
                    journaled = true;
                    histogram!(names::FARE_COMMIT).record(t.elapsed().as_secs_f64());
                }
                Err(e) => {
                    error!(lane = %g.id, error = %e, "fare state not written: the grant is withdrawn and the door stays shut");
                    counter!(names::FARE_COMMIT_FAILURES).increment(1);
                    self.desk.revert(&changes);
                    for (v, m) in vs.iter_mut().zip(msgs.iter_mut()) {
                        if v.outcome == Outcome::Open
                            && changes.iter().any(|c| Some(c.subject) == v.subject)
                        {
                            withdraw(v);
                            *m = message(&g.id, v, latency);
                        }
                    }
                }
            }
        }
        if vs.iter().any(|v| v.door == Some(DoorAction::Open)) {
            g.card.paid_by(Payer::Face, Instant::now());
        }
        for (v, msg) in vs.into_iter().zip(msgs) {
            if v.evidence.is_some() {
                histogram!(names::DECISION_LATENCY, "lane" => g.id.clone(), "to" => "identified")
                    .record(latency.as_secs_f64());
            }
            let record = keep(&mut self.records, &g.id, &msg, at_ms);
            cmds.extend(act(lane, &v, captured, record));
            if v.outcome == Outcome::Attack {
                // Which rule (`cue`), with the learned cue's mean (`live`) and the planarity
                // cue's slope (`flat`).
                let cue = v.cue.map(super::Cue::as_str);
                warn!(lane = %g.id, track = v.track.0, cue, live = ?v.live, flat = ?v.flat, "presentation attack: door held closed, alarm raised");
            } else {
                info!(lane = %g.id, track = v.track.0, outcome = outcome_name(v.outcome), reason = %v.reason,
                    similarity = ?v.evidence.map(|e| e.similarity), live = ?v.live, "decision");
            }
            cmds.push(Command::Decision { msg, journaled });
        }
        cmds
    }

    /// A verdict's door command left with sequence number `seq`: times capture → door command and,
    /// for an open, waits for the driver's open state.
    /// A door command for a verdict left with `seq`; `resent`: again, to a restarted driver (the
    /// verdict's command latency stays the first send's).
    pub fn door_sent(
        &mut self,
        lane: usize,
        action: DoorAction,
        decided: &Decided,
        seq: u64,
        resent: bool,
    ) {
        let Some(g) = self.lanes.get_mut(lane) else {
            return;
        };
        if !resent {
            let s = decided.captured.elapsed().as_secs_f64();
            histogram!(names::DECISION_LATENCY, "lane" => g.id.clone(), "to" => "door_command")
                .record(s);
            if let Some(r) = self.records.get_mut(decided.record) {
                r.door_command_ms = Some(s * 1e3);
            }
        }
        if action == DoorAction::Open {
            g.awaiting_open
                .push((seq, decided.captured, decided.record));
        }
    }

    /// A door state arrived: the open acknowledgement closes the latency chain.
    pub fn on_door(&mut self, lane: &str, st: &DoorState) {
        let Some(g) = self.lanes.iter_mut().find(|g| g.id == lane) else {
            return;
        };
        if !matches!(st.flap, Flap::Opening | Flap::Open) {
            return;
        }
        let records = &mut self.records;
        g.awaiting_open.retain(|&(seq, captured, record)| {
            if st.ack_seq >= seq {
                let s = captured.elapsed().as_secs_f64();
                histogram!(names::DECISION_LATENCY, "lane" => lane.to_owned(), "to" => "door_open")
                    .record(s);
                if let Some(r) = records.get_mut(record) {
                    r.door_open_ms = Some(s * 1e3);
                }
                false
            } else {
                captured.elapsed().as_secs() < 10
            }
        });
    }
}

impl Decisions {
    /// A state of lane `lane`'s card reader: a new tap is judged and answered; a confirmed write
    /// opens the door; a write that did not happen is a refusal (touch again). Card passages are
    /// the card's own record (its balance and entry), so nothing is written to the fare state;
    /// their decisions are journalled like every other.
    pub fn on_card(&mut self, lane: usize, st: &CardState) -> Vec<Command> {
        let mut cmds = Vec::new();
        let Some(g) = self.lanes.get_mut(lane) else {
            return cmds;
        };
        let in_zone = g.decider.tracks_in_zone();
        let terms = CardTerms {
            table: self.desk.table(),
            station: self.desk.station(),
            direction: g.direction,
            window: self.card_window,
        };
        let steps = g.card.on_state(st, terms, in_zone, Instant::now());
        for step in steps {
            let (outcome, reason, judged) = match step {
                CardStep::Answer {
                    tap,
                    card,
                    verdict,
                    refused,
                } => {
                    let paid = verdict == protocol::CardVerdict::Paid;
                    cmds.push(Command::Card {
                        lane,
                        tap,
                        card,
                        verdict,
                    });
                    match (paid, refused) {
                        (true, _) => (Outcome::Open, "paid_by_face".to_owned(), None),
                        (false, Some(r)) => (Outcome::Closed, r, None),
                        // The door waits for the write.
                        (false, None) => continue,
                    }
                }
                CardStep::Written { tap, judged } => {
                    cmds.push(Command::Door {
                        lane,
                        action: DoorAction::Open,
                        cause: DoorCause::Card { tap },
                    });
                    (Outcome::Open, "card".to_owned(), Some(judged))
                }
                CardStep::NotWritten { reason, .. } => (Outcome::Closed, reason.to_owned(), None),
            };
            let arch = match outcome {
                Outcome::Open => ArchColour::Welcome,
                _ => ArchColour::Stop,
            };
            cmds.push(Command::Light {
                lane,
                arch: Some(arch),
                illumination: None,
            });
            let latency = judged.map_or(Duration::ZERO, |t| t.elapsed());
            let msg = protocol::Decision {
                v: VERSION,
                lane: g.id.clone(),
                track: 0,
                outcome,
                reason,
                subject: None,
                similarity: None,
                margin: None,
                live: None,
                frames: 0,
                latency_ms: latency.as_secs_f64() * 1e3,
                t_unix_ms: unix_ms(),
            };
            // Never the card's id: it is a card number.
            info!(lane = %g.id, outcome = outcome_name(outcome), reason = %msg.reason, "card decision");
            keep(&mut self.records, &g.id, &msg, g.last_ms.unwrap_or(0));
            cmds.push(Command::Decision {
                msg,
                journaled: false,
            });
        }
        cmds
    }
}

/// Counts a decision and keeps its record for the run's report; returns the record's index. Past
/// the cap the index points nowhere, and the latencies go to the metrics only.
fn keep(
    records: &mut Vec<DecisionRecord>,
    lane: &str,
    msg: &protocol::Decision,
    at_ms: u64,
) -> usize {
    counter!(names::DECISIONS, "lane" => lane.to_owned(), "outcome" => outcome_name(msg.outcome), "reason" => msg.reason.clone()).increment(1);
    let record = records.len();
    if record < MAX_RECORDS {
        records.push(DecisionRecord {
            lane: lane.to_owned(),
            message: msg.clone(),
            at_ms,
            door_command_ms: None,
            door_open_ms: None,
        });
    }
    record
}

/// The verdict's door and arch commands.
fn act(lane: usize, v: &GateVerdict, captured: Instant, record: usize) -> Vec<Command> {
    let door = v.door.map(|action| Command::Door {
        lane,
        action,
        cause: DoorCause::Decision(Decided {
            captured,
            record,
            track: v.track.0,
            reason: v.reason.clone(),
        }),
    });
    let arch = v.arch.map(|arch| Command::Light {
        lane,
        arch: Some(arch),
        illumination: None,
    });
    door.into_iter().chain(arch).collect()
}

/// Writes one update's grants: their passages, and every decision of the update as its journal
/// line (so the lines stay in decision order), in one transaction.
fn commit(
    store: &Store,
    lane: &str,
    vs: &[GateVerdict],
    msgs: &[protocol::Decision],
    changes: &[TripChange],
) -> Result<(), StoreError> {
    let passages: Vec<Passage> = changes
        .iter()
        .map(|c| {
            let track = vs
                .iter()
                .find(|v| v.subject == Some(c.subject) && v.outcome == Outcome::Open)
                .map_or(0, |v| v.track.0);
            c.passage(lane, track)
        })
        .collect();
    let lines: Vec<JournalEntry> = msgs
        .iter()
        .map(|m| JournalEntry::decision(m, m.t_unix_ms))
        .collect();
    store.commit_passages(&passages, &lines)
}

/// A grant whose fare state could not be kept: refused, door shut, the card reader's turn.
fn withdraw(v: &mut GateVerdict) {
    v.outcome = Outcome::Closed;
    v.reason = "store_failed".into();
    v.door = None;
    v.arch = Some(ArchColour::Stop);
}

fn message(lane: &str, v: &GateVerdict, latency: Duration) -> protocol::Decision {
    protocol::Decision {
        v: VERSION,
        lane: lane.to_owned(),
        track: v.track.0,
        outcome: v.outcome,
        reason: v.reason.clone(),
        subject: v.subject.map(String::from),
        similarity: v.evidence.map(|e| e.similarity),
        margin: v.evidence.map(|e| e.margin),
        live: v.live,
        frames: v.frames as u32,
        latency_ms: latency.as_secs_f64() * 1e3,
        t_unix_ms: unix_ms(),
    }
}

pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Open => "open",
        Outcome::Closed => "closed",
        Outcome::Tailgating => "tailgating",
        Outcome::NotDecided => "not_decided",
        Outcome::Attack => "attack",
    }
}

/// The synced gallery's templates by the matcher's subject numbers: what the `mean` fusion rule
/// matches a track's fused embedding against.
struct SyncedTemplates {
    numbers: SubjectNumbers,
    gallery: crate::sync::Gallery,
}

impl Templates for SyncedTemplates {
    fn template(&self, subject: Subject) -> Option<[f32; 128]> {
        let id = self.numbers.get(subject.0)?;
        // Unit length, as the GPU gallery makes each template on upload; a broken one is as if
        // erased (no decision).
        let t = self.gallery.read().template(&id).copied()?;
        engine::face::embedding(&t)
    }
}
