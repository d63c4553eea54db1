//! The station file: one TOML document, one section per stage. Each stage owns its section's type
//! (`capture::CaptureConfig`, `normalise::GpuConfig`, `decide::DecisionConfig`, …) and the checks
//! that need only that section; this module assembles them, checks what spans sections (the lane
//! table, the sync keys) and hands each stage its part. Unknown keys are refused; every error names
//! the file, the line and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use crate::capture::{Camera, CaptureConfig, CaptureMode};
pub use crate::decide::{DecisionConfig, GateLane, LaneRole};
pub use crate::drive::{DriversConfig, Failsafe, LightingLoopConfig, ZenohConfig};
pub use crate::normalise::{GpuConfig, NormaliseParams};
pub use crate::recognise::RecogniseConfig;
pub use crate::sync::SyncConfig;
pub use crate::telemetry::MetricsConfig;

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
    pub sync: Option<SyncConfig>,
    /// Detect → align → embed → match (runs only where a gallery is synced).
    #[serde(default)]
    pub recognise: RecogniseConfig,
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Presentation-attack detection.
    #[serde(default)]
    pub pad: crate::decide::PadConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    pub id: Spanned<String>,
}

/// `[[lane]]`: one lane's camera (for capture) and its role, zone and overrides of `[decision]`
/// (for decide).
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
    /// Overrides of `[pad]` for this lane: `pad` (mode) and `pad_threshold`.
    #[serde(default)]
    pub pad: Option<crate::decide::PadMode>,
    #[serde(default)]
    pub pad_threshold: Option<f32>,
    /// Where the camera stands (`camera_offset_m`, `focal_px`): with it, PAD's planarity cue
    /// refuses faces that move like a flat picture (docs/pad.md). Absent: the cue is not used.
    #[serde(default)]
    pub geometry: Option<crate::decide::LaneGeometry>,
    /// A second camera below this one (`[lane.lower]`).
    #[serde(default)]
    pub lower: Option<LowerCamera>,
}

/// `[lane.lower]`: a second camera on the same spot as the lane's, lower and turned up, for
/// children, seated passengers and faces bent over a phone (docs/calibration.md, "Two cameras").
/// Same frame size and rate as the lane's camera; its faces are placed in the lane camera's frame
/// by the geometry, so one walker is one track whichever camera sees them (`decide::views`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowerCamera {
    /// As the lane's `source`.
    pub source: Spanned<String>,
    /// The lane zone in this camera's frame, fractions (`gate-calibrate lane --view lower`).
    /// Default: the whole frame.
    #[serde(default)]
    pub zone: Option<[f32; 4]>,
    /// Metres below the lane's camera.
    pub below_m: f32,
    /// Degrees it is turned up, relative to the lane's camera.
    #[serde(default)]
    pub tilt_deg: f32,
    /// Focal length in pixels, the same for both cameras.
    pub focal_px: f32,
}

impl LaneConfig {
    /// The lane zone in frame pixels.
    pub fn zone_px(&self) -> crate::decide::BBox {
        let [x0, y0, x1, y1] = self.zone.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        let (w, h) = (self.width as f32, self.height as f32);
        crate::decide::BBox([x0 * w, y0 * h, x1 * w, y1 * h])
    }

    /// What capture needs of this lane's camera.
    pub fn camera(&self) -> Camera {
        Camera {
            id: self.id.get_ref().clone(),
            source: self.source.get_ref().clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
        }
    }

    /// What capture needs of this lane's lower camera, when it has one (its id: the lane's with
    /// `/lower`).
    pub fn lower_camera(&self) -> Option<Camera> {
        let l = self.lower.as_ref()?;
        Some(Camera {
            id: format!("{}/lower", self.id.get_ref()),
            source: l.source.get_ref().clone(),
            ..self.camera()
        })
    }

    /// The lower camera as the deciders need it.
    pub fn lower_view(&self) -> Option<crate::decide::LowerView> {
        let l = self.lower.as_ref()?;
        let [x0, y0, x1, y1] = l.zone.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        let (w, h) = (self.width as f32, self.height as f32);
        Some(crate::decide::LowerView {
            geometry: crate::decide::LowerGeometry {
                below_m: l.below_m,
                tilt_deg: l.tilt_deg,
                focal_px: l.focal_px,
            },
            zone: crate::decide::BBox([x0 * w, y0 * h, x1 * w, y1 * h]),
            frame: [w, h],
        })
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

/// A zone (`key`), when given, is fractions of the frame and not empty.
fn check_zone(key: &str, zone: Option<[f32; 4]>) -> Result<(), String> {
    match zone {
        Some(z) if !(z.iter().all(|v| (0.0..=1.0).contains(v)) && z[0] < z[2] && z[1] < z[3]) => {
            Err(format!(
                "{key} {z:?} must be [x0, y0, x1, y1] fractions with x0 < x1, y0 < y1"
            ))
        }
        _ => Ok(()),
    }
}

/// `[store]`: where the station's redb file lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
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
        let mut cfg: StationConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.into(),
            line: e.span().map(|s| line_of(s.start)).unwrap_or(0),
            message: e.message().trim().to_owned(),
        })?;
        cfg.default_endpoints();
        cfg.validate().map_err(|(span, message)| ConfigError {
            file: file.into(),
            line: span.map(|s| line_of(s.start)).unwrap_or(0),
            message,
        })?;
        Ok(cfg)
    }

    /// Endpoints left out get loopback defaults in the links' scheme (`tls/`, or `tcp/` when
    /// `insecure`), so that `insecure = true` alone makes a working bench station.
    fn default_endpoints(&mut self) {
        let scheme = if self.zenoh.insecure { "tcp" } else { "tls" };
        let fill = |e: &mut String, port: u16| {
            if e.is_empty() {
                *e = format!("{scheme}/127.0.0.1:{port}");
            }
        };
        if self.zenoh.listen.is_empty() {
            self.zenoh.listen = vec![format!("{scheme}/127.0.0.1:7447")];
        }
        fill(&mut self.drivers.door_listen, 7448);
        fill(&mut self.drivers.light_listen, 7449);
    }

    pub fn station_id(&self) -> &str {
        self.station.id.get_ref()
    }

    /// The lane ids, in the file's order (lane indices everywhere are indices into this).
    pub fn lane_ids(&self) -> Vec<String> {
        self.lanes.iter().map(|l| l.id.get_ref().clone()).collect()
    }

    /// Every camera, for capture: each lane's, in lane order, then the lower cameras of the lanes
    /// with one, in lane order. A capture stream's index is its index here ([`Self::streams`]).
    pub fn cameras(&self) -> Vec<Camera> {
        let lower = self.lanes.iter().filter_map(LaneConfig::lower_camera);
        self.lanes
            .iter()
            .map(LaneConfig::camera)
            .chain(lower)
            .collect()
    }

    /// Per capture stream ([`Self::cameras`]): its lane and which of the lane's cameras it is.
    pub fn streams(&self) -> Vec<(usize, crate::decide::View)> {
        use crate::decide::View;
        let lower = (self.lanes.iter().enumerate())
            .filter(|(_, l)| l.lower.is_some())
            .map(|(i, _)| (i, View::Lower));
        (0..self.lanes.len())
            .map(|i| (i, View::Upper))
            .chain(lower)
            .collect()
    }

    /// The folder of the presentation-attack networks, when any lane runs PAD.
    pub fn pad_models(&self) -> Option<std::path::PathBuf> {
        let any = self
            .gate_lanes()
            .iter()
            .any(|l| l.fusion.pad.mode != crate::decide::PadMode::Off);
        any.then(|| self.pad.models_dir())
    }

    /// Every lane as the deciders see it: role, zone in pixels, `[decision]` with its overrides.
    pub fn gate_lanes(&self) -> Vec<GateLane> {
        self.lanes
            .iter()
            .map(|l| GateLane {
                id: l.id.get_ref().clone(),
                role: l.role,
                zone: l.zone_px(),
                fusion: self.decision.fusion(
                    l.threshold,
                    l.margin,
                    l.k,
                    self.pad.params(
                        l.pad,
                        l.pad_threshold,
                        l.geometry,
                        l.lower_view().map(|v| v.geometry),
                        [l.width as f32 / 2.0, l.height as f32 / 2.0],
                    ),
                ),
                lower: l.lower_view(),
            })
            .collect()
    }

    fn validate(&self) -> Result<(), (Option<std::ops::Range<usize>>, String)> {
        let at = |s: &Spanned<String>, m: String| (Some(s.span()), m);
        let whole = |m: String| (None, m);
        protocol::validate_id(self.station.id.get_ref())
            .map_err(|e| at(&self.station.id, format!("station.id: {e}")))?;
        if self.lanes.is_empty() {
            return Err((None, "no [[lane]] defined".into()));
        }
        self.decision.check().map_err(whole)?;
        self.pad.check().map_err(whole)?;
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
        if !(50..=60_000).contains(&r.stall_ms) {
            return Err((
                None,
                format!(
                    "[recognise]: stall_ms must be in 50..=60000 (is {})",
                    r.stall_ms
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for lane in &self.lanes {
            self.validate_lane(lane, &mut seen)?;
        }
        self.normalise
            .check()
            .map_err(|m| (None, format!("normalise: {m}")))?;
        self.lighting.check().map_err(whole)?;
        self.drivers.check().map_err(whole)?;
        self.zenoh.check().map_err(whole)?;
        let ep = self.endpoints();
        protocol::check_schemes(ep.0.iter().chain(&ep.1), !self.zenoh.insecure)
            .map_err(|e| whole(format!("[zenoh]/[drivers]/[sync]: {e}")))?;
        if let Some(s) = &self.sync {
            domain::changes::public_from_hex(&s.centre_ed25519)
                .map_err(|e| (None, format!("sync.centre_ed25519: {e}")))?;
            domain::changes::public_from_hex(&s.centre_x25519)
                .map_err(|e| (None, format!("sync.centre_x25519: {e}")))?;
            if !(1..=domain::changes::MAX_BATCH).contains(&s.batch) || s.poll_s == 0 {
                return Err((None, "sync: need batch 1..=1000 and poll_s > 0".into()));
            }
        }
        self.capture.check().map_err(whole)?;
        Ok(())
    }

    fn validate_lane(
        &self,
        lane: &LaneConfig,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<(), (Option<std::ops::Range<usize>>, String)> {
        let at = |s: &Spanned<String>, m: String| (Some(s.span()), m);
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
        check_zone("zone", lane.zone).map_err(|e| at(&lane.id, format!("lane {id}: {e}")))?;
        if lane.threshold.is_some_and(|t| !(-1.0..=1.0).contains(&t))
            || lane.margin.is_some_and(|m| !(0.0..=2.0).contains(&m))
            || lane.k.is_some_and(|k| !(1..=64).contains(&k))
            || lane
                .pad_threshold
                .is_some_and(|t| !(0.0..=1.0).contains(&t))
        {
            return Err(at(
                &lane.id,
                format!(
                    "lane {id}: threshold must be in -1..=1, margin 0..=2, k 1..=64, pad_threshold 0..=1"
                ),
            ));
        }
        if let Some(g) = &lane.geometry {
            g.check()
                .map_err(|e| at(&lane.id, format!("lane {id}: {e}")))?;
        }
        if let Some(l) = &lane.lower {
            crate::capture::Source::parse(l.source.get_ref())
                .map_err(|e| at(&l.source, format!("lane.lower.source: {e}")))?;
            // The same camera twice would show every walker twice, a head's height apart: two
            // people at every passage.
            if l.source.get_ref() == lane.source.get_ref() {
                return Err(at(
                    &l.source,
                    format!("lane {id}: lower.source is the lane's own source"),
                ));
            }
            // Both cameras' frames of one instant must meet within `views::TWIN_MS`.
            if lane.fps < 10 {
                return Err(at(
                    &lane.id,
                    format!(
                        "lane {id}: a lane with [lane.lower] needs fps >= 10 (is {})",
                        lane.fps
                    ),
                ));
            }
            check_zone("lower.zone", l.zone)
                .map_err(|e| at(&l.source, format!("lane {id}: {e}")))?;
            (lane.lower_view().map(|v| v.geometry.check()))
                .transpose()
                .map_err(|e| at(&l.source, format!("lane {id}: {e}")))?;
        }
        if !(1..=240).contains(&lane.fps) {
            return Err(at(
                &lane.id,
                format!("lane {id}: fps {} must be within 1..=240", lane.fps),
            ));
        }
        Ok(())
    }

    /// gated's listeners, and what it dials: `[zenoh] connect`, the drivers it starts itself and
    /// the centre.
    fn endpoints(&self) -> (Vec<String>, Vec<String>) {
        let mut connect = self.zenoh.connect.clone();
        if self.drivers.spawn {
            connect.push(self.drivers.door_listen.clone());
            connect.push(self.drivers.light_listen.clone());
            connect.extend(self.drivers.card_listen.iter().cloned());
        }
        if let Some(s) = &self.sync {
            connect.extend(s.connect.iter().cloned());
        }
        (self.zenoh.listen.clone(), connect)
    }

    /// `gated ctl`'s session: the operator dials gated's listeners.
    pub fn operator_endpoints(&self) -> Result<protocol::ZenohEndpoints, protocol::CertError> {
        Ok(protocol::ZenohEndpoints {
            listen: vec![],
            connect: self.zenoh.listen.clone(),
            security: self.zenoh.security(protocol::Role::Operator)?,
        })
    }

    /// gated's zenoh session settings, with its certificate checked.
    pub fn zenoh_endpoints(&self) -> Result<protocol::ZenohEndpoints, protocol::CertError> {
        let (listen, connect) = self.endpoints();
        Ok(protocol::ZenohEndpoints {
            listen,
            connect,
            security: self.zenoh.security(protocol::Role::Gated)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[station]\nid = \"s1\"\n\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\nsource = \"test:\"\n\n[store]\npath = \"/tmp/s.redb\"\n\n[zenoh]\ncerts = \"/tmp/certs\"\n";

    #[test]
    fn example_config_parses() {
        StationConfig::parse(
            include_str!("../../docs/station.example.toml"),
            "station.example.toml",
        )
        .expect("example");
        let c = StationConfig::parse(GOOD, "good.toml").expect("minimal");
        assert_eq!(c.zenoh.listen, ["tls/127.0.0.1:7447"]);
        assert_eq!(c.drivers.door_listen, "tls/127.0.0.1:7448");
        let bench = GOOD.replace("certs = \"/tmp/certs\"", "insecure = true");
        let b = StationConfig::parse(&bench, "bench.toml").expect("insecure alone");
        assert_eq!(b.zenoh.listen, ["tcp/127.0.0.1:7447"]);
        assert_eq!(b.drivers.light_listen, "tcp/127.0.0.1:7449");
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
                15,
                "used twice",
            ),
            (GOOD.replace("[[lane]]", "[[lane]]\nwidth = 641"), 6, "even"),
            // The planarity cue's lane geometry: a focal length of 0 would put every face at 0 m.
            (
                GOOD.replace(
                    "[[lane]]",
                    "[[lane]]\ngeometry = { focal_px = 0.0, aim_deg = 10.0 }",
                ),
                6,
                "focal_px",
            ),
            (
                GOOD.replace("[[lane]]", "[[lane]]\ngeometry = { focal_px = 900.0 }"),
                5,
                "aim_deg",
            ),
            ("[station\n".to_owned(), 1, ""),
            // No silent plain links: certificates or an explicit insecure, and endpoints to match.
            (
                GOOD.replace("certs = \"/tmp/certs\"", ""),
                0,
                "gated certs init",
            ),
            (
                GOOD.replace("certs = \"/tmp/certs\"", "certs = \"/c\"\ninsecure = true"),
                0,
                "contradict",
            ),
            (
                format!("{GOOD}listen = [\"tcp/127.0.0.1:7447\"]\n"),
                0,
                "tls/HOST:PORT",
            ),
            (
                GOOD.replace(
                    "certs = \"/tmp/certs\"",
                    "insecure = true\nlisten = [\"tls/127.0.0.1:7447\"]",
                ),
                0,
                "tcp/HOST:PORT",
            ),
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
        let e = StationConfig::parse(&format!("{GOOD}[pad]\nrelief = 3.0\n"), "p.toml")
            .expect_err("relief");
        assert!(e.to_string().contains("relief"));
        // A lane with geometry hands it to its deciders, with the frame's centre.
        let c = StationConfig::parse(
            &GOOD.replace(
                "[[lane]]",
                "[[lane]]\ngeometry = { focal_px = 900.0, aim_deg = 12.0 }",
            ),
            "g.toml",
        )
        .expect("geometry");
        let planar = c.gate_lanes()[0].fusion.pad.planar;
        assert_eq!(
            planar.geometry.map(|g| (g.aim_deg, g.decide_by_m)),
            Some((12.0, 0.8))
        );
        assert_eq!(planar.centre_x, 320.0);
        let e = StationConfig::load(Path::new("/nonexistent/station.toml")).expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/station.toml:0: cannot read")
        );
    }

    /// `[lane.lower]`: a second capture stream after every lane's own, its zone in its own frame,
    /// and each bad key named with its line.
    #[test]
    fn a_lower_camera_is_a_second_stream_of_its_lane() {
        use crate::decide::View;
        let two = GOOD.replace(
            "[store]",
            "[lane.lower]\nsource = \"test:pattern=ball\"\nzone = [0.0, 0.5, 1.0, 1.0]\nbelow_m = 0.5\ntilt_deg = 12.0\nfocal_px = 473.0\n\n\
             [[lane]]\nid = \"L2\"\nrole = \"exit\"\nsource = \"test:\"\n\n[store]",
        );
        let c = StationConfig::parse(&two, "two.toml").expect("two cameras");
        let ids: Vec<String> = c.cameras().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["L1", "L2", "L1/lower"]);
        assert_eq!(
            c.streams(),
            [(0, View::Upper), (1, View::Upper), (0, View::Lower)]
        );
        let lanes = c.gate_lanes();
        let lower = lanes[0].lower.expect("lane L1's lower camera");
        assert_eq!(lower.zone, crate::decide::BBox([0.0, 240.0, 640.0, 480.0]));
        assert_eq!(lower.geometry.tilt_deg, 12.0);
        assert!(lanes[1].lower.is_none());
        for (bad, key) in [
            ("below_m = 0.5", "below_m = 7.0"),
            (
                "source = \"test:pattern=ball\"\nzone",
                "source = \"http://x\"\nzone",
            ),
            (
                "source = \"test:pattern=ball\"\nzone",
                "source = \"test:\"\nzone",
            ),
            ("zone = [0.0, 0.5, 1.0, 1.0]", "zone = [0.0, 0.5, 1.0, 0.2]"),
            ("focal_px = 473.0", "focal_px = 473.0\nheight = 3"),
        ] {
            let e = StationConfig::parse(&two.replace(bad, key), "bad.toml").expect_err(key);
            let m = e.to_string();
            assert!(m.starts_with("bad.toml:1"), "{m}");
            assert!(
                [
                    "below_m",
                    "lane.lower.source",
                    "lower.zone",
                    "height",
                    "own source"
                ]
                .iter()
                .any(|k| m.contains(k)),
                "{m}"
            );
        }
        let e = StationConfig::parse(&two.replace("below_m = 0.5\n", ""), "b.toml")
            .expect_err("below_m is required");
        assert!(e.to_string().contains("below_m"), "{e}");
    }
}
