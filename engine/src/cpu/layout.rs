//! Data movement: Transpose, Concat and Pad (Reshape/Flatten/Identity are plain copies).

use crate::graph::{Pad, PadMode};
use crate::tensor::{View, strides};

pub(super) fn transpose(x: View<'_>, perm: &[usize], out_shape: &[usize]) -> Vec<f32> {
    let in_strides = strides(x.shape);
    // Stride in the input for a step along each output axis.
    let step: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let total = x.data.len();
    let r = out_shape.len();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; r];
    let mut src = 0usize;
    for _ in 0..total {
        out.push(x.data[src]);
        for d in (0..r).rev() {
            idx[d] += 1;
            src += step[d];
            if idx[d] < out_shape[d] {
                break;
            }
            src -= step[d] * out_shape[d];
            idx[d] = 0;
        }
    }
    out
}

pub(super) fn concat(inputs: &[View<'_>], axis: usize, out_shape: &[usize]) -> Vec<f32> {
    let outer: usize = out_shape[..axis].iter().product();
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for o in 0..outer {
        for x in inputs {
            let chunk: usize = x.shape[axis..].iter().product();
            out.extend_from_slice(&x.data[o * chunk..][..chunk]);
        }
    }
    out
}

/// Maps an output coordinate on one axis back to the input, or `None` for constant fill.
fn source(i: usize, before: usize, len: usize, mode: PadMode) -> Option<usize> {
    let p = i as isize - before as isize;
    let n = len as isize;
    if (0..n).contains(&p) {
        return Some(p as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(p.clamp(0, n - 1) as usize),
        // Mirror without repeating the edge (numpy "reflect"); shape inference guarantees
        // the pad is shorter than the axis, so one reflection suffices.
        PadMode::Reflect => Some(if p < 0 { -p } else { 2 * (n - 1) - p }.clamp(0, n - 1) as usize),
    }
}

pub(super) fn pad(p: &Pad, x: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    let r = x.shape.len();
    let fill = match p.mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    let in_strides = strides(x.shape);
    let inner_out = out_shape.last().copied().unwrap_or(1);
    let outer: usize = out_shape[..r.saturating_sub(1)].iter().product();
    let mut out = Vec::with_capacity(outer * inner_out);
    let mut idx = vec![0usize; r.saturating_sub(1)];
    for _ in 0..outer {
        // Source offset of this output row, or None if the row lies in constant padding.
        let mut base = Some(0usize);
        for (d, &i) in idx.iter().enumerate() {
            base = base.and_then(|b| {
                source(i, p.pads[d], x.shape[d], p.mode).map(|s| b + s * in_strides[d])
            });
        }
        if r == 0 {
            out.push(x.data[0]);
            break;
        }
        let last = r - 1;
        for j in 0..inner_out {
            let v = base
                .and_then(|b| source(j, p.pads[last], x.shape[last], p.mode).map(|s| x.data[b + s]))
                .unwrap_or(fill);
            out.push(v);
        }
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{Op, Pad, PadMode};
    use crate::tensor::Tensor;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn transpose_nhwc_to_nchw() {
        // 1x2x2x3 NHWC: pixel p channel c = 10p + c
        let x = t(
            &[1, 2, 2, 3],
            &[0., 1., 2., 10., 11., 12., 20., 21., 22., 30., 31., 32.],
        );
        let y = eval_op(
            &Op::Transpose {
                perm: vec![0, 3, 1, 2],
            },
            &[x.view()],
        )
        .unwrap();
        assert_eq!(y.shape, vec![1, 3, 2, 2]);
        assert_eq!(
            y.data,
            vec![0., 10., 20., 30., 1., 11., 21., 31., 2., 12., 22., 32.]
        );
        let back = eval_op(
            &Op::Transpose {
                perm: vec![0, 2, 3, 1],
            },
            &[y.view()],
        )
        .unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn concat_axes() {
        let a = t(&[2, 1, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2, 2], &[5., 6., 7., 8., 9., 10., 11., 12.]);
        let y = eval_op(&Op::Concat { axis: 1 }, &[a.view(), b.view()]).unwrap();
        assert_eq!(y.shape, vec![2, 3, 2]);
        assert_eq!(
            y.data,
            vec![1., 2., 5., 6., 7., 8., 3., 4., 9., 10., 11., 12.]
        );
        let y = eval_op(&Op::Concat { axis: 0 }, &[a.view(), a.view()]).unwrap();
        assert_eq!(y.data, vec![1., 2., 3., 4., 1., 2., 3., 4.]);
    }

    #[test]
    fn pad_modes() {
        let x = t(&[1, 3], &[1., 2., 3.]);
        let pad = |mode| {
            Op::Pad(Pad {
                pads: vec![0, 2, 1, 1],
                mode,
            })
        };
        let y = eval_op(&pad(PadMode::Constant(9.)), &[x.view()]).unwrap();
        assert_eq!(y.shape, vec![2, 6]);
        assert_eq!(y.data, vec![9., 9., 1., 2., 3., 9., 9., 9., 9., 9., 9., 9.]);
        let y = eval_op(&pad(PadMode::Edge), &[x.view()]).unwrap();
        assert_eq!(y.data, vec![1., 1., 1., 2., 3., 3., 1., 1., 1., 2., 3., 3.]);
        let x2 = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let reflect = Op::Pad(Pad {
            pads: vec![1, 2, 1, 1],
            mode: PadMode::Reflect,
        });
        let y = eval_op(&reflect, &[x2.view()]).unwrap();
        assert_eq!(y.shape, vec![4, 6]);
        #[rustfmt::skip]
        let want = [6., 5., 4., 5., 6., 5., 3., 2., 1., 2., 3., 2., 6., 5., 4., 5., 6., 5., 3., 2., 1., 2., 3., 2.];
        assert_eq!(y.data, want);
        // reflect needs the pad shorter than the axis
        assert!(eval_op(&pad(PadMode::Reflect), &[x.view()]).is_err());
        // channel padding as BlazeFace needs it: [1,1,1,2] -> [1,3,1,2] with zeros after
        let x = t(&[1, 1, 1, 2], &[4., 5.]);
        let y = eval_op(
            &Op::Pad(Pad {
                pads: vec![0, 0, 0, 0, 0, 2, 0, 0],
                mode: PadMode::Constant(0.),
            }),
            &[x.view()],
        )
        .unwrap();
        assert_eq!(y.shape, vec![1, 3, 1, 2]);
        assert_eq!(y.data, vec![4., 5., 0., 0., 0., 0.]);
    }
}
