//! The one place gated's commands leave from: [`Outbox::send`] stamps a [`Command`] with gated's
//! claim on the driver lane (epoch, seq, deadline on the driver's clock), puts it on zenoh through
//! the [`Link`], journals it, and remembers door and light commands until their driver acknowledges
//! them (round-trip histogram) or they time out (counter, warning). The drivers' states come back
//! here too ([`Outbox::door_state`], [`Outbox::light_state`]): they tell the claims the drivers'
//! clocks, acknowledge only commands of gated's epoch, and a door's is checked against what gated
//! told it (`agreement`).

use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use protocol::{
    ArchColour, CardCommand, CardState, DoorAction, DoorCommand, DoorState, Epoch, Health,
    LaneEvent, LaneEventKind, LightCommand, LightState, Rejected, Rejection, Stamp, VERSION,
    unix_ms,
};
use tracing::{debug, error, info, warn};

use super::agreement::{Change, DoorWatch};
use super::claim::{Claim, Heard};
use super::command::{Command, DoorCause};
use super::link::{Link, LinkError};
use super::restart::{self, Unacked};
use crate::store::{JournalEntry, JournalKind, JournalWriter};
use crate::telemetry::names;

/// Commands sent to one driver for one lane and not yet acknowledged, for round-trip times and
/// timeouts. Bounded: a driver that never answers cannot grow it.
#[derive(Default)]
struct Pending(Vec<(u64, Instant)>);

impl Pending {
    const MAX: usize = 64;

    fn sent(&mut self, seq: u64) {
        self.0.push((seq, Instant::now()));
        if self.0.len() > Self::MAX {
            self.0.drain(..self.0.len() - Self::MAX);
        }
    }

    /// Records the round trip of every command up to `ack_seq`.
    fn acked(&mut self, ack_seq: u64, driver: &'static str, lane: &str) {
        let now = Instant::now();
        self.0.retain(|&(seq, sent)| {
            if seq <= ack_seq {
                histogram!(names::DRIVER_RTT_SECONDS, "driver" => driver, "lane" => lane.to_owned()).record(now.duration_since(sent).as_secs_f64());
                false
            } else {
                true
            }
        });
    }

    /// Drops (and counts) commands older than `timeout`.
    fn expire(&mut self, timeout: Duration, driver: &'static str, lane: &str) {
        let before = self.0.len();
        self.0.retain(|&(_, sent)| sent.elapsed() < timeout);
        let expired = before - self.0.len();
        if expired > 0 {
            warn!(lane, driver, expired, "driver did not acknowledge in time");
            counter!(names::DRIVER_TIMEOUTS, "driver" => driver, "lane" => lane.to_owned())
                .increment(expired as u64);
        }
    }
}

/// One driver of one lane: gated's claim on it and the commands it has not acknowledged yet.
struct Channel {
    driver: &'static str,
    claim: Claim,
    pending: Pending,
}

impl Channel {
    fn new(driver: &'static str) -> Result<Self, LinkError> {
        Ok(Self {
            driver,
            claim: Claim::new().map_err(LinkError::Random)?,
            pending: Pending::default(),
        })
    }

    /// A state of this driver: its clock, its acknowledgement (of gated's epoch only), and its
    /// rejection counters, mirrored into gated's metrics.
    fn heard(&mut self, lane: &str, st: &impl Reported, received: Instant) -> Heard {
        let (epoch, ack_seq, clock_ms, rejected) = st.reported();
        let heard = self
            .claim
            .heard(epoch, ack_seq, clock_ms, received, self.driver);
        if heard.ours {
            self.pending.acked(ack_seq, self.driver, lane);
        }
        for why in Rejection::ALL {
            counter!(names::DRIVER_REJECTED, "driver" => self.driver, "lane" => lane.to_owned(), "reason" => why.name())
                .absolute(rejected.get(why));
        }
        heard
    }
}

/// What both drivers' states say of gated's claim: the epoch obeyed, its acknowledged seq, the
/// driver's clock and its rejection counters.
trait Reported {
    fn reported(&self) -> (Option<Epoch>, u64, u64, Rejected);
}

impl Reported for DoorState {
    fn reported(&self) -> (Option<Epoch>, u64, u64, Rejected) {
        (self.epoch, self.ack_seq, self.clock_ms, self.rejected)
    }
}

impl Reported for LightState {
    fn reported(&self) -> (Option<Epoch>, u64, u64, Rejected) {
        (self.epoch, self.ack_seq, self.clock_ms, self.rejected)
    }
}

impl Reported for CardState {
    fn reported(&self) -> (Option<Epoch>, u64, u64, Rejected) {
        (self.epoch, self.ack_seq, self.clock_ms, self.rejected)
    }
}

struct LaneOut {
    id: String,
    door: Channel,
    light: Channel,
    /// The card reader beside the face (lanes without one never hear from it).
    card: Channel,
    watch: DoorWatch,
    /// Opens the door driver has not acknowledged: re-sent to a new run of it.
    opens: Unacked,
    /// Light wanted before the light driver was heard (its first state may take a second): sent
    /// with its first state.
    light_waiting: Option<(Option<ArchColour>, Option<u8>)>,
}

pub struct Outbox {
    link: Link,
    journal: JournalWriter,
    lanes: Vec<LaneOut>,
    ack_timeout: Duration,
    /// Opens re-sent to a restarted door driver, this run.
    resent_opens: u64,
}

impl Outbox {
    /// `lanes`: the lane ids, in lane-index order (what `Command`s refer to). Each driver lane gets
    /// an epoch of its own.
    pub fn new(
        link: Link,
        journal: JournalWriter,
        lanes: &[String],
        ack_timeout: Duration,
    ) -> Result<Self, LinkError> {
        let lanes = lanes
            .iter()
            .map(|id| {
                Ok(LaneOut {
                    id: id.clone(),
                    door: Channel::new("door")?,
                    light: Channel::new("light")?,
                    card: Channel::new("card")?,
                    watch: DoorWatch::default(),
                    opens: Unacked::default(),
                    light_waiting: None,
                })
            })
            .collect::<Result<_, LinkError>>()?;
        Ok(Self {
            link,
            journal,
            lanes,
            ack_timeout,
            resent_opens: 0,
        })
    }

    /// Opens re-sent to a restarted door driver since the start.
    pub fn resent_opens(&self) -> u64 {
        self.resent_opens
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Appends a line to the station's journal.
    pub fn journal(&self, lane: &str, kind: JournalKind, detail: String) {
        self.journal.append(JournalEntry {
            t_unix_ms: unix_ms(),
            lane: lane.to_owned(),
            kind,
            detail,
        });
    }

    /// Sends one command; a door or light command returns its stamp (epoch and seq). A failure is
    /// logged here, and returned for callers that report it (the operator's `ctl`).
    pub async fn send(&mut self, cmd: &Command) -> Result<Option<Stamp>, LinkError> {
        match cmd {
            Command::Door {
                lane,
                action,
                cause,
            } => {
                let Some(l) = self.lanes.get_mut(*lane) else {
                    return Ok(None);
                };
                let sent = match l.door.claim.stamp(Instant::now()) {
                    Some(stamp) => {
                        let cmd = DoorCommand::new(stamp, *action);
                        self.link.door(&l.id, &cmd).await.map(|()| stamp)
                    }
                    None => Err(LinkError::NotHeard {
                        driver: "door",
                        lane: l.id.clone(),
                    }),
                };
                let stamp = match sent {
                    Ok(stamp) => stamp,
                    Err(e) => {
                        match cause {
                            DoorCause::Safe => {
                                error!(lane = %l.id, error = %e, "could not send safe command")
                            }
                            // Until the driver's first state: every heartbeat would say so.
                            DoorCause::Heartbeat if matches!(e, LinkError::NotHeard { .. }) => {
                                debug!(lane = %l.id, error = %e, "heartbeat not sent")
                            }
                            _ => warn!(lane = %l.id, ?action, error = %e, "door command failed"),
                        }
                        return Err(e);
                    }
                };
                let seq = stamp.seq;
                l.door.pending.sent(seq);
                match (action, cause) {
                    (
                        DoorAction::Open,
                        DoorCause::Resent {
                            original,
                            first_sent,
                        },
                    ) => l.opens.sent(seq, (**original).clone(), *first_sent),
                    (DoorAction::Open, _) => l.opens.sent(seq, cause.clone(), Instant::now()),
                    (DoorAction::Heartbeat, _) => {}
                    _ => l.opens.revoked(),
                }
                l.watch.sent(seq, *action);
                let detail = match cause {
                    DoorCause::Decision(d) => Some(format!(
                        "{action:?} for track {} ({}) (seq {seq})",
                        d.track, d.reason
                    )),
                    DoorCause::Operator => Some(format!("operator {action:?} (seq {seq})")),
                    DoorCause::Resent {
                        original,
                        first_sent,
                    } => Some(format!(
                        "{action:?} re-sent to a restarted driver (seq {seq}; first sent {:.1} s before{})",
                        first_sent.elapsed().as_secs_f64(),
                        match &**original {
                            DoorCause::Decision(d) => format!(", for track {}", d.track),
                            _ => String::new(),
                        }
                    )),
                    DoorCause::Reassert => Some(format!(
                        "{action:?} sent again: the door's mode disagreed with gated's (seq {seq})"
                    )),
                    DoorCause::Card { tap } => {
                        Some(format!("{action:?} for card tap {tap} (seq {seq})"))
                    }
                    DoorCause::Heartbeat | DoorCause::Safe => None,
                };
                if let Some(detail) = detail {
                    let id = l.id.clone();
                    self.journal(&id, JournalKind::DoorCommand, detail);
                }
                Ok(Some(stamp))
            }
            Command::Light {
                lane,
                arch,
                illumination,
            } => {
                let Some(l) = self.lanes.get_mut(*lane) else {
                    return Ok(None);
                };
                let Some(stamp) = l.light.claim.stamp(Instant::now()) else {
                    let (a, i) = l.light_waiting.take().unwrap_or_default();
                    l.light_waiting = Some((arch.or(a), illumination.or(i)));
                    debug!(lane = %l.id, ?arch, ?illumination, "light driver not heard yet; kept for its first state");
                    return Ok(None);
                };
                let cmd = LightCommand::new(stamp, *arch, *illumination);
                match self.link.light(&l.id, &cmd).await {
                    Ok(()) => {
                        l.light.pending.sent(stamp.seq);
                        Ok(Some(stamp))
                    }
                    Err(e) => {
                        warn!(lane = %l.id, ?arch, ?illumination, error = %e, "light command failed");
                        Err(e)
                    }
                }
            }
            Command::Card {
                lane,
                tap,
                card,
                verdict,
            } => {
                let Some(l) = self.lanes.get_mut(*lane) else {
                    return Ok(None);
                };
                // A verdict answers a state of the reader, so its clock is known.
                let Some(stamp) = l.card.claim.stamp(Instant::now()) else {
                    return Err(LinkError::NotHeard {
                        driver: "card",
                        lane: l.id.clone(),
                    });
                };
                let cmd = CardCommand::new(stamp, *tap, card.clone(), verdict.clone());
                match self.link.card(&l.id, &cmd).await {
                    Ok(()) => {
                        l.card.pending.sent(stamp.seq);
                        Ok(Some(stamp))
                    }
                    Err(e) => {
                        warn!(lane = %l.id, tap, error = %e, "card verdict not sent");
                        Err(e)
                    }
                }
            }
            Command::Decision { msg, journaled } => {
                let published = self.link.decision(msg).await;
                if let Err(e) = &published {
                    warn!(lane = %msg.lane, error = %e, "decision message not published");
                }
                if !journaled {
                    self.journal.append(JournalEntry::decision(msg, unix_ms()));
                }
                published.map(|()| None)
            }
            Command::Event(ev) => {
                let published = self.link.event(ev).await;
                if let Err(e) = &published {
                    warn!(lane = %ev.lane, error = %e, "lane event not published");
                }
                let (kind, detail) = journal_line(ev);
                self.journal(&ev.lane, kind, detail);
                published.map(|()| None)
            }
        }
    }

    /// A door state of lane `lane`, which arrived at `received`. Returns whether it speaks for
    /// gated's epoch (only then does it acknowledge gated's commands), and what to re-send when it
    /// comes from a new run of the driver (`restart`). When it begins or ends a disagreement with
    /// what gated told the door, raises or clears the alarm metric, logs, and publishes and
    /// journals a door lane event.
    pub async fn door_state(
        &mut self,
        lane: usize,
        st: &DoorState,
        received: Instant,
    ) -> (bool, Vec<Command>) {
        let Some(l) = self.lanes.get_mut(lane) else {
            return (false, Vec::new());
        };
        let (sent, epoch) = (l.door.claim.sent(), l.door.claim.epoch());
        let new_run = restart::new_run(l.door.claim.clock(), st.clock_ms, received);
        let latch = l.watch.wanted().latch();
        let heard = l.door.heard(&l.id, st, received);
        if heard.ours {
            l.opens.acked(st.ack_seq);
        }
        let mut resend = Vec::new();
        if new_run {
            resend.extend(latch.map(|action| Command::Door {
                lane,
                action,
                cause: DoorCause::Resent {
                    original: Box::new(if action == DoorAction::Safe {
                        DoorCause::Safe
                    } else {
                        DoorCause::Operator
                    }),
                    first_sent: received,
                },
            }));
            let opens = l.opens.take_fresh(received);
            counter!(names::OPENS_RESENT, "lane" => l.id.clone()).increment(opens.len() as u64);
            self.resent_opens += opens.len() as u64;
            warn!(lane = %l.id, opens = opens.len(), ?latch,
                "door driver restarted: re-sending the opens and the hold it had not acknowledged");
            resend.extend(opens.into_iter().map(|(first_sent, cause)| Command::Door {
                lane,
                action: DoorAction::Open,
                cause: DoorCause::Resent {
                    original: Box::new(cause),
                    first_sent,
                },
            }));
        }
        if l.door.claim.epoch() != epoch {
            l.watch.new_epoch();
        }
        let change = l.watch.check(st, heard, sent);
        if heard.ours
            && !new_run
            && let Some(action) = l.watch.reassert(received, self.ack_timeout)
        {
            counter!(names::DOOR_REASSERTED, "lane" => l.id.clone()).increment(1);
            warn!(lane = %l.id, ?action, mode = ?st.mode, "door mode disagrees with gated's: asking for it again");
            resend.push(Command::Door {
                lane,
                action,
                cause: DoorCause::Reassert,
            });
        }
        gauge!(names::DOOR_DISAGREEMENT, "lane" => l.id.clone()).set(if l.watch.disagreeing() {
            1.0
        } else {
            0.0
        });
        if let Some(change) = change {
            let detail = match change {
                Change::Began(d) => {
                    counter!(names::DOOR_DISAGREEMENTS, "lane" => l.id.clone(), "kind" => d.kind())
                        .increment(1);
                    warn!(lane = %l.id, kind = d.kind(), flap = ?st.flap, "door disagrees with gated: {}", d.describe());
                    format!("door disagrees with gated ({}): {}", d.kind(), d.describe())
                }
                Change::Ended(d) => {
                    info!(lane = %l.id, kind = d.kind(), "door agrees with gated again");
                    format!("door agrees with gated again (was: {})", d.describe())
                }
            };
            let event = LaneEvent {
                v: VERSION,
                lane: l.id.clone(),
                kind: LaneEventKind::Door,
                status: None,
                detail,
                t_unix_ms: unix_ms(),
            };
            // A failure is logged by `send`; the journal line is written either way.
            let _ = self.send(&Command::Event(event)).await;
        }
        (heard.ours, resend)
    }

    /// A light state of lane `lane`, which arrived at `received`. Returns the light command that
    /// waited for this driver to be heard, now ready to send.
    pub fn light_state(
        &mut self,
        lane: usize,
        st: &LightState,
        received: Instant,
    ) -> Option<Command> {
        let l = self.lanes.get_mut(lane)?;
        l.light.heard(&l.id, st, received);
        let (arch, illumination) = l.light_waiting.take()?;
        Some(Command::Light {
            lane,
            arch,
            illumination,
        })
    }

    /// A state of lane `lane`'s card reader, which arrived at `received`: its clock and its
    /// acknowledgements.
    pub fn card_state(&mut self, lane: usize, st: &CardState, received: Instant) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.card.heard(&l.id, st, received);
        }
    }

    /// Counts and forgets the commands of `lane` not acknowledged within the ack timeout.
    pub fn expire(&mut self, lane: usize) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.door.pending.expire(self.ack_timeout, "door", &l.id);
            l.light.pending.expire(self.ack_timeout, "light", &l.id);
            l.card.pending.expire(self.ack_timeout, "card", &l.id);
        }
    }

    /// Publishes the station's health (not journalled: it is periodic).
    pub async fn health(&self, h: &Health) {
        if let Err(e) = self.link.health(h).await {
            warn!(error = %e, "health not published");
        }
    }

    /// Closes the zenoh session and waits for the journal; `false` when the journal writer failed.
    pub fn close(self) -> bool {
        self.link.close();
        self.journal.finish().is_some()
    }
}

/// The journal's kind and text for a lane event.
fn journal_line(ev: &LaneEvent) -> (JournalKind, String) {
    match ev.kind {
        LaneEventKind::Lighting => (JournalKind::Lighting, ev.detail.clone()),
        LaneEventKind::GpuLost => (JournalKind::LaneEvent, format!("GPU lost: {}", ev.detail)),
        LaneEventKind::RecogniserStalled => (
            JournalKind::LaneEvent,
            format!("recogniser stalled: {}", ev.detail),
        ),
        LaneEventKind::RecogniserResumed => (
            JournalKind::LaneEvent,
            format!("recogniser resumed: {}", ev.detail),
        ),
        _ => (
            JournalKind::LaneEvent,
            match ev.status {
                Some(s) => format!("{s:?}: {}", ev.detail),
                None => ev.detail.clone(),
            },
        ),
    }
}
