//! The strided copies (Transpose, Pad, Concat) against the CPU reference (`crate::cpu::eval_op`) on
//! random inputs: they must be exact.

use super::super::testing::*;
use super::*;

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
