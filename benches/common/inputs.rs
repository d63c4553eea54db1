//! The committed golden inputs the engine benchmarks share (engine/tests/fixtures), so that every
//! runtime in a table sees the same pixels.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The committed golden inputs (engine/tests/fixtures), tiled to `n` items: 4 SFace chips (NCHW,
/// 0–255) and 2 BlazeFace images (NHWC, [−1, 1]; the back model gets them upsampled 2×).
pub struct Inputs {
    pub chips: Vec<f32>,
    pub front: Vec<f32>,
    pub back: Vec<f32>,
}

pub fn inputs(dir: &Path) -> Result<Inputs> {
    let raw = std::fs::read(dir.join("sface_chips.u8")).context("sface_chips.u8")?;
    let (n, s) = (4usize, 112usize);
    if raw.len() != n * s * s * 3 {
        bail!("sface_chips.u8 has {} bytes", raw.len());
    }
    let mut chips = vec![0f32; raw.len()];
    for b in 0..n {
        for p in 0..s * s {
            for c in 0..3 {
                chips[(b * 3 + c) * s * s + p] = f32::from(raw[(b * s * s + p) * 3 + c]);
            }
        }
    }
    let img = std::fs::read(dir.join("blazeface_inputs.u8")).context("blazeface_inputs.u8")?;
    if img.len() != 2 * 128 * 128 * 3 {
        bail!("blazeface_inputs.u8 has {} bytes", img.len());
    }
    let front: Vec<f32> = img.iter().map(|&v| f32::from(v) / 127.5 - 1.0).collect();
    let mut back = Vec::with_capacity(front.len() * 4);
    for i in 0..2 {
        let one = &front[i * 128 * 128 * 3..][..128 * 128 * 3];
        for y in 0..256 {
            for x in 0..256 {
                let at = ((y / 2) * 128 + x / 2) * 3;
                back.extend_from_slice(&one[at..at + 3]);
            }
        }
    }
    Ok(Inputs { chips, front, back })
}
