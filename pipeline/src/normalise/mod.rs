//! normalise: camera frame → lighting statistics and the lighting-normalised RGBA frame that later
//! stages (detect, align, embed) consume. Runs on the station's one wgpu device.

pub mod cpu;
pub mod gpu;
pub mod lighting;
pub mod reference;

pub use gpu::{Gpu, GpuConfig, GpuError};
pub use lighting::{
    FrameResult, LaneNormaliser, LightingKernel, NormaliseError, normalise_batch, read_outputs,
};

use bytemuck::{Pod, Zeroable};

pub use crate::capture::FrameLayout;

/// Tuning of the normaliser (the `[normalise]` config section).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormaliseParams {
    /// CLAHE tiles across and down.
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// Mean luma (0–1) the gamma curve aims for.
    pub target_mean: f32,
    pub gamma_min: f32,
    pub gamma_max: f32,
    /// Histogram bins are capped at clip_limit × (mean bin height) before equalising.
    pub clip_limit: f32,
    /// 0 = gain/gamma only, 1 = full local equalisation.
    pub strength: f32,
    /// Percentiles that define "dark" and "bright" for the gain stretch and the statistics.
    pub dark_q: f32,
    pub bright_q: f32,
    /// Smallest luma range (in 8-bit levels) the gain stretch may expand; stops a flat grey scene being
    /// blown up into noise.
    pub min_range: f32,
}

impl Default for NormaliseParams {
    fn default() -> Self {
        Self {
            tiles_x: 8,
            tiles_y: 8,
            target_mean: 0.45,
            gamma_min: 0.4,
            gamma_max: 2.5,
            clip_limit: 2.5,
            strength: 0.6,
            dark_q: 0.02,
            bright_q: 0.98,
            min_range: 64.0,
        }
    }
}

impl NormaliseParams {
    pub fn check(&self) -> Result<(), String> {
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        if !(1..=16).contains(&self.tiles_x) || !(1..=16).contains(&self.tiles_y) {
            return Err("tiles_x and tiles_y must be 1..=16".into());
        }
        if !(0.05..=0.95).contains(&self.target_mean) {
            return Err("target_mean must be within 0.05..=0.95".into());
        }
        if !(self.gamma_min > 0.0
            && self.gamma_min <= 1.0
            && self.gamma_max >= 1.0
            && self.gamma_max <= 10.0)
        {
            return Err("need 0 < gamma_min <= 1 <= gamma_max <= 10".into());
        }
        if !(1.0..=64.0).contains(&self.clip_limit) {
            return Err("clip_limit must be within 1..=64".into());
        }
        if !unit(self.strength)
            || !unit(self.dark_q)
            || !unit(self.bright_q)
            || self.dark_q >= self.bright_q
        {
            return Err(
                "strength, dark_q, bright_q must be within 0..=1 with dark_q < bright_q".into(),
            );
        }
        if !(1.0..=255.0).contains(&self.min_range) {
            return Err("min_range must be within 1..=255".into());
        }
        Ok(())
    }
}

/// Tile grid actually used for a frame: tile size rounds up, so the count may shrink to keep every
/// tile non-empty (a 20-pixel-wide frame cannot have 16 tiles of 2 pixels and 0 pixels).
pub fn tile_grid(width: u32, height: u32, p: &NormaliseParams) -> (u32, u32, u32, u32) {
    let tile_w = width.div_ceil(p.tiles_x).max(1);
    let tile_h = height.div_ceil(p.tiles_y).max(1);
    (
        width.div_ceil(tile_w),
        height.div_ceil(tile_h),
        tile_w,
        tile_h,
    )
}

/// Lighting statistics of one frame, as the GPU writes them (layout shared with `Stats` in the shader).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct LightingStats {
    pub hist: [u32; 256],
    pub pixels: u32,
    /// Luma level (0–255) at the dark percentile.
    pub dark: u32,
    /// Luma level (0–255) at the bright percentile.
    pub bright: u32,
    pub _pad: u32,
    /// Mean luma of the frame before normalisation, 0–1.
    pub mean: f32,
    pub stretched_mean: f32,
    pub gamma: f32,
    pub gain: f32,
}

#[cfg(test)]
mod lighting_tests;
