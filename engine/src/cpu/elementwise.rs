//! Element-wise ops: broadcasting binaries, activations, per-channel affine and BatchNorm.

use super::R;
use crate::graph::{Activation, BinaryOp};
use crate::tensor::{View, strides};

/// Strides of `shape` seen through the broadcast to `out`: 0 along broadcast axes.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// Calls `f(out_index, a_index, b_index)` for every output element, walking a multi-index
/// so no division happens per element.
fn for_each_broadcast(
    a: &[usize],
    b: &[usize],
    out: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let (sa, sb) = (broadcast_strides(a, out), broadcast_strides(b, out));
    let total: usize = out.iter().product();
    let r = out.len();
    let mut idx = vec![0usize; r];
    let (mut ia, mut ib) = (0usize, 0usize);
    for o in 0..total {
        f(o, ia, ib);
        for d in (0..r).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < out[d] {
                break;
            }
            ia -= sa[d] * out[d];
            ib -= sb[d] * out[d];
            idx[d] = 0;
        }
    }
}

pub(super) fn binary(op: BinaryOp, a: View<'_>, b: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    if a.shape == b.shape {
        return a
            .data
            .iter()
            .zip(b.data)
            .map(|(&x, &y)| op.apply(x, y))
            .collect();
    }
    if b.data.len() == 1 && a.shape == out_shape {
        let y = b.data[0];
        return a.data.iter().map(|&x| op.apply(x, y)).collect();
    }
    let mut out = vec![0f32; out_shape.iter().product()];
    for_each_broadcast(a.shape, b.shape, out_shape, |o, i, j| {
        out[o] = op.apply(a.data[i], b.data[j]);
    });
    out
}

pub(super) fn activation(act: Activation, inputs: &[View<'_>], out_shape: &[usize]) -> R<Vec<f32>> {
    let x = inputs[0];
    if act != Activation::PRelu {
        return Ok(x.data.iter().map(|&v| act.apply(v, 0.0)).collect());
    }
    let slope = inputs.get(1).ok_or("PRelu needs a slope input")?;
    let mut out = vec![0f32; x.data.len()];
    for_each_broadcast(x.shape, slope.shape, out_shape, |o, i, j| {
        out[o] = act.apply(x.data[i], slope.data[j]);
    });
    Ok(out)
}

/// Applies `f(value, channel)` along axis 1 of an `[N, C, ...]` tensor.
fn per_channel(x: View<'_>, mut f: impl FnMut(f32, usize) -> f32) -> Vec<f32> {
    let c = x.shape.get(1).copied().unwrap_or(1).max(1);
    let inner: usize = x.shape.iter().skip(2).product();
    let inner = inner.max(1);
    x.data
        .iter()
        .enumerate()
        .map(|(i, &v)| f(v, (i / inner) % c))
        .collect()
}

pub(super) fn affine(scale: &[f32], shift: &[f32], x: View<'_>) -> Vec<f32> {
    if scale.len() == 1 {
        return x.data.iter().map(|&v| v * scale[0] + shift[0]).collect();
    }
    per_channel(x, |v, c| v * scale[c] + shift[c])
}

/// Inference BatchNormalization, computed the way onnxruntime does:
/// `(x - mean) / sqrt(var + eps) * scale + bias`.
pub(super) fn batch_norm(epsilon: f32, inputs: &[View<'_>]) -> R<Vec<f32>> {
    let (x, g, b, m, v) = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
    Ok(per_channel(x, |val, c| {
        (val - m.data[c]) / (v.data[c] + epsilon).sqrt() * g.data[c] + b.data[c]
    }))
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{Activation, BinaryOp, Op};
    use crate::tensor::Tensor;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn binaries_broadcast() {
        let a = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let col = t(&[2, 1], &[10., 20.]);
        let row = t(&[3], &[1., 2., 3.]);
        let y = eval_op(&Op::Binary(BinaryOp::Add), &[a.view(), col.view()]).unwrap();
        assert_eq!(y.data, vec![11., 12., 13., 24., 25., 26.]);
        let y = eval_op(&Op::Binary(BinaryOp::Sub), &[a.view(), row.view()]).unwrap();
        assert_eq!(y.data, vec![0., 0., 0., 3., 3., 3.]);
        let y = eval_op(&Op::Binary(BinaryOp::Mul), &[col.view(), row.view()]).unwrap();
        assert_eq!(y.shape, vec![2, 3]);
        assert_eq!(y.data, vec![10., 20., 30., 20., 40., 60.]);
        let two = t(&[1], &[2.0]);
        let y = eval_op(&Op::Binary(BinaryOp::Div), &[a.view(), two.view()]).unwrap();
        assert_eq!(y.data, vec![0.5, 1., 1.5, 2., 2.5, 3.]);
        // scalar on the left broadcasts too
        let y = eval_op(&Op::Binary(BinaryOp::Sub), &[two.view(), row.view()]).unwrap();
        assert_eq!(y.data, vec![1., 0., -1.]);
    }

    #[test]
    fn activations() {
        let x = t(&[1, 2, 1, 2], &[-2., 3., -4., 5.]);
        let run = |a| eval_op(&Op::Activation(a), &[x.view()]).unwrap().data;
        assert_eq!(run(Activation::Relu), vec![0., 3., 0., 5.]);
        assert_eq!(
            run(Activation::LeakyRelu { alpha: 0.5 }),
            vec![-1., 3., -2., 5.]
        );
        assert_eq!(
            run(Activation::Clip { min: -1., max: 4. }),
            vec![-1., 3., -1., 4.]
        );
        let s = run(Activation::Sigmoid);
        assert!((s[0] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-7);
        let slope = t(&[2, 1, 1], &[0.25, 0.5]);
        let y = eval_op(
            &Op::Activation(Activation::PRelu),
            &[x.view(), slope.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![-0.5, 3., -2., 5.]);
        let bad = t(&[3], &[0.0; 3]);
        assert!(eval_op(&Op::Activation(Activation::PRelu), &[x.view(), bad.view()]).is_err());
    }

    #[test]
    fn affine_and_batch_norm() {
        let x = t(&[2, 2, 1, 1], &[1., 2., 3., 4.]);
        let y = eval_op(
            &Op::Affine {
                scale: vec![2., -1.],
                shift: vec![1., 0.],
            },
            &[x.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![3., -2., 7., -4.]);
        let y = eval_op(
            &Op::Affine {
                scale: vec![0.5],
                shift: vec![-1.],
            },
            &[x.view()],
        )
        .unwrap();
        assert_eq!(y.data, vec![-0.5, 0., 0.5, 1.]);
        let g = t(&[2], &[2., 1.]);
        let b = t(&[2], &[0., 1.]);
        let m = t(&[2], &[1., 2.]);
        let v = t(&[2], &[4., 0.25]);
        let y = eval_op(
            &Op::BatchNorm { epsilon: 0.0 },
            &[x.view(), g.view(), b.view(), m.view(), v.view()],
        )
        .unwrap();
        // c0: (x-1)/2*2 ; c1: (x-2)/0.5+1
        assert_eq!(y.data, vec![0., 1., 2., 5.]);
    }
}
