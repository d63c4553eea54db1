//! From a lane's track events to what the gate does: the ticket rules (`domain::tickets`) for an
//! identified walker, tailgating before and after a grant, and unidentified walkers. Pure logic on
//! the events and the gallery's tickets; the station loop turns the verdicts into door and arch
//! commands, decision messages and journal lines.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use domain::tickets::{
    self, CentreTrip, Direction, Effect, FareTable, Gate, OpenTrip, Rider, Ticket, TicketId,
    TicketKind, TripRecord, Verdict, Wallet,
};
use domain::{StationId, SubjectId};
use protocol::Outcome;

use super::{Event, Evidence, TrackId};

/// The reason of an `attack` verdict.
pub const ATTACK: &str = "presentation attack";

/// What to do about one walker.
#[derive(Debug, Clone, PartialEq)]
pub struct GateVerdict {
    pub track: TrackId,
    pub outcome: Outcome,
    pub reason: String,
    pub subject: Option<SubjectId>,
    pub evidence: Option<Evidence>,
    pub frames: usize,
    /// Mean live probability of the track's PAD-scored frames, when PAD judged it.
    pub live: Option<f32>,
    /// An attack the planarity cue found: the relief slope the face showed (a head shows ~1).
    pub flat: Option<f32>,
    /// An attack: which rule raised it (`track::Cue`).
    pub cue: Option<super::Cue>,
    /// Send the door this (None: leave it as it is).
    pub door: Option<protocol::DoorAction>,
    pub arch: Option<protocol::ArchColour>,
}

/// The ticket rules of one station, with the trips it opened (entry lanes) and closes (exit lanes)
/// and the single rides spent here. Every change a grant makes is also kept as a [`TripChange`]
/// until the station has written it to its store ([`TicketDesk::take_changes`]); a change the store
/// refused is undone ([`TicketDesk::revert`]) and its door stays shut.
pub struct TicketDesk {
    table: FareTable,
    station: StationId,
    /// Trips opened here and not yet closed, restored from the store at start. A trip entered at
    /// another station comes with the centre's view of the subject ([`CentreTrip`]); the newer of
    /// the two is what the rules see (docs/tickets.md, "Across the network").
    open_trips: HashMap<SubjectId, OpenTrip>,
    /// When each subject last passed here (kept in the store): a centre view older than that does
    /// not override what happened here since.
    last_here: HashMap<SubjectId, NaiveDateTime>,
    /// Single rides spent at this station: refused as used even while the centre's copy of the
    /// ticket still says unused.
    spent: HashSet<TicketId>,
    pending: Vec<TripChange>,
    /// `[decision] trips`: when false every passage is judged as if no trip were open.
    pub keep_trips: bool,
}

/// What one grant changed: the subject's trip before and after, the ride it spent, its record.
#[derive(Debug, Clone, PartialEq)]
pub struct TripChange {
    pub subject: SubjectId,
    pub before: Option<OpenTrip>,
    /// The subject's last passage here before this one (restored by [`TicketDesk::revert`]).
    pub before_here: Option<NaiveDateTime>,
    pub after: Option<OpenTrip>,
    pub spent: Option<TicketId>,
    pub record: TripRecord,
}

impl TripChange {
    /// The stored form of this change, for the grant of track `track` on lane `lane`.
    pub fn passage(&self, lane: &str, track: u64) -> crate::store::Passage {
        crate::store::Passage {
            lane: lane.to_owned(),
            track,
            subject: self.subject,
            trip: self.after.clone(),
            spent: self.spent,
            record: self.record.clone(),
        }
    }
}

impl TicketDesk {
    pub fn new(table: FareTable, station: StationId) -> Self {
        Self {
            table,
            station,
            open_trips: HashMap::new(),
            last_here: HashMap::new(),
            spent: HashSet::new(),
            pending: Vec::new(),
            keep_trips: true,
        }
    }

    /// A one-zone table holding only this station, for stations without a fare table file:
    /// passes and day tickets work; a single ride needs a value of at least the one fare.
    pub fn single_station(station: StationId) -> Result<Self, tickets::FareTableError> {
        let text = format!("fares = [1]\n\n[stations]\n{} = 1\n", station.as_str());
        Ok(Self::new(FareTable::parse(&text, "built-in")?, station))
    }

    /// Starts from the fare state the store kept (a restart).
    pub fn restore(&mut self, fare: crate::store::FareState) {
        self.open_trips = fare.open_trips;
        self.spent = fare.spent;
        self.last_here = fare.last_here;
    }

    pub fn open_trips(&self) -> usize {
        self.open_trips.len()
    }

    /// The fare table the desk judges by (a card's fare uses it too).
    pub fn table(&self) -> &FareTable {
        &self.table
    }

    pub fn station(&self) -> &StationId {
        &self.station
    }

    /// Judges one identified walker and, when allowed, applies the trip change (and keeps it for
    /// the store). `wallet` and `centre` (the centre's view of the subject's trip) come from the
    /// gallery.
    pub fn judge(
        &mut self,
        subject: SubjectId,
        wallet: &Wallet,
        centre: Option<&CentreTrip>,
        direction: Direction,
        at: NaiveDateTime,
    ) -> tickets::Decision {
        let tickets: Vec<Ticket> = wallet
            .tickets
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if let TicketKind::SingleRide { used, .. } = &mut t.kind {
                    *used |= self.spent.contains(&t.id);
                }
                t
            })
            .collect();
        let open_trip = if self.keep_trips {
            self.open_trip(subject, centre)
        } else {
            None
        };
        let rider = Rider {
            subject,
            tickets: &tickets,
            open_trip: open_trip.as_ref(),
            postpay: wallet.postpay,
        };
        let gate = Gate {
            station: &self.station,
            direction,
            at,
        };
        let d = tickets::decide(&self.table, &rider, &gate);
        if !self.keep_trips {
            return d;
        }
        let (after, spent) = match &d.effect {
            Effect::OpenTrip(t) => (Some(t.clone()), None),
            Effect::CloseTrip { consume, .. } => (None, *consume),
            Effect::None => return d,
        };
        let before = match &after {
            Some(t) => self.open_trips.insert(subject, t.clone()),
            None => self.open_trips.remove(&subject),
        };
        let before_here = self.last_here.insert(subject, at);
        if let Some(t) = spent {
            self.spent.insert(t);
        }
        self.pending.push(TripChange {
            subject,
            before,
            before_here,
            after,
            spent,
            record: d.record.clone(),
        });
        d
    }

    /// The subject's open trip as the rules see it: the centre's view when it is newer than the
    /// subject's last passage here (an entry at another station, or an exit there of a trip
    /// entered here), else this station's own.
    fn open_trip(&self, subject: SubjectId, centre: Option<&CentreTrip>) -> Option<OpenTrip> {
        let local = self.open_trips.get(&subject);
        let here = self
            .last_here
            .get(&subject)
            .copied()
            .or_else(|| local.map(|t| t.entered_at));
        match centre {
            Some(c) if here.is_none_or(|h| c.as_of > h) => c.open.clone(),
            _ => local.cloned(),
        }
    }

    /// The changes made since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<TripChange> {
        std::mem::take(&mut self.pending)
    }

    /// Undoes changes the store did not keep, newest first.
    pub fn revert(&mut self, changes: &[TripChange]) {
        for c in changes.iter().rev() {
            match &c.before {
                Some(t) => self.open_trips.insert(c.subject, t.clone()),
                None => self.open_trips.remove(&c.subject),
            };
            match c.before_here {
                Some(t) => self.last_here.insert(c.subject, t),
                None => self.last_here.remove(&c.subject),
            };
            if let Some(t) = c.spent {
                self.spent.remove(&t);
            }
        }
    }
}

/// What the deciders know of a subject's fare from the gallery: its wallet and the centre's view
/// of its trip.
pub type Fare = (Wallet, Option<CentreTrip>);

/// Turns one update's events into verdicts. `resolve` maps a matcher subject to its id and fare
/// (`None`: erased since the frame was matched — treated as unknown); `in_zone` is the number of
/// tracks inside the lane zone now; `paid_by_card`: the lane's passage is already paid by the card
/// of the one walker in the zone (`cards`, the arbitration rule), so an identified walker opens
/// nothing new and is charged nothing.
pub fn verdicts(
    events: &[Event],
    in_zone: usize,
    paid_by_card: bool,
    resolve: &mut dyn FnMut(u32) -> Option<(SubjectId, Fare)>,
    desk: &mut TicketDesk,
    direction: Direction,
    at: NaiveDateTime,
) -> Vec<GateVerdict> {
    let tailgated: Vec<TrackId> = events
        .iter()
        .filter_map(|e| match e {
            Event::Tailgating { identified, .. } => Some(*identified),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut decided_now = Vec::new();
    for e in events {
        match e {
            Event::Identified {
                track,
                evidence,
                frames,
                live,
                ..
            } => {
                decided_now.push(*track);
                let base = |outcome, reason: &str, subject, door, arch| GateVerdict {
                    track: *track,
                    outcome,
                    reason: reason.to_owned(),
                    subject,
                    evidence: Some(*evidence),
                    frames: *frames,
                    live: *live,
                    flat: None,
                    cue: None,
                    door,
                    arch,
                };
                let Some((id, (wallet, centre))) = resolve(evidence.subject.0) else {
                    out.push(base(Outcome::Closed, "unknown", None, None, None));
                    continue;
                };
                if paid_by_card && in_zone <= 1 && !tailgated.contains(track) {
                    out.push(base(
                        Outcome::Open,
                        "paid_by_card",
                        Some(id),
                        None,
                        Some(protocol::ArchColour::Welcome),
                    ));
                    continue;
                }
                // Two people in the zone for one identification: never open, whatever the ticket.
                if tailgated.contains(track) || in_zone > 1 {
                    out.push(base(
                        Outcome::Tailgating,
                        "tailgating",
                        Some(id),
                        Some(protocol::DoorAction::Close),
                        Some(protocol::ArchColour::Alarm),
                    ));
                    continue;
                }
                let d = desk.judge(id, &wallet, centre.as_ref(), direction, at);
                out.push(match d.verdict {
                    Verdict::Allow => base(
                        Outcome::Open,
                        "granted",
                        Some(id),
                        Some(protocol::DoorAction::Open),
                        Some(protocol::ArchColour::Welcome),
                    ),
                    Verdict::Deny { reason } => base(
                        Outcome::Closed,
                        reason.code(),
                        Some(id),
                        None,
                        Some(protocol::ArchColour::Stop),
                    ),
                });
            }
            Event::Tailgating {
                identified, others, ..
            } if !decided_now.contains(identified) => {
                // Someone joined an already decided walker: close the flap and raise the alarm.
                out.push(GateVerdict {
                    track: *identified,
                    outcome: Outcome::Tailgating,
                    reason: format!("tailgating ({} more)", others.len()),
                    subject: None,
                    evidence: None,
                    frames: 0,
                    live: None,
                    flat: None,
                    cue: None,
                    door: Some(protocol::DoorAction::Close),
                    arch: Some(protocol::ArchColour::Alarm),
                });
            }
            Event::Tailgating { .. } => {}
            Event::Attack {
                track,
                evidence,
                frames,
                live,
                flat,
                cue,
                ..
            } => {
                // Whose picture it was, when it named someone: their account may be being abused.
                let subject = evidence
                    .and_then(|e| resolve(e.subject.0))
                    .map(|(id, _)| id);
                out.push(GateVerdict {
                    track: *track,
                    outcome: Outcome::Attack,
                    reason: ATTACK.to_owned(),
                    subject,
                    evidence: *evidence,
                    frames: *frames,
                    live: *live,
                    flat: *flat,
                    cue: Some(*cue),
                    door: Some(protocol::DoorAction::Close),
                    arch: Some(protocol::ArchColour::Alarm),
                });
            }
            Event::Unidentified {
                track,
                frames,
                gated,
                needed,
                reason,
                live,
                ..
            } => {
                let (outcome, reason) = unidentified(*gated, *needed, reason);
                out.push(GateVerdict {
                    track: *track,
                    outcome,
                    reason,
                    subject: None,
                    evidence: None,
                    frames: *frames,
                    live: *live,
                    flat: None,
                    cue: None,
                    door: None,
                    arch: None,
                });
            }
        }
    }
    out
}

/// The outcome and reason for a track that left unidentified (the door stays shut either way).
/// Frames naming different subjects are a refusal (`closed`); at least `needed` usable frames that
/// named nobody make the walker `unknown` (`closed`). With fewer usable frames the lane never had
/// the evidence the rule asks for, so it did not decide (`not_decided`): a walker squeezed to one or
/// two frames by an overloaded station is not called unknown. Without any usable frame the quality
/// gate that kept them out (too small, blurred, …) is the reason, for the calibration tool.
fn unidentified(gated: usize, needed: usize, reason: &str) -> (Outcome, String) {
    if reason == super::track::CONFLICTING {
        (Outcome::Closed, reason.to_owned())
    } else if gated == 0 || reason == super::track::LIVENESS_NOT_SHOWN {
        (Outcome::NotDecided, reason.to_owned())
    } else if gated < needed {
        (
            Outcome::NotDecided,
            format!("too few usable frames ({gated} of {needed})"),
        )
    } else {
        (Outcome::Closed, "unknown".into())
    }
}

#[cfg(test)]
mod tests;

/// `[decision] confirm_ms`: an identification is held this long (lane clock) before the door is
/// told to open, so a second person who appears just behind the walker turns the grant into a
/// tailgating alarm instead of an open-then-close. Pure: events in, events out.
#[derive(Debug, Default)]
pub struct GrantDelay {
    pub confirm_ms: u64,
    /// Held identifications and when they are due.
    held: Vec<(u64, Event)>,
}

impl GrantDelay {
    pub fn new(confirm_ms: u64) -> Self {
        Self {
            confirm_ms,
            held: Vec::new(),
        }
    }

    /// The events to decide on now. With several people in the zone an identification is released
    /// at once (it becomes tailgating); a tailgating event for a held walker releases it with it.
    pub fn feed(&mut self, at_ms: u64, events: Vec<Event>, in_zone: usize) -> Vec<Event> {
        if self.confirm_ms == 0 {
            return events;
        }
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Identified { .. } if in_zone <= 1 => {
                    self.held.push((at_ms + self.confirm_ms, e));
                }
                Event::Tailgating { identified, .. } => {
                    if let Some(i) = self
                        .held
                        .iter()
                        .position(|(_, h)| track_of(h) == identified)
                    {
                        out.push(self.held.remove(i).1);
                    }
                    out.push(e);
                }
                e => out.push(e),
            }
        }
        // Due ones, and all of them when someone else is in the zone now.
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(due, _)| *due <= at_ms || in_zone > 1);
        self.held = keep;
        out.extend(due.into_iter().map(|(_, e)| e));
        out
    }
}

fn track_of(e: &Event) -> TrackId {
    match e {
        Event::Identified { track, .. } => *track,
        Event::Tailgating { identified, .. } => *identified,
        Event::Unidentified { track, .. } => *track,
        Event::Attack { track, .. } => *track,
    }
}

#[cfg(test)]
mod delay_tests {
    use super::*;
    use crate::decide::Subject;

    fn id(track: u64) -> Event {
        Event::Identified {
            track: TrackId(track),
            evidence: Evidence {
                subject: Subject(0),
                similarity: 0.7,
                margin: 0.3,
                at_ms: 0,
            },
            first_seen_ms: 0,
            frames: 3,
            live: None,
        }
    }

    #[test]
    fn zero_passes_everything_through() {
        let mut d = GrantDelay::new(0);
        assert_eq!(d.feed(0, vec![id(1)], 1), vec![id(1)]);
    }

    #[test]
    fn held_until_due_or_until_someone_joins() {
        let mut d = GrantDelay::new(300);
        assert!(d.feed(1000, vec![id(1)], 1).is_empty());
        assert!(d.feed(1200, vec![], 1).is_empty());
        assert_eq!(d.feed(1300, vec![], 1), vec![id(1)]);
        // A follower shows up while held: released together with the tailgating event.
        assert!(d.feed(2000, vec![id(2)], 1).is_empty());
        let t = Event::Tailgating {
            identified: TrackId(2),
            others: vec![TrackId(3)],
            at_ms: 2100,
        };
        assert_eq!(d.feed(2100, vec![t.clone()], 2), vec![id(2), t]);
        // Two in the zone at identification: not held.
        assert_eq!(d.feed(3000, vec![id(4)], 2), vec![id(4)]);
    }
}
