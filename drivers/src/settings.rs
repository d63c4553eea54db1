//! Command-line settings of the driver processes. They live in the library so that tests and a
//! demo launcher can build them (`try_parse_from`) exactly as the binaries do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser};
use protocol::{BusSecurity, Keys, Role, ZenohEndpoints, validate_id};

use crate::card::CardReaderConfig;
use crate::door::{DoorConfig, FailsafePosition};
use crate::error::DriverError;
use crate::light::LightConfig;

/// Where a driver sits on the bus and which lanes it serves.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// Station id (letters, digits, '_' and '-').
    #[arg(long)]
    pub station: String,
    /// A lane served by this driver; repeat for each lane. Commands for other lanes are ignored.
    #[arg(long = "lane", required = true)]
    pub lanes: Vec<String>,
    /// zenoh endpoint to accept connections on, e.g. tcp/127.0.0.1:7448 (repeatable). gated dials it,
    /// so the driver can start first.
    #[arg(long)]
    pub listen: Vec<String>,
    /// zenoh endpoint to dial (repeatable); retried in the background while the peer is down.
    #[arg(long)]
    pub connect: Vec<String>,
    /// The station's certificate folder (`gated certs`): mutual TLS and access control on every
    /// link, with this driver's role certificate. Required unless --insecure.
    #[arg(
        long,
        required_unless_present = "insecure",
        conflicts_with = "insecure"
    )]
    pub certs: Option<PathBuf>,
    /// Plain TCP without authentication (a bench only): anyone on the network can command it.
    #[arg(long)]
    pub insecure: bool,
    /// Log as `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    pub log_format: protocol::logging::LogFormat,
}

/// What every driver's settings have: their place on the bus.
pub trait DriverSettings: Parser {
    fn bus(&self) -> &BusArgs;
}

impl DriverSettings for DoorDriverSettings {
    fn bus(&self) -> &BusArgs {
        &self.bus
    }
}

impl DriverSettings for LightDriverSettings {
    fn bus(&self) -> &BusArgs {
        &self.bus
    }
}

impl DriverSettings for CardReaderSettings {
    fn bus(&self) -> &BusArgs {
        &self.bus
    }
}

impl BusArgs {
    /// Plain-TCP settings for tests and benches (`tcp/` endpoints); `with_certs` makes them TLS.
    pub fn insecure(station: &str, lanes: &[&str], listen: &[&str]) -> Self {
        Self {
            station: station.to_owned(),
            lanes: lanes.iter().map(|l| (*l).to_owned()).collect(),
            listen: listen.iter().map(|l| (*l).to_owned()).collect(),
            connect: Vec::new(),
            certs: None,
            insecure: true,
            log_format: Default::default(),
        }
    }

    pub fn with_certs(mut self, dir: &Path) -> Self {
        self.certs = Some(dir.to_owned());
        self.insecure = false;
        self
    }

    /// Checks the ids and returns the station's keys and the lanes without duplicates.
    pub fn validate(&self) -> Result<(Keys, Vec<String>), DriverError> {
        let keys = Keys::new(&self.station)?;
        let mut lanes: Vec<String> = Vec::new();
        for lane in &self.lanes {
            validate_id(lane)?;
            if !lanes.contains(lane) {
                lanes.push(lane.clone());
            }
        }
        if lanes.is_empty() {
            return Err(DriverError::Settings(
                "at least one --lane is needed".into(),
            ));
        }
        if self.listen.is_empty() && self.connect.is_empty() {
            // Multicast scouting is off on station networks, so such a driver could never be found.
            return Err(DriverError::Settings(
                "give at least one --listen or --connect endpoint".into(),
            ));
        }
        Ok((keys, lanes))
    }

    /// The session settings of a driver of `role`, its certificate checked.
    pub fn endpoints(&self, role: Role) -> Result<ZenohEndpoints, DriverError> {
        let security = BusSecurity::choose(self.certs.as_deref(), self.insecure, role)?;
        Ok(ZenohEndpoints {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            security,
        })
    }
}

/// `door-driver`: drives the flap of each lane and reports its state.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "door-driver",
    version,
    about = "Flap door driver of the walk-through gate (simulated flap)"
)]
pub struct DoorDriverSettings {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Flap position when gated is gone or silent: open (evacuation) or closed (security).
    #[arg(long, value_enum, default_value_t = FailsafePosition::Closed)]
    pub failsafe: FailsafePosition,
    /// Fail-safe after this long without a valid command (heartbeats count).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub watchdog_ms: u64,
    /// Time of one full stroke of the flap; a stroke taking twice as long is a fault.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub open_ms: u64,
    /// How long a grant waits for its passage unless the command says otherwise.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(500..=30_000))]
    pub pass_timeout_ms: u64,
    /// The flap stays open this long after the last passage or obstruction.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub clearance_ms: u64,
}

impl DoorDriverSettings {
    /// Defaults of every flag, for the given bus placement.
    pub fn new(bus: BusArgs) -> Self {
        let d = DoorConfig::default();
        Self {
            bus,
            failsafe: d.failsafe,
            watchdog_ms: d.watchdog.as_millis() as u64,
            open_ms: d.travel.as_millis() as u64,
            pass_timeout_ms: d.pass_timeout.as_millis() as u64,
            clearance_ms: d.clearance.as_millis() as u64,
        }
    }

    pub fn door_config(&self) -> Result<DoorConfig, DriverError> {
        Ok(DoorConfig {
            failsafe: self.failsafe,
            watchdog: millis("watchdog-ms", self.watchdog_ms, 50, 60_000)?,
            travel: millis("open-ms", self.open_ms, 1, 10_000)?,
            pass_timeout: millis("pass-timeout-ms", self.pass_timeout_ms, 500, 30_000)?,
            clearance: millis("clearance-ms", self.clearance_ms, 0, 10_000)?,
        })
    }
}

/// A duration flag within its clap range. Struct literals bypass clap's range checks, so the same
/// limits are enforced again when the settings are turned into a configuration.
fn millis(name: &str, v: u64, lo: u64, hi: u64) -> Result<Duration, DriverError> {
    if (lo..=hi).contains(&v) {
        Ok(Duration::from_millis(v))
    } else {
        Err(DriverError::Settings(format!(
            "{name} {v} outside {lo}..={hi}"
        )))
    }
}

/// `light-driver`: arch colour and face illumination of each lane.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "light-driver",
    version,
    about = "Lighting driver of the walk-through gate (simulated lamps)"
)]
pub struct LightDriverSettings {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Illumination ramp speed in percentage points per second.
    #[arg(long, default_value_t = 200.0)]
    pub ramp_per_s: f32,
}

impl LightDriverSettings {
    pub fn new(bus: BusArgs) -> Self {
        Self {
            bus,
            ramp_per_s: LightConfig::default().ramp_per_s,
        }
    }

    pub fn light_config(&self) -> Result<LightConfig, DriverError> {
        if !(self.ramp_per_s.is_finite() && self.ramp_per_s > 0.0) {
            return Err(DriverError::Settings(format!(
                "ramp-per-s {} must be a positive number",
                self.ramp_per_s
            )));
        }
        Ok(LightConfig {
            ramp_per_s: self.ramp_per_s,
        })
    }
}

/// `card-reader`: the IC-card reader beside the face of each lane.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "card-reader",
    version,
    about = "IC-card reader driver of the walk-through gate (simulated reader)"
)]
pub struct CardReaderSettings {
    #[command(flatten)]
    pub bus: BusArgs,
    /// How long a card must stay on the reader to be read; one taken away sooner is not tapped.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub read_ms: u64,
    /// How long a card must stay on the reader for a write to complete; one taken away sooner is
    /// left unchanged and the write reported failed.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub write_ms: u64,
    /// How long a tap waits for gated's verdict before the passenger is asked to touch again.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(100..=10_000))]
    pub verdict_timeout_ms: u64,
}

impl CardReaderSettings {
    /// Defaults of every flag, for the given bus placement.
    pub fn new(bus: BusArgs) -> Self {
        let d = CardReaderConfig::default();
        Self {
            bus,
            read_ms: d.read.as_millis() as u64,
            write_ms: d.write.as_millis() as u64,
            verdict_timeout_ms: d.verdict_timeout.as_millis() as u64,
        }
    }

    pub fn card_config(&self) -> Result<CardReaderConfig, DriverError> {
        Ok(CardReaderConfig {
            read: millis("read-ms", self.read_ms, 1, 2_000)?,
            write: millis("write-ms", self.write_ms, 1, 2_000)?,
            verdict_timeout: millis("verdict-timeout-ms", self.verdict_timeout_ms, 100, 10_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_flags_parse_with_defaults() {
        let s = DoorDriverSettings::try_parse_from([
            "door-driver",
            "--station",
            "umeda",
            "--lane",
            "L1",
            "--lane",
            "L2",
            "--lane",
            "L1",
            "--listen",
            "tls/127.0.0.1:7448",
            "--certs",
            "/etc/gate/certs",
            "--failsafe",
            "open",
        ])
        .expect("parses");
        assert_eq!(s.bus.certs.as_deref(), Some(Path::new("/etc/gate/certs")));
        let e = s.bus.endpoints(Role::DoorDriver).unwrap_err().to_string();
        assert!(e.contains("bus certificate"), "{e}");
        let (keys, lanes) = s.bus.validate().expect("valid");
        assert_eq!(
            (keys.station(), lanes),
            ("umeda", vec!["L1".to_owned(), "L2".to_owned()])
        );
        let c = s.door_config().expect("valid");
        assert_eq!(c.failsafe, FailsafePosition::Open);
        assert_eq!(
            (c.watchdog, c.travel),
            (Duration::from_millis(1000), Duration::from_millis(300))
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            DoorDriverSettings::try_parse_from(["door-driver", "--station", "s", "--listen", "x"])
                .is_err()
        );
        let no_endpoint = DoorDriverSettings::new(BusArgs::insecure("s", &["L1"], &[]));
        assert!(no_endpoint.bus.validate().is_err());
        let wildcard =
            DoorDriverSettings::new(BusArgs::insecure("s", &["*"], &["tcp/127.0.0.1:1"]));
        assert!(wildcard.bus.validate().is_err());
        let slow = DoorDriverSettings {
            watchdog_ms: 1,
            ..DoorDriverSettings::new(BusArgs::insecure("s", &["L1"], &[]))
        };
        assert!(slow.door_config().is_err());
        let ramp = LightDriverSettings {
            ramp_per_s: 0.0,
            ..LightDriverSettings::new(BusArgs::insecure("s", &["L1"], &[]))
        };
        assert!(ramp.light_config().is_err());
        let instant = CardReaderSettings {
            verdict_timeout_ms: 0,
            ..CardReaderSettings::new(BusArgs::insecure("s", &["L1"], &[]))
        };
        assert!(instant.card_config().is_err());
        assert!(
            CardReaderSettings::try_parse_from([
                "card-reader",
                "--station",
                "s",
                "--lane",
                "L1",
                "--insecure",
                "--read-ms",
                "0",
            ])
            .is_err()
        );
    }

    #[test]
    fn card_reader_flags_parse_with_defaults() {
        let s = CardReaderSettings::try_parse_from([
            "card-reader",
            "--station",
            "umeda",
            "--lane",
            "L1",
            "--listen",
            "tls/127.0.0.1:7450",
            "--certs",
            "/etc/gate/certs",
        ])
        .expect("parses");
        let c = s.card_config().expect("valid");
        assert_eq!(
            (c.read, c.write, c.verdict_timeout),
            (
                Duration::from_millis(60),
                Duration::from_millis(40),
                Duration::from_millis(800)
            )
        );
        let s = CardReaderSettings::try_parse_from([
            "card-reader",
            "--station",
            "umeda",
            "--lane",
            "L1",
            "--listen",
            "tcp/127.0.0.1:7450",
            "--insecure",
            "--read-ms",
            "100",
            "--write-ms",
            "70",
            "--verdict-timeout-ms",
            "1500",
        ])
        .expect("parses");
        assert_eq!(
            (s.read_ms, s.write_ms, s.verdict_timeout_ms),
            (100, 70, 1500)
        );
    }
}
