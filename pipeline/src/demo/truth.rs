//! The parts of a footage folder's `truth.json` (docs/footage.md) the station side reads: the lanes
//! and their files, who is enrolled with which photo and ticket, and what each walker should get.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Truth {
    pub version: u32,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub lanes: Vec<TruthLane>,
    #[serde(default)]
    pub enrol: Vec<TruthEnrol>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthLane {
    pub lane: String,
    pub file: String,
    #[serde(default)]
    pub scenario: String,
    /// The lane camera's geometry (version 3); absent or without a focal length, the station
    /// runs the lane without the planarity cue.
    #[serde(default)]
    pub camera: Option<TruthCamera>,
    /// The lane's lower camera, when the footage has one (`gate-calibrate footage --lower-camera`).
    #[serde(default)]
    pub lower: Option<TruthLower>,
    #[serde(default)]
    pub walkers: Vec<TruthWalker>,
}

/// A lane's lower camera: its recording and where it stands relative to the lane's camera.
#[derive(Debug, Clone, Deserialize)]
pub struct TruthLower {
    pub file: String,
    pub below_m: f32,
    #[serde(default)]
    pub tilt_deg: f32,
    pub focal_px: f32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct TruthCamera {
    pub offset_m: f32,
    pub focal_px: f32,
    #[serde(default)]
    pub aim_deg: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthWalker {
    pub walker: String,
    pub identity: String,
    pub enrolled: bool,
    #[serde(default)]
    pub first_frame: u64,
    #[serde(default)]
    pub last_frame: u64,
    #[serde(default)]
    pub mask: bool,
    #[serde(default)]
    pub group: Option<serde_json::Value>,
    #[serde(default)]
    pub lead: bool,
    pub expected: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// The attack species when the walker is a picture of `identity` held up.
    #[serde(default)]
    pub attack: Option<String>,
    /// `phone`, `child` or `wheelchair`; absent for a walker standing upright.
    #[serde(default)]
    pub posture: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthEnrol {
    pub identity: String,
    pub photo: String,
    #[serde(default)]
    pub ticket: String,
    /// Which face of the photo (x, y, w, h), for photos with several people.
    #[serde(default)]
    pub face: Option<[f32; 4]>,
}

#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("{} (generate footage with `gate-calibrate footage`, or run scripts/setup)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: truth version {version} (this gated reads 1 to 4)", path.display())]
    Version { path: PathBuf, version: u32 },
}

impl Truth {
    pub fn load(dir: &Path) -> Result<Self, TruthError> {
        let path = dir.join("truth.json");
        let text = std::fs::read_to_string(&path).map_err(|source| TruthError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// A truth file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TruthError> {
        let t: Truth = serde_json::from_str(text).map_err(|source| TruthError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        // Version 2 added attacks (`expected: attack`, `attack`); version 3 heads with depth and
        // the lane camera's geometry (`camera`); version 4 changed no field, only the pictures
        // (the encoder on one thread, so a seed always gives the same frames). Older files have
        // neither attacks nor geometry.
        if !(1..=4).contains(&t.version) {
            return Err(TruthError::Version {
                path: path.to_path_buf(),
                version: t.version,
            });
        }
        Ok(t)
    }

    /// A photo path from the truth file: absolute as written, else relative to the workspace the
    /// footage was made in (the current folder), else to the footage folder.
    pub fn resolve(dir: &Path, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() || p.exists() {
            return p.to_path_buf();
        }
        let beside = dir.join(p);
        if beside.exists() {
            return beside;
        }
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    }
}
