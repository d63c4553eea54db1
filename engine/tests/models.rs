//! The three shipped models end to end: import, passes, CPU reference vs the onnxruntime
//! golden fixtures (see tests/fixtures/make_golden.py).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use engine::{Graph, Tensor, cpu, onnx};

fn sface_chips() -> Tensor {
    Tensor::new(vec![4, 3, 112, 112], sface_chips_nchw()).unwrap()
}

/// BlazeFace input: NHWC, u8 / 127.5 - 1, as make_golden.py feeds it.
fn blazeface_input(raw: &[u8], n: usize, size: usize) -> Tensor {
    Tensor::new(vec![n, size, size, 3], blazeface_values(raw)).unwrap()
}

fn op_list(g: &Graph) -> String {
    g.op_summary()
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn imports_all_three_models() {
    for m in [SFACE, FRONT, BACK] {
        let raw = onnx::import_file(&model_path(m)).unwrap();
        let opt = engine::load(&model_path(m)).unwrap();
        eprintln!(
            "{m}\n  imported:  {}\n  optimised: {}",
            op_list(&raw),
            op_list(&opt)
        );
        for b in [1, 3] {
            opt.infer_shapes(b).unwrap();
        }
        assert!(opt.nodes.len() < raw.nodes.len());
    }
}

#[test]
fn sface_graph_after_passes() {
    let g = engine::load(&model_path(SFACE)).unwrap();
    use engine::graph::{Activation, Op};
    // The input normalisation is an explicit Affine at the head of the graph.
    assert!(matches!(&g.nodes[0].op, Op::Affine { scale, shift }
        if scale == &[0.0078125] && shift == &[-0.99609375]));
    // Every BatchNorm, PRelu and the Dropout are gone: 27 convs with fused PRelu + one Gemm.
    let summary = g.op_summary();
    assert_eq!(
        summary,
        vec![("Affine", 1), ("Conv", 27), ("Flatten", 1), ("Gemm", 1)]
    );
    assert!(g.nodes.iter().all(|n| match &n.op {
        Op::Conv(c) => c.activation == Activation::PRelu,
        _ => true,
    }));
    assert_eq!(g.name(g.outputs[0]), "fc1");
    let s = g.infer_shapes(8).unwrap();
    assert_eq!(s.get(g.outputs[0]).unwrap(), &[8, 128]);
}

#[test]
fn sface_matches_onnxruntime() {
    let g = engine::load(&model_path(SFACE)).unwrap();
    let input = sface_chips();
    let t0 = Instant::now();
    let out = cpu::run(&g, &[input]).unwrap();
    let per_chip = t0.elapsed() / 4;
    let golden = fixture_f32("sface_golden.f32");
    assert_eq!(out[0].shape, vec![4, 128]);
    let mut worst_norm = 0f32;
    let mut worst_raw = 0f32;
    for i in 0..4 {
        let ours = &out[0].data[i * 128..][..128];
        let gold = &golden[i * 128..][..128];
        worst_raw = worst_raw.max(max_abs_diff(ours, gold));
        worst_norm = worst_norm.max(max_abs_diff(&l2_normalise(ours), &l2_normalise(gold)));
    }
    eprintln!(
        "SFace: max |diff| normalised {worst_norm:.3e}, raw {worst_raw:.3e}; CPU reference {per_chip:?} per chip (batch 4)"
    );
    assert!(
        worst_norm <= 1e-4,
        "normalised descriptor differs by {worst_norm}"
    );
}

/// `max |ours - golden| <= atol + rtol * |golden|` over one output tensor.
fn check_close(what: &str, ours: &[f32], gold: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(ours.len(), gold.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (a, b)) in ours.iter().zip(gold).enumerate() {
        let d = (a - b).abs();
        assert!(d <= atol + rtol * b.abs(), "{what}[{i}]: {a} vs golden {b}");
        worst = worst.max(d);
    }
    worst
}

/// Splits the golden vector of one input into the four BlazeFace outputs.
fn compare_blazeface(what: &str, outs: &[Tensor], batch_index: usize, golden: &[f32]) -> f32 {
    let mut off = 0;
    let mut worst = 0f32;
    for (k, o) in outs.iter().enumerate() {
        let per = o.data.len() / o.shape[0];
        let ours = &o.data[batch_index * per..][..per];
        worst = worst.max(check_close(
            &format!("{what} output {k}"),
            ours,
            &golden[off..off + per],
            2e-4,
            1e-4,
        ));
        off += per;
    }
    assert_eq!(off, golden.len());
    worst
}

#[test]
fn blazeface_front_matches_onnxruntime() {
    let g = engine::load(&model_path(FRONT)).unwrap();
    let input = blazeface_input(&fixture("blazeface_inputs.u8"), 2, 128);
    let outs = cpu::run(&g, &[input]).unwrap();
    assert_eq!(outs.len(), 4);
    assert_eq!(outs[0].shape, vec![2, 512, 1]);
    assert_eq!(outs[3].shape, vec![2, 384, 16]);
    let golden = fixture_f32("blazeface_front_golden.f32");
    let per = golden.len() / 2;
    let w0 = compare_blazeface("front#0", &outs, 0, &golden[..per]);
    let w1 = compare_blazeface("front#1", &outs, 1, &golden[per..]);
    eprintln!("BlazeFace front: max |diff| {:.3e}", w0.max(w1));
}

#[test]
fn blazeface_back_matches_onnxruntime() {
    let g = engine::load(&model_path(BACK)).unwrap();
    let raw = fixture("blazeface_inputs.u8");
    let input = blazeface_input(&upsample2x(&raw[..128 * 128 * 3], 128), 1, 256);
    let outs = cpu::run(&g, &[input]).unwrap();
    let w = compare_blazeface("back", &outs, 0, &fixture_f32("blazeface_back_golden.f32"));
    eprintln!("BlazeFace back: max |diff| {w:.3e}");
}

/// Every pass together keeps the outputs: the imported graph (no passes) and the optimised
/// one agree on random inputs to 1e-4 of each output's magnitude.
#[test]
fn passes_preserve_outputs() {
    for (m, scale) in [(SFACE, 255.0), (FRONT, 1.0), (BACK, 1.0)] {
        let raw = onnx::import_file(&model_path(m)).unwrap();
        let opt = engine::load(&model_path(m)).unwrap();
        let shape = raw.input_shape(0).unwrap().to_vec();
        let n: usize = shape.iter().product();
        let data = noise(n, 7)
            .iter()
            .map(|v| (v + 1.0) * 0.5 * scale)
            .collect();
        let x = Tensor::new(shape, data).unwrap();
        let a = cpu::run(&raw, std::slice::from_ref(&x)).unwrap();
        let b = cpu::run(&opt, &[x]).unwrap();
        for (ta, tb) in a.iter().zip(&b) {
            assert_eq!(ta.shape, tb.shape);
            let mag = ta.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&ta.data, &tb.data);
            eprintln!("{m}: passes changed outputs by {d:.3e} (magnitude {mag:.3e})");
            assert!(d <= 1e-4 * mag.max(1e-3), "{m}: {d} vs magnitude {mag}");
        }
    }
}

/// Batching is exact: a batch of two equals two batches of one.
#[test]
fn sface_batch_equals_singles() {
    let g = engine::load(&model_path(SFACE)).unwrap();
    let per = 3 * 112 * 112;
    let chips = sface_chips();
    let all = Tensor::new(vec![2, 3, 112, 112], chips.data[..2 * per].to_vec()).unwrap();
    let batch = cpu::run(&g, std::slice::from_ref(&all)).unwrap();
    for i in [0, 1] {
        let one = Tensor::new(vec![1, 3, 112, 112], all.data[i * per..][..per].to_vec()).unwrap();
        let out = cpu::run(&g, &[one]).unwrap();
        assert_eq!(out[0].data, batch[0].data[i * 128..][..128]);
    }
}

/// Truncating or corrupting the real file gives errors, never a panic.
#[test]
fn damaged_model_files_are_errors() {
    let bytes = std::fs::read(model_path(FRONT)).unwrap();
    for cut in [0, 1, 7, 100, 1000, bytes.len() / 2, bytes.len() - 1] {
        assert!(onnx::import_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut r = 12345u64;
    for _ in 0..200 {
        let mut b = bytes[..4096.min(bytes.len())].to_vec();
        for _ in 0..4 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (r >> 33) as usize % b.len();
            b[i] = (r >> 20) as u8;
        }
        let _ = onnx::import_bytes(&b);
    }
}

/// The fast CPU executor on the three models: equal to onnxruntime's goldens with the reference's
/// own tolerances, and to the reference itself, at 1 and 2 threads. The detectors run on the
/// negated frame first: the checked run writes into buffers recycled from that one, so an output
/// a kernel leaves unwritten would hold wrong values.
#[test]
fn fast_executor_matches_onnxruntime_and_reference() {
    use engine::fast::FastModel;
    for threads in [1, 2] {
        let g = engine::load(&model_path(SFACE)).unwrap();
        let fast = FastModel::new(g.clone(), threads).unwrap();
        let out = fast.run(&[sface_chips()]).unwrap();
        let golden = fixture_f32("sface_golden.f32");
        for i in 0..4 {
            let ours = l2_normalise(&out[0].data[i * 128..][..128]);
            let gold = l2_normalise(&golden[i * 128..][..128]);
            let d = max_abs_diff(&ours, &gold);
            assert!(
                d <= 1e-4,
                "SFace chip {i}: normalised descriptor differs by {d}"
            );
        }

        let g = engine::load(&model_path(FRONT)).unwrap();
        let input = blazeface_input(&fixture("blazeface_inputs.u8"), 2, 128);
        let fast = FastModel::new(g.clone(), threads).unwrap();
        fast.run(&[negated(&input)]).unwrap();
        let outs = fast.run(std::slice::from_ref(&input)).unwrap();
        let golden = fixture_f32("blazeface_front_golden.f32");
        let per = golden.len() / 2;
        compare_blazeface("fast front#0", &outs, 0, &golden[..per]);
        compare_blazeface("fast front#1", &outs, 1, &golden[per..]);
        let reference = cpu::run(&g, &[input]).unwrap();
        for (a, b) in outs.iter().zip(&reference) {
            let mag = b.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max_abs_diff(&a.data, &b.data) <= 1e-5 * mag.max(1.0));
        }

        let g = engine::load(&model_path(BACK)).unwrap();
        let raw = fixture("blazeface_inputs.u8");
        let input = blazeface_input(&upsample2x(&raw[..128 * 128 * 3], 128), 1, 256);
        let fast = FastModel::new(g, threads).unwrap();
        fast.run(&[negated(&input)]).unwrap();
        let outs = fast.run(&[input]).unwrap();
        compare_blazeface(
            "fast back",
            &outs,
            0,
            &fixture_f32("blazeface_back_golden.f32"),
        );
    }
}

/// `t` with every value negated (another frame of the same shape).
fn negated(t: &Tensor) -> Tensor {
    Tensor::new(t.shape.clone(), t.data.iter().map(|v| -v).collect()).unwrap()
}
