//! Models end to end on the WGSL kernels (lavapipe in CI) against onnxruntime's golden outputs and
//! the CPU reference. Tolerance for SFace: max |difference| of the L2-normalised descriptor ≤ 1e-3
//! (the issue's bound for f32); the measured value is printed.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use engine::gpu::{GpuModel, GpuRunError, Kernels, open_device};

#[test]
fn sface_on_gpu_matches_onnxruntime() {
    let graph = engine::load(&model_path(SFACE)).expect("SFace loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let model = GpuModel::new(&device, &kernels, &graph, 4).expect("SFace plans on the GPU");
    let input = sface_chips_nchw();
    let t0 = Instant::now();
    let out = model.run(&device, &queue, &kernels, &input).expect("runs");
    let took = t0.elapsed();
    let golden = fixture_f32("sface_golden.f32");
    assert_eq!(out[0].len(), golden.len());
    let mut worst = 0f32;
    for (ours, gold) in out[0].chunks(128).zip(golden.chunks(128)) {
        worst = worst.max(max_abs_diff(&l2_normalise(ours), &l2_normalise(gold)));
    }
    eprintln!(
        "SFace GPU batch 4: max |diff| of normalised descriptors {worst:.3e}; {took:?} for the batch; activations {} KiB after reuse",
        model.planned_bytes / 1024
    );
    assert!(worst <= 1e-3, "normalised descriptor differs by {worst}");
    // The same batch twice gives the same answer (no state leaks between runs through reused buffers).
    let again = model
        .run(&device, &queue, &kernels, &input)
        .expect("runs again");
    assert_eq!(again[0], out[0]);
}

#[test]
fn wrong_input_size_and_unimplemented_ops_are_errors() {
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let graph = engine::load(&model_path(SFACE)).expect("SFace loads");
    let model = GpuModel::new(&device, &kernels, &graph, 1).expect("plans");
    let e = model
        .run(&device, &queue, &kernels, &[0.0; 10])
        .expect_err("short input");
    assert!(matches!(e, GpuRunError::Input { got: 10, .. }), "{e}");
    // MatMul has no kernel yet: refused by name, not run half-way.
    let bytes =
        std::fs::read(op_fixture_dir().join("matmul_batched.onnx")).expect("matmul fixture");
    let g = engine::load_bytes(&bytes).expect("MatMul model loads");
    let e = GpuModel::new(&device, &kernels, &g, 1)
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("not implemented on the GPU") && msg.contains("(MatMul)"),
        "{msg}"
    );
}

/// Runs a BlazeFace model on the GPU and compares every output with onnxruntime's golden values
/// (per element within 2e-4 + 1e-4·|golden|, the bound tests/models.rs uses for the CPU reference)
/// and with the CPU reference (same bound). Returns (max |Δ| vs golden, max |Δ| vs CPU).
fn blazeface_on_gpu(
    file: &str,
    input: Vec<f32>,
    size: usize,
    batch: usize,
    golden: &[f32],
) -> (f32, f32) {
    let graph = engine::load(&model_path(file)).expect("BlazeFace loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let model =
        GpuModel::new(&device, &kernels, &graph, batch).expect("BlazeFace plans on the GPU");
    let t0 = Instant::now();
    let out = model.run(&device, &queue, &kernels, &input).expect("runs");
    let took = t0.elapsed();
    let x = engine::Tensor::new(vec![batch, size, size, 3], input.clone()).expect("input tensor");
    let cpu = engine::cpu::run(&graph, &[x]).expect("CPU reference");
    assert_eq!(out.len(), 4);
    let per_image = golden.len() / batch;
    let (mut vs_gold, mut vs_cpu) = (0f32, 0f32);
    for b in 0..batch {
        let mut off = b * per_image;
        for (k, (ours, reference)) in out.iter().zip(&cpu).enumerate() {
            assert_eq!(ours.len(), reference.data.len(), "output {k} length");
            let per = ours.len() / batch;
            let ours = &ours[b * per..][..per];
            let gold = &golden[off..off + per];
            let refd = &reference.data[b * per..][..per];
            for (i, ((o, g), r)) in ours.iter().zip(gold).zip(refd).enumerate() {
                assert!(
                    (o - g).abs() <= 2e-4 + 1e-4 * g.abs(),
                    "{file} image {b} output {k}[{i}]: gpu {o} golden {g}"
                );
                assert!(
                    (o - r).abs() <= 2e-4 + 1e-4 * r.abs(),
                    "{file} image {b} output {k}[{i}]: gpu {o} cpu {r}"
                );
            }
            vs_gold = vs_gold.max(max_abs_diff(ours, gold));
            vs_cpu = vs_cpu.max(max_abs_diff(ours, refd));
            off += per;
        }
        assert_eq!(off, (b + 1) * per_image, "golden length");
    }
    eprintln!(
        "{file} GPU batch {batch}: max |diff| vs onnxruntime {vs_gold:.3e}, vs CPU reference {vs_cpu:.3e}; {took:?} for the batch; ops {}; {} dispatches; activations {} KiB after reuse",
        graph
            .op_summary()
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        model.dispatch_count(),
        model.planned_bytes / 1024
    );
    // Every Relu after a residual Add is fused into it: one dispatch for the pair.
    let count = |name: &str| graph.nodes.iter().filter(|n| n.op.name() == name).count();
    let layout_noops = graph.nodes.iter().filter(|n| n.op.is_layout_noop()).count();
    assert_eq!(
        model.dispatch_count(),
        graph.nodes.len() - layout_noops - count("Relu"),
        "dispatches"
    );
    // Reused buffers leak no state between runs.
    let again = model
        .run(&device, &queue, &kernels, &input)
        .expect("runs again");
    assert_eq!(again, out);
    (vs_gold, vs_cpu)
}

#[test]
fn blazeface_front_on_gpu_matches_onnxruntime_and_cpu() {
    let raw = fixture("blazeface_inputs.u8");
    let golden = fixture_f32("blazeface_front_golden.f32");
    blazeface_on_gpu(FRONT, blazeface_values(&raw), 128, 2, &golden);
}

#[test]
fn blazeface_back_on_gpu_matches_onnxruntime_and_cpu() {
    let raw = fixture("blazeface_inputs.u8");
    let input = blazeface_values(&upsample2x(&raw[..128 * 128 * 3], 128));
    let golden = fixture_f32("blazeface_back_golden.f32");
    blazeface_on_gpu(BACK, input, 256, 1, &golden);
}

/// The single-op fixtures (tests/fixtures/ops) on the GPU: every model the executor plans must match
/// onnxruntime within 1e-4 + 1e-4·|golden| (the CPU reference meets 1e-5; the GPU sums in other
/// orders); every model it refuses must be refused by name. Prints which ran.
#[test]
fn op_fixtures_on_gpu_match_onnxruntime_or_are_refused() {
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let dir = op_fixture_dir();
    let names = op_fixture_names();
    let (mut ran, mut refused) = (Vec::new(), Vec::new());
    for name in &names {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).expect("model");
        let x = fixture_f32(&format!("ops/{name}.in.f32"));
        let want = fixture_f32(&format!("ops/{name}.out.f32"));
        let g = engine::load_bytes(&bytes).expect("loads");
        let batch = g.input_shape(0).expect("input")[0];
        match GpuModel::new(&device, &kernels, &g, batch) {
            Ok(m) => {
                let y = m.run(&device, &queue, &kernels, &x).expect("runs");
                assert_eq!(y[0].len(), want.len(), "{name}: output size");
                for (i, (a, b)) in y[0].iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                        "{name}[{i}]: gpu {a} vs onnxruntime {b}"
                    );
                }
                ran.push(format!("{name} ({:.1e})", max_abs_diff(&y[0], &want)));
            }
            Err(e) => {
                assert!(
                    e.to_string().contains("not implemented on the GPU"),
                    "{name}: {e}"
                );
                refused.push(format!("{name}: {e}"));
            }
        }
    }
    eprintln!(
        "ran on GPU: {}\nrefused:\n  {}",
        ran.join(", "),
        refused.join("\n  ")
    );
    assert!(ran.len() >= 10, "too few op fixtures run on the GPU");
}

/// Fusion only where it is safe: `s = x + x` feeds a Relu *and* a Mul, so it must stay in memory
/// (no fusion); `t = s · r` feeds only a Sigmoid, so that pair runs as one dispatch. The GPU result
/// equals the CPU reference within 1e-4·max(1, |cpu|) (Sigmoid's `exp` differs in the last bits).
#[test]
fn binary_activation_fusion_keeps_shared_sums() {
    let bytes = model(
        13,
        &[
            node("Add", "s", &["x", "x"], &["s"], &[]),
            node("Relu", "r", &["s"], &["r"], &[]),
            node("Mul", "t", &["s", "r"], &["t"], &[]),
            node("Sigmoid", "y", &["t"], &["y"], &[]),
        ],
        &[],
        &[value_info("x", &[-1, 3, 4, 5])],
        &[value_info("y", &[-1, 3, 4, 5])],
    );
    let g = engine::load_bytes(&bytes).expect("loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let m = GpuModel::new(&device, &kernels, &g, 2).expect("plans");
    // Add, Relu, Mul+Sigmoid.
    assert_eq!(m.dispatch_count(), 3);
    let x = noise(2 * 3 * 4 * 5, 3);
    let ours = m.run(&device, &queue, &kernels, &x).expect("runs");
    let cpu = engine::cpu::run(
        &g,
        &[engine::Tensor::new(vec![2, 3, 4, 5], x).expect("tensor")],
    )
    .expect("cpu");
    for (a, b) in ours[0].iter().zip(&cpu[0].data) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "gpu {a} cpu {b}");
    }
}

/// Resize on the GPU against the CPU reference on odd sizes, up and down, in every coordinate mode
/// and both interpolation modes (the op fixtures above check a few cases against onnxruntime).
/// The kernel blends with the CPU reference's own taps, so they agree to 1e-6·max(1, |cpu|)
/// (a GPU may fuse the blend's multiply-adds).
#[test]
fn resize_on_gpu_matches_cpu_reference() {
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let cases: [(&str, &str, &str, [f32; 2]); 6] = [
        ("nearest", "asymmetric", "floor", [2.5, 0.6]),
        ("nearest", "half_pixel", "round_prefer_floor", [1.7, 3.0]),
        ("nearest", "align_corners", "ceil", [0.5, 1.3]),
        ("linear", "half_pixel", "floor", [2.5, 0.6]),
        ("linear", "pytorch_half_pixel", "floor", [0.3, 2.0]),
        ("linear", "align_corners", "floor", [1.9, 1.1]),
    ];
    for (i, (mode, coord, nearest, [sh, sw])) in cases.into_iter().enumerate() {
        let bytes = model(
            13,
            &[node(
                "Resize",
                "rs",
                &["x", "", "scales"],
                &["y"],
                &[
                    attr_string("mode", mode),
                    attr_string("coordinate_transformation_mode", coord),
                    attr_string("nearest_mode", nearest),
                ],
            )],
            &[tensor_f32("scales", &[4], &[1.0, 1.0, sh, sw])],
            &[value_info("x", &[-1, 3, 7, 5])],
            &[value_info("y", &[-1, 3, -1, -1])],
        );
        let g = engine::load_bytes(&bytes).expect("Resize model loads");
        let m = GpuModel::new(&device, &kernels, &g, 2).expect("plans");
        let x = noise(2 * 3 * 7 * 5, 40 + i as u64);
        let ours = m.run(&device, &queue, &kernels, &x).expect("runs");
        let cpu = engine::cpu::run(
            &g,
            &[engine::Tensor::new(vec![2, 3, 7, 5], x).expect("tensor")],
        )
        .expect("cpu");
        assert_eq!(ours[0].len(), cpu[0].data.len(), "case {i}: size");
        for (a, b) in ours[0].iter().zip(&cpu[0].data) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "case {i} ({mode}, {coord}): gpu {a} cpu {b}"
            );
        }
    }
}
