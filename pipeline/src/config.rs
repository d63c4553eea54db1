//! The station file: one TOML document for lanes, GPU, zenoh, drivers, store and metrics.
//! Unknown keys are refused; every error names the file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::normalise::NormaliseParams;

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    pub station: StationSection,
    #[serde(default)]
    pub capture: CaptureConfig,
    #[serde(rename = "lane")]
    pub lanes: Vec<LaneConfig>,
    #[serde(default)]
    pub gpu: GpuConfig,
    #[serde(default)]
    pub normalise: NormaliseParams,
    #[serde(default)]
    pub lighting: LightingLoopConfig,
    #[serde(default)]
    pub zenoh: ZenohConfig,
    #[serde(default)]
    pub drivers: DriversConfig,
    pub store: StoreConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Template distribution from the centre (absent: no gallery is loaded or fetched).
    #[serde(default)]
    pub sync: Option<crate::sync::SyncConfig>,
    /// Detect → align → embed → match (runs only where a gallery is synced).
    #[serde(default)]
    pub recognise: crate::recognise::RecogniseConfig,
    #[serde(default)]
    pub decision: DecisionConfig,
}

/// `[decision]`: the multi-frame rule and its quality gates (the calibration tool sets them; a lane
/// may override threshold, margin and k).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Same-person threshold T on cosine similarity.
    pub threshold: f32,
    /// Lead M of the best subject over the second best.
    pub margin: f32,
    /// Frames that must agree.
    pub k: usize,
    /// Latest gated frames of a track considered.
    pub window: usize,
    pub min_eye_px: f32,
    pub min_sharpness: f32,
    pub max_abs_yaw: f32,
    pub luma_min: f32,
    pub luma_max: f32,
    /// A track not seen for this long has left (its walker is decided as unidentified if still open).
    pub lost_after_ms: u64,
    /// Fare table (TOML, docs/tickets.md); absent: a one-zone table holding only this station.
    pub fare_table: Option<std::path::PathBuf>,
    /// Keep each passenger's open trip (entry refuses a second entry, exit closes the trip). Off
    /// only for benchmarks on recorded footage, where the same people walk through many times.
    pub trips: bool,
    /// Hold an identification this long (ms) before opening, so a person appearing just behind
    /// the walker raises tailgating instead of an open-then-close. 0 opens at once. Default 300:
    /// on the five-lane benchmark footage it removed both open-then-close false opens and cost no
    /// correct open (docs/benchmarks.md); at 1.3 m/s it is 0.4 m of walking.
    pub confirm_ms: u64,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        let f = crate::decide::FusionParams::default();
        Self {
            threshold: f.threshold,
            margin: f.margin,
            k: f.k,
            window: f.window,
            min_eye_px: f.gates.min_eye_px,
            min_sharpness: f.gates.min_sharpness,
            max_abs_yaw: f.gates.max_abs_yaw,
            luma_min: f.gates.luma.0,
            luma_max: f.gates.luma.1,
            lost_after_ms: 500,
            fare_table: None,
            trips: true,
            confirm_ms: 300,
        }
    }
}

impl DecisionConfig {
    /// The fusion parameters of one lane (its overrides applied).
    pub fn fusion(&self, lane: &LaneConfig) -> crate::decide::FusionParams {
        crate::decide::FusionParams {
            threshold: lane.threshold.unwrap_or(self.threshold),
            margin: lane.margin.unwrap_or(self.margin),
            k: lane.k.unwrap_or(self.k),
            window: self.window,
            gates: crate::decide::QualityGates {
                min_eye_px: self.min_eye_px,
                min_sharpness: self.min_sharpness,
                max_abs_yaw: self.max_abs_yaw,
                luma: (self.luma_min, self.luma_max),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    pub id: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Live operation: each lane keeps only its newest frame; files play at their own pace.
    Realtime,
    /// Recorded footage: every frame is delivered, as fast as the GPU stage takes them.
    Benchmark,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub mode: CaptureMode,
    /// First retry delay of a failed live source; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// A live lane that delivers no frame for this long is marked degraded; so is a recording
    /// without a first frame by then.
    pub stall_ms: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            mode: CaptureMode::Realtime,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            stall_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneRole {
    Entry,
    Exit,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneConfig {
    pub id: Spanned<String>,
    pub role: LaneRole,
    /// `file:///path.mp4`, `rtsp://host/stream`, `v4l2:///dev/video0` or `test:` (optionally
    /// `test:pattern=ball&brightness=-0.4`).
    pub source: Spanned<String>,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Where a person counts as inside the lane, as fractions of the frame: [x0, y0, x1, y1]
    /// (`gate-calibrate lane` draws it). Default: the whole frame.
    #[serde(default)]
    pub zone: Option<[f32; 4]>,
    /// Overrides of `[decision]` for this lane.
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub margin: Option<f32>,
    #[serde(default)]
    pub k: Option<usize>,
}

impl LaneConfig {
    /// The lane zone in frame pixels.
    pub fn zone_px(&self) -> crate::decide::BBox {
        let [x0, y0, x1, y1] = self.zone.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        let (w, h) = (self.width as f32, self.height as f32);
        crate::decide::BBox([x0 * w, y0 * h, x1 * w, y1 * h])
    }
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `auto` (discrete preferred), `discrete`, `integrated`, `cpu`, or part of the adapter's name.
    /// The environment variable GATE_GPU_ADAPTER overrides it.
    pub adapter: String,
    /// Measure per-stage GPU time with timestamp queries when the adapter offers them.
    pub timestamps: bool,
    /// The batch scheduler's tick: at most one batch (the newest frame of every lane that has one)
    /// per tick, so lanes whose frames arrive within a tick share one GPU batch. Recorded footage
    /// in benchmark mode runs as fast as the GPU allows instead.
    pub tick_ms: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            adapter: "auto".into(),
            timestamps: true,
            tick_ms: 33,
        }
    }
}

/// Closed lighting loop: scene luminance drives each lane's illumination set-point.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZenohConfig {
    pub listen: Vec<String>,
    pub connect: Vec<String>,
}

impl Default for ZenohConfig {
    fn default() -> Self {
        Self {
            listen: vec!["tcp/127.0.0.1:7447".into()],
            connect: vec![],
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
            door_listen: "tcp/127.0.0.1:7448".into(),
            light_listen: "tcp/127.0.0.1:7449".into(),
            failsafe: Failsafe::Closed,
            watchdog_ms: 1000,
            heartbeat_ms: 250,
            ack_timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Loopback by default: the exporter has no authentication.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl StationConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let cfg: StationConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.into(),
            line: e.span().map(|s| line_of(s.start)).unwrap_or(0),
            message: e.message().trim().to_owned(),
        })?;
        cfg.validate().map_err(|(span, message)| ConfigError {
            file: file.into(),
            line: span.map(|s| line_of(s.start)).unwrap_or(0),
            message,
        })?;
        Ok(cfg)
    }

    pub fn station_id(&self) -> &str {
        self.station.id.get_ref()
    }

    fn validate(&self) -> Result<(), (Option<std::ops::Range<usize>>, String)> {
        let at = |s: &Spanned<String>, m: String| (Some(s.span()), m);
        protocol::validate_id(self.station.id.get_ref())
            .map_err(|e| at(&self.station.id, format!("station.id: {e}")))?;
        if self.lanes.is_empty() {
            return Err((None, "no [[lane]] defined".into()));
        }
        let d = &self.decision;
        if !(-1.0..=1.0).contains(&d.threshold)
            || !(0.0..=2.0).contains(&d.margin)
            || !(1..=64).contains(&d.k)
            || d.window < d.k
            || d.window > 256
            || d.confirm_ms > 5_000
        {
            return Err((
                None,
                format!(
                    "[decision]: threshold must be in -1..=1 (is {}), margin 0..=2 (is {}), k 1..=64 (is {}), window k..=256 (is {}), confirm_ms 0..=5000 (is {})",
                    d.threshold, d.margin, d.k, d.window, d.confirm_ms
                ),
            ));
        }
        let r = &self.recognise;
        if !(0.0..=1.0).contains(&r.min_score) || !(1..=64).contains(&r.max_faces) {
            return Err((
                None,
                format!(
                    "[recognise]: min_score must be in 0..=1 (is {}), max_faces 1..=64 (is {})",
                    r.min_score, r.max_faces
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for lane in &self.lanes {
            let id = lane.id.get_ref();
            protocol::validate_id(id).map_err(|e| at(&lane.id, format!("lane.id: {e}")))?;
            if !seen.insert(id.clone()) {
                return Err(at(&lane.id, format!("lane.id: {id:?} is used twice")));
            }
            crate::capture::Source::parse(lane.source.get_ref())
                .map_err(|e| at(&lane.source, format!("lane.source: {e}")))?;
            if !(16..=7680).contains(&lane.width)
                || !(16..=4320).contains(&lane.height)
                || lane.width % 2 == 1
                || lane.height % 2 == 1
            {
                return Err(at(
                    &lane.id,
                    format!(
                        "lane {id}: width/height {}x{} must be even, 16..=7680 x 16..=4320",
                        lane.width, lane.height
                    ),
                ));
            }
            if let Some(z) = lane.zone
                && !(z.iter().all(|v| (0.0..=1.0).contains(v)) && z[0] < z[2] && z[1] < z[3])
            {
                return Err(at(
                    &lane.id,
                    format!(
                        "lane {id}: zone {z:?} must be [x0, y0, x1, y1] fractions with x0 < x1, y0 < y1"
                    ),
                ));
            }
            if lane.threshold.is_some_and(|t| !(-1.0..=1.0).contains(&t))
                || lane.margin.is_some_and(|m| !(0.0..=2.0).contains(&m))
                || lane.k.is_some_and(|k| !(1..=64).contains(&k))
            {
                return Err(at(
                    &lane.id,
                    format!("lane {id}: threshold must be in -1..=1, margin 0..=2, k 1..=64"),
                ));
            }
            if !(1..=240).contains(&lane.fps) {
                return Err(at(
                    &lane.id,
                    format!("lane {id}: fps {} must be within 1..=240", lane.fps),
                ));
            }
        }
        self.normalise
            .check()
            .map_err(|m| (None, format!("normalise: {m}")))?;
        let l = &self.lighting;
        if !(0.0 < l.low && l.low < l.high && l.high < 1.0)
            || l.step == 0
            || l.step > 100
            || l.initial > 100
            || !(0.0 < l.smoothing && l.smoothing <= 1.0)
        {
            return Err((None, "lighting: need 0 < low < high < 1, step 1..=100, initial <= 100, 0 < smoothing <= 1".into()));
        }
        let d = &self.drivers;
        if d.heartbeat_ms == 0 || d.heartbeat_ms * 2 > d.watchdog_ms {
            return Err((
                None,
                format!(
                    "drivers: heartbeat_ms {} must be non-zero and at most half of watchdog_ms {}",
                    d.heartbeat_ms, d.watchdog_ms
                ),
            ));
        }
        if let Some(s) = &self.sync {
            domain::changes::public_from_hex(&s.centre_ed25519)
                .map_err(|e| (None, format!("sync.centre_ed25519: {e}")))?;
            domain::changes::public_from_hex(&s.centre_x25519)
                .map_err(|e| (None, format!("sync.centre_x25519: {e}")))?;
            if !(1..=domain::changes::MAX_BATCH).contains(&s.batch) || s.poll_s == 0 {
                return Err((None, "sync: need batch 1..=1000 and poll_s > 0".into()));
            }
        }
        if self.capture.retry_initial_ms == 0
            || self.capture.retry_initial_ms > self.capture.retry_max_ms
        {
            return Err((
                None,
                "capture: need 0 < retry_initial_ms <= retry_max_ms".into(),
            ));
        }
        Ok(())
    }

    /// zenoh endpoints of gated: its own listeners, plus the drivers it starts itself.
    pub fn zenoh_endpoints(&self) -> protocol::ZenohEndpoints {
        let mut connect = self.zenoh.connect.clone();
        if self.drivers.spawn {
            connect.push(self.drivers.door_listen.clone());
            connect.push(self.drivers.light_listen.clone());
        }
        if let Some(s) = &self.sync {
            connect.extend(s.connect.iter().cloned());
        }
        protocol::ZenohEndpoints {
            listen: self.zenoh.listen.clone(),
            connect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[station]\nid = \"s1\"\n\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:\"\n\n[store]\npath = \"/tmp/s.redb\"\n";

    #[test]
    fn example_config_parses() {
        StationConfig::parse(
            include_str!("../../docs/station.example.toml"),
            "station.example.toml",
        )
        .expect("example");
        let c = StationConfig::parse(GOOD, "good.toml").expect("minimal");
        assert_eq!(c.lanes[0].width, 640);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                GOOD.replace("role = \"entry\"", "role = \"entry\"\nspeed = 3"),
                7,
                "speed",
            ),
            (
                GOOD.replace("role = \"entry\"", "role = \"sideways\""),
                6,
                "sideways",
            ),
            (GOOD.replace("test:", "http://cam"), 7, "lane.source"),
            (GOOD.replace("id = \"L1\"", "id = \"L/1\""), 5, "lane.id"),
            (GOOD.replace("id = \"s1\"", "id = \"s*\""), 2, "station.id"),
            (GOOD.replace("[store]", "[stor]"), 9, "stor"),
            (
                format!("{GOOD}[[lane]]\nid = \"L1\"\nrole = \"exit\"\nsource = \"test:\"\n"),
                12,
                "used twice",
            ),
            (GOOD.replace("[[lane]]", "[[lane]]\nwidth = 641"), 6, "even"),
            ("[station\n".to_owned(), 1, ""),
        ];
        for (text, line, word) in cases {
            let e = StationConfig::parse(&text, "bad.toml").expect_err(word);
            let s = e.to_string();
            assert!(
                s.starts_with(&format!("bad.toml:{line}:")),
                "{s} (want line {line})"
            );
            assert!(s.contains(word), "{s} lacks {word}");
        }
    }

    #[test]
    fn semantic_checks() {
        let e = StationConfig::parse(&format!("{GOOD}[drivers]\nheartbeat_ms = 800\n"), "d.toml")
            .expect_err("heartbeat");
        assert!(e.to_string().contains("heartbeat_ms"));
        let e = StationConfig::parse(&format!("{GOOD}[normalise]\ntiles_x = 0\n"), "n.toml")
            .expect_err("tiles");
        assert!(e.to_string().contains("tiles_x"));
        let e = StationConfig::load(Path::new("/nonexistent/station.toml")).expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/station.toml:0: cannot read")
        );
    }
}
