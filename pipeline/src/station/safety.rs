//! The station's answers to a fault in its own recognition: a lost GPU device and a recogniser
//! that stalls (`stall.rs` says when). Every door goes to its safe position with a lane event
//! saying why; after a stall each goes back to what gated last told it.

use std::time::Duration;

use metrics::{counter, gauge};
use protocol::{DoorAction, LaneEvent, LaneEventKind, VERSION, unix_ms};
use tracing::{error, warn};

use super::{LaneState, Station};
use crate::drive::command::{Command, DoorCause};
use crate::telemetry::names;

impl Station {
    pub(super) async fn on_gpu_lost(&mut self, why: String) {
        self.gpu_lost = true;
        gauge!(names::GPU_LOST).set(1.0);
        error!(%why, "GPU lost: doors to safe mode, lanes to IC-card only; gated stops for its supervisor to restart it");
        self.all_doors_safe(LaneEventKind::GpuLost, &why).await;
        // After the doors (a durable write takes milliseconds): the count is what tells the
        // operator once systemd has restarted gated.
        match self.store.count_gpu_loss() {
            Ok(n) => counter!(names::GPU_LOSSES).absolute(n),
            Err(e) => error!(error = %e, "GPU loss not counted in the store"),
        }
    }

    /// Every lane's door to its safe position, and an event saying why.
    async fn all_doors_safe(&mut self, kind: LaneEventKind, detail: &str) {
        self.every_door(|_| DoorAction::Safe, kind, detail).await;
    }

    /// Each lane's door to `action(lane)`, with a lane event of `kind` saying why.
    async fn every_door(
        &mut self,
        action: impl Fn(&LaneState) -> DoorAction,
        kind: LaneEventKind,
        detail: &str,
    ) {
        let mut cmds = Vec::new();
        for (lane, l) in self.lanes.iter().enumerate() {
            cmds.push(Command::Door {
                lane,
                action: action(l),
                cause: DoorCause::Safe,
            });
            cmds.push(Command::Event(LaneEvent {
                v: VERSION,
                lane: l.id.clone(),
                kind,
                status: None,
                detail: detail.to_owned(),
                t_unix_ms: unix_ms(),
            }));
        }
        self.send(cmds).await;
    }

    pub(super) async fn on_stalled(&mut self, silent: Duration) {
        gauge!(names::RECOGNISER_STALLED).set(1.0);
        counter!(names::RECOGNISER_STALLS).increment(1);
        let detail = format!(
            "no result for {} ms while frames waited",
            silent.as_millis()
        );
        error!(%detail, "recogniser stalled: doors to safe mode, lanes to IC-card only");
        self.all_doors_safe(LaneEventKind::RecogniserStalled, &detail)
            .await;
    }

    /// Each door back to what gated last told it: normal, or the operator's hold.
    pub(super) async fn on_resumed(&mut self, after: Duration) {
        gauge!(names::RECOGNISER_STALLED).set(0.0);
        let detail = format!("results again after {} ms", after.as_millis());
        warn!(%detail, "recogniser resumed: doors back to normal");
        self.every_door(|l| l.latch, LaneEventKind::RecogniserResumed, &detail)
            .await;
    }
}
