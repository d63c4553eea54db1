//! What makes a door or light command acceptable to its driver (`docs/protocol.md`, "Command
//! authority"): the sender's epoch, the command's place in that epoch's sequence, and a deadline
//! written on the driver's own clock. The drivers apply the rule (`drivers::guard`); gated writes
//! the stamps (`pipeline::drive::claim`). Both read the limits here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The furthest a command's `seq` may run ahead of the last one accepted in its epoch (for a new
/// epoch: ahead of 0). Commands are only ever lost, never invented, between gated and a driver, so a
/// larger jump is a forged or corrupted number; accepting it would let one message push the epoch's
/// sequence out of its sender's reach.
pub const SEQ_WINDOW: u64 = 1024;
/// The largest `seq` ever accepted: the largest integer a JSON reader with doubles keeps exact.
pub const MAX_SEQ: u64 = (1 << 53) - 1;
/// How far beyond the driver's clock a deadline may lie. A longer-lived command would stay
/// replayable for that long.
pub const MAX_DEADLINE_AHEAD_MS: u64 = 2_000;
/// The deadline gated writes: its estimate of the driver's clock plus this. Loopback and station
/// LANs deliver in milliseconds; this leaves room for a busy loop without keeping commands alive for
/// long.
pub const COMMAND_TTL_MS: u64 = 500;

/// A sender's identity for one run of its link to a driver lane: 128 random bits, written as 32
/// lowercase hex digits. A driver obeys one epoch per lane at a time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; 16]);

impl Epoch {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let b = text.as_bytes();
        if b.len() != 32 {
            return Err(format!("epoch {text:?} is not 32 hex digits"));
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(format!(
                    "epoch {text:?} has a character other than 0-9, a-f"
                )),
            };
            *o = hex(pair[0])? << 4 | hex(pair[1])?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({self})")
    }
}

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Epoch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The authority fields every door and light command carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub epoch: Epoch,
    /// Strictly increasing within the epoch, from 1.
    pub seq: u64,
    /// The last moment the command may act, on the receiving driver's clock (`clock_ms` of its state).
    pub deadline_ms: u64,
}

/// Why a driver did not admit a command. Each reason has its own counter in the driver's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The deadline has passed: a delayed or replayed command.
    Stale,
    /// The deadline lies too far ahead, or the seq jumps beyond the window (or above `MAX_SEQ`).
    Future,
    /// The seq is not above the last one accepted in the epoch.
    Replay,
    /// Another epoch than the one the lane obeys, while the lane is not open to a claim.
    Epoch,
}

impl Rejection {
    pub const ALL: [Self; 4] = [Self::Stale, Self::Future, Self::Replay, Self::Epoch];

    /// The name in logs, in the state's `rejected` object and in metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Future => "future",
            Self::Replay => "replay",
            Self::Epoch => "epoch",
        }
    }
}

/// Commands a driver lane rejected since the driver started, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    pub stale: u64,
    pub future: u64,
    pub replay: u64,
    pub epoch: u64,
}

impl Rejected {
    pub fn count(&mut self, why: Rejection) {
        let n = self.get_mut(why);
        *n = n.saturating_add(1);
    }

    pub fn get(&self, why: Rejection) -> u64 {
        match why {
            Rejection::Stale => self.stale,
            Rejection::Future => self.future,
            Rejection::Replay => self.replay,
            Rejection::Epoch => self.epoch,
        }
    }

    fn get_mut(&mut self, why: Rejection) -> &mut u64 {
        match why {
            Rejection::Stale => &mut self.stale,
            Rejection::Future => &mut self.future,
            Rejection::Replay => &mut self.replay,
            Rejection::Epoch => &mut self.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_32_lowercase_hex_digits() {
        let e = Epoch::from_bytes([0xab; 16]);
        let json = serde_json::to_string(&e).expect("serialises");
        assert_eq!(json, format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<Epoch>(&json).expect("parses"), e);
        for bad in [
            "",
            "ab",
            &"AB".repeat(16),
            &"zz".repeat(16),
            &"ab".repeat(17),
            "é",
        ] {
            assert!(Epoch::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<Epoch>("17").is_err());
    }

    #[test]
    fn rejections_count_per_reason() {
        let mut r = Rejected::default();
        r.count(Rejection::Replay);
        r.count(Rejection::Replay);
        r.count(Rejection::Epoch);
        let got: Vec<u64> = Rejection::ALL.iter().map(|&w| r.get(w)).collect();
        assert_eq!(got, [0, 0, 2, 1]);
        assert_eq!(
            serde_json::to_string(&r).expect("serialises"),
            r#"{"stale":0,"future":0,"replay":2,"epoch":1}"#
        );
    }
}
