//! Gemm and MatMul.

use crate::graph::{Activation, Gemm};
use crate::tensor::View;

/// Dot product with several partial sums: vectorises without reassociation flags and
/// keeps rounding error lower than one long serial sum over SFace's K = 50176.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Row-major transpose of a `[rows, cols]` matrix.
fn transposed(d: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; d.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = d[r * cols + c];
        }
    }
    t
}

pub(super) fn gemm(g: &Gemm, inputs: &[View<'_>], out_shape: &[usize]) -> Vec<f32> {
    let (a, b) = (inputs[0], inputs[1]);
    let (m, n) = (out_shape[0], out_shape[1]);
    let k = if g.trans_a { a.shape[0] } else { a.shape[1] };
    let a_rows = if g.trans_a {
        transposed(a.data, k, m)
    } else {
        a.data.to_vec()
    };
    // Dot products want B as [N, K]; that is its stored layout when trans_b is set.
    let b_owned;
    let b_rows: &[f32] = if g.trans_b {
        b.data
    } else {
        b_owned = transposed(b.data, k, n);
        &b_owned
    };
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        let ar = &a_rows[i * k..][..k];
        for j in 0..n {
            out[i * n + j] = g.alpha * dot(ar, &b_rows[j * k..][..k]);
        }
    }
    if let Some(c) = inputs.get(2) {
        // C broadcasts unidirectionally to [M, N]: scalar, [N], [1, N], [M, 1] or [M, N].
        let (cm, cn) = match c.shape {
            [] => (1, 1),
            [x] => (1, *x),
            [r, x] => (*r, *x),
            _ => (1, 1),
        };
        for i in 0..m {
            for j in 0..n {
                let v = c.data[(if cm == 1 { 0 } else { i }) * cn + if cn == 1 { 0 } else { j }];
                out[i * n + j] += g.beta * v;
            }
        }
    }
    if g.activation != Activation::None {
        let slope = inputs.get(3).map(|s| s.data);
        for (idx, v) in out.iter_mut().enumerate() {
            let s = slope.map_or(0.0, |s| if s.len() == 1 { s[0] } else { s[idx % n] });
            *v = g.activation.apply(*v, s);
        }
    }
    out
}

pub(super) fn matmul(a: View<'_>, b: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let k = a.shape[a.shape.len() - 1];
    let batches: usize = out_shape[..r - 2].iter().product();
    let b_batched = b.shape.len() > 2;
    let mut out = vec![0f32; batches * m * n];
    for bi in 0..batches {
        let am = &a.data[bi * m * k..][..m * k];
        let bm = if b_batched {
            &b.data[bi * k * n..][..k * n]
        } else {
            b.data
        };
        let om = &mut out[bi * m * n..][..m * n];
        // i-k-j order: the inner loop is an axpy over a contiguous output row.
        for i in 0..m {
            let orow = &mut om[i * n..][..n];
            for kk in 0..k {
                let av = am[i * k + kk];
                for (o, &bv) in orow.iter_mut().zip(&bm[kk * n..][..n]) {
                    *o += av * bv;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{Activation, Gemm, Op};
    use crate::tensor::Tensor;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    fn gemm(ta: bool, tb: bool) -> Op {
        Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: ta,
            trans_b: tb,
            activation: Activation::None,
        })
    }

    #[test]
    fn gemm_variants() {
        let a = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let b = t(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
        let c = t(&[2], &[10., 20.]);
        let y = eval_op(&gemm(false, false), &[a.view(), b.view(), c.view()]).unwrap();
        assert_eq!(y.shape, vec![2, 2]);
        assert_eq!(y.data, vec![14., 25., 20., 31.]);
        let bt = t(&[2, 3], &[1., 0., 1., 0., 1., 1.]);
        let y = eval_op(&gemm(false, true), &[a.view(), bt.view()]).unwrap();
        assert_eq!(y.data, vec![4., 5., 10., 11.]);
        let at = t(&[3, 2], &[1., 4., 2., 5., 3., 6.]);
        let y = eval_op(&gemm(true, true), &[at.view(), bt.view()]).unwrap();
        assert_eq!(y.data, vec![4., 5., 10., 11.]);
        let col = t(&[2, 1], &[100., 200.]);
        let mut g = gemm(false, true);
        if let Op::Gemm(ref mut g) = g {
            g.alpha = 2.0;
            g.beta = 0.5;
        }
        let y = eval_op(&g, &[a.view(), bt.view(), col.view()]).unwrap();
        assert_eq!(y.data, vec![58., 60., 120., 122.]);
        assert!(eval_op(&gemm(false, false), &[a.view(), a.view()]).is_err());
    }

    #[test]
    fn long_dot_matches_f64() {
        let k = 50176;
        let a: Vec<f32> = (0..k).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
        let b: Vec<f32> = (0..k).map(|i| ((i * 5) % 11) as f32 / 11.0 - 0.5).collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let y = eval_op(
            &gemm(false, true),
            &[t(&[1, k], &a).view(), t(&[1, k], &b).view()],
        )
        .unwrap();
        assert!((f64::from(y.data[0]) - exact).abs() < 1e-3 * exact.abs().max(1.0));
    }

    #[test]
    fn matmul_2d_and_batched() {
        let a = t(&[2, 1, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2], &[1., 1., 0., 1.]);
        let y = eval_op(&Op::MatMul, &[a.view(), b.view()]).unwrap();
        assert_eq!(y.shape, vec![2, 1, 2]);
        assert_eq!(y.data, vec![1., 3., 3., 7.]);
        let bb = t(&[2, 2, 1], &[1., 1., 2., 0.]);
        let y = eval_op(&Op::MatMul, &[a.view(), bb.view()]).unwrap();
        assert_eq!(y.data, vec![3., 6.]);
    }
}
