//! Key expressions. Station and lane ids are restricted to `[A-Za-z0-9_-]` so that an id can never
//! smuggle zenoh wildcards (`*`, `**`, `$*`) or extra chunks (`/`) into a key.

use crate::ProtocolError;

pub fn validate_id(id: &str) -> Result<(), ProtocolError> {
    let bad = |reason| ProtocolError::BadId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("must not be empty"));
    }
    if id.len() > 64 {
        return Err(bad("longer than 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("only letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

/// The centre's catch-up queryable for template changes (`docs/protocol.md`, "Template
/// distribution"); a query names the station and the last applied sequence.
pub const CENTRE_CHANGES: &str = "gate/centre/changes";
/// Liveliness token held by the centre while its distribution runs.
pub const CENTRE_ALIVE: &str = "gate/centre/alive";

/// The per-station stream of signed template changes: `gate/centre/templates/{station}`. The station
/// id is a `domain::StationId`, already restricted like every id here.
pub fn centre_templates(station: &str) -> String {
    format!("gate/centre/templates/{station}")
}

/// Every station's passage-head hint, for the centre's ledger (`Keys::passage_head`).
pub const ALL_PASSAGE_HEADS: &str = "gate/*/passage-head";

/// The station id inside a concrete `gate/{station}/passage-head` key.
pub fn station_of_passage_head(key: &str) -> Option<&str> {
    let station = key.strip_prefix("gate/")?.strip_suffix("/passage-head")?;
    validate_id(station).ok().map(|_| station)
}

/// Builds the key expressions of one station.
#[derive(Debug, Clone)]
pub struct Keys {
    station: String,
}

impl Keys {
    pub fn new(station: &str) -> Result<Self, ProtocolError> {
        validate_id(station)?;
        Ok(Self {
            station: station.to_owned(),
        })
    }

    pub fn station(&self) -> &str {
        &self.station
    }

    fn lane(&self, lane: &str, tail: &str) -> String {
        format!("gate/{}/{}/{}", self.station, lane, tail)
    }

    pub fn door_cmd(&self, lane: &str) -> String {
        self.lane(lane, "door/cmd")
    }
    pub fn door_state(&self, lane: &str) -> String {
        self.lane(lane, "door/state")
    }
    /// Inputs of the simulated flap's sensors (obstruction, passage, motor jam).
    pub fn door_sim(&self, lane: &str) -> String {
        self.lane(lane, "door/sim")
    }
    pub fn light_cmd(&self, lane: &str) -> String {
        self.lane(lane, "light/cmd")
    }
    pub fn light_state(&self, lane: &str) -> String {
        self.lane(lane, "light/state")
    }
    /// The card reader beside the face (`card.rs`): its state (taps and their outcomes), gated's
    /// verdicts, and the test rig's simulated taps.
    pub fn card_state(&self, lane: &str) -> String {
        self.lane(lane, "card/state")
    }
    pub fn card_cmd(&self, lane: &str) -> String {
        self.lane(lane, "card/cmd")
    }
    pub fn card_sim(&self, lane: &str) -> String {
        self.lane(lane, "card/sim")
    }
    pub fn all_card_states(&self) -> String {
        format!("gate/{}/*/card/state", self.station)
    }
    pub fn all_card_cmds(&self) -> String {
        format!("gate/{}/*/card/cmd", self.station)
    }
    pub fn all_card_sims(&self) -> String {
        format!("gate/{}/*/card/sim", self.station)
    }
    pub fn lane_event(&self, lane: &str) -> String {
        self.lane(lane, "event")
    }
    /// Decisions of a lane: who (pseudonymous) was let through or refused, and why.
    pub fn decision(&self, lane: &str) -> String {
        self.lane(lane, "decision")
    }
    pub fn all_decisions(&self) -> String {
        format!("gate/{}/*/decision", self.station)
    }
    /// Every lane's door commands, for a driver that serves all lanes of the station.
    pub fn all_door_cmds(&self) -> String {
        format!("gate/{}/*/door/cmd", self.station)
    }
    pub fn all_door_sims(&self) -> String {
        format!("gate/{}/*/door/sim", self.station)
    }
    pub fn all_light_cmds(&self) -> String {
        format!("gate/{}/*/light/cmd", self.station)
    }
    pub fn all_door_states(&self) -> String {
        format!("gate/{}/*/door/state", self.station)
    }
    pub fn all_light_states(&self) -> String {
        format!("gate/{}/*/light/state", self.station)
    }
    pub fn all_lane_events(&self) -> String {
        format!("gate/{}/*/event", self.station)
    }
    pub fn health(&self) -> String {
        format!("gate/{}/health", self.station)
    }
    pub fn emergency(&self) -> String {
        format!("gate/{}/emergency", self.station)
    }
    /// Liveliness token held by `gated` while it runs.
    pub fn gated_alive(&self) -> String {
        format!("gate/{}/gated/alive", self.station)
    }
    /// Queryable of `gated` for operator commands.
    pub fn ctl(&self) -> String {
        format!("gate/{}/ctl", self.station)
    }

    /// Queryable of `gated` for its recorded passages, asked by the centre's ledger
    /// (`docs/protocol.md`, "Passage uplink").
    pub fn passages(&self) -> String {
        format!("gate/{}/passages", self.station)
    }
    /// The station's last passage sequence, put after each commit: a hint for the centre to ask.
    pub fn passage_head(&self) -> String {
        format!("gate/{}/passage-head", self.station)
    }

    /// The lane id inside a concrete per-lane key of this station (`gate/{station}/{lane}/...`).
    pub fn lane_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rest = key
            .strip_prefix("gate/")?
            .strip_prefix(self.station.as_str())?
            .strip_prefix('/')?;
        let lane = rest.split('/').next()?;
        validate_id(lane).ok().map(|_| lane)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_wildcards_and_separators() {
        for bad in ["", "a/b", "*", "**", "$*", "a b", "é", &"x".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["L1", "lane_2", "exit-3"] {
            validate_id(good).expect(good);
        }
    }

    #[test]
    fn centre_keys() {
        assert_eq!(
            centre_templates("umeda-01"),
            "gate/centre/templates/umeda-01"
        );
        assert_eq!(CENTRE_CHANGES, "gate/centre/changes");
        assert_eq!(CENTRE_ALIVE, "gate/centre/alive");
    }

    #[test]
    fn passage_keys() {
        let k = Keys::new("umeda").expect("station id");
        assert_eq!(k.passages(), "gate/umeda/passages");
        assert_eq!(station_of_passage_head(&k.passage_head()), Some("umeda"));
        assert_eq!(station_of_passage_head("gate/a/b/passage-head"), None);
        assert_eq!(station_of_passage_head("gate/*/passage-head"), None);
    }

    #[test]
    fn lane_is_recovered_from_key() {
        let k = Keys::new("umeda").expect("station id");
        assert_eq!(k.lane_of(&k.door_cmd("L2")), Some("L2"));
        assert_eq!(k.lane_of("gate/namba/L2/door/cmd"), None);
        assert_eq!(k.lane_of("gate/umeda/*/door/cmd"), None);
    }
}
