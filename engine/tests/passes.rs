//! Each load-time pass on small hand-built models: the optimised graph has the expected
//! shape and computes the same outputs as the imported one (CPU reference, 1e-4 of the
//! output magnitude).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::graph::{Activation, Op};
use engine::{Graph, Tensor, cpu, onnx};

fn both(bytes: &[u8]) -> (Graph, Graph) {
    (
        onnx::import_bytes(bytes).unwrap(),
        engine::load_bytes(bytes).unwrap(),
    )
}

fn input_for(g: &Graph, batch: usize, seed: u64) -> Tensor {
    let mut shape = g.input_shape(0).unwrap().to_vec();
    shape[0] = batch;
    let n = shape.iter().product();
    Tensor::new(shape, noise(n, seed)).unwrap()
}

fn assert_same(raw: &Graph, opt: &Graph) {
    let x = input_for(raw, 1, 3);
    let a = cpu::run(raw, std::slice::from_ref(&x)).unwrap();
    let b = cpu::run(opt, &[x]).unwrap();
    for (ta, tb) in a.iter().zip(&b) {
        assert_eq!(ta.shape, tb.shape);
        let mag = ta.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&ta.data, &tb.data);
        assert!(
            d <= 1e-4 * mag.max(1e-3),
            "outputs differ by {d} (magnitude {mag})"
        );
    }
}

fn bn_inits(p: &str, c: usize, seed: u64) -> Vec<Msg> {
    let v = |s: u64, off: f32| -> Vec<f32> { noise(c, seed + s).iter().map(|x| x + off).collect() };
    vec![
        tensor_f32(&format!("{p}_g"), &[c as i64], &v(1, 1.0)),
        tensor_f32(&format!("{p}_b"), &[c as i64], &v(2, 0.0)),
        tensor_f32(&format!("{p}_m"), &[c as i64], &v(3, 0.0)),
        tensor_f32(&format!("{p}_v"), &[c as i64], &v(4, 1.5)),
    ]
}

fn bn_node(p: &str, x: &str, y: &str) -> Msg {
    let ins = [
        x,
        &format!("{p}_g"),
        &format!("{p}_b"),
        &format!("{p}_m"),
        &format!("{p}_v"),
    ];
    node(
        "BatchNormalization",
        p,
        &ins,
        &[y],
        &[attr_float("epsilon", 1e-3)],
    )
}

#[test]
fn conv_bn_prelu_becomes_one_conv() {
    let mut inits = vec![
        tensor_f32("w1", &[4, 1, 3, 3], &noise(36, 10)),
        tensor_f32("w2", &[6, 4, 1, 1], &noise(24, 11)),
        tensor_f32("b2", &[6], &noise(6, 12)),
        tensor_f32("slope", &[4, 1, 1], &[0.1, 0.2, 0.3, 0.4]),
    ];
    inits.extend(bn_inits("bn1", 4, 20));
    inits.extend(bn_inits("bn2", 6, 30));
    let conv = |name, i, w: &[&str], o, group| {
        let mut ins = vec![i];
        ins.extend_from_slice(w);
        node(
            "Conv",
            name,
            &ins,
            &[o],
            &[
                attr_ints("kernel_shape", if group > 1 { &[3, 3] } else { &[1, 1] }),
                attr_ints(
                    "pads",
                    if group > 1 {
                        &[1, 1, 1, 1]
                    } else {
                        &[0, 0, 0, 0]
                    },
                ),
                attr_ints("strides", if group > 1 { &[2, 2] } else { &[1, 1] }),
                attr_int("group", group),
            ],
        )
    };
    let m = model(
        21,
        &[
            conv("dw", "x", &["w1"], "c1", 4),
            bn_node("bn1", "c1", "n1"),
            node("PRelu", "p1", &["n1", "slope"], &["a1"], &[]),
            conv("pw", "a1", &["w2", "b2"], "c2", 1),
            bn_node("bn2", "c2", "n2"),
            node("Relu", "r2", &["n2"], &["y"], &[]),
        ],
        &inits,
        &[value_info("x", &[1, 4, 9, 9])],
        &[value_info("y", &[1, 6, 5, 5])],
    );
    let (raw, opt) = both(&m);
    assert_eq!(opt.op_summary(), vec![("Conv", 2)]);
    let acts: Vec<Activation> = opt
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            Op::Conv(c) => Some(c.activation),
            _ => None,
        })
        .collect();
    assert_eq!(acts, vec![Activation::PRelu, Activation::Relu]);
    assert_eq!(opt.name(opt.outputs[0]), "y");
    assert_same(&raw, &opt);
}

#[test]
fn input_normalisation_becomes_explicit_affine() {
    let m = model(
        21,
        &[
            node("Sub", "sub", &["x", "mean"], &["s"], &[]),
            node("Mul", "mul", &["s", "k"], &["n"], &[]),
            node("Div", "div", &["n", "std"], &["d"], &[]),
            node(
                "Conv",
                "c",
                &["d", "w"],
                &["y"],
                &[attr_ints("pads", &[1, 1, 1, 1])],
            ),
        ],
        &[
            tensor_f32("mean", &[1], &[127.5]),
            tensor_f32("k", &[1], &[0.0078125]),
            tensor_f32("std", &[1, 3, 1, 1], &[0.5, 1.0, 2.0]),
            tensor_f32("w", &[2, 3, 3, 3], &noise(54, 5)),
        ],
        &[value_info("x", &[-1, 3, 6, 6])],
        &[value_info("y", &[1, 2, 6, 6])],
    );
    let (raw, opt) = both(&m);
    assert_eq!(opt.op_summary(), vec![("Affine", 1), ("Conv", 1)]);
    match &opt.nodes[0].op {
        Op::Affine { scale, shift } => {
            assert_eq!(scale, &[0.015625, 0.0078125, 0.00390625]);
            assert_eq!(shift, &[-1.9921875, -0.99609375, -255.0 / 512.0]);
        }
        other => panic!("{other:?}"),
    }
    assert_same(&raw, &opt);
}

#[test]
fn batch_norms_around_a_gemm_fold_into_it() {
    let mut inits = vec![
        tensor_f32("w", &[4, 2, 1, 1], &noise(8, 40)),
        tensor_f32("fc", &[3, 4 * 2 * 2], &noise(48, 41)),
        tensor_f32("fcb", &[3], &noise(3, 42)),
        tensor_f32("ratio", &[], &[0.4]),
    ];
    inits.extend(bn_inits("bn1", 4, 50));
    inits.extend(bn_inits("bn2", 3, 60));
    let m = model(
        21,
        &[
            node("Conv", "c", &["x", "w"], &["c1"], &[]),
            node("Relu", "r", &["c1"], &["r1"], &[]),
            bn_node("bn1", "r1", "n1"),
            node("Dropout", "drop", &["n1", "ratio"], &["d1"], &[]),
            node("Flatten", "f", &["d1"], &["f1"], &[]),
            node(
                "Gemm",
                "fc1",
                &["f1", "fc", "fcb"],
                &["g1"],
                &[
                    attr_int("transB", 1),
                    attr_float("alpha", 0.5),
                    attr_float("beta", 2.0),
                ],
            ),
            bn_node("bn2", "g1", "y"),
        ],
        &inits,
        &[value_info("x", &[1, 2, 2, 2])],
        &[value_info("y", &[1, 3])],
    );
    let (raw, opt) = both(&m);
    assert_eq!(
        opt.op_summary(),
        vec![("Conv", 1), ("Flatten", 1), ("Gemm", 1)]
    );
    assert_same(&raw, &opt);
    // and at batch 5
    let x = input_for(&opt, 5, 9);
    assert_eq!(cpu::run(&opt, &[x]).unwrap()[0].shape, vec![5, 3]);
}

#[test]
fn block_quantised_weights_are_dequantised_at_load() {
    // 2 output channels x 3 inputs x 3x3 = 27 per row, blocks of 9 -> 3 blocks per row
    let q: Vec<i8> = (0..54).map(|i| (i * 7 % 255 - 127) as i8).collect();
    let scales: Vec<f32> = (0..6).map(|i| 0.01 * (i + 1) as f32).collect();
    let zps: Vec<i8> = vec![0, 1, -1, 2, -2, 3];
    let m = model(
        21,
        &[
            node(
                "DequantizeLinear",
                "dq",
                &["wq", "ws", "wz"],
                &["wf"],
                &[attr_int("axis", 1), attr_int("block_size", 9)],
            ),
            node("Reshape", "rs", &["wf", "shape"], &["w"], &[]),
            node(
                "Conv",
                "c",
                &["x", "w"],
                &["y"],
                &[attr_ints("kernel_shape", &[3, 3])],
            ),
        ],
        &[
            tensor_i8("wq", &[2, 27], &q),
            tensor_f32("ws", &[2, 3], &scales),
            tensor_i8("wz", &[2, 3], &zps),
            tensor_i64("shape", &[4], &[2, 3, 3, 3]),
        ],
        &[value_info("x", &[1, 3, 3, 3])],
        &[value_info("y", &[1, 2, 1, 1])],
    );
    let (raw, opt) = both(&m);
    assert_eq!(opt.op_summary(), vec![("Conv", 1)]);
    let w = opt.constant(opt.nodes[0].inputs[1]).unwrap();
    assert_eq!(w.shape, vec![2, 3, 3, 3]);
    let wd = w.f32_data().unwrap();
    for (i, &v) in wd.iter().enumerate() {
        let (row, col) = (i / 27, i % 27);
        let blk = row * 3 + col / 9;
        let want = (f32::from(q[i]) - f32::from(zps[blk])) * scales[blk];
        assert_eq!(v, want, "weight {i}");
    }
    assert_same(&raw, &opt);
}

#[test]
fn zero_concat_and_reshape_become_batch_generic() {
    let m = model(
        12,
        &[
            node(
                "Transpose",
                "t",
                &["x"],
                &["xt"],
                &[attr_ints("perm", &[0, 3, 1, 2])],
            ),
            node("ConstantOfShape", "z", &["zshape"], &["zeros"], &[]),
            node(
                "Concat",
                "cat",
                &["xt", "zeros"],
                &["padded"],
                &[attr_int("axis", 1)],
            ),
            node("Add", "add", &["padded", "bias"], &["s"], &[]),
            node(
                "Transpose",
                "t2",
                &["s"],
                &["st"],
                &[attr_ints("perm", &[0, 2, 3, 1])],
            ),
            node("Reshape", "r", &["st", "oshape"], &["y"], &[]),
        ],
        &[
            tensor_i64("zshape", &[4], &[1, 2, 4, 4]),
            tensor_f32("bias", &[5, 1, 1], &[1., 2., 3., 4., 5.]),
            tensor_i64("oshape", &[3], &[1, 16, 5]),
        ],
        &[value_info("x", &[1, 4, 4, 3])],
        &[value_info("y", &[1, 16, 5])],
    );
    let (raw, opt) = both(&m);
    assert!(raw.infer_shapes(3).is_err(), "raw graph is batch-1 only");
    assert!(opt.nodes.iter().any(|n| matches!(n.op, Op::Pad(_))));
    assert_same(&raw, &opt);
    // batch 3 == three batch-1 runs
    let x3 = input_for(&opt, 3, 77);
    let y3 = cpu::run(&opt, std::slice::from_ref(&x3)).unwrap();
    assert_eq!(y3[0].shape, vec![3, 16, 5]);
    let per_in = 4 * 4 * 3;
    for b in 0..3 {
        let x1 = Tensor::new(vec![1, 4, 4, 3], x3.data[b * per_in..][..per_in].to_vec()).unwrap();
        let y1 = cpu::run(&raw, &[x1]).unwrap();
        assert_eq!(y1[0].data, y3[0].data[b * 80..][..80]);
    }
}

#[test]
fn remaining_ops_import_and_run() {
    let m = model(
        13,
        &[
            node(
                "MaxPool",
                "mp",
                &["x"],
                &["a"],
                &[
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            ),
            node(
                "AveragePool",
                "ap",
                &["a"],
                &["b"],
                &[
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                    attr_int("count_include_pad", 1),
                ],
            ),
            node(
                "Resize",
                "up",
                &["b", "", "scales"],
                &["c"],
                &[attr_string("mode", "linear")],
            ),
            node(
                "Pad",
                "pad",
                &["c", "pads"],
                &["d"],
                &[attr_string("mode", "edge")],
            ),
            node("Clip", "clip", &["d", "lo", "hi"], &["e"], &[]),
            node(
                "LeakyRelu",
                "lr",
                &["e"],
                &["f"],
                &[attr_float("alpha", 0.2)],
            ),
            node("Sigmoid", "sg", &["f"], &["g"], &[]),
            node("GlobalAveragePool", "gap", &["g"], &["h"], &[]),
            node("Flatten", "fl", &["h"], &["i"], &[]),
            node("MatMul", "mm", &["i", "mat"], &["j"], &[]),
            node("Identity", "id", &["j"], &["y"], &[]),
        ],
        &[
            tensor_f32("scales", &[4], &[1., 1., 2., 2.]),
            tensor_i64("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]),
            tensor_f32("lo", &[], &[-0.5]),
            tensor_f32("hi", &[], &[0.5]),
            tensor_f32("mat", &[3, 2], &[1., 0., 0., 1., 1., 1.]),
        ],
        &[value_info("x", &[1, 3, 8, 8])],
        &[value_info("y", &[1, 2])],
    );
    let (raw, opt) = both(&m);
    let s = raw.infer_shapes(1).unwrap();
    let find = |n: &str| raw.find(n).unwrap();
    assert_eq!(s.get(find("a")).unwrap(), &[1, 3, 4, 4]);
    assert_eq!(s.get(find("c")).unwrap(), &[1, 3, 8, 8]);
    assert_eq!(s.get(find("d")).unwrap(), &[1, 3, 10, 10]);
    assert_eq!(s.get(find("y")).unwrap(), &[1, 2]);
    assert_same(&raw, &opt);
    // Sigmoid sees LeakyRelu(clip(.., -0.5, 0.5)) in [-0.1, 0.5], so each pooled feature
    // lies in [sigmoid(-0.1), sigmoid(0.5)] and each output sums two of them.
    let y = cpu::run(&opt, &[input_for(&opt, 2, 1)]).unwrap();
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    assert_eq!(y[0].shape, vec![2, 2]);
    for v in &y[0].data {
        assert!(
            *v >= 2.0 * sig(-0.1) - 1e-5 && *v <= 2.0 * sig(0.5) + 1e-5,
            "{v}"
        );
    }
}
