//! Resize of H and W (nearest or bilinear) with ONNX coordinate transformation modes.

use crate::graph::{CoordMode, NearestMode, Resize, ResizeMode, ResizeTarget};
use crate::tensor::View;

/// Input coordinate (fractional) of output index `o` along an axis.
fn source_coord(coord: CoordMode, o: usize, scale: f32, in_len: usize, out_len: usize) -> f32 {
    let o = o as f32;
    match coord {
        CoordMode::HalfPixel => (o + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel => {
            if out_len > 1 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordMode::AlignCorners => {
            if out_len == 1 {
                0.0
            } else {
                o * (in_len as f32 - 1.0) / (out_len as f32 - 1.0)
            }
        }
        CoordMode::Asymmetric => o / scale,
    }
}

fn nearest(mode: NearestMode, x: f32, len: usize) -> usize {
    let v = match mode {
        // onnxruntime's rule: exact .5 rounds down, everything else to nearest.
        NearestMode::RoundPreferFloor => {
            if x == x.floor() + 0.5 {
                x.floor()
            } else {
                x.round()
            }
        }
        NearestMode::RoundPreferCeil => {
            if x == x.floor() + 0.5 {
                x.ceil()
            } else {
                x.round()
            }
        }
        NearestMode::Floor => x.floor(),
        NearestMode::Ceil => x.ceil(),
    };
    (v.max(0.0) as usize).min(len - 1)
}

/// Per output index along one axis: (low index, high index, weight of high).
pub(crate) fn taps(
    r: &Resize,
    in_len: usize,
    out_len: usize,
    axis: usize,
) -> Vec<(usize, usize, f32)> {
    let scale = match r.target {
        ResizeTarget::Scales(s) => s[axis],
        ResizeTarget::Sizes(_) => out_len as f32 / in_len as f32,
    };
    (0..out_len)
        .map(|o| {
            let x = source_coord(r.coord, o, scale, in_len, out_len);
            match r.mode {
                ResizeMode::Nearest(m) => {
                    let i = nearest(m, x, in_len);
                    (i, i, 0.0)
                }
                ResizeMode::Linear => {
                    let x = x.clamp(0.0, (in_len - 1) as f32);
                    let lo = x.floor() as usize;
                    let hi = (lo + 1).min(in_len - 1);
                    (lo, hi, x - lo as f32)
                }
            }
        })
        .collect()
}

pub(super) fn resize(r: &Resize, x: View<'_>, out_shape: &[usize]) -> Vec<f32> {
    let (h, w) = (x.shape[2], x.shape[3]);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let ty = taps(r, h, oh, 0);
    let tx = taps(r, w, ow, 1);
    let planes = x.shape[0] * x.shape[1];
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let src = &x.data[p * h * w..][..h * w];
        for &(y0, y1, fy) in &ty {
            for &(x0, x1, fx) in &tx {
                let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
                let bottom = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::cpu::eval_op;
    use crate::graph::{CoordMode, NearestMode, Op, Resize, ResizeMode, ResizeTarget};
    use crate::tensor::Tensor;

    fn x() -> Tensor {
        Tensor::new(vec![1, 1, 2, 2], vec![1., 2., 3., 4.]).unwrap()
    }

    #[test]
    fn nearest_upsample_2x() {
        let op = Op::Resize(Resize {
            mode: ResizeMode::Nearest(NearestMode::Floor),
            coord: CoordMode::Asymmetric,
            target: ResizeTarget::Scales([2.0, 2.0]),
        });
        let y = eval_op(&op, &[x().view()]).unwrap();
        assert_eq!(y.shape, vec![1, 1, 4, 4]);
        assert_eq!(
            y.data,
            vec![
                1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.
            ]
        );
    }

    #[test]
    fn bilinear_half_pixel_and_align_corners() {
        let op = |coord| {
            Op::Resize(Resize {
                mode: ResizeMode::Linear,
                coord,
                target: ResizeTarget::Sizes([1, 4]),
            })
        };
        let row = Tensor::new(vec![1, 1, 1, 2], vec![0., 4.]).unwrap();
        // half_pixel, scale 2: src x = (o+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25 -> clamp
        let y = eval_op(&op(CoordMode::HalfPixel), &[row.view()]).unwrap();
        assert_eq!(y.data, vec![0., 1., 3., 4.]);
        let y = eval_op(&op(CoordMode::AlignCorners), &[row.view()]).unwrap();
        assert_eq!(y.data, vec![0., 4. / 3., 8. / 3., 4.]);
        let down = Op::Resize(Resize {
            mode: ResizeMode::Linear,
            coord: CoordMode::HalfPixel,
            target: ResizeTarget::Sizes([1, 1]),
        });
        let y = eval_op(&down, &[x().view()]).unwrap();
        assert_eq!(y.data, vec![2.5]);
    }
}
