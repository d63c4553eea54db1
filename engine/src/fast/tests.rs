//! The fast executor against the reference, op by op, on random inputs. Tolerance: a GEMM sums
//! in another order than the reference's loops, so each output may differ by 1e-5 of the sum of
//! the magnitudes of its terms; we bound that by `1e-5 · (1 + K · max|x| · max|w|)` with K the
//! number of terms, which is far below anything a decision could see.

use crate::cpu;
use crate::graph::Constant;
use crate::graph::{
    Activation, Conv, Gemm, Graph, Node, Op, Padding, TensorId, TensorInfo, TensorKind, Window2d,
};
use crate::tensor::Tensor;

use super::FastModel;

/// Deterministic values in -1..1 (xorshift), so failures reproduce.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A one-node graph: input `x` of `in_shape`, then constants.
fn one_node(op: Op, in_shape: &[usize], consts: Vec<(Vec<usize>, Vec<f32>)>) -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor(
        "x".into(),
        TensorKind::Input {
            shape: in_shape.to_vec(),
        },
    );
    let mut inputs = vec![x];
    for (i, (shape, data)) in consts.into_iter().enumerate() {
        inputs.push(g.add_constant(format!("c{i}"), Constant::f32(shape, data).unwrap()));
    }
    let y = TensorId(g.tensors.len());
    g.tensors.push(TensorInfo {
        name: "y".into(),
        kind: TensorKind::Value,
    });
    g.nodes.push(Node {
        name: "n".into(),
        op,
        inputs,
        output: y,
    });
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

fn compare(g: Graph, batch: usize, terms: usize, packed: usize) {
    let mut shape = g.input_shape(0).unwrap().to_vec();
    shape[0] = batch;
    let n = shape.iter().product();
    let x = Tensor::new(shape, noise(n, 11)).unwrap();
    let want = cpu::run(&g, std::slice::from_ref(&x)).unwrap();
    for threads in [1, 2] {
        let fast = FastModel::new(g.clone(), threads).unwrap();
        assert_eq!(fast.packed_nodes(), packed, "packed nodes");
        // Twice: the second run writes into the first one's recycled buffers, so a kernel
        // that leaves an output unwritten shows stale values.
        let other = Tensor::new(x.shape.clone(), noise(n, 12)).unwrap();
        fast.run(std::slice::from_ref(&other)).unwrap();
        let got = fast.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(got[0].shape, want[0].shape);
        let tol = 1e-5 * (1.0 + terms as f32);
        for (i, (a, b)) in got[0].data.iter().zip(&want[0].data).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "[{i}] fast {a} vs reference {b} ({threads} threads)"
            );
        }
        // A batch is split between the workers image by image; one image alone is split
        // inside the kernels (the station's case), so run each alone too.
        let per = x.data.len() / batch;
        let out_per = want[0].data.len() / batch;
        let mut one = x.shape.clone();
        one[0] = 1;
        for b in 0..batch {
            let img = Tensor::new(one.clone(), x.data[b * per..][..per].to_vec()).unwrap();
            let got = fast.run(&[img]).unwrap();
            let want = &want[0].data[b * out_per..][..out_per];
            for (i, (a, w)) in got[0].data.iter().zip(want).enumerate() {
                assert!(
                    (a - w).abs() <= tol,
                    "image {b} [{i}] fast {a} vs reference {w} ({threads} threads, alone)"
                );
            }
        }
    }
}

fn conv(k: [usize; 2], s: usize, d: usize, pads: [usize; 4], group: usize, act: Activation) -> Op {
    Op::Conv(Conv {
        window: Window2d {
            kernel: k,
            strides: [s, s],
            dilations: [d, d],
            padding: Padding::Explicit(pads),
            ceil_mode: false,
        },
        group,
        activation: act,
    })
}

#[test]
fn dense_convolutions_match_reference() {
    let cases = [
        // (C, M, H, W, kernel, stride, dilation, pads, activation)
        (8, 16, 9, 11, [1, 1], 1, 1, [0; 4], Activation::PRelu), // direct 1x1
        (3, 8, 13, 12, [3, 3], 2, 1, [1, 1, 1, 1], Activation::Relu), // few channels: direct
        (3, 24, 40, 36, [5, 5], 2, 1, [1, 1, 2, 2], Activation::None), // BlazeFace's first layer
        (5, 7, 10, 10, [3, 3], 1, 1, [1, 0, 2, 1], Activation::None), // unfolded
        (8, 6, 11, 10, [3, 3], 2, 1, [1; 4], Activation::Relu),  // unfolded, strided
        (4, 6, 9, 9, [1, 1], 2, 1, [0; 4], Activation::None),    // strided 1x1: unfolded
        (3, 4, 12, 12, [5, 5], 2, 1, [1, 2, 2, 1], Activation::PRelu),
        // Large enough that two workers split the GEMM's columns and the activation.
        (16, 64, 48, 48, [1, 1], 1, 1, [0; 4], Activation::PRelu),
        (
            4,
            4,
            11,
            11,
            [3, 3],
            1,
            2,
            [2; 4],
            Activation::Clip {
                min: -0.2,
                max: 0.3,
            },
        ),
    ];
    for (c, m, h, w, k, s, d, pads, act) in cases {
        let kk = c * k[0] * k[1];
        let mut consts = vec![
            (vec![m, c, k[0], k[1]], noise(m * kk, 3)),
            (vec![m], noise(m, 5)),
        ];
        if act == Activation::PRelu {
            consts.push((vec![m], noise(m, 9)));
        }
        let g = one_node(conv(k, s, d, pads, 1, act), &[1, c, h, w], consts);
        compare(g, 3, kk, 1);
    }
}

#[test]
fn depthwise_convolutions_match_reference() {
    let cases = [
        // (C, H, W, kernel, stride, dilation, pads)
        (6, 16, 16, [3, 3], 1, 1, [1; 4]),
        (6, 16, 15, [3, 3], 2, 1, [0, 0, 2, 2]),
        (6, 15, 17, [3, 3], 2, 1, [1, 1, 1, 1]), // odd left pad: the phases swap
        (4, 14, 19, [3, 3], 3, 1, [1, 2, 0, 1]), // stride 3: the general phase split
        (5, 13, 17, [5, 5], 1, 1, [2; 4]),
        (5, 13, 17, [5, 5], 2, 1, [1, 2, 2, 1]),
        (4, 12, 12, [3, 3], 1, 2, [2; 4]),
        (3, 7, 7, [7, 7], 1, 1, [0; 4]), // global depthwise, as in MobileFaceNets
        (32, 48, 48, [3, 3], 1, 1, [1; 4]), // large enough that two workers split the channels
    ];
    for (c, h, w, k, s, d, pads) in cases {
        for act in [Activation::None, Activation::PRelu] {
            let mut consts = vec![(vec![c, 1, k[0], k[1]], noise(c * k[0] * k[1], 4))];
            consts.push((vec![c], noise(c, 6)));
            if act == Activation::PRelu {
                consts.push((vec![c], noise(c, 8)));
            }
            let g = one_node(conv(k, s, d, pads, c, act), &[1, c, h, w], consts);
            compare(g, 2, k[0] * k[1], 1);
        }
    }
}

#[test]
fn grouped_convolution_falls_back_to_reference() {
    let g = one_node(
        conv([3, 3], 1, 1, [1; 4], 2, Activation::None),
        &[1, 4, 6, 6],
        vec![(vec![4, 2, 3, 3], noise(72, 1))],
    );
    compare(g, 2, 18, 0);
}

#[test]
fn gemm_and_matmul_match_reference() {
    for (trans_b, act) in [(true, Activation::None), (false, Activation::PRelu)] {
        let (k, n) = (37, 19);
        let b_shape = if trans_b { vec![n, k] } else { vec![k, n] };
        let mut consts = vec![(b_shape, noise(k * n, 2)), (vec![n], noise(n, 3))];
        if act == Activation::PRelu {
            consts.push((vec![n], noise(n, 4)));
        }
        let op = Op::Gemm(Gemm {
            alpha: 0.7,
            beta: 1.3,
            trans_a: false,
            trans_b,
            activation: act,
        });
        compare(one_node(op, &[1, k], consts), 5, k, 1);
    }
    let g = one_node(Op::MatMul, &[1, 3, 8], vec![(vec![8, 5], noise(40, 6))]);
    compare(g, 2, 8, 1);
    // Large enough that two workers split the GEMM: by rows, by columns, and by columns of a
    // transposed B.
    let g = one_node(
        Op::MatMul,
        &[1, 256, 64],
        vec![(vec![64, 96], noise(64 * 96, 6))],
    );
    compare(g, 1, 64, 1);
    let g = one_node(
        Op::MatMul,
        &[1, 40, 64],
        vec![(vec![64, 512], noise(64 * 512, 7))],
    );
    compare(g, 1, 64, 1);
    let (k, n) = (64, 4096);
    let op = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        activation: Activation::None,
    });
    let consts = vec![(vec![n, k], noise(k * n, 2)), (vec![n], noise(n, 3))];
    compare(one_node(op, &[1, k], consts), 2, k, 1);
}

#[test]
fn wrong_input_is_an_error_not_a_panic() {
    let g = one_node(
        conv([3, 3], 1, 1, [1; 4], 1, Activation::None),
        &[1, 2, 5, 5],
        vec![(vec![3, 2, 3, 3], noise(54, 1))],
    );
    let fast = FastModel::new(g, 2).unwrap();
    let bad = Tensor::new(vec![1, 3, 5, 5], vec![0.0; 75]).unwrap();
    assert!(fast.run(&[bad]).is_err());
}

/// BlazeFace's residual block: x → depthwise → 1×1 conv → Add(·, x) → Relu, with the fused chain
/// equal to the reference; and with the 1×1 output read twice, nothing is fused.
#[test]
fn residual_chain_is_fused_and_equal() {
    for shared in [false, true] {
        let (c, h, w) = (6, 9, 10);
        let mut g = Graph::default();
        let x = g.add_tensor(
            "x".into(),
            TensorKind::Input {
                shape: vec![1, c, h, w],
            },
        );
        let value = |g: &mut Graph, name: &str| {
            let id = TensorId(g.tensors.len());
            g.tensors.push(TensorInfo {
                name: name.into(),
                kind: TensorKind::Value,
            });
            id
        };
        let dw_w = g.add_constant(
            "dw".into(),
            Constant::f32(vec![c, 1, 3, 3], noise(c * 9, 2)).unwrap(),
        );
        let pw_w = g.add_constant(
            "pw".into(),
            Constant::f32(vec![c, c, 1, 1], noise(c * c, 3)).unwrap(),
        );
        let pw_b = g.add_constant("pb".into(), Constant::f32(vec![c], noise(c, 4)).unwrap());
        let (t0, t1, t2, t3) = (
            value(&mut g, "t0"),
            value(&mut g, "t1"),
            value(&mut g, "t2"),
            value(&mut g, "t3"),
        );
        let node = |name: &str, op, inputs, output| Node {
            name: name.into(),
            op,
            inputs,
            output,
        };
        g.nodes = vec![
            node(
                "dw",
                conv([3, 3], 1, 1, [1; 4], c, Activation::None),
                vec![x, dw_w],
                t0,
            ),
            node(
                "pw",
                conv([1, 1], 1, 1, [0; 4], 1, Activation::None),
                vec![t0, pw_w, pw_b],
                t1,
            ),
            node(
                "add",
                Op::Binary(crate::graph::BinaryOp::Add),
                vec![t1, x],
                t2,
            ),
            node("relu", Op::Activation(Activation::Relu), vec![t2], t3),
        ];
        g.inputs = vec![x];
        g.outputs = if shared { vec![t3, t1] } else { vec![t3] };
        let fast = FastModel::new(g.clone(), 1).unwrap();
        // Not shared: one block. Shared: the block (depthwise + 1×1), then Add and Relu.
        assert_eq!(fast.nodes(), if shared { 3 } else { 1 });
        compare(g, 2, 9 + c, 1);
    }
}

#[test]
fn max_pool_2x2_matches_reference() {
    use crate::graph::Pool;
    let op = Op::MaxPool(Pool {
        window: Window2d {
            kernel: [2, 2],
            strides: [2, 2],
            dilations: [1, 1],
            padding: Padding::Explicit([0; 4]),
            ceil_mode: false,
        },
        count_include_pad: false,
    });
    for (h, w) in [(8, 10), (7, 9)] {
        compare(one_node(op.clone(), &[1, 3, h, w], vec![]), 2, 0, 1);
    }
}

#[test]
fn constant_pad_matches_reference() {
    use crate::graph::{Pad, PadMode};
    for pads in [vec![0, 0, 0, 0, 0, 5, 0, 0], vec![0, 1, 2, 0, 0, 0, 1, 3]] {
        let op = Op::Pad(Pad {
            pads,
            mode: PadMode::Constant(0.25),
        });
        compare(one_node(op, &[1, 3, 4, 5], vec![]), 2, 0, 1);
    }
}

#[test]
fn transpose_matches_reference() {
    for (shape, perm) in [
        (vec![1usize, 6, 5, 3], vec![0usize, 3, 1, 2]), // NHWC → NCHW, the frame
        (vec![1, 4, 3, 5], vec![0, 2, 3, 1]),           // NCHW → NHWC, the heads
        (vec![2, 3, 4], vec![0, 2, 1]),
        (vec![3, 4], vec![0, 1]),
    ] {
        // (Every perm keeps the batch on axis 0, as the executor's batch split requires.)
        let op = Op::Transpose { perm };
        compare(one_node(op, &shape, vec![]), 2, 0, 1);
    }
}

/// A depthwise → 1×1 pair (BlazeFace's block), optionally followed by `Add(·, r) → Relu` with
/// BlazeFace's shortcut `r`: `x`, 2×2-max-pooled where the depthwise has stride 2, then padded
/// with zero channels up to M where M > C.
fn block_graph(
    (c, m, h, w): (usize, usize, usize, usize),
    dw: Op,
    k: usize,
    pw_act: Activation,
    residual: bool,
) -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor(
        "x".into(),
        TensorKind::Input {
            shape: vec![1, c, h, w],
        },
    );
    let value = |g: &mut Graph, name: &str| {
        let id = TensorId(g.tensors.len());
        g.tensors.push(TensorInfo {
            name: name.into(),
            kind: TensorKind::Value,
        });
        id
    };
    let constant = |g: &mut Graph, name: &str, shape: Vec<usize>, seed: u64| {
        let n = shape.iter().product();
        g.add_constant(name.into(), Constant::f32(shape, noise(n, seed)).unwrap())
    };
    let dw_w = constant(&mut g, "dw", vec![c, 1, k, k], 2);
    let dw_b = constant(&mut g, "db", vec![c], 3);
    let pw_w = constant(&mut g, "pw", vec![m, c, 1, 1], 4);
    let pw_b = constant(&mut g, "pb", vec![m], 5);
    let mut pw_inputs = vec![pw_w, pw_b];
    if pw_act == Activation::PRelu {
        pw_inputs.push(constant(&mut g, "slope", vec![m], 6));
    }
    let (t0, t1) = (value(&mut g, "t0"), value(&mut g, "t1"));
    let node = |name: &str, op, inputs, output| Node {
        name: name.into(),
        op,
        inputs,
        output,
    };
    let pw_op = conv([1, 1], 1, 1, [0; 4], 1, pw_act);
    g.nodes = vec![
        node("dw", dw, vec![x, dw_w, dw_b], t0),
        node("pw", pw_op, [vec![t0], pw_inputs].concat(), t1),
    ];
    g.outputs = vec![t1];
    if residual {
        let mut r = x;
        if let Op::Conv(Conv { window, .. }) = &g.nodes[0].op
            && window.strides == [2, 2]
        {
            let pooled = value(&mut g, "pooled");
            let pool = Op::MaxPool(crate::graph::Pool {
                window: Window2d {
                    kernel: [2, 2],
                    strides: [2, 2],
                    dilations: [1, 1],
                    padding: Padding::Explicit([0; 4]),
                    ceil_mode: false,
                },
                count_include_pad: false,
            });
            g.nodes.push(node("pool", pool, vec![r], pooled));
            r = pooled;
        }
        if m > c {
            let padded = value(&mut g, "padded");
            let pad = Op::Pad(crate::graph::Pad {
                pads: vec![0, 0, 0, 0, 0, m - c, 0, 0],
                mode: crate::graph::PadMode::Constant(0.0),
            });
            g.nodes.push(node("pad", pad, vec![r], padded));
            r = padded;
        }
        let (t2, t3) = (value(&mut g, "t2"), value(&mut g, "t3"));
        g.nodes.push(node(
            "add",
            Op::Binary(crate::graph::BinaryOp::Add),
            vec![t1, r],
            t2,
        ));
        g.nodes
            .push(node("relu", Op::Activation(Activation::Relu), vec![t2], t3));
        g.outputs = vec![t3];
    }
    g.inputs = vec![x];
    g
}

/// The fused block against the reference: several bands per image (band edges inside the
/// depthwise window), rows that end in a partial 16-wide tile, output channel counts that do
/// not fill the last register block, strides 1 and 2 with BlazeFace's asymmetric padding, a
/// 5×5 window, PReLU, a residual (with zero channels appended, and pooled); large enough that
/// two threads split the rows.
#[test]
fn depthwise_pointwise_blocks_match_reference() {
    let cases = [
        // (C, M, H, W, kernel, stride, pads, 1×1 activation, residual)
        (24, 24, 48, 37, 3, 1, [1; 4], Activation::None, true),
        (24, 24, 64, 64, 3, 1, [1; 4], Activation::None, true),
        (24, 28, 64, 64, 3, 1, [1; 4], Activation::None, false),
        (24, 28, 64, 64, 3, 1, [1; 4], Activation::None, true),
        (24, 48, 64, 64, 3, 2, [0, 0, 1, 1], Activation::Relu, false),
        (24, 48, 64, 64, 3, 2, [0, 0, 1, 1], Activation::None, true),
        (42, 48, 32, 32, 3, 2, [0, 0, 1, 1], Activation::None, true),
        (24, 24, 32, 30, 3, 2, [0, 0, 1, 1], Activation::None, true),
        (12, 13, 31, 33, 3, 2, [1; 4], Activation::PRelu, false),
        (16, 20, 40, 40, 5, 1, [2; 4], Activation::PRelu, false),
        (9, 7, 21, 19, 5, 2, [1, 2, 2, 1], Activation::None, false),
        (96, 96, 8, 8, 3, 1, [1; 4], Activation::None, true),
    ];
    for (c, m, h, w, k, s, pads, act, residual) in cases {
        let dw = conv([k, k], s, 1, pads, c, Activation::None);
        let g = block_graph((c, m, h, w), dw, k, act, residual);
        let fast = FastModel::new(g.clone(), 1).unwrap();
        // One block: the shortcut's max pool and zero Pad are computed inside it.
        assert_eq!(fast.nodes(), 1, "{c}->{m} {h}x{w} k{k} s{s}");
        compare(g, 2, k * k * (1 + c), 1);
    }
}

/// A depthwise convolution with its own activation is not a block (the block has nowhere to
/// apply it): both halves run as before.
#[test]
fn blocks_are_fused_only_where_they_apply() {
    let dw = conv([3, 3], 1, 1, [1; 4], 8, Activation::Relu);
    let g = block_graph((8, 8, 10, 10), dw, 3, Activation::None, false);
    assert_eq!(FastModel::new(g.clone(), 1).unwrap().nodes(), 2);
    compare(g, 1, 9 * 9, 2);
}
