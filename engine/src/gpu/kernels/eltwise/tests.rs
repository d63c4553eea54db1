//! The element-wise kernel against the CPU reference (`crate::cpu::eval_op`) on random inputs, with
//! the shared tolerance (`kernels::testing`), |gpu − cpu| ≤ 1e-4·max(1, |cpu|) (only Sigmoid's `exp`
//! differs in the last bits; sums, products and max come out bit-identical).

use super::super::testing::*;
use super::*;

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
    let ops = io(&ba, &y);
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
