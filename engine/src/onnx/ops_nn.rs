//! Converters for the windowed and linear-algebra ops (Conv, pools, BatchNormalization,
//! Gemm, Resize), whose attributes need the most validation.

use super::attrs::Attrs;
use super::ctx::{ConvError, Converted, Ctx, R, axis, input, required};
use super::proto::NodeProto;
use crate::graph::{
    Activation, Conv, CoordMode, Gemm, NearestMode, Op, Padding, Pool, Resize, ResizeMode,
    ResizeTarget, Window2d,
};

fn pair(a: &Attrs<'_>, name: &str, default: usize) -> R<[usize; 2]> {
    match a.sizes(name)?.as_deref() {
        None => Ok([default; 2]),
        Some([h, w]) => Ok([*h, *w]),
        Some(v) => Err(format!("{name} {v:?}: only 2-D (NCHW) windows are supported").into()),
    }
}

/// Window geometry from the standard attributes; `kernel` is the fallback when
/// `kernel_shape` is absent (Conv takes it from the weights).
fn window(a: &Attrs<'_>, kernel: Option<[usize; 2]>, ceil_mode: bool) -> R<Window2d> {
    let kernel = match a.sizes("kernel_shape")?.as_deref() {
        Some([h, w]) => [*h, *w],
        Some(v) => {
            return Err(
                format!("kernel_shape {v:?}: only 2-D (NCHW) windows are supported").into(),
            );
        }
        None => kernel.ok_or("attribute \"kernel_shape\" is required")?,
    };
    let strides = pair(a, "strides", 1)?;
    let dilations = pair(a, "dilations", 1)?;
    if kernel.contains(&0) || strides.contains(&0) || dilations.contains(&0) {
        return Err("kernel_shape, strides and dilations must be positive".into());
    }
    let padding = match a.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => match a.sizes("pads")?.as_deref() {
            None => Padding::Explicit([0; 4]),
            Some([t, l, b, r]) => Padding::Explicit([*t, *l, *b, *r]),
            Some(v) => return Err(format!("pads {v:?} should have 4 entries").into()),
        },
        "VALID" => Padding::Explicit([0; 4]),
        "SAME_UPPER" => Padding::SameUpper,
        "SAME_LOWER" => Padding::SameLower,
        other => return Err(format!("auto_pad {other:?} is not valid").into()),
    };
    Ok(Window2d {
        kernel,
        strides,
        dilations,
        padding,
        ceil_mode,
    })
}

fn rank4(ctx: &Ctx<'_>, name: &str) -> R<()> {
    let s = ctx.shape(name)?;
    if s.len() != 4 {
        return Err(
            format!("input {name:?} has shape {s:?}; only 4-D NCHW tensors are supported").into(),
        );
    }
    Ok(())
}

pub(super) fn conv(n: &NodeProto, a: &Attrs<'_>, ctx: &Ctx<'_>) -> R<Converted> {
    a.only(&[
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "pads",
        "strides",
    ])?;
    let (x, w) = (required(n, 0)?, required(n, 1)?);
    rank4(ctx, x)?;
    let ws = ctx.shape(w)?;
    let fallback = match ws {
        [_, _, h, w] => Some([*h, *w]),
        _ => None,
    };
    let group = usize::try_from(a.int("group", 1)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or("group must be positive")?;
    let mut inputs = vec![x.to_owned(), w.to_owned()];
    if let Some(b) = input(n, 2) {
        inputs.push(b.to_owned());
    }
    Ok(Converted::Node {
        op: Op::Conv(Conv {
            window: window(a, fallback, false)?,
            group,
            activation: Activation::None,
        }),
        inputs,
    })
}

pub(super) fn batch_norm(n: &NodeProto, a: &Attrs<'_>) -> R<Converted> {
    a.only(&["epsilon", "momentum", "spatial", "training_mode"])?;
    if a.int("spatial", 1)? != 1 {
        return Err("spatial=0 is not supported".into());
    }
    if a.int("training_mode", 0)? != 0 {
        return Err("training_mode is not supported".into());
    }
    let inputs = (0..5)
        .map(|k| required(n, k).map(str::to_owned))
        .collect::<R<Vec<_>>>()?;
    Ok(Converted::Node {
        op: Op::BatchNorm {
            epsilon: a.float("epsilon", 1e-5)?,
        },
        inputs,
    })
}

pub(super) fn pool(n: &NodeProto, a: &Attrs<'_>) -> R<Converted> {
    let max = n.op_type == "MaxPool";
    if max {
        a.only(&[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ])?;
    } else {
        a.only(&[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
    }
    let p = Pool {
        window: window(a, None, a.int("ceil_mode", 0)? != 0)?,
        count_include_pad: a.int("count_include_pad", 0)? != 0,
    };
    let op = if max {
        Op::MaxPool(p)
    } else {
        Op::AveragePool(p)
    };
    Ok(Converted::Node {
        op,
        inputs: vec![required(n, 0)?.to_owned()],
    })
}

pub(super) fn gemm(n: &NodeProto, a: &Attrs<'_>) -> R<Converted> {
    a.only(&["alpha", "beta", "transA", "transB"])?;
    let mut inputs = vec![required(n, 0)?.to_owned(), required(n, 1)?.to_owned()];
    if let Some(c) = input(n, 2) {
        inputs.push(c.to_owned());
    }
    Ok(Converted::Node {
        op: Op::Gemm(Gemm {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.int("transA", 0)? != 0,
            trans_b: a.int("transB", 0)? != 0,
            activation: Activation::None,
        }),
        inputs,
    })
}

pub(super) fn resize(n: &NodeProto, a: &Attrs<'_>, ctx: &Ctx<'_>) -> R<Converted> {
    a.only(&[
        "mode",
        "coordinate_transformation_mode",
        "nearest_mode",
        "cubic_coeff_a",
        "exclude_outside",
        "extrapolation_value",
        "antialias",
        "axes",
        "keep_aspect_ratio_policy",
    ])?;
    let x = required(n, 0)?;
    rank4(ctx, x)?;
    let xs = ctx.shape(x)?.to_vec();
    if a.int("antialias", 0)? != 0 || a.int("exclude_outside", 0)? != 0 {
        return Err("antialias and exclude_outside are not supported".into());
    }
    if a.string("keep_aspect_ratio_policy", "stretch")? != "stretch" {
        return Err("keep_aspect_ratio_policy other than \"stretch\" is not supported".into());
    }
    // With `axes`, scales/sizes list only those axes; we only resize H and W.
    let axes = match a.ints("axes")? {
        None => None,
        Some(v) => {
            let v: Vec<usize> = v.iter().map(|&x| axis(x, 4, 0)).collect::<R<_>>()?;
            Some(v)
        }
    };
    let expand = |vals: Vec<f64>, one: f64| -> R<[f64; 4]> {
        let mut full = [one, one, 0.0, 0.0];
        match &axes {
            None if vals.len() == 4 => full.copy_from_slice(&vals),
            Some(ax) if ax.len() == vals.len() => {
                full[2] = f64::NAN;
                full[3] = f64::NAN;
                for (&i, v) in ax.iter().zip(vals) {
                    full[i] = v;
                }
                if full.iter().any(|v| v.is_nan()) {
                    return Err("axes must include H and W (2 and 3)".into());
                }
            }
            _ => return Err("scales/sizes length does not match the input rank or axes".into()),
        }
        Ok(full)
    };
    let (scales_in, sizes_in) = if ctx.opset < 11 {
        (Some(1), None)
    } else {
        (input(n, 2).map(|_| 2), input(n, 3).map(|_| 3))
    };
    let scales = match scales_in.and_then(|k| input(n, k)) {
        Some(s) => {
            let v = ctx.floats(s, "scales")?;
            if v.is_empty() { None } else { Some(v) }
        }
        None => None,
    };
    let target = match (scales, sizes_in.and_then(|k| input(n, k))) {
        (Some(s), None) => {
            let f = expand(s.iter().map(|&v| f64::from(v)).collect(), 1.0)?;
            if f[0] != 1.0 || f[1] != 1.0 {
                return Err("only H and W may be resized (N and C scales must be 1)".into());
            }
            if !(f[2] > 0.0 && f[3] > 0.0 && f[2].is_finite() && f[3].is_finite()) {
                return Err("scales must be positive".into());
            }
            ResizeTarget::Scales([f[2] as f32, f[3] as f32])
        }
        (None, Some(sz)) => {
            let v = ctx.ints(sz, "sizes")?;
            let f = expand(v.iter().map(|&x| x as f64).collect(), 0.0)?;
            let (n0, c0) = if axes.is_some() {
                (xs[0] as f64, xs[1] as f64)
            } else {
                (f[0], f[1])
            };
            if n0 != xs[0] as f64 || c0 != xs[1] as f64 {
                return Err("only H and W may be resized (N and C sizes must match)".into());
            }
            let h = usize::try_from(f[2] as i64).map_err(|_| "negative size")?;
            let w = usize::try_from(f[3] as i64).map_err(|_| "negative size")?;
            ResizeTarget::Sizes([h, w])
        }
        _ => return Err("exactly one of scales and sizes must be given".into()),
    };
    let default_coord = if ctx.opset < 11 {
        "asymmetric"
    } else {
        "half_pixel"
    };
    let coord = match a
        .string("coordinate_transformation_mode", default_coord)?
        .as_str()
    {
        "half_pixel" => CoordMode::HalfPixel,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "align_corners" => CoordMode::AlignCorners,
        "asymmetric" => CoordMode::Asymmetric,
        other => {
            return Err(
                format!("coordinate_transformation_mode {other:?} is not supported").into(),
            );
        }
    };
    let mode = match a.string("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest(
            match a.string("nearest_mode", "round_prefer_floor")?.as_str() {
                "round_prefer_floor" => NearestMode::RoundPreferFloor,
                "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                "floor" => NearestMode::Floor,
                "ceil" => NearestMode::Ceil,
                other => return Err(format!("nearest_mode {other:?} is not supported").into()),
            },
        ),
        "linear" => ResizeMode::Linear,
        other => {
            return Err(ConvError::Detail(format!(
                "mode {other:?} is not supported (nearest, linear)"
            )));
        }
    };
    Ok(Converted::Node {
        op: Op::Resize(Resize {
            mode,
            coord,
            target,
        }),
        inputs: vec![x.to_owned()],
    })
}
