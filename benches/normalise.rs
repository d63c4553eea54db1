//! Lighting normalisation per frame, where it can run, in one run on one machine: the CPU
//! normaliser (`normalise::cpu`, 1 and 2 threads) beside the WGSL kernel on the station's adapter
//! (upload, four dispatches and the statistics read back), and the kernel plus the read-back of the
//! whole normalised frame, which is what a CPU recogniser needed before the CPU normaliser existed.
//! On a software Vulkan (lavapipe) this is the measurement behind normalising on the CPU when the
//! recogniser runs there; on a real GPU it shows what the kernel costs.
//!
//! `cargo bench -p gate-benches --bench normalise` (BENCH_ITERS=n, default 30; median per frame,
//! timed as `cpu_engine` times: at least that many runs and two seconds, after a warm-up).

#[path = "common/timing.rs"]
mod timing;

use anyhow::{Result, anyhow};
use pipeline::normalise::{
    FrameLayout, Gpu, GpuConfig, LaneNormaliser, LightingKernel, NormaliseParams, cpu,
    normalise_batch, read_outputs,
};
use timing::median_ms;

/// A frame with structure: a gradient, a bright disc and some noise, in every plane.
fn frame(l: &FrameLayout, seed: u32) -> Vec<u8> {
    (0..l.size())
        .map(|i| {
            let n = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 28;
            let x = (i as u32 % l.y_stride) as f32 / l.width as f32;
            (40.0 + 150.0 * x) as u8 + n as u8
        })
        .collect()
}

fn main() -> Result<()> {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let gpu = Gpu::open(&GpuConfig::default()).map_err(|e| anyhow!("{e}"))?;
    let kernel = LightingKernel::new(&gpu);
    let p = NormaliseParams::default();
    println!(
        "adapter {}; median of at least {iters} runs and 2 s after one warm-up; ms per frame\n",
        gpu.adapter_name()
    );
    println!(
        "| size | frames per batch | CPU 1 thread | CPU 2 threads | GPU kernel (stats back) | GPU kernel + frame read back | GPU+read ÷ CPU 2 threads |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (w, h) in [(640, 480), (1280, 720)] {
        let l = FrameLayout::i420(w, h);
        for batch in [1usize, 4] {
            let frames: Vec<Vec<u8>> = (0..batch as u32).map(|s| frame(&l, s)).collect();
            let lanes: Vec<LaneNormaliser> = (0..batch)
                .map(|_| LaneNormaliser::new(&gpu, &kernel, l, &p))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow!("{e}"))?;
            let work: Vec<(&LaneNormaliser, &[u8])> = lanes
                .iter()
                .zip(&frames)
                .map(|(n, f)| (n, f.as_slice()))
                .collect();
            let per = |ms: f64| ms / batch as f64;
            let cpu_run = |threads: usize| {
                median_ms(iters, || {
                    for f in &frames {
                        cpu::normalise(f, &l, &p, threads).map_err(|e| anyhow!("{e}"))?;
                    }
                    Ok(())
                })
            };
            let c1 = per(cpu_run(1)?);
            let c2 = per(cpu_run(2)?);
            let g = per(median_ms(iters, || {
                normalise_batch(&gpu, &kernel, &work).map_err(|e| anyhow!("{e}"))?;
                Ok(())
            })?);
            let refs: Vec<&LaneNormaliser> = lanes.iter().collect();
            let gr = per(median_ms(iters, || {
                normalise_batch(&gpu, &kernel, &work).map_err(|e| anyhow!("{e}"))?;
                read_outputs(&gpu, &refs).map_err(|e| anyhow!("{e}"))?;
                Ok(())
            })?);
            println!(
                "| {w}x{h} | {batch} | {c1:.2} | {c2:.2} | {g:.2} | {gr:.2} | {:.1}× |",
                gr / c2
            );
        }
    }
    Ok(())
}
