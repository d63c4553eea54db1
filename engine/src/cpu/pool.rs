//! MaxPool, AveragePool and GlobalAveragePool over NCHW.

use crate::graph::Pool;
use crate::tensor::View;

/// One output window clipped to the input: first row/column and tap count per axis, plus
/// the number of taps inside the padded extent (what `count_include_pad` divides by).
struct Win {
    y: (usize, usize),
    x: (usize, usize),
    dil: [usize; 2],
    padded_area: usize,
}

/// Calls `f(input_plane, out_index, window)` for every output element.
fn for_each_window(
    p: &Pool,
    x: View<'_>,
    out_shape: &[usize],
    mut f: impl FnMut(&[f32], usize, &Win),
) {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let Ok(r) = p.window.resolve([h, w]) else {
        return;
    };
    let [kh, kw] = p.window.kernel;
    let [sy, sx] = p.window.strides;
    let dil = p.window.dilations;
    // Clips one axis's window to the input (taps `first..last`) and counts the taps inside
    // the padded extent, all in closed form so the cost never depends on the kernel size.
    let span = |o: usize, s: usize, k: usize, d: usize, pb: usize, pe: usize, len: usize| {
        let (d_i, len_i) = (d as isize, len as isize);
        let start = (o * s) as isize - pb as isize;
        let taps_below = |limit: isize| -> usize {
            // Taps i in 0..k with start + i*d < limit.
            if limit <= start {
                0
            } else {
                (((limit - start) + d_i - 1) / d_i).min(k as isize) as usize
            }
        };
        let first = taps_below(0);
        let last = taps_below(len_i).max(first);
        let taps_padded = taps_below((len + pe) as isize);
        (start, first, last, taps_padded)
    };
    for plane in 0..n * c {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            let (y0, fy, ly, ty) = span(oy, sy, kh, dil[0], r.pads[0], r.pads[2], h);
            for ox in 0..ow {
                let (x0, fx, lx, tx) = span(ox, sx, kw, dil[1], r.pads[1], r.pads[3], w);
                let win = Win {
                    y: ((y0 + (fy * dil[0]) as isize) as usize, ly - fy),
                    x: ((x0 + (fx * dil[1]) as isize) as usize, lx - fx),
                    dil,
                    padded_area: ty * tx,
                };
                f(src, (plane * oh + oy) * ow + ox, &win);
            }
        }
    }
}

fn values<'a>(src: &'a [f32], w: usize, win: &'a Win) -> impl Iterator<Item = f32> + 'a {
    (0..win.y.1).flat_map(move |i| {
        let row = (win.y.0 + i * win.dil[0]) * w;
        (0..win.x.1).map(move |j| src[row + win.x.0 + j * win.dil[1]])
    })
}

pub(super) fn max_pool(p: &Pool, x: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    let w = x.shape[3];
    let mut out = vec![0f32; out_shape.iter().product()];
    for_each_window(p, x, out_shape, |src, o, win| {
        out[o] = values(src, w, win).fold(f32::NEG_INFINITY, f32::max);
    });
    out
}

pub(super) fn average_pool(p: &Pool, x: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    let w = x.shape[3];
    let mut out = vec![0f32; out_shape.iter().product()];
    for_each_window(p, x, out_shape, |src, o, win| {
        let sum: f32 = values(src, w, win).sum();
        let count = if p.count_include_pad {
            win.padded_area
        } else {
            win.y.1 * win.x.1
        };
        out[o] = if count == 0 { 0.0 } else { sum / count as f32 };
    });
    out
}

pub(super) fn global_average_pool(x: View<'_>) -> Vec<f32> {
    let inner: usize = x.shape[2..].iter().product();
    x.data
        .chunks_exact(inner.max(1))
        .map(|c| c.iter().sum::<f32>() / inner as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{Op, Pool, Window2d};
    use crate::tensor::Tensor;

    fn pool(k: usize, s: usize, pads: [usize; 4], include: bool) -> Pool {
        Pool {
            window: Window2d::square(k, s, pads),
            count_include_pad: include,
        }
    }

    fn ramp() -> Tensor {
        Tensor::new(vec![1, 1, 4, 4], (0..16).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn max_pool_2x2() {
        let y = eval_op(&Op::MaxPool(pool(2, 2, [0; 4], false)), &[ramp().view()]).unwrap();
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        assert_eq!(y.data, vec![5., 7., 13., 15.]);
    }

    #[test]
    fn max_pool_padding_is_ignored() {
        let x = Tensor::new(vec![1, 1, 2, 2], vec![-1., -2., -3., -4.]).unwrap();
        let y = eval_op(&Op::MaxPool(pool(2, 1, [1, 1, 0, 0], false)), &[x.view()]).unwrap();
        assert_eq!(y.data, vec![-1., -1., -1., -1.]);
    }

    #[test]
    fn average_pool_with_and_without_pad_count() {
        let x = ramp();
        let y = eval_op(&Op::AveragePool(pool(3, 2, [1; 4], false)), &[x.view()]).unwrap();
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        // top-left window covers x[0..2][0..2] = 0,1,4,5
        assert_eq!(y.data[0], 2.5);
        let y = eval_op(&Op::AveragePool(pool(3, 2, [1; 4], true)), &[x.view()]).unwrap();
        assert_eq!(y.data[0], 10.0 / 9.0);
        // bottom-right window: rows 1..4, cols 1..4 (no padding touched)
        assert_eq!(
            y.data[3],
            (5. + 6. + 7. + 9. + 10. + 11. + 13. + 14. + 15.) / 9.0
        );
    }

    #[test]
    fn global_average() {
        let y = eval_op(&Op::GlobalAveragePool, &[ramp().view()]).unwrap();
        assert_eq!(y.shape, vec![1, 1, 1, 1]);
        assert_eq!(y.data, vec![7.5]);
    }
}
