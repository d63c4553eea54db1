//! End-to-end benchmark of the station on recorded multi-lane footage with ground truth (own
//! harness): every lane through capture → normalise → detect → align → embed → match → decide →
//! door, with an in-process enrolment centre distributing the footage's enrolled passengers over
//! zenoh and the real door/light drivers.
//!
//! Two modes: `fast` (every frame of every lane, as fast as the station takes them: throughput) and
//! `paced` (files played at their own pace, newest frame only, as live cameras: what a walker gets).
//! Reports lanes × fps sustained, per-stage wall time p50/p99 (one tick batches all lanes), capture →
//! identified / door command / door open acknowledged p50/p99, and the decisions scored against the
//! ground truth (correct, missed and false opens, tailgating caught/missed, refusals) by lighting
//! scenario and mask. Writes `gate.json` and `gate.md` to `--out` (default target/gate-bench), and
//! every decision as a journal would hold it, one JSON object a line, to `decisions-<mode>.jsonl`
//! (what `gate-calibrate pad --journal` reads).
//!
//! `cargo bench -p gate-benches --bench gate [-- --footage DIR] [--mode fast|paced|both]
//!  [--detector front|back] [--backend auto|gpu|cpu] [--decision "key = value"] [--zone x0,y0,x1,y1]
//!  [--one-camera] [--out DIR]`. `--zone` gives every lane that zone (fractions of the frame);
//! `--one-camera` runs footage drawn with lower cameras on each lane's upper camera alone. Default footage:
//! testdata/footage/default (scripts/setup makes it); any `gate-calibrate footage` folder works.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipeline::demo::{self, FootageOptions, FootageRun};

fn pct(v: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i.min(v.len() - 1)).copied()
}

struct Stage {
    name: &'static str,
    values_ms: Vec<f64>,
}

fn stages(r: &FootageRun) -> Vec<Stage> {
    let rep = &r.report;
    let tick = |f: fn(&pipeline::recognise::TickTimes) -> std::time::Duration| {
        rep.ticks.iter().map(|t| f(t).as_secs_f64() * 1e3).collect()
    };
    let decided = |f: fn(&pipeline::decide::decisions::DecisionRecord) -> Option<f64>| {
        rep.decisions.iter().filter_map(f).collect()
    };
    vec![
        Stage {
            name: "capture → normalised (per frame)",
            values_ms: rep.normalised_s.iter().map(|s| s * 1e3).collect(),
        },
        Stage {
            name: "heartbeat lateness (station loop)",
            values_ms: rep.heartbeat_late_s.iter().map(|s| s * 1e3).collect(),
        },
        Stage {
            name: "detect (tick, all lanes)",
            values_ms: tick(|t| t.detect),
        },
        Stage {
            name: "align + embed (tick)",
            values_ms: tick(|t| t.embed),
        },
        Stage {
            name: "match (tick)",
            values_ms: tick(|t| t.matching),
        },
        Stage {
            name: "presentation-attack pair (tick)",
            values_ms: tick(|t| t.pad),
        },
        Stage {
            name: "decide (tick end, all lanes; two-camera cues included)",
            values_ms: rep.decide_s.iter().map(|s| s * 1e3).collect(),
        },
        Stage {
            name: "capture → identified",
            values_ms: decided(|d| d.message.similarity.map(|_| d.message.latency_ms)),
        },
        Stage {
            name: "capture → door command",
            values_ms: decided(|d| d.door_command_ms),
        },
        Stage {
            name: "capture → door open acknowledged",
            values_ms: decided(|d| d.door_open_ms),
        },
        Stage {
            name: "first frame with the walker → door open acknowledged",
            values_ms: visible_to_open(r),
        },
    ]
}

/// What the walker waits for: from the first frame they appear in (truth.json) to the door's
/// acknowledged open, for every granted walker — the footage time until the deciding frame plus
/// that frame's capture → acknowledgement.
fn visible_to_open(r: &FootageRun) -> Vec<f64> {
    let frame_ms = 1000.0 / r.truth.fps.max(1.0);
    r.report
        .decisions
        .iter()
        .filter_map(|d| {
            let ack = d.door_open_ms?;
            let lane = r.truth.lanes.iter().find(|l| l.lane == d.lane)?;
            let at = d.at_ms as f64;
            // The walker on screen at the decision; with a follower, the one who came first.
            let first = lane
                .walkers
                .iter()
                .filter(|w| {
                    w.first_frame as f64 * frame_ms <= at
                        && at <= (w.last_frame as f64 + 1.0) * frame_ms + 1000.0
                })
                .map(|w| w.first_frame as f64 * frame_ms)
                .fold(f64::INFINITY, f64::min);
            first.is_finite().then_some(at - first + ack)
        })
        .collect()
}

fn main() -> Result<()> {
    // The station runs in this process: its warnings (a lane degraded, a tick skipped) explain a
    // bad row, so they go to stderr like gated's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,zenoh=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut footage = demo::default_footage();
    let mut detector = "back".to_string();
    let mut backend = "auto".to_string();
    let mut mode = "both".to_string();
    let mut out = PathBuf::from("target/gate-bench");
    let mut toml = String::new();
    let mut pad = String::new();
    let mut zone = None;
    let mut one_camera = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--footage" => footage = args.next().context("--footage DIR")?.into(),
            "--detector" => detector = args.next().context("--detector front|back")?,
            "--backend" => backend = args.next().context("--backend auto|gpu|cpu")?,
            "--mode" => mode = args.next().context("--mode fast|paced|both")?,
            "--out" => out = args.next().context("--out DIR")?.into(),
            "--zone" => {
                let v = args.next().context("--zone x0,y0,x1,y1")?;
                let z: Vec<f32> = v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--zone {v}: four fractions x0,y0,x1,y1"))?;
                zone = Some(
                    <[f32; 4]>::try_from(z)
                        .map_err(|_| anyhow::anyhow!("--zone {v}: four fractions"))?,
                );
            }
            // Extra [decision] keys, e.g. --decision "confirm_ms = 300"
            "--decision" => {
                toml += &format!("{}\n", args.next().context("--decision 'key = value'")?)
            }
            // Extra [pad] keys, e.g. --pad 'mode = "observe"'
            "--pad" => pad += &format!("{}\n", args.next().context("--pad 'key = value'")?),
            // Footage with lower cameras run on each lane's upper camera alone.
            "--one-camera" => one_camera = true,
            _ => {} // cargo bench passes --bench
        }
    }
    if !footage.join("truth.json").is_file() {
        bail!(
            "no footage at {} (scripts/setup makes it, or pass --footage DIR)",
            footage.display()
        );
    }
    let modes: Vec<bool> = match mode.as_str() {
        "fast" => vec![false],
        "paced" => vec![true],
        "both" => vec![false, true],
        m => bail!("--mode {m}: expected fast, paced or both"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut md = String::new();
    let mut json = Vec::new();
    for paced in modes {
        let work = tempfile::tempdir()?;
        let opts = FootageOptions {
            // The footage's people walk through many times and lanes: judge each passage alone.
            extra_toml: format!(
                "[recognise]\ndetector = {detector:?}\nbackend = {backend:?}\n\n[pad]\n{pad}\n[decision]\ntrips = false\n{toml}"
            ),
            spawn_drivers: true,
            paced,
            zone,
            one_camera,
            ..Default::default()
        };
        let t = Instant::now();
        let run = rt.block_on(demo::run_footage(&footage, work.path(), &opts))?;
        let wall = t.elapsed().as_secs_f64();
        let r = &run.report;
        let frames: u64 = r.lanes.iter().map(|l| l.frames_processed).sum();
        let frames_in: u64 = r.lanes.iter().map(|l| l.frames_in).sum();
        let lanes = r.lanes.len();
        let fps = frames as f64 / r.elapsed.as_secs_f64();
        let card = run.score();
        let st = stages(&run);
        let mode_name = if paced { "paced" } else { "fast" };

        writeln!(
            md,
            "\n### {mode_name}: {} ({lanes} lanes, {}x{} @ {} fps)\n\n{}; adapter {}; recogniser {}, detector {detector}\n",
            footage.display(),
            run.truth.width,
            run.truth.height,
            run.truth.fps,
            if paced {
                "files at their own pace, newest frame only (as live cameras)"
            } else {
                "every frame, as fast as possible"
            },
            r.adapter,
            r.recogniser.unwrap_or("off")
        )?;
        writeln!(md, "| measure | value |\n|---|---:|")?;
        writeln!(
            md,
            "| frames processed / delivered | {frames} / {frames_in} |"
        )?;
        // Two-camera lanes: the lower cameras' frames, beside the lanes' own.
        let lower: Vec<u64> = r
            .lanes
            .iter()
            .filter_map(|l| l.lower_frames_processed)
            .collect();
        if !lower.is_empty() {
            writeln!(
                md,
                "| lower cameras' frames processed ({} lanes) | {} |",
                lower.len(),
                lower.iter().sum::<u64>()
            )?;
        }
        writeln!(
            md,
            "| station run | {:.1} s (wall with centre and model load {wall:.1} s) |",
            r.elapsed.as_secs_f64()
        )?;
        writeln!(
            md,
            "| lanes × fps sustained | {lanes} × {:.2} = {fps:.2} frames/s |",
            fps / lanes.max(1) as f64
        )?;
        writeln!(
            md,
            "| recognition ticks | {} (faces {}, embedded {}, PAD-scored {}) |",
            r.ticks.len(),
            r.ticks.iter().map(|t| t.faces).sum::<usize>(),
            r.ticks.iter().map(|t| t.embedded).sum::<usize>(),
            r.ticks.iter().map(|t| t.scored).sum::<usize>()
        )?;
        writeln!(
            md,
            "\n| stage | n | p50 ms | p99 ms |\n|---|---:|---:|---:|"
        )?;
        let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into());
        for s in &st {
            writeln!(
                md,
                "| {} | {} | {} | {} |",
                s.name,
                s.values_ms.len(),
                f(pct(&s.values_ms, 0.5)),
                f(pct(&s.values_ms, 0.99))
            )?;
        }
        writeln!(md, "\n{}", demo::score::markdown(&card))?;
        let pad = demo::score::pad_markdown(&card);
        if !pad.is_empty() {
            writeln!(md, "{pad}")?;
        }
        md += &demo::format_decisions(&run);
        let mut lines = String::new();
        for d in &r.decisions {
            writeln!(lines, "{}", serde_json::to_string(&d.message)?)?;
        }
        std::fs::write(out.join(format!("decisions-{mode_name}.jsonl")), lines)?;
        json.push(serde_json::json!({
            "mode": mode_name,
            "footage": footage.display().to_string(),
            "adapter": r.adapter,
            "recogniser": r.recogniser,
            "detector": detector,
            "lanes": lanes,
            "frames_processed": frames,
            "frames_delivered": frames_in,
            "elapsed_s": r.elapsed.as_secs_f64(),
            "fps_total": fps,
            "stages_ms": st.iter().map(|s| serde_json::json!({
                "stage": s.name, "n": s.values_ms.len(),
                "p50": pct(&s.values_ms, 0.5), "p99": pct(&s.values_ms, 0.99)
            })).collect::<Vec<_>>(),
            "score": card,
        }));
    }
    print!("{md}");
    std::fs::write(out.join("gate.md"), &md)?;
    std::fs::write(out.join("gate.json"), serde_json::to_string_pretty(&json)?)?;
    println!("\nwrote {}/gate.md and gate.json", out.display());
    Ok(())
}
