//! Face model engine throughput: BlazeFace (front 128, back 256) frames/s and SFace faces/s at
//! several batch sizes, in f32 and f16 storage, on whatever adapter wgpu picks (lavapipe here, the
//! station GPU on the device machine), beside two baselines from the same run: the adapter's
//! buffer-copy bandwidth and our CPU reference on the same inputs. The peers (onnxruntime CPU,
//! dlib, PyTorch on a GPU) run from `benches/peers/` and `benches/gpu/` on the chips this writes.
//!
//! `cargo bench -p gate-benches --bench engine -- [--batches 1,8,32] [--precisions f32,f16]
//!   [--models sface,front,back] [--iters N] [--cpu] [--json FILE] [--export DIR] [--models-dir DIR]`
//!
//! Links no GStreamer (built with `--no-default-features` for the GPU machine).

#[path = "common/bandwidth.rs"]
mod bandwidth;
#[path = "engine/export.rs"]
mod export;
#[path = "common/inputs.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bandwidth::copy_bandwidth;
use engine::face::{BACK, FRONT, SFACE};
use engine::gpu::{GpuModel, Kernels, Precision, open_device};
use serde_json::json;

struct Args {
    batches: Vec<usize>,
    precisions: Vec<Precision>,
    models: Vec<String>,
    iters: usize,
    cpu: bool,
    profile: bool,
    json: Option<PathBuf>,
    export: Option<PathBuf>,
    models_dir: PathBuf,
    fixtures: PathBuf,
}

fn list<T>(s: &str, f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    s.split(',').filter(|p| !p.is_empty()).map(f).collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse() -> Result<Args> {
    let root = if Path::new("engine/tests/fixtures").is_dir() {
        PathBuf::from(".")
    } else {
        workspace()
    };
    let mut a = Args {
        batches: vec![1, 8, 32],
        precisions: vec![Precision::F32, Precision::F16],
        models: vec!["sface".into(), "front".into(), "back".into()],
        iters: 3,
        cpu: false,
        profile: false,
        json: None,
        export: None,
        models_dir: engine::face::models_dir(),
        fixtures: root.join("engine/tests/fixtures"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` appends --bench; the harness has nothing to do with it.
        if flag == "--bench" {
            continue;
        }
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--batches" => {
                a.batches = list(&val()?, |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|b| (1..=256).contains(b))
                        .ok_or_else(|| anyhow!("batch {s:?}: expected 1..=256"))
                })?
            }
            "--precisions" => {
                a.precisions = list(&val()?, |s| s.parse().map_err(|e: String| anyhow!(e)))?
            }
            "--models" => {
                a.models = list(&val()?, |s| match s {
                    "sface" | "front" | "back" => Ok(s.to_owned()),
                    _ => bail!("model {s:?}: expected sface, front or back"),
                })?
            }
            "--iters" => a.iters = val()?.parse().context("--iters")?,
            "--cpu" => a.cpu = true,
            "--profile" => a.profile = true,
            "--json" => a.json = Some(val()?.into()),
            "--export" => a.export = Some(val()?.into()),
            "--models-dir" => a.models_dir = val()?.into(),
            other => bail!("unknown argument {other:?} (see the header of benches/engine.rs)"),
        }
    }
    a.iters = a.iters.max(1);
    Ok(a)
}

fn tile(one_set: &[f32], per_item: usize, n: usize) -> Vec<f32> {
    one_set.iter().copied().cycle().take(per_item * n).collect()
}

struct Row {
    model: &'static str,
    engine: String,
    batch: usize,
    ms_per_batch: f64,
}

impl Row {
    fn items_per_s(&self) -> f64 {
        self.batch as f64 / (self.ms_per_batch / 1e3)
    }
}

/// The ten slowest dispatches and the total per op type.
fn print_profile(p: &[(String, std::time::Duration)]) {
    let total: f64 = p.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let mut by_op: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for (label, d) in p {
        let op = label.rsplit('(').next().unwrap_or("").trim_end_matches(')');
        let e = by_op.entry(op).or_default();
        e.0 += d.as_secs_f64();
        e.1 += 1;
    }
    println!(
        "  profile: {} dispatches, {:.1} ms in total",
        p.len(),
        total * 1e3
    );
    for (op, (t, n)) in by_op {
        println!(
            "    {op:<24} x{n:<4} {:>9.1} ms {:>5.1} %",
            t * 1e3,
            100.0 * t / total
        );
    }
    let mut slow: Vec<_> = p.iter().collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1));
    for (label, d) in slow.iter().take(10) {
        println!("    {label:<40} {:>9.1} ms", d.as_secs_f64() * 1e3);
    }
}

fn main() -> Result<()> {
    let args = parse()?;
    let (device, queue) = open_device()?;
    let info = device.adapter_info();
    let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu;
    println!(
        "adapter: {} ({:?}, {:?}); f16 storage: {}",
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
    let inp = fixtures::inputs(&args.fixtures)?;
    let models: Vec<(&'static str, &str, usize, &[f32])> = args
        .models
        .iter()
        .map(|m| match m.as_str() {
            "sface" => ("sface", SFACE, 3 * 112 * 112, &inp.chips[..]),
            "front" => ("front", FRONT, 128 * 128 * 3, &inp.front[..]),
            _ => ("back", BACK, 256 * 256 * 3, &inp.back[..]),
        })
        .collect();
    let mut rows = Vec::new();
    let mut kernels = Vec::new();
    for &p in &args.precisions {
        match Kernels::with_precision(&device, p) {
            Ok(k) => kernels.push((p, k)),
            Err(e) => println!("skipping {p:?}: {e}"),
        }
    }
    for (name, file, per_item, data) in &models {
        let graph = engine::load(&args.models_dir.join(file))
            .with_context(|| format!("loading {file} (run scripts/setup)"))?;
        if let Some(dir) = &args.export {
            export::export(&graph, name, dir)?;
        }
        for (p, k) in &kernels {
            for &batch in &args.batches {
                let input = tile(data, *per_item, batch);
                let model = GpuModel::new(&device, k, &graph, batch)?;
                // First run compiles nothing (pipelines exist) but touches every buffer once.
                let first = model.run(&device, &queue, k, &input)?;
                if let Some(dir) = &args.export {
                    let out: Vec<u8> = first[0].iter().flat_map(|v| v.to_le_bytes()).collect();
                    std::fs::write(dir.join(format!("ours_{name}_{p:?}_b{batch}.f32")), out)?;
                }
                if args.profile {
                    print_profile(&model.profile(&device, &queue, k)?);
                }
                let t = Instant::now();
                for _ in 0..args.iters {
                    model.run(&device, &queue, k, &input)?;
                }
                let row = Row {
                    model: name,
                    engine: format!("wgsl-{p:?}").to_lowercase(),
                    batch,
                    ms_per_batch: t.elapsed().as_secs_f64() * 1e3 / args.iters as f64,
                };
                println!(
                    "{:<6} {:<10} batch {:>3}: {:>10.2} ms/batch {:>9.2} items/s",
                    row.model,
                    row.engine,
                    batch,
                    row.ms_per_batch,
                    row.items_per_s()
                );
                rows.push(row);
            }
        }
        if args.cpu {
            // The plain-Rust reference, one item (it runs one image at a time anyway).
            let shape = graph
                .input_shape(0)
                .ok_or_else(|| anyhow!("{file} has no input"))?
                .to_vec();
            let x = engine::Tensor::new(shape, data[..*per_item].to_vec())?;
            let t = Instant::now();
            engine::cpu::run(&graph, &[x])?;
            let row = Row {
                model: name,
                engine: "cpu-reference".into(),
                batch: 1,
                ms_per_batch: t.elapsed().as_secs_f64() * 1e3,
            };
            println!(
                "{:<6} {:<10} batch   1: {:>10.2} ms/batch {:>9.2} items/s",
                row.model,
                row.engine,
                row.ms_per_batch,
                row.items_per_s()
            );
            rows.push(row);
        }
    }
    if let Some(dir) = &args.export {
        // The SFace chips the peers must run on: 32 items, NCHW f32 0–255, tiled like ours.
        let chips: Vec<u8> = tile(&inp.chips, 3 * 112 * 112, 32)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join("chips_32x3x112x112.f32"), chips)?;
    }
    let doc = json!({
        "adapter": info.name, "device_type": format!("{:?}", info.device_type),
        "backend": format!("{:?}", info.backend),
        "copy_bytes_per_s": bw, "iters": args.iters,
        "rows": rows.iter().map(|r| json!({
            "model": r.model, "engine": r.engine, "batch": r.batch,
            "ms_per_batch": r.ms_per_batch, "items_per_s": r.items_per_s(),
        })).collect::<Vec<_>>(),
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
