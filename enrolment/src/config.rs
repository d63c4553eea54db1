//! `enrold.toml`: every key with its default (`enrold config example` prints this annotated).
//! In the library rather than the binary so that its parser is fuzzed (`fuzz/`, `enrold_toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::quality::QualityConfig;

/// Why an enrold configuration cannot be used; `what` names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Toml {
        what: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the bound address is printed).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The redb store file (created if missing).
    pub store: PathBuf,
    /// Folder holding the ONNX models (default: `$GATE_MODELS`, else `<workspace>/models`).
    #[serde(default)]
    pub models: Option<PathBuf>,
    /// Where the face models run. Only `cpu` (the engine's reference) exists in this build.
    #[serde(default)]
    pub backend: Backend,
    /// Version number of the face model chain, sealed into every template.
    #[serde(default = "default_template_version")]
    pub template_version: u32,
    /// How many photos are analysed at once (each uses one CPU core for ~0.5 s).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Accepted consent policy versions; empty accepts any well-formed version.
    #[serde(default)]
    pub policy_versions: Vec<String>,
    /// Plain HTTP: photos and tokens cross the network in clear. Tests and benches only; warns at
    /// every start. Otherwise `[tls]` is required.
    #[serde(default)]
    pub insecure_http: bool,
    /// HTTPS (rustls): the server's certificate and key, PEM.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    pub keys: KeysConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rate: RateConfig,
    #[serde(default)]
    pub quality: QualityConfig,
    /// Template distribution to the stations over zenoh (absent: no distribution).
    #[serde(default)]
    pub distribution: Option<DistributionConfig>,
    /// Prometheus `/metrics` on its own plain-HTTP listener (absent: no metrics).
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Loopback unless Prometheus scrapes from elsewhere: the endpoint has no authentication
    /// (it shows counts, never a subject or a token). `127.0.0.1:0` picks a free port.
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionConfig {
    /// zenoh endpoints the centre listens on, e.g. `tcp/0.0.0.0:7450`; stations dial them.
    #[serde(default)]
    pub listen: Vec<String>,
    /// zenoh endpoints the centre dials.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Certificate folder holding `ca.pem` (every station CA the centre serves, concatenated) and
    /// `enrold.pem`/`enrold.key` (docs/protocol.md, "Bus security"). Required unless `insecure`.
    #[serde(default)]
    pub certs: Option<PathBuf>,
    /// Plain TCP without authentication: a bench only; warns at every start.
    #[serde(default)]
    pub insecure: bool,
    /// Ed25519 signing key (0600), `enrold keys centre-init`.
    pub signing_key_file: PathBuf,
    /// X25519 secret that authenticates station wraps (0600), `enrold keys centre-init`.
    pub x25519_key_file: PathBuf,
    #[serde(default, rename = "station")]
    pub stations: Vec<StationEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationEntry {
    pub id: String,
    /// The station key's id (written into every wrap; bump it when the station rotates its key).
    #[serde(default = "default_key_id")]
    pub key_id: u32,
    /// The station's X25519 public key, 64 hex digits (`gated keys init` prints it).
    pub public_key: String,
}

fn default_key_id() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Cpu,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Master key file (0600, 32 raw bytes or 64 hex digits); or
    pub master_key_file: Option<PathBuf>,
    /// the name of an environment variable holding 64 hex digits.
    pub master_key_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token file (0600): one `client-name token` pair per line (`#` comments); or
    pub token_file: Option<PathBuf>,
    /// the name of an environment variable holding one token (client name `app`).
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest single photo, bytes.
    pub max_photo_bytes: usize,
    /// Photos per enrolment (1..=5).
    pub max_photos: usize,
    /// Largest photo, width × height (checked from the header before decoding).
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 << 20,
            max_photo_bytes: 8 << 20,
            max_photos: 5,
            max_pixels: 40_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Sustained requests per minute per client, after its burst.
    pub per_minute: f64,
    /// Requests a client may make at once.
    pub burst: f64,
    /// Failed authentications per minute per peer address.
    pub failed_auth_per_minute: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_minute: 120.0,
            burst: 20.0,
            failed_auth_per_minute: 10.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate (PEM; the chain after it if any), naming the host clients use:
    /// `gated certs issue --role enrold --host HOST`, or the operator's own PKI.
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:8440".into()
}
fn default_template_version() -> u32 {
    1
}
fn default_workers() -> usize {
    1
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A configuration from TOML text, with every check `load` makes; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|source| ConfigError::Toml {
            what: what.to_owned(),
            source,
        })?;
        c.check().map_err(|message| ConfigError::Invalid {
            what: what.to_owned(),
            message,
        })?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        match (&self.tls, self.insecure_http) {
            (Some(_), true) => {
                return Err("[tls] and insecure_http = true contradict each other".into());
            }
            (None, false) => {
                return Err(
                    "no [tls]: give the HTTPS certificate and key (cert, key), or insecure_http = \
                     true for a bench where photos and tokens may cross the network in clear"
                        .into(),
                );
            }
            _ => {}
        }
        let l = &self.limits;
        if !(1..=5).contains(&l.max_photos) {
            return Err("limits.max_photos must be 1..=5".into());
        }
        if l.max_photo_bytes == 0 || l.max_photo_bytes > l.max_body_bytes {
            return Err("limits.max_photo_bytes must be 1..=limits.max_body_bytes".into());
        }
        if l.max_pixels == 0 {
            return Err("limits.max_pixels must be positive".into());
        }
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        let r = &self.rate;
        let finite = |v: f64| v.is_finite() && v > 0.0;
        if !finite(r.per_minute) || !finite(r.burst) || !finite(r.failed_auth_per_minute) {
            return Err("rate values must be positive numbers".into());
        }
        if self.keys.master_key_file.is_some() == self.keys.master_key_env.is_some() {
            return Err("keys: set exactly one of master_key_file and master_key_env".into());
        }
        if self.auth.token_file.is_some() == self.auth.token_env.is_some() {
            return Err("auth: set exactly one of token_file and token_env".into());
        }
        if let Some(d) = &self.distribution {
            if d.certs.is_some() == d.insecure {
                return Err("distribution: set exactly one of certs = \"DIR\" (the bus \
                            certificates, `gated certs issue --role enrold`) and insecure = true"
                    .into());
            }
            protocol::check_schemes(d.listen.iter().chain(&d.connect), !d.insecure)
                .map_err(|e| format!("distribution: {e}"))?;
            let mut seen = std::collections::HashSet::new();
            for s in &d.stations {
                domain::StationId::new(s.id.clone())
                    .map_err(|e| format!("distribution.station.id: {e}"))?;
                domain::changes::public_from_hex(&s.public_key)
                    .map_err(|e| format!("distribution.station {}: public_key: {e}", s.id))?;
                if !seen.insert(&s.id) {
                    return Err(format!("distribution.station {} is listed twice", s.id));
                }
            }
        }
        Ok(())
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models.clone().unwrap_or_else(engine::face::models_dir)
    }
}

/// [`EXAMPLE`], with `dir` (made absolute) in place of /etc/enrold and /var/lib/enrold.
pub fn example(dir: Option<&Path>) -> std::io::Result<String> {
    let Some(dir) = dir else {
        return Ok(EXAMPLE.to_string());
    };
    let dir = format!("{}/", std::path::absolute(dir)?.display());
    Ok(EXAMPLE
        .replace("/var/lib/enrold/", &dir)
        .replace("/etc/enrold/", &dir))
}

pub const EXAMPLE: &str = r#"# enrold configuration (docs/enrolment.md). Every key but store, keys and auth has a default.
listen = "127.0.0.1:8440"
store = "/var/lib/enrold/centre.redb"
# models = "/opt/gate/models"          # default: $GATE_MODELS, else <workspace>/models
backend = "cpu"                         # the engine's CPU reference (the only backend so far)
template_version = 1
workers = 1                             # photos analysed at once
policy_versions = []                    # e.g. ["2026-01"]; empty accepts any
# insecure_http = true                  # plain HTTP instead of [tls]: benches only, warns at start

[tls]
# HTTPS certificate naming the host clients use, and its key (0600):
# `gated certs issue --dir /etc/enrold/certs --role enrold --host enrol.example`
cert = "/etc/enrold/certs/enrold.pem"
key = "/etc/enrold/certs/enrold.key"

[keys]
master_key_file = "/etc/enrold/master.key"   # `enrold keys init --out FILE`; or master_key_env = "VAR"

[auth]
token_file = "/etc/enrold/tokens"            # lines "client-name token", mode 0600; or token_env = "VAR"

[limits]
max_body_bytes = 20971520
max_photo_bytes = 8388608
max_photos = 5
max_pixels = 40000000

[rate]
per_minute = 120.0
burst = 20.0
failed_auth_per_minute = 10.0

[quality]
min_eye_distance_px = 40.0
other_face_min_ratio = 0.35
min_sharpness = 40.0
luma_range = [50.0, 210.0]
max_clipped = 0.2
max_roll_deg = 20.0
max_yaw_ratio = 0.25
pitch_ratio_range = [0.2, 0.8]
max_eye_luma_ratio = 0.45
max_mouth_chroma_distance = 20.0
max_mouth_texture_ratio = 0.35
same_person_cosine = 0.363
duplicate_cosine = 0.5

# Prometheus metrics (docs/enrolment.md, "Metrics"): GET http://127.0.0.1:9465/metrics. Omit the
# section to run without them.
[metrics]
listen = "127.0.0.1:9465"

# Template distribution to the stations (docs/protocol.md). Omit the section to run without it.
# [distribution]
# listen = ["tls/0.0.0.0:7450"]                         # stations dial this
# certs = "/etc/enrold/certs"                           # ca.pem, enrold.pem, enrold.key (docs/protocol.md)
# signing_key_file = "/etc/enrold/centre-sign.key"      # `enrold keys centre-init --dir /etc/enrold`
# x25519_key_file = "/etc/enrold/centre-x25519.key"
# [[distribution.station]]
# id = "umeda-01"
# key_id = 1
# public_key = "…64 hex digits…"                       # `gated keys init` on the station prints it
"#;
