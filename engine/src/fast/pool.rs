//! Data movement on BlazeFace's path: 2×2, stride-2 max pooling (the only pooling shape these
//! networks spend time in; every other window runs on the reference), the constant Pad that widens
//! the channels, both as whole-row copies, and Transpose (the NHWC image into NCHW, the heads back
//! out) as strided runs along the last output axis.

use multiversion::multiversion;

use crate::graph::{Padding, Pool};

/// Whether `p` is the window this kernel implements.
pub(super) fn is_2x2_stride_2(p: &Pool) -> bool {
    let w = p.window;
    w.kernel == [2, 2]
        && w.strides == [2, 2]
        && w.dilations == [1, 1]
        && w.padding == Padding::Explicit([0; 4])
        && !w.ceil_mode
}

/// `x` is `[N, C, H, W]`; the output `[N, C, H/2, W/2]` (floor, as the reference), written
/// into the recycled `out`.
pub(super) fn max_pool_2x2(
    x: &[f32],
    shape: &[usize],
    out_shape: &[usize],
    out: Vec<f32>,
) -> Result<Vec<f32>, String> {
    let &[n, c, h, w] = shape else {
        return Err(format!("MaxPool input of shape {shape:?} is not NCHW"));
    };
    let (oh, ow) = (h / 2, w / 2);
    if out_shape != [n, c, oh, ow] || x.len() != n * c * h * w {
        return Err(format!(
            "MaxPool {shape:?} → {out_shape:?} is not a 2×2 halving"
        ));
    }
    let mut out = super::sized(out, n * c * oh * ow);
    for (src, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            let top = &src[2 * oy * w..][..w];
            let bottom = &src[(2 * oy + 1) * w..][..w];
            pool_row(&mut dst[oy * ow..][..ow], top, bottom);
        }
    }
    Ok(out)
}

#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma"))]
pub(super) fn pool_row(dst: &mut [f32], top: &[f32], bottom: &[f32]) {
    for (i, d) in dst.iter_mut().enumerate() {
        // f32::max ignores NaN as the reference's fold does.
        *d = top[2 * i]
            .max(top[2 * i + 1])
            .max(bottom[2 * i])
            .max(bottom[2 * i + 1]);
    }
}

/// Constant padding of any rank: the output is filled with `value`, then every input row (last
/// axis) is copied whole to its place. `pads` in ONNX order (all begins, then all ends).
pub(super) fn pad_constant(
    x: &[f32],
    shape: &[usize],
    pads: &[usize],
    value: f32,
    out_shape: &[usize],
    out: Vec<f32>,
) -> Result<Vec<f32>, String> {
    let r = shape.len();
    let fits = r > 0
        && pads.len() == 2 * r
        && out_shape.len() == r
        && (0..r).all(|d| shape[d] + pads[d] + pads[r + d] == out_shape[d])
        && x.len() == shape.iter().product::<usize>();
    if !fits {
        return Err(format!(
            "Pad {shape:?} by {pads:?} does not give {out_shape:?}"
        ));
    }
    let mut out = super::filled(out, out_shape.iter().product(), value);
    let row = shape[r - 1];
    if row == 0 {
        return Ok(out);
    }
    let out_strides = crate::tensor::strides(out_shape);
    let mut idx = vec![0usize; r - 1];
    for src in x.chunks_exact(row) {
        let at: usize = idx
            .iter()
            .enumerate()
            .map(|(d, &i)| (i + pads[d]) * out_strides[d])
            .sum::<usize>()
            + pads[r - 1];
        out[at..at + row].copy_from_slice(src);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// `x` of shape `shape` with its axes permuted by `perm` (ONNX Transpose): every run along the
/// last output axis is one strided gather, the outer axes walked by an odometer once per run
/// (the reference steps it once per element, which made the frame's NHWC → NCHW transpose cost
/// as much as a convolution layer).
pub(super) fn transpose(
    x: &[f32],
    shape: &[usize],
    perm: &[usize],
    out: Vec<f32>,
) -> Result<Vec<f32>, String> {
    let r = shape.len();
    let mut seen = vec![false; r];
    if perm.len() != r
        || perm
            .iter()
            .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!("Transpose perm {perm:?} does not permute {r} axes"));
    }
    if x.len() != shape.iter().product::<usize>() {
        return Err(format!(
            "Transpose input of shape {shape:?} carries {} values",
            x.len()
        ));
    }
    let mut in_strides = vec![1usize; r];
    for d in (0..r.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    let dims: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = super::sized(out, x.len());
    let (Some(&inner), Some(&inner_step)) = (dims.last(), step.last()) else {
        out.copy_from_slice(x);
        return Ok(out);
    };
    if inner == 0 {
        return Ok(out);
    }
    let outer = r - 1;
    let mut idx = vec![0usize; outer];
    let mut src = 0usize;
    for run in out.chunks_exact_mut(inner) {
        if inner_step == 1 {
            run.copy_from_slice(&x[src..src + inner]);
        } else {
            for (o, v) in run.iter_mut().zip(x[src..].iter().step_by(inner_step)) {
                *o = *v;
            }
        }
        for d in (0..outer).rev() {
            idx[d] += 1;
            src += step[d];
            if idx[d] < dims[d] {
                break;
            }
            src -= step[d] * dims[d];
            idx[d] = 0;
        }
    }
    Ok(out)
}
