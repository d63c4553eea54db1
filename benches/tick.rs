//! The recognition tick on the GPU for many lanes: for N lanes with one walker each, the time per
//! stage of one tick and what the tick sustains, lanes × frames/s, on whatever adapter wgpu picks.
//! Beside it, from the same run, the adapter's buffer-copy bandwidth.
//!
//! The tick is the station's own call sequence (`recognise::gpu`): letterbox + BlazeFace back-256
//! over all N frames (one submission, outputs read back for the tracker), then
//! `engine::gpu::probe::Embedder` (the N chips cut, SFace, unit probes and chip measures, matching
//! against the gallery: one submission, 32 bytes per face read back). For the stages' own cost the
//! same work also runs split the way the station ran it before: chips + SFace read back, then the
//! probes uploaded and matched (one submission and wait each).
//!
//! The lighting kernel lives in the station crate, which links GStreamer; it is timed on its own
//! by `benches/normalise.rs` (a machine with GStreamer), so the figures here leave it out.
//!
//! `cargo bench -p gate-benches --no-default-features --bench tick -- [--lanes 1,8,32,64]
//!   [--iters N] [--gallery ROWS] [--models-dir DIR]` (lavapipe: `--lanes 1,2 --iters 1`).
//!
//! Links no GStreamer (built with `--no-default-features` for the GPU machine).

#[path = "common/bandwidth.rs"]
mod bandwidth;
#[path = "common/rows.rs"]
mod rows;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use engine::face::blazeface::BACK_256;
use engine::face::{BACK, SFACE, align};
use engine::gpu::gallery::{Gallery, GalleryOptions};
use engine::gpu::probe::Embedder;
use engine::gpu::resample::{Face, Frame, Resampler, Source, Target, Work};
use engine::gpu::{GpuModel, Kernels, open_device};

const W: u32 = 640;
const H: u32 = 480;

struct Args {
    lanes: Vec<usize>,
    iters: usize,
    gallery: u32,
    models: PathBuf,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        lanes: vec![1, 8, 32, 64],
        iters: 5,
        gallery: 10_000,
        models: engine::face::models_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--lanes" => {
                a.lanes = v()?
                    .split(',')
                    .map(|s| s.parse().context("--lanes 1,8,32,64"))
                    .collect::<Result<_>>()?
            }
            "--iters" => a.iters = v()?.parse().context("--iters N")?,
            "--gallery" => a.gallery = v()?.parse().context("--gallery ROWS")?,
            "--models-dir" => a.models = v()?.into(),
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if a.lanes.iter().any(|&n| n == 0 || n > 64) {
        bail!("--lanes: 1 to 64 lanes per tick (one letterbox dispatch)");
    }
    Ok(a)
}

/// A synthetic frame, packed RGBA as bytes: a gradient with a brighter oval where the walker's
/// face is. The models' time does not depend on the pixels; the face is there so the chips sample
/// something.
fn frame(seed: u32) -> Vec<u8> {
    (0..W * H)
        .flat_map(|i| {
            let (x, y) = (i % W, i / W);
            let (dx, dy) = (x as f32 - 320.0, y as f32 - 200.0);
            let face = dx * dx / 3600.0 + dy * dy / 6400.0 < 1.0;
            let v = if face {
                190
            } else {
                (x / 4 + y / 8 + seed) % 200 + 20
            } as u8;
            [v, v, v, 255]
        })
        .collect()
}

/// The walker's keypoints in every frame (BlazeFace order: right eye, left eye, nose, mouth,
/// right ear, left ear), an eye distance of 60 pixels.
const KEYPOINTS: [[f32; 2]; 6] = [
    [290.0, 180.0],
    [350.0, 180.0],
    [320.0, 215.0],
    [320.0, 245.0],
    [260.0, 190.0],
    [380.0, 190.0],
];

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let a = parse()?;
    let (device, queue) = open_device().map_err(|e| anyhow!("{e}"))?;
    let info = device.adapter_info();
    let bw = bandwidth::copy_bandwidth(&device, &queue, info.device_type == wgpu::DeviceType::Cpu)?;
    let load = |f: &str| {
        let p: &Path = &a.models.join(f);
        engine::load(p).with_context(|| format!("{} (run scripts/setup)", p.display()))
    };
    let (back, sface) = (load(BACK)?, load(SFACE)?);
    let kernels = Kernels::new(&device);
    let resampler = Resampler::new(&device).map_err(|e| anyhow!("{e}"))?;
    let mut gallery =
        Gallery::new(&device, &queue, GalleryOptions::default()).map_err(|e| anyhow!("{e}"))?;
    let templates = rows::unit_rows(1, a.gallery as usize);
    let subjects: Vec<u32> = (0..a.gallery).collect();
    gallery
        .upsert_many(&subjects, &templates)
        .map_err(|e| anyhow!("{e}"))?;
    let to_chip = align::from_blazeface(&KEYPOINTS).context("keypoints")?;

    println!(
        "adapter: {} ({:?}, {:?}); buffer copy {:.1} GB/s; gallery {} rows f32; median of {} ticks after one warm-up",
        info.name,
        info.device_type,
        info.backend,
        bw / 1e9,
        a.gallery,
        a.iters
    );
    println!(
        "\n| lanes | detect ms | split: chips + SFace ms | split: match ms | fused embed + match ms | tick ms (detect + fused) | lanes × frames/s | frames/s per lane |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &a.lanes {
        let detector = GpuModel::new(&device, &kernels, &back, n).map_err(|e| anyhow!("{e}"))?;
        let embedder = GpuModel::new(&device, &kernels, &sface, n).map_err(|e| anyhow!("{e}"))?;
        let fused = Embedder::new(&device, &kernels, &sface, n).map_err(|e| anyhow!("{e}"))?;
        let mut pixels = Vec::with_capacity((W * H) as usize * 4 * n);
        let mut table = Vec::with_capacity(n);
        for i in 0..n as u32 {
            table.push(Frame {
                offset: i * W * H,
                width: W,
                height: H,
            });
            pixels.extend(frame(i));
        }
        let buffer = wgpu::util::DeviceExt::create_buffer_init(
            &device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("tick frames"),
                contents: &pixels,
                usage: wgpu::BufferUsages::STORAGE,
            },
        );
        let src = Source {
            pixels: &buffer,
            frames: &table,
        };
        let jobs: Vec<u32> = (0..n as u32).collect();
        let faces: Vec<Face> = (0..n as u32)
            .map(|i| Face::from_to_chip(i, &to_chip))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{e}"))?;
        let stage = |model: &GpuModel, work: Work<'_>| -> Result<(Duration, Vec<f32>)> {
            let t = Instant::now();
            let d = resampler
                .prepare(
                    &device,
                    src,
                    work,
                    Target {
                        buffer: model.input_buffer(),
                        offset: 0,
                    },
                )
                .map_err(|e| anyhow!("{e}"))?;
            let outs = model
                .run_with(&device, &queue, &kernels, &mut |pass| {
                    resampler.record(pass, &d)
                })
                .map_err(|e| anyhow!("{e}"))?;
            let first = outs.into_iter().next().unwrap_or_default();
            Ok((t.elapsed(), first))
        };
        let (mut det, mut emb, mut mat, mut fus, mut tick) =
            (vec![], vec![], vec![], vec![], vec![]);
        for it in 0..=a.iters {
            // The station's tick: detection, then embed and match in one submission.
            let t0 = Instant::now();
            let (d, _) = stage(
                &detector,
                Work::Letterbox {
                    jobs: &jobs,
                    input: BACK_256.input as u32,
                    windows: &[],
                },
            )?;
            let t = Instant::now();
            let results = fused
                .run(&device, &queue, &kernels, &resampler, src, &faces, &gallery)
                .map_err(|e| anyhow!("{e}"))?;
            if results.len() != n || results.iter().any(|(p, _)| !p.valid) {
                bail!("{} valid probes for {n} faces", results.len());
            }
            let f = t.elapsed();
            let whole = t0.elapsed();

            // The same embed and match, split into its stages.
            let (e, raw) = stage(&embedder, Work::Chips(&faces))?;
            let t = Instant::now();
            let probes: Vec<f32> = raw
                .chunks(128)
                .filter_map(engine::face::embedding)
                .flatten()
                .collect();
            let matches = gallery.run_blocking(&probes).map_err(|e| anyhow!("{e}"))?;
            if matches.len() != n {
                bail!("{} matches for {n} probes", matches.len());
            }
            let m = t.elapsed();
            if it > 0 {
                det.push(d);
                emb.push(e);
                mat.push(m);
                fus.push(f);
                tick.push(whole);
            }
        }
        let (d, e, m, f, t) = (
            median(det),
            median(emb),
            median(mat),
            median(fus),
            median(tick),
        );
        println!(
            "| {n} | {d:.2} | {e:.2} | {m:.2} | {f:.2} | {t:.2} | {:.1} | {:.1} |",
            n as f64 * 1e3 / t,
            1e3 / t
        );
    }
    Ok(())
}
