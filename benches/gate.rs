//! First end-to-end run of the station on recorded multi-lane footage (own harness; prints a table
//! and writes JSON): every frame of every lane through capture → normalise → detect → align →
//! embed → match → decide → door, with an in-process enrolment centre distributing the footage's
//! enrolled passengers over zenoh and the real door/light drivers.
//!
//! Reports lanes × fps sustained, per-stage wall time p50/p99 (one tick batches every lane),
//! capture → identified / → door command / → door open acknowledged p50/p99, and the decisions
//! against the footage's ground truth.
//!
//! `cargo bench -p gate-benches --bench gate [-- --footage DIR] [--detector front|back]
//!  [--backend auto|gpu|cpu] [--json out.json]`. Default footage: testdata/footage/default
//! (scripts/setup makes it). The full benchmark report (scenarios, masks, paced mode) is issue 6.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipeline::demo::{self, FootageOptions};
use protocol::Outcome;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> Result<()> {
    let mut footage = demo::default_footage();
    let mut detector = "back".to_string();
    let mut backend = "auto".to_string();
    let mut json: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--footage" => footage = args.next().context("--footage DIR")?.into(),
            "--detector" => detector = args.next().context("--detector front|back")?,
            "--backend" => backend = args.next().context("--backend auto|gpu|cpu")?,
            "--json" => json = Some(args.next().context("--json FILE")?.into()),
            _ => {} // cargo bench passes --bench
        }
    }
    if !footage.join("truth.json").is_file() {
        bail!(
            "no footage at {} (scripts/setup makes it, or pass --footage DIR)",
            footage.display()
        );
    }
    let work = tempfile::tempdir()?;
    let opts = FootageOptions {
        extra_toml: format!("[recognise]\ndetector = {detector:?}\nbackend = {backend:?}\n"),
        spawn_drivers: true,
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    let t = Instant::now();
    let run = rt
        .block_on(demo::run_footage(&footage, work.path(), &opts))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let wall = t.elapsed().as_secs_f64();
    let r = &run.report;

    let frames: u64 = r.lanes.iter().map(|l| l.frames_processed).sum();
    let lanes = r.lanes.len();
    let fps_total = frames as f64 / r.elapsed.as_secs_f64();
    let ms = |v: Vec<f64>| -> (f64, f64) {
        let mut v = v;
        (pct(&mut v, 0.5), pct(&mut v, 0.99))
    };
    let stage = |f: fn(&pipeline::recognise::TickTimes) -> f64| ms(r.ticks.iter().map(f).collect());
    let rows: Vec<(&str, (f64, f64))> = vec![
        (
            "capture → normalised (per frame)",
            ms(r.normalised_s.iter().map(|s| s * 1e3).collect()),
        ),
        (
            "detect (tick, all lanes)",
            stage(|t| t.detect.as_secs_f64() * 1e3),
        ),
        (
            "align + embed (tick)",
            stage(|t| t.embed.as_secs_f64() * 1e3),
        ),
        ("match (tick)", stage(|t| t.matching.as_secs_f64() * 1e3)),
        (
            "capture → identified",
            ms(r.decisions
                .iter()
                .filter(|d| d.message.similarity.is_some())
                .map(|d| d.message.latency_ms)
                .collect()),
        ),
        (
            "capture → door command",
            ms(r.decisions
                .iter()
                .filter_map(|d| d.door_command_ms)
                .collect()),
        ),
        (
            "capture → door open ack",
            ms(r.decisions.iter().filter_map(|d| d.door_open_ms).collect()),
        ),
    ];

    // Decisions against the ground truth, walker by walker (the full accounting is issue 6).
    let mut expected_open = 0;
    let mut correct_open = 0;
    let mut false_open = 0;
    let mut tailgating_expected = 0;
    let mut tailgating_caught = 0;
    for lane in &run.truth.lanes {
        let got: Vec<_> = r.decisions.iter().filter(|d| d.lane == lane.lane).collect();
        for w in &lane.walkers {
            if w.expected == "open" {
                expected_open += 1;
                if got.iter().any(|d| {
                    d.message.outcome == Outcome::Open
                        && d.message
                            .subject
                            .as_deref()
                            .and_then(|s| run.identity_of(s))
                            == Some(w.identity.as_str())
                }) {
                    correct_open += 1;
                }
            }
            if w.expected == "tailgating" && w.lead {
                tailgating_expected += 1;
                if got.iter().any(|d| d.message.outcome == Outcome::Tailgating) {
                    tailgating_caught += 1;
                }
            }
        }
        for d in got.iter().filter(|d| d.message.outcome == Outcome::Open) {
            let who = d
                .message
                .subject
                .as_deref()
                .and_then(|s| run.identity_of(s));
            let allowed = lane
                .walkers
                .iter()
                .any(|w| w.expected == "open" && Some(w.identity.as_str()) == who);
            if !allowed {
                false_open += 1;
            }
        }
    }

    println!(
        "\nEnd-to-end on {} ({} lanes, {}x{} @ {} fps), adapter {}, recogniser {}, detector {detector}",
        footage.display(),
        lanes,
        run.truth.width,
        run.truth.height,
        run.truth.fps,
        r.adapter,
        r.recogniser.unwrap_or("off")
    );
    println!("\n| measure | value |\n|---|---:|");
    println!("| frames processed (all lanes) | {frames} |");
    println!(
        "| station run time | {:.1} s (wall incl. centre and model load {wall:.1} s) |",
        r.elapsed.as_secs_f64()
    );
    println!(
        "| lanes × fps sustained | {lanes} × {:.2} = {fps_total:.2} frames/s |",
        fps_total / lanes.max(1) as f64
    );
    println!(
        "| recognition ticks | {} (faces {} / embedded {}) |",
        r.ticks.len(),
        r.ticks.iter().map(|t| t.faces).sum::<usize>(),
        r.ticks.iter().map(|t| t.embedded).sum::<usize>()
    );
    println!("\n| stage | p50 ms | p99 ms |\n|---|---:|---:|");
    for (name, (p50, p99)) in &rows {
        println!("| {name} | {p50:.1} | {p99:.1} |");
    }
    println!("\n| decisions | value |\n|---|---:|");
    println!("| correct opens | {correct_open} / {expected_open} |");
    println!("| false opens | {false_open} |");
    println!("| tailgating caught | {tailgating_caught} / {tailgating_expected} |");
    println!("| decisions total | {} |", r.decisions.len());
    print!("{}", demo::format_decisions(&run));

    if let Some(path) = json {
        let v = serde_json::json!({
            "footage": footage.display().to_string(),
            "adapter": r.adapter,
            "recogniser": r.recogniser,
            "detector": detector,
            "lanes": lanes,
            "frames": frames,
            "elapsed_s": r.elapsed.as_secs_f64(),
            "fps_total": fps_total,
            "stages_ms": rows.iter().map(|(n, (a, b))| serde_json::json!({"stage": n, "p50": a, "p99": b})).collect::<Vec<_>>(),
            "correct_opens": correct_open,
            "expected_opens": expected_open,
            "false_opens": false_open,
            "tailgating_caught": tailgating_caught,
            "tailgating_expected": tailgating_expected,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
