//! `gate-calibrate bench`: SFace throughput of the engine's CPU reference on chips from a `.npy` file
//! (N×3×112×112 float32, 0–255), the same file `benches/peers/ort_bench.py` feeds onnxruntime.
//! Prints one JSON line per batch size: {peer, batch, items_per_s, threads}.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use engine::{Tensor, cpu};

pub fn run(models: &Path, chips: &Path, batches: &[usize], min_seconds: f64) -> Result<()> {
    let (shape, data) = crate::npy::read_f32(chips)?;
    let chip = 3 * 112 * 112;
    if shape.len() != 4 || shape[1..] != [3, 112, 112] || shape[0] == 0 {
        bail!(
            "{}: expected N×3×112×112 chips, got {shape:?}",
            chips.display()
        );
    }
    let graph = engine::load(&models.join(engine::face::SFACE))?;
    for &b in batches {
        if b == 0 {
            bail!("batch sizes must be positive");
        }
        // The first b chips, cycling through the file when it has fewer.
        let input: Vec<f32> = (0..b)
            .flat_map(|i| {
                let k = i % shape[0];
                data[k * chip..(k + 1) * chip].iter().copied()
            })
            .collect();
        let x = Tensor::new(vec![b, 3, 112, 112], input)?;
        if b < 8 {
            cpu::run(&graph, std::slice::from_ref(&x))?; // warm-up
        }
        let t0 = Instant::now();
        let mut runs = 0usize;
        while runs == 0 || t0.elapsed().as_secs_f64() < min_seconds {
            cpu::run(&graph, std::slice::from_ref(&x))?;
            runs += 1;
        }
        let s = t0.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "peer": "gate-engine-cpu-reference", "batch": b,
                "items_per_s": (runs * b) as f64 / s, "threads": 1, "runs": runs,
            })
        );
    }
    Ok(())
}
