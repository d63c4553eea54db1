//! The card reader beside the face (issue 17 item 4): what the reader reports of a tapped IC card,
//! what gated tells it to do with the card, and the test rig's simulated tap
//! (`docs/protocol.md`, "Card reader").
//!
//! The card carries its own fare, as stored-value IC cards do: a balance and, while a trip is open
//! on it, the entry. The reader reads it and publishes the tap in its state; gated judges the tap
//! (the card's fare rules, and the lane's arbitration with the face beside it) and answers with a
//! stamped command; only a `write` verdict changes the card, and the door opens only once the reader
//! reports the write done, so a card pulled away too early is never charged for a passage it did
//! not get, nor let through without paying.

use serde::{Deserialize, Serialize};

use crate::messages::{Message, message};
use crate::{CONTROL_VERSION, Epoch, ProtocolError, Rejected, Stamp, VERSION, validate_id};

/// Largest stored value a card may hold (¥20,000 on Suica and ICOCA), in the smallest unit.
pub const MAX_BALANCE: u32 = 20_000;

/// A card as the reader read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardData {
    /// The card's id (FeliCa IDm, ISO 14443 UID): 8 to 20 hex digits. A card number, so no process
    /// logs, journals or stores it (decoding errors are logged through [`quiet`]).
    pub id: String,
    /// Stored value, in the smallest currency unit.
    pub balance: u32,
    /// The entry recorded on the card while a trip is open on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<CardEntry>,
}

/// A trip's entry as a card records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardEntry {
    pub station: String,
    /// When, on the station's wall clock.
    pub at_unix_ms: u64,
}

impl CardData {
    pub fn check(&self) -> Result<(), String> {
        check_id(&self.id)?;
        if self.balance > MAX_BALANCE {
            return Err(format!(
                "balance {} above the card's limit {MAX_BALANCE}",
                self.balance
            ));
        }
        if let Some(e) = &self.entry {
            validate_id(&e.station).map_err(|e| format!("entry station: {e}"))?;
        }
        Ok(())
    }
}

/// One read of a card on the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardTap {
    /// Numbered by the reader from 1 (per lane, since its start); a verdict names the tap it answers.
    pub seq: u64,
    pub card: CardData,
}

/// What became of a tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CardResult {
    /// The verdict's write is on the card (what the card holds now).
    Written { card: CardData },
    /// The write did not complete (the card left the field): nothing changed on the card.
    WriteFailed { reason: String },
    /// A refusal or "already paid" was shown; nothing was written.
    Shown,
    /// No verdict came in time: the passenger is asked to touch again.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardOutcome {
    /// The tap it is the outcome of.
    pub tap: u64,
    /// When, on the reader's clock (`CardState::clock_ms`): a gated that restarted while a write
    /// was on its way tells a write just done (open the door: the card paid) from an old one.
    pub at_ms: u64,
    pub result: CardResult,
}

/// The reader's state, published on every change and every 200 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardState {
    pub v: u32,
    pub lane: String,
    /// As in `DoorState`: the epoch and highest seq of gated's commands admitted, the reader's clock.
    pub epoch: Option<Epoch>,
    pub ack_seq: u64,
    pub clock_ms: u64,
    pub rejected: Rejected,
    /// The latest tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<CardTap>,
    /// The latest tap's outcome, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CardOutcome>,
    pub t_unix_ms: u64,
}

/// What gated tells the reader to do with a tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CardVerdict {
    /// Write this to the card, then show go: `charged` taken from the balance, the entry recorded
    /// (entry) or cleared (exit). The reader refuses a write whose balance is not the card's minus
    /// `charged`.
    Write {
        balance: u32,
        charged: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<CardEntry>,
    },
    /// The passage is already paid by the face beside the card: nothing is written, show go.
    Paid,
    /// Refused (`reason`, a `domain::tickets::DenyReason` code): nothing is written, show stop.
    Refuse { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardCommand {
    pub v: u32,
    /// As in `DoorCommand`.
    pub epoch: Epoch,
    pub seq: u64,
    pub deadline_ms: u64,
    /// The tap this answers, and the id of the card read in it: a verdict for any other tap or
    /// card (a reader restarted since, whose tap numbers began again) is ignored.
    pub tap: u64,
    pub card: String,
    pub verdict: CardVerdict,
}

impl CardCommand {
    pub fn new(stamp: Stamp, tap: u64, card: String, verdict: CardVerdict) -> Self {
        Self {
            v: CONTROL_VERSION,
            epoch: stamp.epoch,
            seq: stamp.seq,
            deadline_ms: stamp.deadline_ms,
            tap,
            card,
            verdict,
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

/// The test rig's simulated tap (`card/sim`, role `sim`): a card held on the reader for `hold_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardPresent {
    pub v: u32,
    pub card: CardData,
    /// How long the card stays in the field, 1 to 10 000 ms.
    pub hold_ms: u32,
}

/// A decoding error fit for a log line: serde quotes the value it choked on, which in a card
/// payload may be a card number, so only the kind and position of a JSON error are kept (the other
/// errors are written from field names and limits only).
pub fn quiet(e: &ProtocolError) -> String {
    match e {
        ProtocolError::Json { what, error } => format!(
            "malformed {what} payload: {:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ),
        other => other.to_string(),
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let n = id.len();
    if !(8..=20).contains(&n) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("card id is not 8 to 20 hex digits".into());
    }
    Ok(())
}

message!(
    CardState,
    "card reader state",
    version CONTROL_VERSION,
    |s: &CardState| {
        validate_id(&s.lane).map_err(|e| e.to_string())?;
        if let Some(t) = &s.tap {
            t.card.check()?;
        }
        match &s.outcome {
            Some(CardOutcome {
                result: CardResult::Written { card },
                ..
            }) => card.check(),
            _ => Ok(()),
        }
    }
);
message!(
    CardCommand,
    "card command",
    version CONTROL_VERSION,
    |c: &CardCommand| {
        check_id(&c.card)?;
        match &c.verdict {
            CardVerdict::Write {
                balance, charged, ..
            } if balance.saturating_add(*charged) > MAX_BALANCE => Err(format!(
                "balance {balance} + charged {charged} above the card's limit {MAX_BALANCE}"
            )),
            CardVerdict::Write { entry: Some(e), .. } =>
                validate_id(&e.station).map_err(|e| e.to_string()),
            CardVerdict::Refuse { reason } if reason.is_empty() || reason.len() > 64 =>
                Err("refusal reason must be 1 to 64 characters".into()),
            _ => Ok(()),
        }
    }
);
message!(
    CardPresent,
    "card presentation",
    version VERSION,
    |p: &CardPresent| {
        if !(1..=10_000).contains(&p.hold_ms) {
            return Err(format!("hold_ms {} outside 1..=10000", p.hold_ms));
        }
        p.card.check()
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn card() -> CardData {
        CardData {
            id: "0123456789abcdef".into(),
            balance: 1_000,
            entry: None,
        }
    }

    #[test]
    fn commands_round_trip_and_bad_values_are_refused() {
        let stamp = Stamp {
            epoch: Epoch::from_bytes([7; 16]),
            seq: 3,
            deadline_ms: 900,
        };
        let c = CardCommand::new(
            stamp,
            4,
            card().id,
            CardVerdict::Write {
                balance: 810,
                charged: 190,
                entry: None,
            },
        );
        let back: CardCommand = decode(&encode(&c)).expect("round trip");
        assert_eq!(back, c);
        let over = CardCommand::new(
            stamp,
            4,
            card().id,
            CardVerdict::Write {
                balance: MAX_BALANCE,
                charged: 1,
                entry: None,
            },
        );
        assert!(decode::<CardCommand>(&encode(&over)).is_err());
        let bad_station = CardCommand::new(
            stamp,
            4,
            card().id,
            CardVerdict::Write {
                balance: 1,
                charged: 1,
                entry: Some(CardEntry {
                    station: "*".into(),
                    at_unix_ms: 0,
                }),
            },
        );
        assert!(decode::<CardCommand>(&encode(&bad_station)).is_err());
    }

    #[test]
    fn a_card_id_is_hex_and_a_hold_is_bounded() {
        let mut p = CardPresent {
            v: VERSION,
            card: card(),
            hold_ms: 300,
        };
        assert!(decode::<CardPresent>(&encode(&p)).is_ok());
        p.card.id = "not-a-card".into();
        let e = decode::<CardPresent>(&encode(&p)).expect_err("bad id");
        assert!(e.to_string().contains("hex"), "{e}");
        p.card = card();
        p.hold_ms = 0;
        assert!(decode::<CardPresent>(&encode(&p)).is_err());
    }
}
