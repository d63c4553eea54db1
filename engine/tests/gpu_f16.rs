//! The f16 storage variant of every kernel (`Precision::F16`): weights and activations stored as
//! f16, arithmetic in f32. Checked against the same goldens as f32, with the bounds below; the
//! measured differences are printed, and docs/engine.md records them as the accuracy cost.
//!
//! Bounds (f16 keeps 11 significant bits: one rounding is ≤ 4.9e-4 relative):
//! - single-op fixtures: |Δ| ≤ 4e-3·max(1, |golden|) (input, weights and output each rounded once);
//! - SFace: cosine between the f16 and onnxruntime descriptors ≥ 0.999 for every chip (the
//!   same-person threshold is ~0.36, so this is far below anything a decision can see);
//! - BlazeFace front: each output within 3e-3 of its own range (max |golden|, at least 1).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::gpu::{GpuModel, Kernels, Precision, open_device};

fn f16_kernels(device: &wgpu::Device) -> Kernels {
    Kernels::with_precision(device, Precision::F16)
        .expect("lavapipe and every GPU we target offer SHADER_F16")
}

#[test]
fn op_fixtures_in_f16_match_onnxruntime() {
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = f16_kernels(&device);
    let dir = op_fixture_dir();
    let mut ran = Vec::new();
    for name in op_fixture_names() {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).expect("model");
        let x = fixture_f32(&format!("ops/{name}.in.f32"));
        let want = fixture_f32(&format!("ops/{name}.out.f32"));
        let g = engine::load_bytes(&bytes).expect("loads");
        let batch = g.input_shape(0).expect("input")[0];
        // Ops without a kernel are refused the same way in both precisions (gpu_models.rs).
        let Ok(m) = GpuModel::new(&device, &kernels, &g, batch) else {
            continue;
        };
        let y = m.run(&device, &queue, &kernels, &x).expect("runs");
        assert_eq!(y[0].len(), want.len(), "{name}: output size");
        for (i, (a, b)) in y[0].iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 4e-3 * b.abs().max(1.0),
                "{name}[{i}]: gpu f16 {a} vs onnxruntime {b}"
            );
        }
        ran.push(format!("{name} ({:.1e})", max_abs_diff(&y[0], &want)));
    }
    eprintln!("f16 op fixtures: {}", ran.join(", "));
    assert!(ran.len() >= 10, "too few op fixtures ran in f16");
}

#[test]
fn sface_in_f16_stays_within_cosine_0_999_of_onnxruntime() {
    let graph = engine::load(&model_path(SFACE)).expect("SFace loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = f16_kernels(&device);
    // Two of the four golden chips keep this test's lavapipe time down.
    let chips = &sface_chips_nchw()[..2 * 3 * 112 * 112];
    let model = GpuModel::new(&device, &kernels, &graph, 2).expect("plans in f16");
    let out = model.run(&device, &queue, &kernels, chips).expect("runs");
    let golden = fixture_f32("sface_golden.f32");
    let mut worst_cos = 1f32;
    let mut worst_abs = 0f32;
    for (ours, gold) in out[0].chunks(128).zip(golden.chunks(128)) {
        let (a, b) = (l2_normalise(ours), l2_normalise(gold));
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        worst_cos = worst_cos.min(cos);
        worst_abs = worst_abs.max(max_abs_diff(&a, &b));
    }
    eprintln!(
        "SFace f16 batch 2: min cosine to onnxruntime {worst_cos:.6}, max |diff| of normalised descriptors {worst_abs:.3e}; activations {} KiB",
        model.planned_bytes / 1024
    );
    assert!(worst_cos >= 0.999, "cosine {worst_cos}");
}

#[test]
fn blazeface_front_in_f16_stays_close_to_onnxruntime() {
    let graph = engine::load(&model_path(FRONT)).expect("BlazeFace loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = f16_kernels(&device);
    let raw = fixture("blazeface_inputs.u8");
    let input: Vec<f32> = raw.iter().map(|&v| f32::from(v) / 127.5 - 1.0).collect();
    let golden = fixture_f32("blazeface_front_golden.f32");
    let model = GpuModel::new(&device, &kernels, &graph, 2).expect("plans in f16");
    let out = model.run(&device, &queue, &kernels, &input).expect("runs");
    let per_image = golden.len() / 2;
    let mut report = Vec::new();
    for b in 0..2 {
        let mut off = b * per_image;
        for (k, ours) in out.iter().enumerate() {
            let per = ours.len() / 2;
            let ours = &ours[b * per..][..per];
            let gold = &golden[off..off + per];
            // Scaled by the output's own range: the box regressors are pixels of the 128-px input
            // (up to ~120), the score logits a few units; intermediate activations of that range
            // carry f16's relative error into every value of the output.
            let range = gold.iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = max_abs_diff(ours, gold);
            assert!(
                worst <= 3e-3 * range,
                "image {b} output {k}: max |diff| {worst} over a range of {range}"
            );
            report.push(format!("img {b} out {k}: {worst:.2e} of {range:.1}"));
            off += per;
        }
    }
    eprintln!(
        "BlazeFace front f16 batch 2, max |diff| vs onnxruntime: {}",
        report.join("; ")
    );
}
