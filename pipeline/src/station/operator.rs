//! Operator requests (`gated ctl`): the status, a journal query, or a door command sent like
//! any other, answered on the control key.

use protocol::{CONTROL_VERSION, CtlReply, CtlRequest, DoorAction};

use super::Station;
use crate::drive::command::{Command, DoorCause};

impl Station {
    /// An operator request (`gated ctl`): the status, or a door command sent like any other.
    pub(super) async fn on_ctl(&mut self, req: CtlRequest) -> CtlReply {
        if let Some(q) = &req.journal {
            return match self.store.query_journal(q) {
                Ok(lines) => CtlReply {
                    v: CONTROL_VERSION,
                    ok: true,
                    message: format!("{} journal entries", lines.len()),
                    health: None,
                    seq: None,
                    epoch: None,
                    journal: Some(lines),
                },
                Err(e) => refuse(format!("reading the journal: {e}")),
            };
        }
        let Some(d) = req.door else {
            return CtlReply {
                v: CONTROL_VERSION,
                ok: true,
                message: "status".into(),
                health: Some(self.health()),
                seq: None,
                epoch: None,
                journal: None,
            };
        };
        let lane = match (self.index.get(&d.lane), d.action) {
            (None, _) => return refuse(format!("no lane {:?} at this station", d.lane)),
            (_, DoorAction::Heartbeat | DoorAction::Safe) => {
                return refuse(format!("{:?} is not an operator command", d.action));
            }
            (Some(&i), _) => i,
        };
        if d.action == DoorAction::Release && self.stall.stalled() {
            // Releasing would take the door out of its safe position while nothing is recognised;
            // the release is what the door returns to when results come back.
            self.lanes[lane].latch = DoorAction::Release;
            return refuse(
                "the recogniser is stalled: the door stays in its safe position; the release \
                 applies when results come back"
                    .into(),
            );
        }
        let cmd = Command::Door {
            lane,
            action: d.action,
            cause: DoorCause::Operator,
        };
        match self.outbox.send(&cmd).await {
            Ok(Some(stamp)) => {
                if matches!(
                    d.action,
                    DoorAction::HoldOpen | DoorAction::HoldClosed | DoorAction::Release
                ) {
                    self.lanes[lane].latch = d.action;
                }
                CtlReply {
                    v: CONTROL_VERSION,
                    ok: true,
                    message: format!("{:?} sent to {} (seq {})", d.action, d.lane, stamp.seq),
                    health: None,
                    seq: Some(stamp.seq),
                    epoch: Some(stamp.epoch),
                    journal: None,
                }
            }
            Ok(None) => refuse(format!("no lane {:?} at this station", d.lane)),
            Err(e) => refuse(e.to_string()),
        }
    }
}

/// A refused request, with the reason the operator sees.
pub(super) fn refuse(message: String) -> CtlReply {
    CtlReply {
        v: CONTROL_VERSION,
        ok: false,
        message,
        health: None,
        seq: None,
        epoch: None,
        journal: None,
    }
}
