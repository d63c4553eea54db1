//! The decide stage's settings: `[decision]` in the station file, and what it needs of each lane.

use serde::Deserialize;

use super::{
    BBox, FusionParams, FusionRule, LaneGeometry, LowerGeometry, PadMode, PadParams, PlanarParams,
    QualityGates,
};

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
    /// How a track's frames become one identification: `vote` (k confident frames agree) or
    /// `mean` (the best frames' embeddings averaged and matched again; docs/evaluation.md).
    pub fusion: FusionRule,
    /// `mean`: how many of the window's best frames are averaged.
    pub fusion_top: usize,
    /// `mean`: the threshold on the fused similarity, required with that rule. Set it where the
    /// fused embeddings let through no more strangers than one frame does at `threshold`:
    /// `gate-calibrate eval --fuse N --threshold T` prints it (docs/evaluation.md). Station-wide:
    /// a lane that overrides `threshold` keeps this one.
    pub mean_threshold: Option<f32>,
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
    /// The card reader beside the face: how long (ms) the first credential that paid for a lane's
    /// passage holds it, so that the same passenger's other credential (their card after a face
    /// grant, their face after a tap) is not charged again (docs/tickets.md, "IC cards beside
    /// faces"). About the time from paying to leaving the flap.
    pub card_window_ms: u64,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        let f = FusionParams::default();
        Self {
            threshold: f.threshold,
            margin: f.margin,
            k: f.k,
            window: f.window,
            fusion: f.rule,
            fusion_top: f.top,
            mean_threshold: None,
            min_eye_px: f.gates.min_eye_px,
            min_sharpness: f.gates.min_sharpness,
            max_abs_yaw: f.gates.max_abs_yaw,
            luma_min: f.gates.luma.0,
            luma_max: f.gates.luma.1,
            lost_after_ms: 500,
            fare_table: None,
            trips: true,
            confirm_ms: 300,
            card_window_ms: 3_000,
        }
    }
}

impl DecisionConfig {
    /// The fusion parameters of one lane, with its overrides of threshold, margin and k applied.
    pub fn fusion(
        &self,
        threshold: Option<f32>,
        margin: Option<f32>,
        k: Option<usize>,
        pad: PadParams,
    ) -> FusionParams {
        FusionParams {
            threshold: threshold.unwrap_or(self.threshold),
            margin: margin.unwrap_or(self.margin),
            k: k.unwrap_or(self.k),
            window: self.window,
            rule: self.fusion,
            top: self.fusion_top,
            mean_threshold: self.mean_threshold.unwrap_or(f32::NAN),
            gates: QualityGates {
                min_eye_px: self.min_eye_px,
                min_sharpness: self.min_sharpness,
                max_abs_yaw: self.max_abs_yaw,
                luma: (self.luma_min, self.luma_max),
            },
            pad,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !(-1.0..=1.0).contains(&self.threshold)
            || !(0.0..=2.0).contains(&self.margin)
            || !(1..=64).contains(&self.k)
            || self.window < self.k
            || self.window > 256
            || self.confirm_ms > 5_000
            || !(500..=30_000).contains(&self.card_window_ms)
        {
            return Err(format!(
                "[decision]: threshold must be in -1..=1 (is {}), margin 0..=2 (is {}), k 1..=64 (is {}), window k..=256 (is {}), confirm_ms 0..=5000 (is {}), card_window_ms 500..=30000 (is {})",
                self.threshold,
                self.margin,
                self.k,
                self.window,
                self.confirm_ms,
                self.card_window_ms
            ));
        }
        match (self.fusion, self.mean_threshold) {
            (FusionRule::Mean, _) if !(1..=self.window).contains(&self.fusion_top) => Err(format!(
                "[decision]: fusion_top must be in 1..=window (is {}, window {})",
                self.fusion_top, self.window
            )),
            (FusionRule::Mean, None) => Err(
                "[decision] fusion = \"mean\" needs mean_threshold: the fused similarity's threshold, from gate-calibrate eval --fuse (docs/evaluation.md)".into(),
            ),
            (_, Some(t)) if !(-1.0..=1.0).contains(&t) => Err(format!(
                "[decision]: mean_threshold must be in -1..=1 (is {t})"
            )),
            _ => Ok(()),
        }
    }
}

/// `[pad]`: presentation-attack detection (docs/pad.md). A lane may override mode and threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PadConfig {
    /// `enforce` (default): a grant needs the face shown live, a likely attack closes the door
    /// and raises the alarm. `observe`: scored and reported, never acted on. `off`: not run.
    pub mode: PadMode,
    /// Mean live probability (0–1) over a track's scored frames that counts as live.
    pub threshold: f32,
    /// Below this mean the track is an attack: door held, alarm. Between the two: `not_decided`.
    pub attack_below: f32,
    /// Scored frames a track needs before it is judged; with fewer, an identified walker is
    /// `not_decided` (`liveness not shown`), never opened.
    pub min_frames: usize,
    /// A track that left with fewer scored frames than `min_frames` is an attack when their mean
    /// is below this (0 turns it off; above `attack_below` it is taken as `attack_below`).
    pub attack_alone_below: f32,
    /// Scored frames a track needs, while the walker is in view, before a low mean is an attack
    /// (a track that leaves sooner is judged on `min_frames`): a far face's first scores can run
    /// low, and an alarm at an honest passenger cannot be taken back.
    pub attack_frames: usize,
    /// A track's latest scores that count.
    pub window: usize,
    /// Planarity cue, on lanes with `geometry`: the relief slope that parts a flat picture (about
    /// 0, refused as an attack) from a head (about 1, needed for a grant); docs/pad.md.
    pub relief: f32,
    /// Planarity cue: the least range of viewing angles (degrees) over a track for a verdict.
    pub min_view_deg: f32,
    /// Two-camera cue, on lanes with `[lane.lower]` (docs/pad.md): the slope of the views' relief
    /// difference that parts a flat picture (about 0) from a head (0.4–1.3), with confidence...
    pub stereo_relief: f32,
    /// ...and the least slope for a grant at the door when neither was shown with confidence.
    pub stereo_near: f32,
    /// Two-camera cue: the pixels' structure (pixels of a 64-px face patch) below which a face is
    /// a picture, flat or bent, whatever the keypoints' slope (an alarm on its own below two
    /// thirds of it); 0 leaves the pixels unmeasured (docs/pad.md, "Frames averaged on the
    /// face").
    pub stereo_parallax: f32,
    /// Folder with the two networks (default: `$GATE_PAD`, else the workspace's `assets/pad/`).
    pub models: Option<std::path::PathBuf>,
}

impl Default for PadConfig {
    fn default() -> Self {
        let p = PadParams::default();
        Self {
            mode: p.mode,
            threshold: p.threshold,
            attack_below: p.attack_below,
            min_frames: p.min_frames,
            attack_alone_below: p.attack_alone_below,
            attack_frames: p.attack_frames,
            window: p.window,
            relief: p.planar.relief,
            min_view_deg: p.planar.min_view_deg,
            stereo_relief: p.planar.stereo_relief,
            stereo_near: p.planar.stereo_near,
            stereo_parallax: p.planar.stereo_parallax,
            models: None,
        }
    }
}

impl PadConfig {
    /// One lane's parameters, with its overrides applied.
    pub fn params(
        &self,
        mode: Option<PadMode>,
        threshold: Option<f32>,
        geometry: Option<LaneGeometry>,
        lower: Option<LowerGeometry>,
        [centre_x, centre_y]: [f32; 2],
    ) -> PadParams {
        let threshold = threshold.unwrap_or(self.threshold);
        // A lane whose live threshold is lower than the attack threshold judges by it alone.
        let attack_below = self.attack_below.min(threshold);
        PadParams {
            mode: mode.unwrap_or(self.mode),
            threshold,
            attack_below,
            min_frames: self.min_frames,
            attack_alone_below: self.attack_alone_below.min(attack_below),
            attack_frames: self.attack_frames,
            window: self.window,
            planar: PlanarParams {
                geometry,
                centre_x,
                relief: self.relief,
                min_view_deg: self.min_view_deg,
                lower,
                centre_y,
                stereo_relief: self.stereo_relief,
                stereo_near: self.stereo_near,
                stereo_parallax: self.stereo_parallax,
                ..PlanarParams::default()
            },
        }
    }

    pub fn models_dir(&self) -> std::path::PathBuf {
        self.models
            .clone()
            .unwrap_or_else(engine::face::pad::assets_dir)
    }

    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold)
            || !(0.0..=self.threshold).contains(&self.attack_below)
            || !(1..=64).contains(&self.min_frames)
            || !(0.0..=1.0).contains(&self.attack_alone_below)
            || self.window < self.min_frames
            || self.window > 256
            || !(self.min_frames..=self.window).contains(&self.attack_frames)
            || !(0.0..=2.0).contains(&self.relief)
            || !(1.0..=60.0).contains(&self.min_view_deg)
            || !(0.0..=2.0).contains(&self.stereo_relief)
            || !(0.0..=2.0).contains(&self.stereo_near)
            || !(0.0..=8.0).contains(&self.stereo_parallax)
        {
            return Err(format!(
                "[pad]: threshold must be in 0..=1 (is {}), attack_below 0..=threshold (is {}), min_frames 1..=64 (is {}), attack_alone_below 0..=1 (is {}), window min_frames..=256 (is {}), attack_frames min_frames..=window (is {}), relief 0..=2 (is {}), min_view_deg 1..=60 (is {}), stereo_relief 0..=2 (is {}), stereo_near 0..=2 (is {}), stereo_parallax 0..=8 (is {})",
                self.threshold,
                self.attack_below,
                self.min_frames,
                self.attack_alone_below,
                self.window,
                self.attack_frames,
                self.relief,
                self.min_view_deg,
                self.stereo_relief,
                self.stereo_near,
                self.stereo_parallax
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneRole {
    Entry,
    Exit,
}

/// What the deciders need of one lane (the station file's `[[lane]]` gives it).
#[derive(Debug, Clone)]
pub struct GateLane {
    pub id: String,
    pub role: LaneRole,
    /// Where a person counts as inside the lane, in frame pixels.
    pub zone: BBox,
    pub fusion: FusionParams,
    /// The lane's lower camera, when it has one (`[lane.lower]`).
    pub lower: Option<super::LowerView>,
}
