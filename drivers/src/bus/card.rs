//! The card reader on the shared loop: a [`CardReaderController`] per lane, and one input besides
//! gated's verdicts, the test rig's simulated taps (`card/sim`).

use std::future::Future;
use std::time::Instant;

use protocol::{CardCommand, CardPresent, CardState, CardVerdict, Keys, Stamp};
use tracing::{debug, warn};
use zenoh::sample::Sample;

use super::{
    Controller, DOOR_STATE_PERIOD, Driver, Input, Lanes, MALFORMED, Publish, Trust, admitted, serve,
};
use crate::Handled;
use crate::card::CardReaderController;
use crate::error::DriverError;
use crate::guard::DriverClock;
use crate::settings::CardReaderSettings;

/// Runs the card reader, simulated per lane with the settings' timing, until `shutdown` resolves.
pub async fn run_card_reader(
    settings: CardReaderSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let cfg = settings.card_config()?;
    let make = move |lane: &str, clock: DriverClock| {
        CardReaderController::new(lane.to_owned(), cfg.clone(), clock)
    };
    run_card_reader_with(settings, make, shutdown).await
}

/// Runs the card reader with the reader `make_reader` builds for each lane (on the process's
/// clock, which the states report and gated's deadlines are written on) until `shutdown` resolves.
/// The timing flags of `settings` are checked and logged; the readers `make_reader` builds decide
/// the timing that applies.
pub async fn run_card_reader_with(
    settings: CardReaderSettings,
    mut make_reader: impl FnMut(&str, DriverClock) -> CardReaderController,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let (keys, lanes) = settings.bus.validate()?;
    let cfg = settings.card_config()?;
    let clock = DriverClock::start()?;
    let driver = Driver {
        name: "card reader",
        role: protocol::Role::CardReader,
        settings: format!(
            "read {} ms, write {} ms, verdict timeout {} ms",
            cfg.read.as_millis(),
            cfg.write.as_millis(),
            cfg.verdict_timeout.as_millis()
        ),
        commands: ("card commands", keys.all_card_cmds()),
        state_key: Keys::card_state,
        inputs: vec![Input {
            what: "card sim inputs",
            key: keys.all_card_sims(),
            on: card_sim,
        }],
    };
    let make = |lane: &str| make_reader(lane, clock);
    serve(&settings.bus, keys, lanes, driver, make, shutdown).await
}

impl Controller for CardReaderController {
    type Command = CardCommand;
    type State = CardState;
    fn lane(&self) -> &str {
        CardReaderController::lane(self)
    }
    fn command(&mut self, cmd: &CardCommand, now: Instant) -> Handled {
        CardReaderController::command(self, cmd, now)
    }
    fn stamp(cmd: &CardCommand) -> Stamp {
        cmd.stamp()
    }
    /// The verdict without the balance: what moved, not what a passenger's card holds.
    fn describe(cmd: &CardCommand) -> String {
        match &cmd.verdict {
            CardVerdict::Write { charged, entry, .. } => format!(
                "tap {}: write {}, charged {charged}",
                cmd.tap,
                if entry.is_some() { "entry" } else { "exit" }
            ),
            CardVerdict::Paid => format!("tap {}: paid", cmd.tap),
            CardVerdict::Refuse { reason } => format!("tap {}: refuse ({reason})", cmd.tap),
        }
    }
    fn gated_alive(&mut self, up: bool, now: Instant) {
        CardReaderController::gated_alive(self, up, now)
    }
    fn tick(&mut self, now: Instant) {
        CardReaderController::tick(self, now)
    }
    fn state(&self) -> CardState {
        CardReaderController::state(self)
    }
    /// The clock and the rejection counters ride on the periodic copies only, as the door's do.
    fn due(&self, prev: &CardState, at: Instant, cur: &CardState, now: Instant) -> bool {
        prev.tap.as_ref().map(|t| t.seq) != cur.tap.as_ref().map(|t| t.seq)
            || prev.outcome != cur.outcome
            || prev.epoch != cur.epoch
            || prev.ack_seq != cur.ack_seq
            || now.saturating_duration_since(at) >= DOOR_STATE_PERIOD
    }
}

/// A simulated tap on one reader (tests and demos). The tap itself is published by the tick that
/// completes the read.
fn card_sim(
    s: &Sample,
    keys: &Keys,
    lanes: &mut Lanes<CardReaderController>,
    now: Instant,
    trust: Trust,
) -> Publish {
    let key = s.key_expr().as_str();
    let Some(lane) = keys.lane_of(key).and_then(|id| lanes.get_mut(id)) else {
        debug!(key, "not a lane of this driver; ignored");
        return Publish::Nothing;
    };
    // Decoded here rather than by `payload`, whose log line quotes the decoder's error: serde
    // quotes offending values, and a card id in a wrong place is still a card number.
    let present = match protocol::decode::<CardPresent>(&s.payload().to_bytes()) {
        Ok(p) => p,
        Err(e) => {
            if admitted(&MALFORMED, now) {
                warn!(key, error = %protocol::quiet(&e), "dropping malformed payload");
            }
            return Publish::Nothing;
        }
    };
    debug!(
        lane = lane.ctl.lane(),
        hold_ms = present.hold_ms,
        from = trust.sender("sim"),
        "card presented"
    );
    lane.ctl.present(present.card, present.hold_ms, now);
    Publish::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_are_logged_without_the_values_they_quote() {
        let id = "1234567890123456";
        // A numeric id: serde's own message quotes it.
        let numeric = format!(r#"{{"v":1,"card":{{"id":{id},"balance":5}},"hold_ms":100}}"#);
        let e = protocol::decode::<CardPresent>(numeric.as_bytes()).expect_err("malformed");
        assert!(e.to_string().contains(id), "{e}");
        for bytes in [
            numeric.clone(),
            format!(r#"{{"v":1,"card":{{"id":"ab","balance":"{id}"}},"hold_ms":100}}"#),
            format!(r#"{{"v":1,"card":{{"id":"{id}","balance":5}},"hold_ms":0}}"#),
            format!(r#"{{"v":1,"card":{{"id":"{id}zz","balance":5}},"hold_ms":100}}"#),
            format!(r#"{{"v":1,"{id}":1}}"#),
            format!(r#"{{"v":1,"card":{{"id":"{id}""#),
        ] {
            let e = protocol::decode::<CardPresent>(bytes.as_bytes()).expect_err("malformed");
            let line = protocol::quiet(&e);
            assert!(!line.contains(id), "{line}");
            assert!(line.contains("card presentation"), "{line}");
        }
    }
}
