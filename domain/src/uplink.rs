//! Station → centre: the passages a station let through, reported so that the centre keeps the fare
//! ledger and spends each single ride once for the whole network (issue 17 item 2). The station's side
//! (its queryable) is `pipeline::sync::uplink`; the centre's (pulling, checking, booking) is
//! `enrolment::ledger`. Wire format: `docs/protocol.md`, "Passage uplink".
//!
//! A station numbers its passages gap-free from 1 as it commits them (`docs/store.md`, `passages`).
//! The centre asks for the passages after the last one it booked; the station answers with a
//! [`PassageBatch`] authenticated by HMAC-SHA256 under the [`UplinkKey`] both ends derive from their
//! static X25519 keys. The centre books a batch only when the MAC verifies, the batch names the
//! station it asked, the sequences run on from its head without a gap, and every record is this
//! station's; a passage already booked is skipped, so asking twice books once.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::changes::HexBytes;
use crate::ids::{StationId, SubjectId};
use crate::seal::UplinkKey;
use crate::tickets::{Direction, OpenTrip, TicketId, TripRecord, Verdict};

/// The `v` of every uplink payload this build writes and reads.
pub const UPLINK_VERSION: u32 = 1;
/// Prefixed to the body before the MAC, so a MAC made for anything else never verifies here.
pub const MAC_DOMAIN: &[u8] = b"gate-station-passages-v1\0";
/// Largest batch a query may ask for (the station clamps `limit` to it).
pub const MAX_PASSAGES: usize = 500;
/// Largest payload the centre decodes: 500 passages of well under 1 kB each, with room to spare.
pub const MAX_PAYLOAD: usize = 1 << 20;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a batch was refused. Each variant has a short `reason()` used as the metrics label.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("malformed payload: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("invalid batch: {0}")]
    Invalid(String),
    #[error("protocol version {found}, this build speaks {UPLINK_VERSION}")]
    Version { found: u32 },
    #[error("MAC does not verify under the station's uplink key")]
    Mac,
    #[error("the uplink key is not a usable HMAC key")]
    Key,
    #[error("from station {found}, asked {expected}")]
    Station { found: String, expected: String },
}

impl UplinkError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Invalid(_) => "malformed",
            Self::Version { .. } => "version",
            Self::Mac | Self::Key => "mac",
            Self::Station { .. } => "station",
        }
    }
}

/// What one grant changed in the fare state, and the trip-journal line that says so. The station
/// keeps it in its `passages` table and reports it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passage {
    pub lane: String,
    pub track: u64,
    pub subject: SubjectId,
    /// The subject's open trip after the passage (`None`: closed, or none was kept).
    pub trip: Option<OpenTrip>,
    /// The single ride this passage spent.
    pub spent: Option<TicketId>,
    pub record: TripRecord,
}

/// One passage with the station's sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Numbered {
    pub seq: u64,
    pub passage: Passage,
}

/// What is authenticated: passages `after+1 ..= after+len` of one station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassageBatch {
    pub v: u32,
    pub station: StationId,
    pub after: u64,
    pub passages: Vec<Numbered>,
    /// The station's last sequence when the batch was made; more to fetch while `after + len < head`.
    pub head: u64,
    /// The station store's identity, drawn when its file was made: a replaced or recreated store
    /// numbers its passages from 1 again, and the centre must tell its passages from the old
    /// file's (docs/protocol.md, "A station's store replaced"). Absent from stations older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<u64>,
}

/// The wire payload: the batch as a JSON string and HMAC-SHA256 over `MAC_DOMAIN ‖ body` (hex, 32
/// bytes). The MAC covers the exact bytes, so no JSON canonicalisation is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPassages {
    pub v: u32,
    pub body: String,
    pub mac: HexBytes,
}

impl SignedPassages {
    /// Serialises `batch` and authenticates it.
    pub fn seal(key: &UplinkKey, batch: &PassageBatch) -> Result<Self, UplinkError> {
        let body = serde_json::to_string(batch)?;
        let mac = mac(key, &body)?.finalize().into_bytes().to_vec();
        Ok(Self {
            v: UPLINK_VERSION,
            body,
            mac: HexBytes(mac),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, UplinkError> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(UplinkError::Invalid(format!(
                "{} bytes, at most {MAX_PAYLOAD}",
                bytes.len()
            )));
        }
        let probe: serde_json::Value = serde_json::from_slice(bytes)?;
        check_version(&probe)?;
        Ok(serde_json::from_value(probe)?)
    }

    /// Checks the MAC (in constant time), then the batch: version, station, sequences from
    /// `after + 1` without a gap, and each passage's consistency (its record is this station's and
    /// this subject's, an entry leaves a trip open here and an exit closes it).
    pub fn open(&self, key: &UplinkKey, station: &StationId) -> Result<PassageBatch, UplinkError> {
        if self.v != UPLINK_VERSION {
            return Err(UplinkError::Version { found: self.v });
        }
        mac(key, &self.body)?
            .verify_slice(&self.mac.0)
            .map_err(|_| UplinkError::Mac)?;
        let probe: serde_json::Value = serde_json::from_str(&self.body)?;
        check_version(&probe)?;
        let batch: PassageBatch = serde_json::from_value(probe)?;
        if &batch.station != station {
            return Err(UplinkError::Station {
                found: batch.station.to_string(),
                expected: station.to_string(),
            });
        }
        batch.check()?;
        Ok(batch)
    }
}

impl PassageBatch {
    /// The batch in the ledger's numbering of the station: every sequence, `after` and `head`
    /// moved on by `base` (`None` on overflow).
    pub fn rebased(mut self, base: u64) -> Option<Self> {
        self.after = self.after.checked_add(base)?;
        self.head = self.head.checked_add(base)?;
        for n in &mut self.passages {
            n.seq = n.seq.checked_add(base)?;
        }
        Some(self)
    }

    fn check(&self) -> Result<(), UplinkError> {
        let bad = |s: String| Err(UplinkError::Invalid(s));
        if self.passages.len() > MAX_PASSAGES {
            return bad(format!(
                "{} passages, at most {MAX_PASSAGES}",
                self.passages.len()
            ));
        }
        let len = self.passages.len() as u64;
        let Some(last) = self.after.checked_add(len) else {
            return bad(format!("after {} + {len} passages overflows", self.after));
        };
        // An empty batch may say a head below `after`: the station's store holds fewer passages
        // than the centre booked from it (replaced, or restored from a backup), which the centre
        // must learn to number what it records next.
        if self.head < last && len > 0 {
            return bad(format!("head {} before the batch's end {last}", self.head));
        }
        for (i, n) in (1..=len).zip(&self.passages) {
            // No overflow: `after + len` fits.
            let want = self.after + i;
            if n.seq != want {
                return bad(format!("passage {} where {want} was due", n.seq));
            }
            let (p, r) = (&n.passage, &n.passage.record);
            if r.station != self.station || r.subject != p.subject {
                return bad(format!(
                    "passage {} records station {} and subject {}",
                    n.seq, r.station, r.subject
                ));
            }
            if !matches!(r.verdict, Verdict::Allow) {
                return bad(format!("passage {} records a refusal", n.seq));
            }
            let consistent = match r.direction {
                Direction::Entry => p
                    .trip
                    .as_ref()
                    .is_none_or(|t| t.entry_station == self.station),
                Direction::Exit => p.trip.is_none(),
            };
            if !consistent {
                return bad(format!(
                    "passage {} leaves a trip that its direction cannot",
                    n.seq
                ));
            }
            // A ride is spent only by the exit that used it.
            let spends_its_ticket = match (r.direction, p.spent) {
                (_, None) => true,
                (Direction::Exit, Some(t)) => r.ticket == Some(t),
                (Direction::Entry, Some(_)) => false,
            };
            if !spends_its_ticket {
                return bad(format!(
                    "passage {} spends a ticket its record did not use",
                    n.seq
                ));
            }
            // A post-pay charge is an exit's, and never more than the trip's fare (the rules cap
            // an extension at it): a station cannot book an arbitrary amount on an account.
            let charge_fits = r.charged == 0
                || (r.direction == Direction::Exit && r.fare.is_some_and(|f| r.charged <= f));
            if !charge_fits {
                return bad(format!(
                    "passage {} charges {} beyond its fare {:?}",
                    n.seq, r.charged, r.fare
                ));
            }
        }
        Ok(())
    }
}

fn mac(key: &UplinkKey, body: &str) -> Result<HmacSha256, UplinkError> {
    // HMAC takes a key of any length: this refuses nothing today, and if it ever did, nothing
    // would be authenticated under a key other than the derived one.
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(key.bytes()).map_err(|_| UplinkError::Key)?;
    m.update(MAC_DOMAIN);
    m.update(body.as_bytes());
    Ok(m)
}

fn check_version(v: &serde_json::Value) -> Result<(), UplinkError> {
    crate::changes::version_check(v, UPLINK_VERSION).map_err(|found| match found {
        Some(found) => UplinkError::Version { found },
        None => UplinkError::Invalid("no numeric field v".into()),
    })
}

#[cfg(test)]
mod tests;
