//! The one place gated's commands leave from: [`Outbox::send`] puts a [`Command`] on zenoh through
//! the [`Link`], journals it, and remembers door and light commands until their driver acknowledges
//! them (round-trip histogram) or they time out (counter, warning).

use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use protocol::{Health, LaneEvent, LaneEventKind, unix_ms};
use tracing::{error, warn};

use super::command::{Command, DoorCause};
use super::link::{Link, LinkError};
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

struct LaneOut {
    id: String,
    door: Pending,
    light: Pending,
}

pub struct Outbox {
    link: Link,
    journal: JournalWriter,
    lanes: Vec<LaneOut>,
    ack_timeout: Duration,
}

impl Outbox {
    /// `lanes`: the lane ids, in lane-index order (what `Command`s refer to).
    pub fn new(
        link: Link,
        journal: JournalWriter,
        lanes: &[String],
        ack_timeout: Duration,
    ) -> Self {
        Self {
            link,
            journal,
            lanes: lanes
                .iter()
                .map(|id| LaneOut {
                    id: id.clone(),
                    door: Pending::default(),
                    light: Pending::default(),
                })
                .collect(),
            ack_timeout,
        }
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

    /// Sends one command; a door or light command returns its sequence number. A failure is logged
    /// here, and returned for callers that report it (the operator's `ctl`).
    pub async fn send(&mut self, cmd: &Command) -> Result<Option<u64>, LinkError> {
        match cmd {
            Command::Door {
                lane,
                action,
                cause,
            } => {
                let Some(l) = self.lanes.get_mut(*lane) else {
                    return Ok(None);
                };
                let seq = match self.link.door(&l.id, *action).await {
                    Ok(seq) => seq,
                    Err(e) => {
                        match cause {
                            DoorCause::Safe => {
                                error!(lane = %l.id, error = %e, "could not send safe command")
                            }
                            _ => warn!(lane = %l.id, ?action, error = %e, "door command failed"),
                        }
                        return Err(e);
                    }
                };
                l.door.sent(seq);
                let detail = match cause {
                    DoorCause::Decision(d) => Some(format!(
                        "{action:?} for track {} ({}) (seq {seq})",
                        d.track, d.reason
                    )),
                    DoorCause::Operator => Some(format!("operator {action:?} (seq {seq})")),
                    DoorCause::Heartbeat | DoorCause::Safe => None,
                };
                if let Some(detail) = detail {
                    let id = l.id.clone();
                    self.journal(&id, JournalKind::DoorCommand, detail);
                }
                Ok(Some(seq))
            }
            Command::Light {
                lane,
                arch,
                illumination,
            } => {
                let Some(l) = self.lanes.get_mut(*lane) else {
                    return Ok(None);
                };
                match self.link.light(&l.id, *arch, *illumination).await {
                    Ok(seq) => {
                        l.light.sent(seq);
                        Ok(Some(seq))
                    }
                    Err(e) => {
                        warn!(lane = %l.id, ?arch, ?illumination, error = %e, "light command failed");
                        Err(e)
                    }
                }
            }
            Command::Decision(msg) => {
                let published = self.link.decision(msg).await;
                if let Err(e) = &published {
                    warn!(lane = %msg.lane, error = %e, "decision message not published");
                }
                self.journal(
                    &msg.lane,
                    JournalKind::Decision,
                    serde_json::to_string(msg).unwrap_or_default(),
                );
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

    /// A driver's state acknowledged every door command of lane `lane` up to `ack_seq`.
    pub fn door_acked(&mut self, lane: usize, ack_seq: u64) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.door.acked(ack_seq, "door", &l.id);
        }
    }

    pub fn light_acked(&mut self, lane: usize, ack_seq: u64) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.light.acked(ack_seq, "light", &l.id);
        }
    }

    /// Counts and forgets the commands of `lane` not acknowledged within the ack timeout.
    pub fn expire(&mut self, lane: usize) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.door.expire(self.ack_timeout, "door", &l.id);
            l.light.expire(self.ack_timeout, "light", &l.id);
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
        _ => (
            JournalKind::LaneEvent,
            match ev.status {
                Some(s) => format!("{s:?}: {}", ev.detail),
                None => ev.detail.clone(),
            },
        ),
    }
}
