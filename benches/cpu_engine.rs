//! The CPU inference path against the best CPU runtimes, in one run on one machine: our fast
//! executor (`engine::fast`) at 1 and 2 threads, our reference executor (the oracle, 1 thread), and
//! onnxruntime and OpenVINO (PyPI CPU wheels, `benches/peers/cpu_peers.py`) at 1 and 2 threads, on
//! the same ONNX files and the same input tensors (the committed golden inputs). Every figure of the
//! table is measured in this run; the ratio is ours ÷ theirs in inferences per second (≥ 1: we are
//! as fast or faster).
//!
//! `cargo bench -p gate-benches --bench cpu_engine -- [--models sface,front,back] [--iters N]
//!   [--python PY] [--no-peers] [--models-dir DIR]`
//!
//! The peers need a Python with numpy, onnx, onnxruntime and openvino: `benches/peers/fetch_cpu.sh`
//! installs them into models/peers/venv (the default `--python`). Links no GStreamer.

#[path = "common/inputs.rs"]
mod fixtures;
#[path = "common/timing.rs"]
mod timing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use engine::Tensor;
use engine::fast::FastModel;
use timing::median_ms;

const FILES: [(&str, &str); 3] = [
    ("sface", engine::face::SFACE),
    ("front", engine::face::FRONT),
    ("back", engine::face::BACK),
];

struct Args {
    models: Vec<String>,
    iters: usize,
    python: PathBuf,
    peers: bool,
    models_dir: PathBuf,
    root: PathBuf,
}

fn parse() -> Result<Args> {
    let root = if Path::new("engine/tests/fixtures").is_dir() {
        PathBuf::from(".")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    };
    let mut a = Args {
        models: vec!["sface".into(), "front".into(), "back".into()],
        iters: 20,
        python: root.join("models/peers/venv/bin/python"),
        peers: true,
        models_dir: engine::face::models_dir(),
        root,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--models" => a.models = val()?.split(',').map(str::to_owned).collect(),
            "--iters" => a.iters = val()?.parse().context("--iters")?,
            "--python" => a.python = PathBuf::from(val()?),
            "--models-dir" => a.models_dir = PathBuf::from(val()?),
            "--no-peers" => a.peers = false,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn write_f32(path: &Path, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

fn main() -> Result<()> {
    let args = parse()?;
    let inp = fixtures::inputs(&args.root.join("engine/tests/fixtures"))?;
    let work = std::env::temp_dir().join(format!("cpu-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    // (model, runtime, threads) → ms
    let mut ms: HashMap<(String, String, usize), f64> = HashMap::new();
    let mut notes = Vec::new();
    for (key, file) in FILES
        .iter()
        .filter(|(k, _)| args.models.iter().any(|m| m == k))
    {
        let graph = engine::load(&args.models_dir.join(file))
            .with_context(|| format!("{file} (run scripts/setup)"))?;
        let (shape, data): (Vec<usize>, &[f32]) = match *key {
            "sface" => (vec![1, 3, 112, 112], &inp.chips[..3 * 112 * 112]),
            "front" => (vec![1, 128, 128, 3], &inp.front[..128 * 128 * 3]),
            _ => (vec![1, 256, 256, 3], &inp.back[..256 * 256 * 3]),
        };
        let x = Tensor::new(shape, data.to_vec())?;
        write_f32(&work.join(format!("{key}.f32")), &x.data)?;
        let reference = engine::cpu::run(&graph, std::slice::from_ref(&x))?;
        let iters_ref = (args.iters / 4).max(3);
        let t = median_ms(iters_ref, || {
            engine::cpu::run(&graph, std::slice::from_ref(&x)).map(drop)?;
            Ok(())
        })?;
        ms.insert((key.to_string(), "reference".into(), 1), t);
        for threads in [1, 2] {
            let fast = FastModel::new(graph.clone(), threads)?;
            let out = fast.run(std::slice::from_ref(&x))?;
            let diff = out[0]
                .data
                .iter()
                .zip(&reference[0].data)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // Mean over the timed count of runs: one profiled run is at the mercy of the VM.
            let mut per: Vec<(String, f64)> = Vec::new();
            for _ in 0..args.iters {
                let (_, profile) = fast.run_profiled(std::slice::from_ref(&x))?;
                for (k, d) in profile {
                    let ms = d.as_secs_f64() * 1e3 / args.iters as f64;
                    match per.iter_mut().find(|(q, _)| *q == k) {
                        Some((_, t)) => *t += ms,
                        None => per.push((k, ms)),
                    }
                }
            }
            per.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = per
                .iter()
                .take(6)
                .map(|(k, ms)| format!("{k} {ms:.2} ms"))
                .collect();
            notes.push(format!(
                "{key}: where {threads} thread(s) spend their time (mean): {}",
                top.join(", ")
            ));
            if threads == 1 {
                write_f32(&work.join(format!("{key}.out.f32")), &out[0].data)?;
                notes.push(format!(
                    "{key}: fast vs reference max |diff| {diff:.2e}; {} of {} nodes (after fusion) on packed kernels",
                    fast.packed_nodes(),
                    fast.nodes()
                ));
            }
            let t = median_ms(args.iters, || {
                fast.run(std::slice::from_ref(&x)).map(drop)?;
                Ok(())
            })?;
            ms.insert((key.to_string(), "ours".into(), threads), t);
        }
    }
    if args.peers {
        let script = args.root.join("benches/peers/cpu_peers.py");
        let out = Command::new(&args.python)
            .arg(&script)
            .arg("--inputs")
            .arg(&work)
            .arg("--models")
            .arg(&args.models_dir)
            .arg("--only")
            .arg(args.models.join(","))
            .arg("--iters")
            .arg(args.iters.to_string())
            .output()
            .with_context(|| {
                format!(
                    "running {} (make it with benches/peers/fetch_cpu.sh, or pass --python / --no-peers)",
                    args.python.display()
                )
            })?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).context("peer output")?;
            let (peer, model) = (
                v["peer"].as_str().unwrap_or("?"),
                v["model"].as_str().unwrap_or("?"),
            );
            let threads = v["threads"].as_u64().unwrap_or(0) as usize;
            match (v["ms"].as_f64(), v["error"].as_str()) {
                (Some(t), _) => {
                    ms.insert((model.into(), peer.into(), threads), t);
                    if threads == 1 {
                        notes.push(format!(
                            "{model}: {peer} {} vs ours max |diff| {}",
                            v["version"].as_str().unwrap_or("?"),
                            v["max_abs_diff"]
                                .as_f64()
                                .map_or("n/a".into(), |d| format!("{d:.2e}"))
                        ));
                    }
                }
                (None, e) => notes.push(format!(
                    "{model}: {peer} at {threads} thread(s) failed: {}",
                    e.unwrap_or("no figure")
                )),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let cell = |m: &str, r: &str, t: usize| {
        ms.get(&(m.to_owned(), r.to_owned(), t))
            .map_or("—".to_owned(), |v| format!("{v:.2}"))
    };
    let ratio = |m: &str, r: &str, t: usize| match (
        ms.get(&(m.to_owned(), "ours".to_owned(), t)),
        ms.get(&(m.to_owned(), r.to_owned(), t)),
    ) {
        (Some(o), Some(p)) => format!("{:.2}×", p / o),
        _ => "—".into(),
    };
    println!(
        "\nCPU inference, batch 1, median ms per inference (ratio = ours ÷ peer in inferences/s; ≥ 1 means we are as fast or faster)\n"
    );
    println!(
        "| model | threads | ours (fast) | ours (reference) | onnxruntime | OpenVINO | vs onnxruntime | vs OpenVINO |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (key, _) in FILES
        .iter()
        .filter(|(k, _)| args.models.iter().any(|m| m == k))
    {
        for t in [1, 2] {
            println!(
                "| {key} | {t} | {} | {} | {} | {} | {} | {} |",
                cell(key, "ours", t),
                if t == 1 {
                    cell(key, "reference", 1)
                } else {
                    "".into()
                },
                cell(key, "onnxruntime", t),
                cell(key, "openvino", t),
                ratio(key, "onnxruntime", t),
                ratio(key, "openvino", t),
            );
        }
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}
