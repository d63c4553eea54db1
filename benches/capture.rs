//! Capture + upload + lighting normalisation throughput from H.264 files, for 1, 4 and 8 lanes at
//! 640×480 and 1280×720, beside two baselines measured in the same run on the same machine:
//! decode-only through one pipeline per lane, and decode-only through one pipeline with N branches
//! (the measurement behind choosing one pipeline per lane, see docs/capture.md).
//!
//! `cargo bench -p gate-benches --bench capture` (BENCH_FRAMES=n changes the clip length, default 90).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use gstreamer as gst;
use gstreamer::prelude::*;
use pipeline::capture::{Capture, clip::encode_test_clip};
use pipeline::config::{CaptureConfig, CaptureMode, GpuConfig, StationConfig};
use pipeline::normalise::{Gpu, NormaliseParams};
use pipeline::recognise::tick::{GpuReport, GpuStage};

fn lanes_toml(files: &[std::path::PathBuf], w: u32, h: u32) -> String {
    let mut s = "[station]\nid = \"bench\"\n[store]\npath = \"/tmp/unused.redb\"\n[zenoh]\ninsecure = true\n".to_owned();
    for (i, f) in files.iter().enumerate() {
        s += &format!(
            "[[lane]]\nid = \"L{i}\"\nrole = \"entry\"\nsource = \"file://{}\"\nwidth = {w}\nheight = {h}\n",
            f.display()
        );
    }
    s
}

/// Decode-only wall time for `files`, either one pipeline per file or one pipeline with a branch each.
fn decode_only(files: &[std::path::PathBuf], w: u32, h: u32, one_graph: bool) -> Result<Duration> {
    let branch = |f: &std::path::Path| {
        format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! video/x-raw,format=I420,width={w},height={h} ! fakesink sync=false",
            f.display()
        )
    };
    let descs: Vec<String> = if one_graph {
        vec![
            files
                .iter()
                .map(|f| branch(f))
                .collect::<Vec<_>>()
                .join(" "),
        ]
    } else {
        files.iter().map(|f| branch(f)).collect()
    };
    let t0 = Instant::now();
    let pipelines: Vec<gst::Pipeline> = descs
        .iter()
        .map(|d| {
            gst::parse::launch(d)
                .map_err(|e| anyhow!("{e}"))?
                .downcast::<gst::Pipeline>()
                .map_err(|_| anyhow!("not a pipeline"))
        })
        .collect::<Result<_>>()?;
    for p in &pipelines {
        p.set_state(gst::State::Playing)
            .context("start decode pipeline")?;
    }
    for p in &pipelines {
        let bus = p.bus().context("bus")?;
        match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) if matches!(m.view(), gst::MessageView::Eos(_)) => {}
            other => return Err(anyhow!("decode pipeline did not finish cleanly: {other:?}")),
        }
    }
    let took = t0.elapsed();
    for p in &pipelines {
        let _ = p.set_state(gst::State::Null);
    }
    Ok(took)
}

/// Full path: N lane pipelines → FrameHub → GPU stage (upload + lighting kernel, one batch per tick).
fn full_path(
    gpu: &Arc<Gpu>,
    files: &[std::path::PathBuf],
    w: u32,
    h: u32,
) -> Result<(u64, Duration)> {
    let cfg =
        StationConfig::parse(&lanes_toml(files, w, h), "bench").map_err(|e| anyhow!("{e}"))?;
    let cap_cfg = CaptureConfig {
        mode: CaptureMode::Benchmark,
        ..CaptureConfig::default()
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (gtx, mut grx) = tokio::sync::mpsc::unbounded_channel();
    let t0 = Instant::now();
    let cap = Capture::start(&cfg.cameras(), &cap_cfg, tx)?;
    let stage = GpuStage::start(
        gpu.clone(),
        NormaliseParams::default(),
        cap.hub.clone(),
        cap.counters.clone(),
        gtx,
        None,
        std::time::Duration::ZERO,
    )?;
    let mut frames = 0u64;
    while !stage.is_finished() {
        while let Ok(r) = grx.try_recv() {
            match r {
                GpuReport::Frame { .. } => frames += 1,
                GpuReport::TickEnd => {}
                GpuReport::Lost(e) => return Err(anyhow!("GPU lost: {e}")),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    while let Ok(r) = grx.try_recv() {
        frames += u64::from(matches!(r, GpuReport::Frame { .. }));
    }
    let took = t0.elapsed();
    stage.stop();
    cap.shutdown();
    Ok((frames, took))
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    let frames: u32 = std::env::var("BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    pipeline::capture::init()?;
    let gpu = Arc::new(Gpu::open(&GpuConfig {
        adapter: "auto".into(),
        timestamps: true,
        ..Default::default()
    })?);
    let dir = tempfile::tempdir()?;
    println!(
        "capture + upload + normalise, {frames}-frame H.264 clips; adapter: {}",
        gpu.adapter_name()
    );
    println!(
        "machine: {} logical CPUs",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!(
        "| size | lanes | full path fps (all lanes) | per lane | decode-only fps, N pipelines | decode-only fps, 1 pipeline N branches | full / decode-only |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (w, h) in [(640u32, 480u32), (1280, 720)] {
        let clips: Vec<_> = (0..8)
            .map(|i| {
                let p = dir.path().join(format!("{w}x{h}-{i}.mp4"));
                encode_test_clip(
                    &p,
                    w,
                    h,
                    30,
                    frames,
                    ["ball", "smpte", "snow", "gradient"][i % 4],
                )
                .map(|_| p)
                .map_err(|e| anyhow!(e))
            })
            .collect::<Result<_>>()?;
        // Warm-up: the first pipeline of a process pays for plugin loading and decoder set-up.
        decode_only(&clips[..1], w, h, false)?;
        for n in [1usize, 4, 8] {
            let files = &clips[..n];
            let total = (frames as usize * n) as f64;
            // Median of three, alternating the order so neither topology always runs first.
            let mut sep = Vec::new();
            let mut one = Vec::new();
            for i in 0..3 {
                if i % 2 == 0 {
                    sep.push(decode_only(files, w, h, false)?);
                    one.push(decode_only(files, w, h, true)?);
                } else {
                    one.push(decode_only(files, w, h, true)?);
                    sep.push(decode_only(files, w, h, false)?);
                }
            }
            sep.sort();
            one.sort();
            let (sep, one) = (sep[1], one[1]);
            let (done, took) = full_path(&gpu, files, w, h)?;
            if done as usize != frames as usize * n {
                return Err(anyhow!(
                    "{w}x{h} x{n}: processed {done} of {} frames",
                    frames as usize * n
                ));
            }
            let fps = done as f64 / took.as_secs_f64();
            let sep_fps = total / sep.as_secs_f64();
            println!(
                "| {w}x{h} | {n} | {fps:.1} | {:.1} | {sep_fps:.1} | {:.1} | {:.2} |",
                fps / n as f64,
                total / one.as_secs_f64(),
                fps / sep_fps
            );
        }
    }
    Ok(())
}
