//! The element-wise, data-movement and pooling kernels against the CPU reference
//! (`crate::cpu::eval_op`) on random inputs. Copies (Transpose, Pad, Concat) must be exact;
//! arithmetic uses the parent module's tolerance, |gpu − cpu| ≤ 1e-4·max(1, |cpu|) (only Sigmoid's
//! `exp` differs in the last bits; sums, products and max come out bit-identical).

use super::*;

/// The CPU reference's answer for `op` on `inputs` (shape, data).
fn cpu_op(op: &crate::graph::Op, inputs: &[(&[usize], &[f32])]) -> Vec<f32> {
    let views: Vec<crate::tensor::View> = inputs
        .iter()
        .map(|(shape, data)| crate::tensor::View { shape, data })
        .collect();
    crate::cpu::eval_op(op, &views).expect("cpu reference").data
}

/// (kernel op, fused activation, a shape, b shape, CPU op, CPU activation applied after it)
type EltCase = (
    EltOp,
    EltAct,
    Vec<usize>,
    Vec<usize>,
    crate::graph::Op,
    Option<crate::graph::Activation>,
);

#[test]
fn eltwise_matches_reference() {
    use crate::graph::{Activation, BinaryOp, Op};
    let gpu = Gpu::new();
    let out4 = [2usize, 3, 4, 5];
    let cases: Vec<EltCase> = vec![
        // BlazeFace residual: same shapes, relu fused.
        (
            EltOp::Add,
            EltAct::Relu,
            out4.to_vec(),
            out4.to_vec(),
            Op::Binary(BinaryOp::Add),
            Some(Activation::Relu),
        ),
        // Per-channel broadcast of b, and a scalar b.
        (
            EltOp::Mul,
            EltAct::None,
            out4.to_vec(),
            vec![3, 1, 1],
            Op::Binary(BinaryOp::Mul),
            None,
        ),
        (
            EltOp::Sub,
            EltAct::Clip(-0.3, 0.4),
            out4.to_vec(),
            vec![1],
            Op::Binary(BinaryOp::Sub),
            Some(Activation::Clip {
                min: -0.3,
                max: 0.4,
            }),
        ),
        // Both operands broadcast ([2,1,4,1] / [3,1,5]).
        (
            EltOp::Div,
            EltAct::LeakyRelu(0.1),
            vec![2, 1, 4, 1],
            vec![3, 1, 5],
            Op::Binary(BinaryOp::Div),
            Some(Activation::LeakyRelu { alpha: 0.1 }),
        ),
        // Standalone activations and PRelu with a per-channel slope.
        (
            EltOp::Unary,
            EltAct::Sigmoid,
            out4.to_vec(),
            vec![1],
            Op::Activation(Activation::Sigmoid),
            None,
        ),
        (
            EltOp::PRelu,
            EltAct::None,
            out4.to_vec(),
            vec![3, 1, 1],
            Op::Activation(Activation::PRelu),
            None,
        ),
    ];
    for (i, (op, act, sa, sb, cpu, then)) in cases.into_iter().enumerate() {
        let a = rnd(sa.iter().product(), 50 + i as u64);
        // Keep divisors away from zero so the comparison is about the kernel, not 1/ε.
        let b: Vec<f32> = rnd(sb.iter().product(), 60 + i as u64)
            .iter()
            .map(|v| {
                if op == EltOp::Div {
                    v.signum() * (0.5 + v.abs())
                } else {
                    *v
                }
            })
            .collect();
        let unary = op == EltOp::Unary;
        let mut want = if unary {
            cpu_op(&cpu, &[(&sa, &a)])
        } else {
            cpu_op(&cpu, &[(&sa, &a), (&sb, &b)])
        };
        if let Some(t) = then {
            let shape = out4.to_vec();
            want = cpu_op(&Op::Activation(t), &[(&shape, &want)]);
        }
        let y = gpu.out(want.len());
        let (ba, bb) = (gpu.buf(&a), gpu.buf(&b));
        let d = gpu
            .k
            .eltwise(
                &gpu.device,
                op,
                act,
                &sa,
                &sb,
                &out4,
                &Operands {
                    x: &ba,
                    w: &bb,
                    bias: &bb,
                    slope: &bb,
                    y: &y,
                },
            )
            .expect("eltwise plan");
        close(
            &gpu.run(&d, &y),
            &want,
            &format!("eltwise case {i} {op:?} {act:?}"),
        );
    }
    // Shapes that do not broadcast are refused, not run.
    let (ba, y) = (gpu.buf(&[0.0; 6]), gpu.out(6));
    let ops = Operands {
        x: &ba,
        w: &ba,
        bias: &ba,
        slope: &ba,
        y: &y,
    };
    assert!(
        gpu.k
            .eltwise(
                &gpu.device,
                EltOp::Add,
                EltAct::None,
                &[2, 3],
                &[3, 2],
                &[2, 3],
                &ops
            )
            .is_err()
    );
}

#[test]
fn layout_copies_match_reference() {
    use crate::graph::{Op, Pad, PadMode};
    let gpu = Gpu::new();
    let run_region = |r: &Region, x: &[f32], n_out: usize, y: Option<&wgpu::Buffer>| {
        let own;
        let y = match y {
            Some(y) => y,
            None => {
                own = gpu.out(n_out);
                &own
            }
        };
        let bx = gpu.buf(x);
        let d = gpu
            .k
            .copy_region(
                &gpu.device,
                r,
                &Operands {
                    x: &bx,
                    w: &bx,
                    bias: &bx,
                    slope: &bx,
                    y,
                },
            )
            .expect("region");
        gpu.run(&d, y)
    };
    // BlazeFace's input: NHWC -> NCHW; and a rank-5 permutation.
    for (i, (shape, perm)) in [
        (vec![2usize, 7, 5, 3], vec![0usize, 3, 1, 2]),
        (vec![2, 3, 4, 5, 2], vec![4, 2, 0, 3, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let x = rnd(shape.iter().product(), 70 + i as u64);
        let want = cpu_op(&Op::Transpose { perm: perm.clone() }, &[(&shape, &x)]);
        let got = run_region(
            &Region::transpose(&shape, &perm).expect("perm"),
            &x,
            want.len(),
            None,
        );
        assert_eq!(got, want, "transpose case {i}");
    }
    // BlazeFace's channel padding (zeros after the channels), padding on every axis, and the
    // reflect and edge modes (pads up to one less than the axis for reflect) against the CPU Pad.
    for (i, (shape, pads, mode)) in [
        (
            vec![2usize, 3, 4, 4],
            vec![0usize, 0, 0, 0, 0, 5, 0, 0],
            PadMode::Constant(0.0),
        ),
        (
            vec![2, 3, 4, 5],
            vec![1, 0, 2, 1, 0, 2, 1, 3],
            PadMode::Constant(1.5),
        ),
        (
            vec![2, 3, 4, 5],
            vec![0, 1, 3, 4, 0, 2, 3, 4],
            PadMode::Reflect,
        ),
        (
            vec![1, 2, 3, 1],
            vec![0, 0, 2, 0, 0, 1, 0, 3],
            PadMode::Edge,
        ),
        (
            vec![2, 3, 4, 5],
            vec![1, 0, 5, 2, 0, 2, 1, 7],
            PadMode::Edge,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let x = rnd(shape.iter().product(), 80 + i as u64);
        let op = Op::Pad(Pad {
            pads: pads.clone(),
            mode,
        });
        let want = cpu_op(&op, &[(&shape, &x)]);
        let (fill, outside) = match mode {
            PadMode::Constant(v) => (v, Outside::Fill),
            PadMode::Reflect => (0.0, Outside::Reflect),
            PadMode::Edge => (0.0, Outside::Edge),
        };
        let got = run_region(
            &Region::pad(&shape, &pads, fill, outside).expect("pads"),
            &x,
            want.len(),
            None,
        );
        assert_eq!(got, want, "pad case {i}");
    }
    // Reflecting by the whole axis or more has no meaning (ONNX leaves it undefined): refused.
    assert!(
        Region::pad(
            &[1, 1, 3, 3],
            &[0, 0, 3, 0, 0, 0, 0, 0],
            0.0,
            Outside::Reflect
        )
        .is_err()
    );
    // Concat of three inputs along axis 1 and axis 2: one dispatch per input into one output.
    for axis in [1usize, 2] {
        let shapes: Vec<Vec<usize>> = [2usize, 5, 1]
            .iter()
            .map(|&k| {
                let mut s = vec![2usize, 3, 4];
                s[axis] = k;
                s
            })
            .collect();
        let xs: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| rnd(s.iter().product(), 90 + i as u64))
            .collect();
        let ins: Vec<(&[usize], &[f32])> = shapes
            .iter()
            .zip(&xs)
            .map(|(s, x)| (s.as_slice(), x.as_slice()))
            .collect();
        let want = cpu_op(&Op::Concat { axis }, &ins);
        let mut out_shape = vec![2usize, 3, 4];
        out_shape[axis] = 8;
        let y = gpu.out(want.len());
        let mut got = Vec::new();
        let mut offset = 0;
        for (s, x) in shapes.iter().zip(&xs) {
            let r = Region::concat_part(s, &out_shape, axis, offset);
            got = run_region(&r, x, want.len(), Some(&y));
            offset += s[axis];
        }
        assert_eq!(got, want, "concat axis {axis}");
    }
}

#[test]
fn pooling_matches_reference() {
    use crate::graph::{Op, Padding, Pool, Window2d};
    let gpu = Gpu::new();
    let pool =
        |k: [usize; 2], s: [usize; 2], pads: [usize; 4], dil: [usize; 2], ceil: bool, inc| Pool {
            window: Window2d {
                kernel: k,
                strides: s,
                dilations: dil,
                padding: Padding::Explicit(pads),
                ceil_mode: ceil,
            },
            count_include_pad: inc,
        };
    let (n, c, h, w) = (2usize, 3usize, 9usize, 8usize);
    let shape = vec![n, c, h, w];
    let x = rnd(n * c * h * w, 100);
    let cases = [
        // BlazeFace: 2x2 stride 2.
        (
            Op::MaxPool(pool([2, 2], [2, 2], [0; 4], [1, 1], false, false)),
            PoolMode::Max,
        ),
        (
            Op::MaxPool(pool([3, 3], [2, 2], [1, 1, 2, 1], [2, 1], true, false)),
            PoolMode::Max,
        ),
        (
            Op::AveragePool(pool([3, 2], [2, 1], [1, 0, 1, 1], [1, 1], false, false)),
            PoolMode::Average,
        ),
        (
            Op::AveragePool(pool([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, true)),
            PoolMode::AverageIncludePad,
        ),
    ];
    for (i, (op, mode)) in cases.iter().enumerate() {
        let want = cpu_op(op, &[(&shape, &x)]);
        let (Op::MaxPool(p) | Op::AveragePool(p)) = op else {
            unreachable!()
        };
        let r = p.window.resolve([h, w]).expect("window");
        let g = PoolGeom {
            planes: (n * c) as u32,
            h: h as u32,
            w: w as u32,
            oh: r.out[0] as u32,
            ow: r.out[1] as u32,
            kh: p.window.kernel[0] as u32,
            kw: p.window.kernel[1] as u32,
            stride: (p.window.strides[0] as u32, p.window.strides[1] as u32),
            pads: (
                r.pads[0] as u32,
                r.pads[1] as u32,
                r.pads[2] as u32,
                r.pads[3] as u32,
            ),
            dil: (p.window.dilations[0] as u32, p.window.dilations[1] as u32),
        };
        let (bx, y) = (gpu.buf(&x), gpu.out(want.len()));
        let ops = Operands {
            x: &bx,
            w: &bx,
            bias: &bx,
            slope: &bx,
            y: &y,
        };
        let d = gpu.k.pool(&gpu.device, &g, *mode, &ops);
        close(&gpu.run(&d, &y), &want, &format!("pool case {i} {mode:?}"));
    }
    // GlobalAveragePool: one window over the whole plane.
    let want = cpu_op(&Op::GlobalAveragePool, &[(&shape, &x)]);
    let g = PoolGeom {
        planes: (n * c) as u32,
        h: 1,
        w: (h * w) as u32,
        oh: 1,
        ow: 1,
        kh: 1,
        kw: (h * w) as u32,
        stride: (1, 1),
        pads: (0, 0, 0, 0),
        dil: (1, 1),
    };
    let (bx, y) = (gpu.buf(&x), gpu.out(want.len()));
    let ops = Operands {
        x: &bx,
        w: &bx,
        bias: &bx,
        slope: &bx,
        y: &y,
    };
    let d = gpu.k.pool(&gpu.device, &g, PoolMode::Average, &ops);
    close(&gpu.run(&d, &y), &want, "global average pool");
}
