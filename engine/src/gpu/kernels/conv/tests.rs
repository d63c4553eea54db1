//! The direct convolution against a plain Rust loop on the same random inputs, with the shared
//! tolerance (`kernels::testing`).

use super::super::testing::*;
use super::*;

fn conv_ref(g: &ConvGeom, x: &[f32], w: &[f32], b: &[f32], s: &[f32], a: Act) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let (cin_g, cout_g) = (g.cin / g.groups, g.cout / g.groups);
    let mut y = vec![0f32; (g.n * g.cout * oh * ow) as usize];
    for n in 0..g.n {
        for oc in 0..g.cout {
            let grp = oc / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[oc as usize];
                    for ic in 0..cin_g {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride.0 + ky * g.dil.0) as i64 - g.pads.0 as i64;
                                let ix = (ox * g.stride.1 + kx * g.dil.1) as i64 - g.pads.1 as i64;
                                if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                    continue;
                                }
                                let xi = ((n * g.cin + grp * cin_g + ic) * g.h * g.w) as i64
                                    + iy * g.w as i64
                                    + ix;
                                let wi = ((oc * cin_g + ic) * g.kh + ky) * g.kw + kx;
                                acc += x[xi as usize] * w[wi as usize];
                            }
                        }
                    }
                    y[(((n * g.cout + oc) * oh + oy) * ow + ox) as usize] =
                        act(acc, a, s[oc as usize]);
                }
            }
        }
    }
    y
}

/// A case's geometry, one table row per case.
fn geom(
    [n, cin, h, w]: [u32; 4],
    cout: u32,
    [kh, kw]: [u32; 2],
    stride: (u32, u32),
    pads: (u32, u32, u32, u32),
    dil: (u32, u32),
    groups: u32,
) -> ConvGeom {
    ConvGeom {
        n,
        cin,
        h,
        w,
        cout,
        kh,
        kw,
        stride,
        pads,
        dil,
        groups,
    }
}

#[test]
fn conv_matches_reference() {
    let gpu = Gpu::new();
    // (NCHW input, output channels, kernel, stride, pads top/left/bottom/right, dilation, groups)
    let cases = [
        // SFace stem: 3x3 stride 2, pad 1, 3 -> 16 channels, PReLU, batch 2.
        (
            geom([2, 3, 23, 19], 16, [3, 3], (2, 2), (1, 1, 1, 1), (1, 1), 1),
            Act::Prelu,
        ),
        // Depthwise 3x3.
        (
            geom([3, 8, 14, 14], 8, [3, 3], (1, 1), (1, 1, 1, 1), (1, 1), 8),
            Act::Prelu,
        ),
        // BlazeFace-like 5x5 depthwise, asymmetric padding, stride 2.
        (
            geom([1, 6, 16, 16], 6, [5, 5], (2, 2), (1, 1, 2, 2), (1, 1), 6),
            Act::Relu,
        ),
        // A squeeze-excitation gate: 1x1 over a 1x1 map, sigmoid.
        (
            geom([2, 12, 1, 1], 12, [1, 1], (1, 1), (0, 0, 0, 0), (1, 1), 1),
            Act::Sigmoid,
        ),
        // Grouped with dilation, no activation.
        (
            geom([2, 4, 9, 11], 6, [3, 2], (1, 2), (2, 0, 2, 1), (2, 1), 2),
            Act::None,
        ),
    ];
    for (i, (g, a)) in cases.iter().enumerate() {
        let (oh, ow) = g.out_hw();
        let x = rnd((g.n * g.cin * g.h * g.w) as usize, 10 + i as u64);
        let w = rnd(
            (g.cout * g.cin / g.groups * g.kh * g.kw) as usize,
            20 + i as u64,
        );
        let b = rnd(g.cout as usize, 30 + i as u64);
        let s = rnd(g.cout as usize, 40 + i as u64);
        let n_out = (g.n * g.cout * oh * ow) as usize;
        let y = gpu.out(n_out);
        let (bx, bw, bb, bs) = (gpu.buf(&x), gpu.buf(&w), gpu.buf(&b), gpu.buf(&s));
        let d = gpu.k.conv(
            &gpu.device,
            g,
            *a,
            &Operands {
                x: &bx,
                w: &bw,
                bias: &bb,
                slope: &bs,
                y: &y,
            },
        );
        close(
            &gpu.run(&d, &y),
            &conv_ref(g, &x, &w, &b, &s, *a),
            &format!("conv case {i}"),
        );
    }
}
