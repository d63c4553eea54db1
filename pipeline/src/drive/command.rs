//! What gated tells the outside world. The deciders, the lighting loop, the heartbeat and the
//! operator's `ctl` requests only *say* what should happen, as [`Command`]s; [`super::Outbox`]
//! is the one place that sends them, numbers them, journals them and times their acknowledgements.

use std::time::Instant;

use protocol::{ArchColour, DoorAction, LaneEvent};

#[derive(Debug, Clone)]
pub enum Command {
    /// The verdict for tap `tap` of the card reader of the lane with this index.
    Card {
        lane: usize,
        tap: u64,
        /// The card read in the tap (its id: a card number, never logged).
        card: String,
        verdict: protocol::CardVerdict,
    },
    /// A door action for the lane with this index.
    Door {
        lane: usize,
        action: DoorAction,
        cause: DoorCause,
    },
    /// The arch colour and/or the illumination set-point of a lane (`None`: leave as is).
    Light {
        lane: usize,
        arch: Option<ArchColour>,
        illumination: Option<u8>,
    },
    /// A decision message: published on the lane's decision key and journalled, unless the deciders
    /// already wrote its journal line with the grant's fare state (`journaled`).
    Decision {
        msg: protocol::Decision,
        journaled: bool,
    },
    /// A lane event (status, lighting change, GPU loss): published and journalled.
    Event(LaneEvent),
}

/// Why a door command is sent: it decides what the journal says and what is timed.
#[derive(Debug, Clone)]
pub enum DoorCause {
    /// A gate verdict; the deciders time it from the deciding frame's capture to the door.
    Decision(Decided),
    /// `gated ctl door`.
    Operator,
    /// Keeps the drivers' watchdog fed; not journalled.
    Heartbeat,
    /// The GPU is lost or the recogniser stalled: doors to their fail-safe position (and back).
    Safe,
    /// Re-sent to a restarted door driver (`restart`): what first caused it, and when it was first
    /// sent (an open stays worth re-sending only for a while from then, however often the driver
    /// restarts).
    Resent {
        original: Box<DoorCause>,
        first_sent: Instant,
    },
    /// The door's mode disagrees with the one gated's acknowledged commands set (a mode command
    /// refused or lost): the mode is asked for again (`agreement::DoorWatch::reassert`).
    Reassert,
    /// The card reader confirmed the write of tap `tap` (`decide::cards`).
    Card { tap: u64 },
}

/// The verdict behind a door command.
#[derive(Debug, Clone)]
pub struct Decided {
    /// When the deciding frame left the camera pipeline.
    pub captured: Instant,
    /// Index of the decision record (`decide::decisions::Decisions::records`).
    pub record: usize,
    pub track: u64,
    pub reason: String,
}
