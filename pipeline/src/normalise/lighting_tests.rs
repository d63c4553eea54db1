//! The lighting kernel against its Rust reference, on lavapipe in CI.
//!
//! Tolerances: tile and global histograms, dark/bright percentiles and pixel counts are integers and
//! must be equal. Mean and gamma within 1e-4 relative (GPU `log`/`pow` are not correctly rounded).
//! LUT entries within 3 levels and output channels within 4 levels: a tone value that lands on a
//! rounding tie in one implementation and not the other moves a pixel by one histogram bin, and the
//! clipped CDF can step by up to clip_limit·255/256 ≈ 2.5 levels per bin. At most 0.5 % of channels may
//! differ at all, and the mean absolute difference must stay under 0.05 levels.

use rand::{Rng, SeedableRng};

use super::*;
use crate::normalise::GpuConfig;

fn gpu() -> Gpu {
    Gpu::open(&GpuConfig {
        adapter: "auto".into(),
        timestamps: true,
        ..Default::default()
    })
    .expect("a wgpu adapter (lavapipe in CI)")
}

fn random_frame(l: &FrameLayout, seed: u64, dark: bool) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = vec![0u8; l.size()];
    for (i, b) in f.iter_mut().enumerate() {
        *b = if (i as u32) < l.u_off {
            if dark {
                rng.random_range(16..70)
            } else {
                rng.random()
            }
        } else {
            rng.random_range(90..166)
        };
    }
    f
}

/// A frame with structure: a lit "face" disc on a dark gradient background with sensor noise.
fn scene_frame(l: &FrameLayout, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = vec![128u8; l.size()];
    let (cx, cy, r) = (
        l.width as f32 * 0.5,
        l.height as f32 * 0.45,
        l.height as f32 * 0.2,
    );
    for y in 0..l.height {
        for x in 0..l.width {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let base = if d < r {
                150.0
            } else {
                20.0 + 40.0 * x as f32 / l.width as f32
            };
            let v = (base + rng.random_range(-6.0..6.0f32)).clamp(16.0, 235.0);
            f[(l.y_off + y * l.y_stride + x) as usize] = v as u8;
        }
    }
    f
}

fn compare(
    gpu: &Gpu,
    kernel: &LightingKernel,
    layout: FrameLayout,
    frame: &[u8],
    params: &NormaliseParams,
) {
    let lane = LaneNormaliser::new(gpu, kernel, layout, params).expect("lane buffers");
    let got = normalise_batch(gpu, kernel, &[(&lane, frame)]).expect("GPU batch")[0];
    let want = reference::normalise(frame, &layout, params);
    let (g, w) = (&got.stats, &want.stats);
    assert_eq!(g.hist, w.hist, "global histogram");
    assert_eq!(
        (g.pixels, g.dark, g.bright),
        (w.pixels, w.dark, w.bright),
        "counts and percentiles"
    );
    for (name, a, b) in [
        ("mean", g.mean, w.mean),
        ("stretched", g.stretched_mean, w.stretched_mean),
        ("gamma", g.gamma, w.gamma),
        ("gain", g.gain, w.gain),
    ] {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{name}: gpu {a} ref {b}"
        );
    }
    let out = lane.read_output(gpu).expect("readback");
    assert_eq!(out.len(), want.rgba.len());
    let (mut differ, mut sum, mut worst) = (0usize, 0u64, 0u32);
    for (a, b) in out.iter().zip(&want.rgba) {
        for s in [0, 8, 16, 24] {
            let d = ((a >> s) & 0xff).abs_diff((b >> s) & 0xff);
            differ += (d > 0) as usize;
            sum += d as u64;
            worst = worst.max(d);
        }
    }
    let channels = out.len() * 4;
    let (frac, mean) = (
        differ as f64 / channels as f64,
        sum as f64 / channels as f64,
    );
    eprintln!(
        "{}x{}: worst {worst} levels, {:.4} % of channels differ, mean diff {mean:.5}",
        layout.width,
        layout.height,
        frac * 100.0
    );
    assert!(worst <= 4, "worst channel difference {worst} levels");
    assert!(frac <= 0.005, "{:.3} % of channels differ", frac * 100.0);
    assert!(mean < 0.05, "mean difference {mean}");
}

#[test]
fn kernel_matches_reference_on_random_and_real_sized_frames() {
    let gpu = gpu();
    let kernel = LightingKernel::new(&gpu);
    let p = NormaliseParams::default();
    compare(
        &gpu,
        &kernel,
        FrameLayout::i420(64, 48),
        &random_frame(&FrameLayout::i420(64, 48), 1, false),
        &p,
    );
    // Odd strides (width not a multiple of 4 in the chroma planes) and a dark frame.
    let l = FrameLayout::i420(90, 34);
    compare(
        &gpu,
        &kernel,
        l,
        &random_frame(&l, 2, true),
        &NormaliseParams {
            tiles_x: 5,
            tiles_y: 3,
            strength: 1.0,
            ..p
        },
    );
    let l = FrameLayout::i420(320, 240);
    compare(&gpu, &kernel, l, &scene_frame(&l, 3), &p);
    // Full-range source and gain/gamma only.
    let l = FrameLayout {
        limited_range: false,
        ..FrameLayout::i420(128, 96)
    };
    compare(
        &gpu,
        &kernel,
        l,
        &random_frame(&l, 4, false),
        &NormaliseParams { strength: 0.0, ..p },
    );
    let l = FrameLayout::i420(1280, 720);
    compare(&gpu, &kernel, l, &scene_frame(&l, 5), &p);
}

#[test]
fn dark_frame_is_brightened_towards_target() {
    let gpu = gpu();
    let kernel = LightingKernel::new(&gpu);
    let l = FrameLayout::i420(160, 120);
    let frame = random_frame(&l, 9, true);
    let lane = LaneNormaliser::new(&gpu, &kernel, l, &NormaliseParams::default()).expect("lane");
    let r = normalise_batch(&gpu, &kernel, &[(&lane, &frame)]).expect("batch")[0];
    assert!(
        r.stats.mean < 0.25,
        "input should be dark, mean {}",
        r.stats.mean
    );
    let out = lane.read_output(&gpu).expect("readback");
    let mean_g =
        out.iter().map(|p| ((p >> 8) & 0xff) as f64).sum::<f64>() / out.len() as f64 / 255.0;
    assert!(
        mean_g > 0.35,
        "normalised mean {mean_g} not raised towards 0.45"
    );
}

#[test]
fn batch_of_lanes_with_different_sizes() {
    let gpu = gpu();
    let kernel = LightingKernel::new(&gpu);
    let p = NormaliseParams::default();
    let (la, lb) = (FrameLayout::i420(64, 64), FrameLayout::i420(96, 48));
    let (fa, fb) = (random_frame(&la, 11, false), random_frame(&lb, 12, true));
    let a = LaneNormaliser::new(&gpu, &kernel, la, &p).expect("a");
    let b = LaneNormaliser::new(&gpu, &kernel, lb, &p).expect("b");
    let r = normalise_batch(&gpu, &kernel, &[(&a, &fa), (&b, &fb)]).expect("batch");
    assert_eq!(
        r[0].stats.hist,
        reference::normalise(&fa, &la, &p).stats.hist
    );
    assert_eq!(
        r[1].stats.hist,
        reference::normalise(&fb, &lb, &p).stats.hist
    );
}

#[test]
fn short_frame_and_bad_size_are_errors_not_panics() {
    let gpu = gpu();
    let kernel = LightingKernel::new(&gpu);
    let l = FrameLayout::i420(64, 48);
    let lane = LaneNormaliser::new(&gpu, &kernel, l, &NormaliseParams::default()).expect("lane");
    let e = normalise_batch(&gpu, &kernel, &[(&lane, &[0u8; 100][..])]).expect_err("short frame");
    assert!(e.to_string().contains("100 bytes"), "{e}");
    assert!(
        LaneNormaliser::new(
            &gpu,
            &kernel,
            FrameLayout::i420(15, 48),
            &NormaliseParams::default()
        )
        .is_err()
    );
}

#[test]
fn device_loss_is_reported_not_panicked() {
    let gpu = gpu();
    let kernel = LightingKernel::new(&gpu);
    let l = FrameLayout::i420(64, 48);
    let lane = LaneNormaliser::new(&gpu, &kernel, l, &NormaliseParams::default()).expect("lane");
    let frame = random_frame(&l, 1, false);
    gpu.device.destroy();
    let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
    assert!(gpu.is_lost(), "device-lost callback did not fire");
    let e = normalise_batch(&gpu, &kernel, &[(&lane, &frame)]).expect_err("must fail after loss");
    assert!(matches!(e, NormaliseError::Gpu(GpuError::Lost)), "{e}");
}
