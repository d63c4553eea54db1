//! The station side of `decide`: each lane's faces → tracks and events → verdicts (ticket rules,
//! tailgating) → door and arch commands, decision messages on zenoh, journal lines and the latency
//! histograms (capture → identified → door command published → door open acknowledged).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::{counter, histogram};
use protocol::{DoorAction, DoorState, Flap, Outcome, VERSION, unix_ms};
use tracing::{info, warn};

use super::gate::{GateVerdict, GrantDelay, TicketDesk, verdicts};
use super::{BBox, DecisionConfig, GateLane, LaneDecider, LaneRole, Observation, Quality};
use crate::drive::Link;
use crate::recognise::{LaneFaces, SubjectNumbers};
use crate::store::{JournalEntry, JournalKind, JournalWriter};
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

struct LaneGate {
    id: String,
    direction: enrolment::tickets::Direction,
    decider: LaneDecider,
    delay: GrantDelay,
    /// Door open commands waiting for the driver's open state: (seq, capture of the deciding frame,
    /// index of the decision record).
    awaiting_open: Vec<(u64, Instant, usize)>,
    /// The lane clock of the last frame decided on.
    last_ms: Option<u64>,
}

/// Commands a decision sent, so the station can time their acknowledgements like any other.
#[derive(Debug, Default)]
pub struct Sent {
    pub door: Vec<u64>,
    pub light: Vec<u64>,
}

pub struct Decisions {
    lanes: Vec<LaneGate>,
    desk: TicketDesk,
    numbers: SubjectNumbers,
    gallery: crate::sync::Gallery,
    pub records: Vec<DecisionRecord>,
    /// Per lane, the boxes of identified walkers still in view, for the recogniser to skip.
    pub settled: Arc<Mutex<Vec<Vec<BBox>>>>,
    lost_after_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionsError {
    #[error("[decision] fare_table")]
    Fares(#[from] enrolment::tickets::FareTableError),
    #[error("station.id")]
    Station(#[from] enrolment::IdError),
}

impl Decisions {
    /// The deciders of the station's lanes (`lanes`, in lane-index order) under `[decision]`.
    pub fn new(
        station: &str,
        cfg: &DecisionConfig,
        lanes: Vec<GateLane>,
        numbers: SubjectNumbers,
        gallery: crate::sync::Gallery,
    ) -> Result<Self, DecisionsError> {
        let station = enrolment::StationId::new(station)?;
        let mut desk = match &cfg.fare_table {
            Some(p) => TicketDesk::new(enrolment::tickets::FareTable::load(p)?, station),
            None => TicketDesk::single_station(station)?,
        };
        desk.keep_trips = cfg.trips;
        let lanes: Vec<LaneGate> = lanes
            .into_iter()
            .map(|l| LaneGate {
                direction: match l.role {
                    LaneRole::Entry => enrolment::tickets::Direction::Entry,
                    LaneRole::Exit => enrolment::tickets::Direction::Exit,
                },
                decider: LaneDecider::new(l.fusion, l.zone, cfg.lost_after_ms),
                id: l.id,
                delay: GrantDelay::new(cfg.confirm_ms),
                awaiting_open: Vec::new(),
                last_ms: None,
            })
            .collect();
        Ok(Self {
            lost_after_ms: cfg.lost_after_ms,
            settled: Arc::new(Mutex::new(vec![Vec::new(); lanes.len()])),
            lanes,
            desk,
            numbers,
            gallery,
            records: Vec::new(),
        })
    }

    /// One frame's faces of lane `lane`, at `at_ms` on the lane's clock; `captured` is when the
    /// frame left the camera pipeline.
    pub async fn on_faces(
        &mut self,
        lane: usize,
        at_ms: u64,
        captured: Instant,
        faces: &LaneFaces,
        link: &Link,
        journal: &JournalWriter,
    ) -> Sent {
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
            })
            .collect();
        self.decide(lane, at_ms, captured, &obs, link, journal)
            .await
    }

    /// Recorded footage played out: every lane's walkers still in view are taken as gone, as if the
    /// lane had gone on showing nobody, so each gets its decision (a walker at the end of a file
    /// would otherwise get none) and grants still held for `confirm_ms` are released.
    pub async fn played_out(&mut self, link: &Link, journal: &JournalWriter) -> Sent {
        let mut sent = Sent::default();
        for lane in 0..self.lanes.len() {
            let g = &self.lanes[lane];
            let Some(last) = g.last_ms else { continue };
            let at_ms = last + self.lost_after_ms.max(g.delay.confirm_ms) + 1;
            let s = self
                .decide(lane, at_ms, Instant::now(), &[], link, journal)
                .await;
            sent.door.extend(s.door);
            sent.light.extend(s.light);
        }
        sent
    }

    async fn decide(
        &mut self,
        lane: usize,
        at_ms: u64,
        captured: Instant,
        obs: &[Observation],
        link: &Link,
        journal: &JournalWriter,
    ) -> Sent {
        let mut sent = Sent::default();
        let Some(g) = self.lanes.get_mut(lane) else {
            return sent;
        };
        g.last_ms = Some(at_ms);
        let events = g.decider.update(at_ms, obs);
        let in_zone = g.decider.tracks_in_zone();
        let events = g.delay.feed(at_ms, events, in_zone);
        if let Some(slot) = self
            .settled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(lane)
        {
            *slot = g.decider.identified_boxes();
        }
        if events.is_empty() {
            return sent;
        }
        let (numbers, gallery) = (&self.numbers, &self.gallery);
        let mut resolve = |n: u32| {
            let id = numbers.get(n)?;
            let g = gallery.read();
            let tickets = g.tickets(&id)?.to_vec();
            Some((id, tickets))
        };
        let now = chrono::Local::now().naive_local();
        let vs = verdicts(
            &events,
            in_zone,
            &mut resolve,
            &mut self.desk,
            g.direction,
            now,
        );
        for v in vs {
            let identified = Instant::now();
            if v.evidence.is_some() {
                histogram!(names::DECISION_LATENCY, "lane" => g.id.clone(), "to" => "identified")
                    .record(identified.duration_since(captured).as_secs_f64());
            }
            let msg = message(&g.id, &v, identified.duration_since(captured));
            let door_command_ms = act(
                g,
                &v,
                captured,
                self.records.len(),
                link,
                journal,
                &mut sent,
            )
            .await;
            self.records.push(DecisionRecord {
                lane: g.id.clone(),
                message: msg.clone(),
                at_ms,
                door_command_ms,
                door_open_ms: None,
            });
            counter!(names::DECISIONS, "lane" => g.id.clone(), "outcome" => outcome_name(v.outcome), "reason" => msg.reason.clone()).increment(1);
            info!(lane = %g.id, track = v.track.0, outcome = outcome_name(v.outcome), reason = %v.reason,
                similarity = ?v.evidence.map(|e| e.similarity), "decision");
            if let Err(e) = link.decision(&msg).await {
                warn!(lane = %g.id, error = %e, "decision message not published");
            }
            journal.append(JournalEntry {
                t_unix_ms: unix_ms(),
                lane: g.id.clone(),
                kind: JournalKind::Decision,
                detail: serde_json::to_string(&msg).unwrap_or_default(),
            });
        }
        sent
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

/// Sends the verdict's door and arch commands; returns capture → door command published (ms).
async fn act(
    g: &mut LaneGate,
    v: &GateVerdict,
    captured: Instant,
    record: usize,
    link: &Link,
    journal: &JournalWriter,
    sent: &mut Sent,
) -> Option<f64> {
    let mut published = None;
    if let Some(action) = v.door {
        match link.door(&g.id, action).await {
            Ok(seq) => {
                sent.door.push(seq);
                let s = captured.elapsed().as_secs_f64();
                published = Some(s * 1e3);
                histogram!(names::DECISION_LATENCY, "lane" => g.id.clone(), "to" => "door_command")
                    .record(s);
                if action == DoorAction::Open {
                    g.awaiting_open.push((seq, captured, record));
                }
                journal.append(JournalEntry {
                    t_unix_ms: unix_ms(),
                    lane: g.id.clone(),
                    kind: JournalKind::DoorCommand,
                    detail: format!(
                        "{action:?} for track {} ({}) (seq {seq})",
                        v.track.0, v.reason
                    ),
                });
            }
            Err(e) => warn!(lane = %g.id, error = %e, "door command failed"),
        }
    }
    if let Some(arch) = v.arch {
        match link.light(&g.id, Some(arch), None).await {
            Ok(seq) => sent.light.push(seq),
            Err(e) => warn!(lane = %g.id, error = %e, "arch command failed"),
        }
    }
    published
}

fn message(lane: &str, v: &GateVerdict, latency: std::time::Duration) -> protocol::Decision {
    protocol::Decision {
        v: VERSION,
        lane: lane.to_owned(),
        track: v.track.0,
        outcome: v.outcome,
        reason: v.reason.clone(),
        subject: v.subject.map(String::from),
        similarity: v.evidence.map(|e| e.similarity),
        margin: v.evidence.map(|e| e.margin),
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
    }
}
