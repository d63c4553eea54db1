//! Gallery matching throughput (`engine::gpu::gallery`, `gpu/gallery/match.wgsl`): N random unit
//! templates on the GPU, P probes per dispatch, time per dispatch, achieved bandwidth (gallery bytes
//! read per second) and its ratio to the device's buffer-copy bandwidth measured in the same run,
//! beside a CPU brute-force baseline (one core, f32) on the same data.
//!
//! `cargo bench -p gate-benches --bench matching -- [--sizes 10000,100000,1000000]
//!   [--probes 1,8,64] [--precisions f32,f16] [--iters N] [--cpu-max N] [--json FILE]
//!   [--no-narrowing]`
//!
//! Then the effect of narrowing the candidates to ticket holders on the false-positive
//! identification rate (`narrowing_effect`).
//!
//! A "dispatch" is one matching of P probes: the scan of every page plus the reduction, recorded
//! `iters` times into one command buffer and submitted once (the time excludes upload, readback and
//! submit overhead, like the copy bandwidth it is compared with). "GB/s" counts the gallery bytes
//! the dispatch has to read: N·128·4 (f32) or N·128·2 (f16) per probe group of 8, i.e. once per
//! dispatch for P ≤ 8. The CPU baseline scans N·P dot products (f32, one thread) and is skipped
//! above `--cpu-max` rows × probes (default 64·10⁶).
//!
//! Links no GStreamer.

#[path = "common/bandwidth.rs"]
mod bandwidth;
#[path = "common/rows.rs"]
mod rows;

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bandwidth::copy_bandwidth;
use engine::gpu::gallery::{DIM, Gallery, GalleryOptions, Match};
use engine::gpu::{Precision, open_device};
use rows::unit_rows;
use serde_json::json;

struct Args {
    sizes: Vec<usize>,
    probes: Vec<usize>,
    precisions: Vec<Precision>,
    iters: usize,
    cpu_max: u64,
    json: Option<std::path::PathBuf>,
    narrowing: bool,
}

fn list<T>(s: &str, f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    s.split(',').filter(|p| !p.is_empty()).map(f).collect()
}

fn parse() -> Result<Args> {
    let mut a = Args {
        sizes: vec![10_000, 100_000, 1_000_000],
        probes: vec![1, 8, 64],
        precisions: vec![Precision::F32, Precision::F16],
        iters: 0,
        cpu_max: 64_000_000,
        json: None,
        narrowing: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        if flag == "--no-narrowing" {
            a.narrowing = false;
            continue;
        }
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        let count = |s: &str, max: usize| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| anyhow!("{s:?}: expected 1..={max}"))
        };
        match flag.as_str() {
            "--sizes" => a.sizes = list(&val()?, |s| count(s, 1 << 26))?,
            "--probes" => a.probes = list(&val()?, |s| count(s, 4096))?,
            "--precisions" => {
                a.precisions = list(&val()?, |s| s.parse().map_err(|e: String| anyhow!(e)))?
            }
            "--iters" => a.iters = val()?.parse().context("--iters")?,
            "--cpu-max" => a.cpu_max = val()?.parse().context("--cpu-max")?,
            "--json" => a.json = Some(val()?.into()),
            other => bail!("unknown argument {other:?} (see the header of benches/matching.rs)"),
        }
    }
    Ok(a)
}

/// Best and second-best row by plain f32 dot products (one thread): the CPU baseline.
fn cpu_top2(templates: &[f32], probes: &[f32]) -> Vec<(u32, u32)> {
    probes
        .chunks_exact(DIM)
        .map(|p| {
            let (mut b1, mut b2) = ((u32::MAX, f32::MIN), (u32::MAX, f32::MIN));
            for (r, t) in templates.chunks_exact(DIM).enumerate() {
                let mut acc = [0f32; 8];
                for (tc, pc) in t.chunks_exact(8).zip(p.chunks_exact(8)) {
                    for j in 0..8 {
                        acc[j] += tc[j] * pc[j];
                    }
                }
                let s: f32 = acc.iter().sum();
                if s > b1.1 {
                    b2 = b1;
                    b1 = (r as u32, s);
                } else if s > b2.1 {
                    b2 = (r as u32, s);
                }
            }
            (b1.0, b2.0)
        })
        .collect()
}

/// The effect of narrowing the candidates to ticket holders (`[recognise]
/// narrow_to_ticket_holders`): false-positive identification rate per probe with the whole gallery
/// and with 10 % of it as candidates, measured on the GPU gallery with random unit templates and
/// random non-mated probes, beside the prediction FPIR ≈ 1 − (1 − FMR)^N from the per-comparison
/// FMR measured on the same scores. Random 128-D templates are far easier impostors than faces (their
/// cosines are ~N(0, 1/128)), so the thresholds here are low; what carries over is the scaling with N.
fn narrowing_effect(device: &wgpu::Device, queue: &wgpu::Queue) -> Result<serde_json::Value> {
    let (n, probes_n) = (20_000usize, 512usize);
    let rows = unit_rows(11, n);
    let probes = unit_rows(12, probes_n);
    let mut g = Gallery::new(device, queue, GalleryOptions::default())?;
    let ids: Vec<u32> = (0..n as u32).collect();
    g.upsert_many(&ids, &rows)?;
    let t = Instant::now();
    let full = g.run_blocking(&probes)?;
    let full_s = t.elapsed().as_secs_f64();
    let holders: Vec<u32> = ids.iter().copied().filter(|i| i % 10 == 0).collect();
    g.set_candidates(Some(&holders))?;
    let t = Instant::now();
    let narrowed = g.run_blocking(&probes)?;
    let narrowed_s = t.elapsed().as_secs_f64();
    // Every score once on the CPU, for the per-comparison FMR.
    let mut scores = Vec::with_capacity(n * probes_n);
    for p in probes.chunks_exact(DIM) {
        for r in rows.chunks_exact(DIM) {
            scores.push(p.iter().zip(r).map(|(a, b)| a * b).sum::<f32>());
        }
    }
    println!(
        "\nCandidate narrowing (N = {n}, {} ticket holders, {probes_n} non-mated random probes; scan {:.0} ms full, {:.0} ms narrowed)",
        holders.len(),
        full_s * 1e3,
        narrowed_s * 1e3
    );
    println!("| T | FMR per comparison | FPIR full (predicted) | FPIR narrowed (predicted) |");
    println!("|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for t in [0.30f32, 0.33, 0.36] {
        let fmr = scores.iter().filter(|s| **s >= t).count() as f64 / scores.len() as f64;
        let rate = |m: &[Match]| {
            m.iter()
                .filter(|m| m.best().is_some_and(|b| b.similarity >= t))
                .count() as f64
                / probes_n as f64
        };
        let predict = |k: usize| 1.0 - (1.0 - fmr).powi(k as i32);
        let (f, nw) = (rate(&full), rate(&narrowed));
        println!(
            "| {t:.2} | {fmr:.2e} | {f:.3} ({:.3}) | {nw:.3} ({:.3}) |",
            predict(n),
            predict(holders.len())
        );
        out.push(
            json!({"threshold": t, "fmr": fmr, "fpir_full": f, "fpir_full_predicted": predict(n),
            "fpir_narrowed": nw, "fpir_narrowed_predicted": predict(holders.len())}),
        );
    }
    Ok(
        json!({"n": n, "candidates": holders.len(), "probes": probes_n,
        "scan_ms_full": full_s * 1e3, "scan_ms_narrowed": narrowed_s * 1e3, "thresholds": out}),
    )
}

fn main() -> Result<()> {
    let args = parse()?;
    let (device, queue) = open_device()?;
    let info = device.adapter_info();
    let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu;
    println!(
        "adapter: {} ({:?}, {:?}), SHADER_F16: {}",
        info.name,
        info.device_type,
        info.backend,
        device.features().contains(wgpu::Features::SHADER_F16)
    );
    let bw = copy_bandwidth(&device, &queue, cpu_adapter)?;
    println!(
        "buffer copy: {:.2} GB/s (bytes copied per second)",
        bw / 1e9
    );
    println!(
        "\n| precision | N | P | pages | ms/dispatch | GB/s | of copy bw | probes·rows/s | CPU ms (1 core, f32) | GPU top-1 = CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    let mut cpu_ms: std::collections::HashMap<(usize, usize), f64> = Default::default();
    for &n in &args.sizes {
        let templates = unit_rows(n as u64, n);
        let subjects: Vec<u32> = (0..n as u32).collect();
        for &precision in &args.precisions {
            let opts = GalleryOptions {
                precision,
                initial_rows: n as u32,
                ..Default::default()
            };
            let mut g = match Gallery::new(&device, &queue, opts) {
                Ok(g) => g,
                Err(e) => {
                    println!("{precision:?} N={n}: skipped: {e}");
                    continue;
                }
            };
            if let Err(e) = g.upsert_many(&subjects, &templates) {
                println!("{precision:?} N={n}: skipped: {e}");
                continue;
            }
            for &p in &args.probes {
                let probes = unit_rows(1_000_000_007 + p as u64, p);
                let d = g.prepare(&probes)?;
                // One warm-up with readback (also checks the result), then `iters` in one submit.
                let mut enc = device.create_command_encoder(&Default::default());
                g.record(&mut enc.begin_compute_pass(&Default::default()), &d);
                g.record_readback(&mut enc, &d);
                let t = Instant::now();
                queue.submit([enc.finish()]);
                let got = g.results(&d)?;
                let first = t.elapsed().as_secs_f64();
                let iters = if args.iters > 0 {
                    args.iters
                } else {
                    // About a second of device time, 1 to 100 dispatches.
                    ((1.0 / first.max(1e-6)) as usize).clamp(1, 100)
                };
                let mut enc = device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    for _ in 0..iters {
                        g.record(&mut pass, &d);
                    }
                }
                let t = Instant::now();
                queue.submit([enc.finish()]);
                device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| anyhow!("poll: {e}"))?;
                let s = t.elapsed().as_secs_f64() / iters as f64;
                let gbs = d.gallery_bytes as f64 / s;
                let key = (n, p);
                let (cpu, agree) = if (n as u64) * (p as u64) <= args.cpu_max {
                    let t = Instant::now();
                    let want = cpu_top2(&templates, &probes);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    cpu_ms.insert(key, ms);
                    let agree = (got.iter().zip(&want))
                        .filter(|(m, w)| m.best().map(|c| c.row) == Some(w.0))
                        .count();
                    (Some(ms), Some(format!("{agree}/{p}")))
                } else {
                    (cpu_ms.get(&key).copied(), None)
                };
                let found = got
                    .iter()
                    .filter(|m| matches!(m, Match::Found { .. }))
                    .count();
                if found != p {
                    bail!("{precision:?} N={n} P={p}: {found} of {p} probes found a match");
                }
                let cpu_s = cpu.map_or("skipped".into(), |ms| format!("{ms:.1}"));
                let agree_s = agree.clone().unwrap_or_else(|| "–".into());
                println!(
                    "| {} | {} | {} | {} | {:.3} | {:.2} | {:.0} % | {:.3e} | {} | {} |",
                    format!("{precision:?}").to_lowercase(),
                    n,
                    p,
                    g.pages(),
                    s * 1e3,
                    gbs / 1e9,
                    100.0 * gbs / bw,
                    d.comparisons as f64 / s,
                    cpu_s,
                    agree_s
                );
                rows.push(json!({
                    "precision": format!("{precision:?}").to_lowercase(), "n": n, "probes": p,
                    "pages": g.pages(), "iters": iters, "ms_per_dispatch": s * 1e3,
                    "gallery_bytes": d.gallery_bytes, "gb_per_s": gbs / 1e9,
                    "of_copy_bandwidth": gbs / bw, "cpu_ms": cpu, "top1_agree": agree,
                }));
            }
        }
    }
    let narrowing = if args.narrowing {
        narrowing_effect(&device, &queue)?
    } else {
        serde_json::Value::Null
    };
    let doc = json!({
        "adapter": info.name, "device_type": format!("{:?}", info.device_type),
        "copy_bytes_per_s": bw, "rows": rows, "narrowing": narrowing,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
