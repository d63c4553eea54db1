//! The presentation-attack networks (MiniFASNetV2 at 2.7×, MiniFASNetV1SE at 4.0×; committed in
//! `assets/pad/` by `scripts/pad/convert.py`) on every executor against the logits of upstream's
//! own PyTorch module on the same inputs (`fixtures/pad_inputs.u8`: four face chips and one noise
//! image, 80×80 BGR). Tolerance: max |logit difference| ≤ 1e-3·(1 + max |logit|) for f32, and
//! the same class decision on every input.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, fixture_f32, max_abs_diff};
use engine::face::pad::{self, INPUT, MODELS};
use engine::fast::FastModel;
use engine::gpu::{GpuModel, Kernels, open_device};
use engine::tensor::Tensor;

const N: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model(file: &str) -> engine::Graph {
    let p = root().join("assets/pad").join(file);
    engine::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `[N, 3, 80, 80]` in 0..255, channel order as stored (BGR).
fn inputs() -> Vec<f32> {
    let raw = fixture("pad_inputs.u8");
    assert_eq!(raw.len(), N * INPUT * INPUT * 3);
    let plane = INPUT * INPUT;
    let mut out = vec![0f32; raw.len()];
    for (i, v) in raw.iter().enumerate() {
        let (img, px, c) = (i / (plane * 3), (i / 3) % plane, i % 3);
        out[(img * 3 + c) * plane + px] = f32::from(*v);
    }
    out
}

fn golden(file: &str) -> Vec<f32> {
    fixture_f32(&file.replace(".onnx", "_golden.f32"))
}

fn check(what: &str, ours: &[f32], gold: &[f32]) {
    assert_eq!(ours.len(), gold.len(), "{what}: output length");
    let mag = gold.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = max_abs_diff(ours, gold);
    eprintln!("{what}: max |logit diff| {worst:.2e} (max |logit| {mag:.2})");
    assert!(
        worst <= 1e-3 * (1.0 + mag),
        "{what}: logits differ by {worst}"
    );
    for (i, (o, g)) in ours.chunks(3).zip(gold.chunks(3)).enumerate() {
        let argmax = |l: &[f32]| (0..3).fold(0, |b, k| if l[k] > l[b] { k } else { b });
        assert_eq!(argmax(o), argmax(g), "{what}: input {i} changes class");
    }
}

#[test]
fn pad_networks_match_pytorch_on_the_cpu() {
    let x = Tensor::new(vec![N, 3, INPUT, INPUT], inputs()).unwrap();
    for (file, _) in MODELS {
        let g = model(file);
        let gold = golden(file);
        let reference = engine::cpu::run(&g, std::slice::from_ref(&x)).unwrap();
        check(&format!("{file} reference"), &reference[0].data, &gold);
        for threads in [1, 2] {
            let fast = FastModel::new(g.clone(), threads).unwrap();
            let out = fast.run(std::slice::from_ref(&x)).unwrap();
            check(&format!("{file} fast ×{threads}"), &out[0].data, &gold);
        }
    }
}

#[test]
fn pad_networks_match_pytorch_on_the_gpu() {
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let x = inputs();
    for (file, _) in MODELS {
        let g = model(file);
        let m = GpuModel::new(&device, &kernels, &g, N).expect("plans on the GPU");
        let out = m.run(&device, &queue, &kernels, &x).expect("runs");
        check(&format!("{file} gpu"), &out[0], &golden(file));
    }
}

/// The pair's verdict on the golden logits is the mean of the two softmaxes' live class.
#[test]
fn verdict_averages_the_pair_on_golden_logits() {
    let (a, b) = (golden(MODELS[0].0), golden(MODELS[1].0));
    for i in 0..N {
        let p = pad::live_probability(&[&a[i * 3..][..3], &b[i * 3..][..3]]).unwrap();
        let want = (pad::softmax(&a[i * 3..][..3])[1] + pad::softmax(&b[i * 3..][..3])[1]) / 2.0;
        assert!((p - want).abs() < 1e-6 && (0.0..=1.0).contains(&p));
    }
}

/// A missing PAD folder is named, with where the networks come from.
#[test]
fn a_missing_pad_folder_is_named() {
    let err = match pad::PadPair::load(Path::new("/nonexistent/pad"), 1) {
        Ok(_) => panic!("loaded from nowhere"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("/nonexistent/pad/minifasnet_v2_2.7_80x80.onnx") && err.contains("GATE_PAD"),
        "{err}"
    );
}
