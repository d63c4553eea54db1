//! Payloads. All are JSON objects with a `"v"`, the version of that payload's format: 1, or
//! [`CONTROL_VERSION`] for the door and light commands and states and the operator's `ctl`
//! exchange; see `docs/protocol.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CONTROL_VERSION, Epoch, ProtocolError, Rejected, Stamp, VERSION};

/// A payload type: its name for error messages, its version and its own range checks.
pub trait Message: Serialize + DeserializeOwned {
    const WHAT: &'static str;
    /// The format version this build writes and reads.
    const VERSION: u32;
    fn version(&self) -> u32;
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Parses and checks a payload; the error names the message type and what was wrong with it.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, ProtocolError> {
    // The version is read first, so a peer of another version is told so rather than that some
    // field of this version's format is missing.
    #[derive(Deserialize)]
    struct Versioned {
        v: u32,
    }
    let version = |got: u32| ProtocolError::Version {
        what: M::WHAT,
        got,
        want: M::VERSION,
    };
    if let Ok(Versioned { v }) = serde_json::from_slice(bytes)
        && v != M::VERSION
    {
        return Err(version(v));
    }
    let msg: M = serde_json::from_slice(bytes).map_err(|error| ProtocolError::Json {
        what: M::WHAT,
        error,
    })?;
    if msg.version() != M::VERSION {
        return Err(version(msg.version()));
    }
    msg.check().map_err(|reason| ProtocolError::Invalid {
        what: M::WHAT,
        reason,
    })?;
    Ok(msg)
}

pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no custom Serialize.
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Implements [`Message`] for a payload type: its name in errors, its version, and its range checks.
macro_rules! message {
    ($t:ty, $what:literal) => {
        message!($t, $what, version VERSION, |_: &$t| Ok(()));
    };
    ($t:ty, $what:literal, version $version:expr) => {
        message!($t, $what, version $version, |_: &$t| Ok(()));
    };
    ($t:ty, $what:literal, version $version:expr, $check:expr) => {
        impl Message for $t {
            const WHAT: &'static str = $what;
            const VERSION: u32 = $version;
            fn version(&self) -> u32 {
                self.v
            }
            fn check(&self) -> Result<(), String> {
                $check(self)
            }
        }
    };
}
pub(crate) use message;

// ---------------------------------------------------------------- door

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorAction {
    /// Open for one passage: the flap closes after the passage sensor fires or after `pass_timeout_ms`.
    Open,
    Close,
    /// Operator: keep open until `release`.
    HoldOpen,
    /// Operator: keep closed until `release` (grants are refused meanwhile).
    HoldClosed,
    Release,
    /// Keeps the driver's command watchdog fed while nothing else is sent.
    Heartbeat,
    /// Go to the configured fail-safe position now (e.g. the GPU was lost).
    Safe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorCommand {
    pub v: u32,
    /// The sender's epoch for this lane's door (see [`Stamp`]).
    pub epoch: Epoch,
    /// Strictly increasing within the epoch; echoed as `ack_seq` in the door state.
    pub seq: u64,
    /// On the driver's clock (`DoorState::clock_ms`): the command is void after it.
    pub deadline_ms: u64,
    pub action: DoorAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_timeout_ms: Option<u32>,
}
message!(
    DoorCommand,
    "door command",
    version CONTROL_VERSION,
    |c: &DoorCommand| match c.pass_timeout_ms {
        Some(t) if !(500..=30_000).contains(&t) =>
            Err(format!("pass_timeout_ms {t} outside 500..=30000")),
        Some(_) if c.action != DoorAction::Open =>
            Err("pass_timeout_ms only goes with action open".into()),
        _ => Ok(()),
    }
);

impl DoorCommand {
    pub fn new(stamp: Stamp, action: DoorAction) -> Self {
        Self {
            v: CONTROL_VERSION,
            epoch: stamp.epoch,
            seq: stamp.seq,
            deadline_ms: stamp.deadline_ms,
            action,
            pass_timeout_ms: None,
        }
    }

    pub fn stamp(&self) -> Stamp {
        Stamp {
            epoch: self.epoch,
            seq: self.seq,
            deadline_ms: self.deadline_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flap {
    Closed,
    Opening,
    Open,
    Closing,
    /// The motor did not reach its end position in time (jammed, obstructed too long).
    Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorMode {
    /// Obeys grant commands from gated.
    Normal,
    HeldOpen,
    HeldClosed,
    /// gated vanished or went silent: the flap is in the configured fail-safe position.
    FailsafeOpen,
    FailsafeClosed,
    /// Emergency input: every flap open until the emergency is cleared.
    Emergency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorState {
    pub v: u32,
    pub lane: String,
    pub flap: Flap,
    pub mode: DoorMode,
    /// 0.0 closed … 1.0 fully open.
    pub position: f32,
    pub obstructed: bool,
    /// The epoch the lane obeys; `null` before the first command was admitted.
    pub epoch: Option<Epoch>,
    /// Highest command `seq` of `epoch` applied so far (0 before the first).
    pub ack_seq: u64,
    /// The driver's clock, ms from a random origin chosen at its start; deadlines are written on it.
    pub clock_ms: u64,
    /// Commands not admitted since the driver started, per reason.
    pub rejected: Rejected,
    /// Why the door is in its mode (fail-safe cause, fault), empty when nothing to say.
    #[serde(default)]
    pub reason: String,
    pub t_unix_ms: u64,
}
message!(
    DoorState,
    "door state",
    version CONTROL_VERSION,
    |s: &DoorState| if (0.0..=1.0).contains(&s.position) {
        Ok(())
    } else {
        Err(format!("position {} outside 0..=1", s.position))
    }
);

impl DoorState {
    /// Whether this state acknowledges command `seq` of `epoch`: another epoch's acknowledgement
    /// says nothing about it.
    pub fn acknowledges(&self, epoch: Epoch, seq: u64) -> bool {
        self.epoch == Some(epoch) && self.ack_seq >= seq
    }
}

/// Inputs of the simulated flap: what the real device's sensors would report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorSim {
    pub v: u32,
    #[serde(default)]
    pub obstructed: Option<bool>,
    /// A person walked through the open flap.
    #[serde(default)]
    pub passage: bool,
    /// The motor stops moving (fault injection).
    #[serde(default)]
    pub jammed: Option<bool>,
}
message!(DoorSim, "door simulation input");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emergency {
    pub v: u32,
    pub active: bool,
}
message!(Emergency, "emergency");

// ---------------------------------------------------------------- light

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchColour {
    Idle,
    Welcome,
    Stop,
    Alarm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightCommand {
    pub v: u32,
    /// As in [`DoorCommand`], for this lane's lights.
    pub epoch: Epoch,
    pub seq: u64,
    pub deadline_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<ArchColour>,
    /// Illumination set-point 0–100 %; the driver ramps to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub illumination: Option<u8>,
}
message!(
    LightCommand,
    "light command",
    version CONTROL_VERSION,
    |c: &LightCommand| match c.illumination {
        Some(l) if l > 100 => Err(format!("illumination {l} above 100")),
        _ if c.arch.is_none() && c.illumination.is_none() =>
            Err("neither arch nor illumination given".into()),
        _ => Ok(()),
    }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightState {
    pub v: u32,
    pub lane: String,
    pub arch: ArchColour,
    /// Where the ramp is going.
    pub target: u8,
    /// Where the ramp is now (0–100).
    pub level: f32,
    /// As in [`DoorState`].
    pub epoch: Option<Epoch>,
    pub ack_seq: u64,
    pub clock_ms: u64,
    pub rejected: Rejected,
    pub t_unix_ms: u64,
}
message!(LightState, "light state", version CONTROL_VERSION);

impl LightCommand {
    pub fn new(stamp: Stamp, arch: Option<ArchColour>, illumination: Option<u8>) -> Self {
        Self {
            v: CONTROL_VERSION,
            epoch: stamp.epoch,
            seq: stamp.seq,
            deadline_ms: stamp.deadline_ms,
            arch,
            illumination,
        }
    }

    pub fn stamp(&self) -> Stamp {
        Stamp {
            epoch: self.epoch,
            seq: self.seq,
            deadline_ms: self.deadline_ms,
        }
    }
}

// ---------------------------------------------------------------- gated

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneStatus {
    Starting,
    Running,
    /// The source failed, ended unexpectedly or sent undecodable data.
    Degraded,
    /// A recorded source reached its end (benchmark / replay).
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneEventKind {
    Status,
    Lighting,
    Door,
    GpuLost,
    /// The recogniser reported nothing for `[recognise] stall_ms` while frames waited: doors safe.
    RecogniserStalled,
    /// It reports again: doors back to what gated last told them.
    RecogniserResumed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneEvent {
    pub v: u32,
    pub lane: String,
    pub kind: LaneEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LaneStatus>,
    pub detail: String,
    pub t_unix_ms: u64,
}
message!(LaneEvent, "lane event");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneHealth {
    pub lane: String,
    pub status: LaneStatus,
    pub frames_in: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    /// Mean luma 0–1 of the last normalised frame (before normalisation).
    pub luma_mean: f32,
    pub illumination: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<Flap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_mode: Option<DoorMode>,
    /// How old the door driver's last state was when this health was made, ms (with `door`):
    /// `door` and `door_mode` say what the driver last said, this says how long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_age_ms: Option<u64>,
    /// Why the lane is degraded (or why its source ended), as capture reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub v: u32,
    pub station: String,
    pub gpu_adapter: String,
    pub gpu_lost: bool,
    pub lanes: Vec<LaneHealth>,
    pub t_unix_ms: u64,
}
message!(Health, "health");

/// Operator request to `gated` (a zenoh query on `gate/{station}/ctl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlRequest {
    pub v: u32,
    /// `None` (and no `journal`) asks for the station's state only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<CtlDoor>,
    /// Asks for journal entries instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalQuery>,
}
message!(CtlRequest, "ctl request", version VERSION, |r: &CtlRequest| {
    if let Some(d) = &r.door {
        crate::validate_id(&d.lane).map_err(|e| e.to_string())?;
    }
    match &r.journal {
        Some(q) if r.door.is_some() => Err(format!("door and journal in one request: {q:?}")),
        Some(q) if !(1..=MAX_JOURNAL_LINES).contains(&q.limit) => Err(format!(
            "journal limit {} outside 1..={MAX_JOURNAL_LINES}",
            q.limit
        )),
        _ => Ok(()),
    }
});

/// Most journal lines one query returns.
pub const MAX_JOURNAL_LINES: u32 = 10_000;

/// Which journal entries to return: the newest `limit` that match every given filter, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// `door_command`, `lane_event`, `lighting`, `station` or `decision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_unix_ms: Option<u64>,
    /// Entries whose detail contains this text (e.g. a decision's `"outcome":"open"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    pub limit: u32,
}

/// One journal entry as `gated ctl` and `gated journal` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalLine {
    pub seq: u64,
    pub t_unix_ms: u64,
    pub lane: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlDoor {
    pub lane: String,
    /// One of open, close, hold_open, hold_closed, release.
    pub action: DoorAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlReply {
    pub v: u32,
    pub ok: bool,
    pub message: String,
    pub health: Option<Health>,
    /// The door command's `seq` (a sent door command), which the driver echoes as `ack_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The epoch of that command, which the driver's state names when it acknowledges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
    /// The entries a journal query asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Vec<JournalLine>>,
}
message!(CtlReply, "ctl reply", version CONTROL_VERSION);

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "0123456789abcdef0123456789abcdef";

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            epoch: Epoch::parse(E).expect("epoch"),
            seq,
            deadline_ms: 1500,
        }
    }

    #[test]
    fn round_trip() {
        let c = DoorCommand {
            pass_timeout_ms: Some(3000),
            ..DoorCommand::new(stamp(7), DoorAction::Open)
        };
        let back: DoorCommand = decode(&encode(&c)).expect("decodes");
        assert_eq!(back, c);
        assert_eq!(back.stamp(), stamp(7));
        let l = LightCommand::new(stamp(8), Some(ArchColour::Welcome), None);
        let back: LightCommand = decode(&encode(&l)).expect("decodes");
        assert_eq!((back.stamp(), back), (stamp(8), l));
    }

    #[test]
    fn malformed_payloads_name_the_problem() {
        let cmd = |rest: &str| {
            format!(r#"{{"v":2,"epoch":"{E}","seq":1,"deadline_ms":9,{rest}}}"#).into_bytes()
        };
        let cases: [(Vec<u8>, &str); 9] = [
            (b"not json".to_vec(), "malformed door command"),
            (
                br#"{"v":1,"seq":1,"action":"open"}"#.to_vec(),
                "protocol version 1, this build speaks 2",
            ),
            (cmd(r#""action":"fly""#), "unknown variant"),
            (cmd(r#""action":"open","extra":1"#), "unknown field"),
            (
                cmd(r#""action":"open","pass_timeout_ms":1"#),
                "outside 500..=30000",
            ),
            (
                format!(r#"{{"v":2,"epoch":"{E}","seq":-1,"deadline_ms":9,"action":"open"}}"#)
                    .into_bytes(),
                "malformed",
            ),
            (
                br#"{"v":2,"epoch":"0123","seq":1,"deadline_ms":9,"action":"open"}"#.to_vec(),
                "not 32 hex digits",
            ),
            (
                format!(r#"{{"v":2,"epoch":"{E}","seq":1,"action":"open"}}"#).into_bytes(),
                "missing field `deadline_ms`",
            ),
            (
                br#"{"v":2,"seq":1,"deadline_ms":9,"action":"open"}"#.to_vec(),
                "missing field `epoch`",
            ),
        ];
        for (bytes, want) in cases {
            let err = decode::<DoorCommand>(&bytes)
                .expect_err("must be refused")
                .to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        // Hostile but well-formed numbers decode: the driver rejects them and counts why.
        let max = format!(
            r#"{{"v":2,"epoch":"{E}","seq":{m},"deadline_ms":{m},"action":"hold_open"}}"#,
            m = u64::MAX
        );
        let c = decode::<DoorCommand>(max.as_bytes()).expect("decodes");
        assert_eq!((c.seq, c.deadline_ms), (u64::MAX, u64::MAX));
        let err = decode::<LightCommand>(&cmd(r#""illumination":101"#)).expect_err("refused");
        assert!(err.to_string().contains("above 100"));
        // Payloads whose format did not change keep version 1.
        let err = decode::<Emergency>(br#"{"v":2,"active":true}"#).expect_err("refused");
        assert!(err.to_string().contains("this build speaks 1"), "{err}");
    }

    #[test]
    fn outcomes_are_snake_case() {
        for (o, name) in [
            (Outcome::Open, "\"open\""),
            (Outcome::Closed, "\"closed\""),
            (Outcome::Tailgating, "\"tailgating\""),
            (Outcome::NotDecided, "\"not_decided\""),
            (Outcome::Attack, "\"attack\""),
        ] {
            assert_eq!(serde_json::to_string(&o).expect("serialises"), name);
            assert_eq!(serde_json::from_str::<Outcome>(name).expect("parses"), o);
        }
    }
}

/// What the gate decided for one walker. Pseudonymous: the subject's random id, never a name and
/// never an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The door was commanded open.
    Open,
    /// The door stays closed; the lane stays in IC-card mode for this walker.
    Closed,
    /// Two people inside the lane zone for one identification: door held, alarm raised.
    Tailgating,
    /// The walker left before the lane could decide (fewer usable frames than the fusion rule
    /// needs, or none): not a judgement that they are unknown. The door stays closed and the lane
    /// stays in IC-card mode for this walker.
    NotDecided,
    /// The face shown was most likely a picture (a print or a screen): door held closed, alarm
    /// raised, whoever the picture showed.
    Attack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub v: u32,
    pub lane: String,
    /// The lane's track number.
    pub track: u64,
    pub outcome: Outcome,
    /// Machine-readable: `granted`, `unknown`, a ticket code (`expired`, `no_ticket`, …), a quality
    /// gate (`face too small`, …), `too few usable frames (N of K)` or `liveness not shown` for
    /// `not_decided`, `tailgating`, `door_held`, `presentation attack`.
    pub reason: String,
    /// Pseudonymous subject id (32 hex digits), when identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f32>,
    /// Mean live probability (0–1) of the track's frames scored by presentation-attack
    /// detection, when it judged them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<f32>,
    /// Frames the track was seen in before the decision.
    pub frames: u32,
    /// Capture of the deciding frame → decision, milliseconds.
    pub latency_ms: f64,
    pub t_unix_ms: u64,
}
message!(Decision, "decision");
