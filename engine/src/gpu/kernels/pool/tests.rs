//! Pooling against the CPU reference (`crate::cpu::eval_op`) on random inputs, with the shared
//! tolerance (`kernels::testing`), |gpu − cpu| ≤ 1e-4·max(1, |cpu|) (max comes out bit-identical).

use super::super::testing::*;
use super::*;

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
        let ops = io(&bx, &y);
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
    let ops = io(&bx, &y);
    let d = gpu.k.pool(&gpu.device, &g, PoolMode::Average, &ops);
    close(&gpu.run(&d, &y), &want, "global average pool");
}
