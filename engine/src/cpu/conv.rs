//! Direct 2-D convolution (grouped, depthwise, strided, dilated, padded) with the fused
//! bias and activation.

use super::R;
use crate::graph::{Activation, Conv};
use crate::tensor::View;

/// Output positions `o` in `0..out` whose input index `o * stride + offset` lies in
/// `0..len`, as a half-open range. `offset` is the kernel tap minus the leading pad.
pub(crate) fn valid_range(out: usize, stride: usize, offset: isize, len: usize) -> (usize, usize) {
    let (s, len) = (stride as isize, len as isize);
    let lo = if offset < 0 { (-offset + s - 1) / s } else { 0 };
    let hi = if len - 1 - offset < 0 {
        0
    } else {
        (len - 1 - offset) / s + 1
    };
    let lo = lo.clamp(0, out as isize) as usize;
    let hi = hi.clamp(0, out as isize) as usize;
    (lo, hi.max(lo))
}

pub(super) fn conv2d(c: &Conv, inputs: &[View<'_>], out_shape: &[usize]) -> R<Vec<f32>> {
    let (x, w) = (inputs[0], inputs[1]);
    let bias = inputs.get(2).map(|b| b.data);
    let slope = if c.activation == Activation::PRelu {
        inputs.get(3).map(|s| s.data)
    } else {
        None
    };
    let (n, ch, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (m, cpg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let r = c.window.resolve([h, wd])?;
    let [sy, sx] = c.window.strides;
    let [dy, dx] = c.window.dilations;
    let (pt, pl) = (r.pads[0] as isize, r.pads[1] as isize);
    let mpg = m / c.group;
    let mut out = vec![0f32; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mpg;
            let plane = &mut out[(b * m + oc) * oh * ow..][..oh * ow];
            plane.fill(bias.map_or(0.0, |bv| bv[oc]));
            for icg in 0..cpg {
                let ic = g * cpg + icg;
                let src = &x.data[(b * ch + ic) * h * wd..][..h * wd];
                for ky in 0..kh {
                    let oy_off = (ky * dy) as isize - pt;
                    let (y0, y1) = valid_range(oh, sy, oy_off, h);
                    for kx in 0..kw {
                        let wv = w.data[((oc * cpg + icg) * kh + ky) * kw + kx];
                        let ox_off = (kx * dx) as isize - pl;
                        let (x0, x1) = valid_range(ow, sx, ox_off, wd);
                        if x0 >= x1 || y0 >= y1 {
                            continue;
                        }
                        // Unit stride over whole rows (every 1x1 conv, the bulk of SFace's
                        // work): the rows are contiguous on both sides, so one long axpy
                        // replaces many short ones that would barely vectorise.
                        if sx == 1 && sy == 1 && ox_off == 0 && (x0, x1) == (0, ow) && ow == wd {
                            let iy0 = (y0 as isize + oy_off) as usize;
                            let len = (y1 - y0) * ow;
                            let dst = &mut plane[y0 * ow..][..len];
                            for (d, s) in dst.iter_mut().zip(&src[iy0 * wd..][..len]) {
                                *d += wv * s;
                            }
                            continue;
                        }
                        for oy in y0..y1 {
                            let iy = (oy as isize * sy as isize + oy_off) as usize;
                            let row = &src[iy * wd..][..wd];
                            let dst = &mut plane[oy * ow..][x0..x1];
                            let ix0 = (x0 as isize * sx as isize + ox_off) as usize;
                            if sx == 1 {
                                for (d, s) in dst.iter_mut().zip(&row[ix0..]) {
                                    *d += wv * s;
                                }
                            } else {
                                for (d, s) in dst.iter_mut().zip(row[ix0..].iter().step_by(sx)) {
                                    *d += wv * s;
                                }
                            }
                        }
                    }
                }
            }
            if c.activation != Activation::None {
                let sl = slope.map_or(0.0, |s| if s.len() == 1 { s[0] } else { s[oc] });
                for v in plane.iter_mut() {
                    *v = c.activation.apply(*v, sl);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{Activation, Conv, Op, Padding, Window2d};
    use crate::tensor::Tensor;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    fn conv(k: usize, s: usize, pads: [usize; 4], group: usize, act: Activation) -> Op {
        Op::Conv(Conv {
            window: Window2d::square(k, s, pads),
            group,
            activation: act,
        })
    }

    #[test]
    fn valid_ranges() {
        use super::valid_range;
        assert_eq!(valid_range(4, 1, -1, 4), (1, 4));
        assert_eq!(valid_range(4, 1, 1, 4), (0, 3));
        assert_eq!(valid_range(2, 2, -1, 4), (1, 2));
        assert_eq!(valid_range(3, 1, 5, 4), (0, 0));
    }

    #[test]
    fn conv_3x3_padded() {
        // 1x1x3x3 input 1..9, all-ones 3x3 kernel, pad 1: each output = sum of its neighbourhood
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let w = t(&[1, 1, 3, 3], &[1.0; 9]);
        let b = t(&[1], &[0.5]);
        let y = eval_op(
            &conv(3, 1, [1; 4], 1, Activation::None),
            &[x.view(), w.view(), b.view()],
        )
        .unwrap();
        assert_eq!(y.shape, vec![1, 1, 3, 3]);
        let want = [12., 21., 16., 27., 45., 33., 24., 39., 28.];
        for (a, b) in y.data.iter().zip(want) {
            assert_eq!(*a, b + 0.5);
        }
    }

    #[test]
    fn conv_stride_2_asymmetric_pad() {
        // 1x1x4x4 ramp, 2x2 kernel [[1,0],[0,-1]], stride 2, pad bottom/right 1
        let x = t(
            &[1, 1, 4, 4],
            &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let w = t(&[1, 1, 2, 2], &[1., 0., 0., -1.]);
        let y = eval_op(
            &conv(2, 2, [0, 0, 1, 1], 1, Activation::None),
            &[x.view(), w.view()],
        )
        .unwrap();
        // out size floor((4+1-2)/2)+1 = 2; each output = x[r][c] - x[r+1][c+1] = -5
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        assert_eq!(y.data, vec![-5.0; 4]);
    }

    #[test]
    fn depthwise_and_grouped() {
        // 2 channels, depthwise 1x1 weights 2 and -3, batch 2
        let x = t(&[2, 2, 1, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let w = t(&[2, 1, 1, 1], &[2., -3.]);
        let y = eval_op(
            &conv(1, 1, [0; 4], 2, Activation::None),
            &[x.view(), w.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![2., 4., -9., -12., 10., 12., -21., -24.]);
        // 1x1 pointwise mixing both channels: out = c0 - c1
        let w = t(&[1, 2, 1, 1], &[1., -1.]);
        let y = eval_op(
            &conv(1, 1, [0; 4], 1, Activation::Relu),
            &[x.view(), w.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![0.0; 4]);
    }

    #[test]
    fn fused_prelu() {
        let x = t(&[1, 2, 1, 1], &[1., -1.]);
        let w = t(&[2, 1, 1, 1], &[1., 1.]);
        let b = t(&[2], &[0., 0.]);
        let s = t(&[2], &[0.1, 0.5]);
        let y = eval_op(
            &conv(1, 1, [0; 4], 2, Activation::PRelu),
            &[x.view(), w.view(), b.view(), s.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![1.0, -0.5]);
    }

    #[test]
    fn dilation() {
        let x = t(&[1, 1, 1, 5], &[1., 2., 3., 4., 5.]);
        let w = t(&[1, 1, 1, 2], &[1., 1.]);
        let op = Op::Conv(Conv {
            window: Window2d {
                kernel: [1, 2],
                strides: [1, 1],
                dilations: [1, 2],
                padding: Padding::Explicit([0; 4]),
                ceil_mode: false,
            },
            group: 1,
            activation: Activation::None,
        });
        let y = eval_op(&op, &[x.view(), w.view()]).unwrap();
        assert_eq!(y.data, vec![4., 6., 8.]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = t(&[1, 3, 4, 4], &[0.0; 48]);
        let w = t(&[2, 2, 3, 3], &[0.0; 36]);
        assert!(
            eval_op(
                &conv(3, 1, [1; 4], 1, Activation::None),
                &[x.view(), w.view()]
            )
            .is_err()
        );
        let lying = crate::tensor::View {
            shape: &[1, 3, 4, 4],
            data: &[0.0; 3],
        };
        let w = t(&[2, 3, 3, 3], &[0.0; 54]);
        assert!(eval_op(&conv(3, 1, [1; 4], 1, Activation::None), &[lying, w.view()]).is_err());
    }
}
