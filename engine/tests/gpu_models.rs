//! Models end to end on the WGSL kernels (lavapipe in CI) against onnxruntime's golden outputs and
//! the CPU reference. Tolerance for SFace: max |difference| of the L2-normalised descriptor ≤ 1e-3
//! (the bound for f32); the measured value is printed.

mod common;

use std::time::Instant;

use common::*;
use engine::gpu::{GpuModel, GpuRunError, Kernels, open_device};

fn chips_nchw() -> Vec<f32> {
    let raw = fixture("sface_chips.u8");
    let (n, h, w) = (4, 112, 112);
    assert_eq!(raw.len(), n * h * w * 3);
    let mut data = vec![0f32; raw.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    data[((b * 3 + c) * h + y) * w + x] =
                        f32::from(raw[((b * h + y) * w + x) * 3 + c]);
                }
            }
        }
    }
    data
}

#[test]
fn sface_on_gpu_matches_onnxruntime() {
    let graph = engine::load(&model_path(SFACE)).expect("SFace loads");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let model = GpuModel::new(&device, &kernels, &graph, 4).expect("SFace plans on the GPU");
    let input = chips_nchw();
    let t0 = Instant::now();
    let out = model.run(&device, &queue, &kernels, &input).expect("runs");
    let took = t0.elapsed();
    let golden = fixture_f32("sface_golden.f32");
    assert_eq!(out[0].len(), golden.len());
    let mut worst = 0f32;
    for (ours, gold) in out[0].chunks(128).zip(golden.chunks(128)) {
        worst = worst.max(max_abs_diff(&l2_normalised(ours), &l2_normalised(gold)));
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
    // BlazeFace still needs Transpose/Add/MaxPool/Pad kernels: refused by name, not run half-way.
    let bf = engine::load(&model_path(FRONT)).expect("BlazeFace loads");
    let e = GpuModel::new(&device, &kernels, &bf, 1)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("not implemented on the GPU"), "{e}");
}
