//! The drive stage's settings: `[zenoh]` (gated's own endpoints), `[drivers]` and `[lighting]`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZenohConfig {
    /// Filled by `StationConfig::parse` when left out: `tls/127.0.0.1:7447`, or `tcp/` when
    /// insecure.
    pub listen: Vec<String>,
    pub connect: Vec<String>,
    /// The station's certificate folder (`gated certs init`, `gated certs issue`): mutual TLS and
    /// access control on every link. Required unless `insecure`.
    pub certs: Option<PathBuf>,
    /// Plain TCP without authentication, for a bench only: anyone on the network can command the
    /// doors. Every process warns at every start.
    pub insecure: bool,
}

impl ZenohConfig {
    /// Exactly one of `certs` and `insecure`: a station never falls back to plain links silently.
    pub fn check(&self) -> Result<(), String> {
        match (&self.certs, self.insecure) {
            (Some(_), true) => {
                Err("[zenoh]: certs and insecure = true contradict each other; keep one".into())
            }
            (None, false) => Err(
                "[zenoh]: set certs = \"DIR\" (the station's certificates, made by `gated certs \
                 init` and `gated certs issue`), or insecure = true for a bench without security"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The links' security for a node of `role` (gated itself, or `gated ctl` as the operator):
    /// its certificate files, checked to exist with the key private.
    pub fn security(
        &self,
        role: protocol::Role,
    ) -> Result<protocol::BusSecurity, protocol::CertError> {
        protocol::BusSecurity::choose(self.certs.as_deref(), self.insecure, role)
    }

    /// Where the certificates live, for the drivers gated starts itself.
    pub fn driver_security_args(&self) -> Vec<String> {
        match &self.certs {
            Some(dir) if !self.insecure => {
                vec!["--certs".into(), dir.to_string_lossy().into_owned()]
            }
            _ => vec!["--insecure".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failsafe {
    Open,
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriversConfig {
    /// Start the door and lighting drivers as child processes (demo, single-box stations).
    pub spawn: bool,
    pub door_listen: String,
    pub light_listen: String,
    /// Also start a `card-reader` (simulated IC-card reader) for every lane, listening here.
    pub card_listen: Option<String>,
    pub failsafe: Failsafe,
    pub watchdog_ms: u64,
    /// gated sends a heartbeat to every door this often, well inside the drivers' watchdog.
    pub heartbeat_ms: u64,
    /// A door command not acknowledged within this time is logged and counted as a timeout.
    pub ack_timeout_ms: u64,
}

impl Default for DriversConfig {
    fn default() -> Self {
        Self {
            spawn: false,
            // Filled by `StationConfig::parse`: port 7448 and 7449 on loopback, `tls/` or `tcp/`.
            door_listen: String::new(),
            light_listen: String::new(),
            card_listen: None,
            failsafe: Failsafe::Closed,
            watchdog_ms: 1000,
            heartbeat_ms: 250,
            ack_timeout_ms: 1000,
        }
    }
}

impl DriversConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat_ms == 0 || self.heartbeat_ms * 2 > self.watchdog_ms {
            return Err(format!(
                "drivers: heartbeat_ms {} must be non-zero and at most half of watchdog_ms {}",
                self.heartbeat_ms, self.watchdog_ms
            ));
        }
        Ok(())
    }
}

/// `[lighting]`: the closed lighting loop, scene luminance driving each lane's illumination
/// set-point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightingLoopConfig {
    /// Below this mean luma (0–1, smoothed) the lane is brightened.
    pub low: f32,
    /// Above this it is dimmed. Between low and high nothing changes (hysteresis band).
    pub high: f32,
    /// Illumination change per step, in percent.
    pub step: u8,
    /// At most one change per lane this often, so the camera's own exposure can settle.
    pub min_interval_ms: u64,
    pub initial: u8,
    /// Weight of the newest frame in the smoothed luminance (exponential moving average).
    pub smoothing: f32,
}

impl Default for LightingLoopConfig {
    fn default() -> Self {
        Self {
            low: 0.30,
            high: 0.65,
            step: 10,
            min_interval_ms: 500,
            initial: 50,
            smoothing: 0.2,
        }
    }
}

impl LightingLoopConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0 < self.low && self.low < self.high && self.high < 1.0)
            || self.step == 0
            || self.step > 100
            || self.initial > 100
            || !(0.0 < self.smoothing && self.smoothing <= 1.0)
        {
            return Err(
                "lighting: need 0 < low < high < 1, step 1..=100, initial <= 100, 0 < smoothing <= 1"
                    .into(),
            );
        }
        Ok(())
    }
}
