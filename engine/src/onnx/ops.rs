//! ONNX node -> typed [`Op`]: attribute parsing, defaults, and folding of the inputs that
//! ONNX passes as tensors but that must be load-time constants for us (shapes, pads,
//! scales, clip bounds).

use super::attrs::Attrs;
use super::ctx::{ConvError, Converted, Ctx, R, axis, input, node, required};
use super::proto::NodeProto;
use super::tensor::{FLOAT, to_constant};
use crate::graph::{Activation, BinaryOp, ConstData, Constant, Op, Pad, PadMode};

pub(super) fn convert(n: &NodeProto, ctx: &Ctx<'_>) -> R<Converted> {
    let a = Attrs::new(n);
    let x = || required(n, 0);
    match n.op_type.as_str() {
        "Conv" => super::ops_nn::conv(n, &a, ctx),
        "BatchNormalization" => super::ops_nn::batch_norm(n, &a),
        "MaxPool" | "AveragePool" => super::ops_nn::pool(n, &a),
        "GlobalAveragePool" => {
            a.only(&[])?;
            node(Op::GlobalAveragePool, &[x()?])
        }
        "Gemm" => super::ops_nn::gemm(n, &a),
        "Resize" => super::ops_nn::resize(n, &a, ctx),
        "MatMul" => {
            a.only(&[])?;
            node(Op::MatMul, &[x()?, required(n, 1)?])
        }
        "Relu" | "Sigmoid" => {
            a.only(&[])?;
            let act = if n.op_type == "Relu" {
                Activation::Relu
            } else {
                Activation::Sigmoid
            };
            node(Op::Activation(act), &[x()?])
        }
        "LeakyRelu" => {
            a.only(&["alpha"])?;
            let alpha = a.float("alpha", 0.01)?;
            node(Op::Activation(Activation::LeakyRelu { alpha }), &[x()?])
        }
        "PRelu" => {
            a.only(&[])?;
            node(Op::Activation(Activation::PRelu), &[x()?, required(n, 1)?])
        }
        "Clip" => clip(n, &a, ctx),
        "Add" | "Sub" | "Mul" | "Div" => {
            a.only(&[])?;
            let op = match n.op_type.as_str() {
                "Add" => BinaryOp::Add,
                "Sub" => BinaryOp::Sub,
                "Mul" => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            node(Op::Binary(op), &[x()?, required(n, 1)?])
        }
        "Flatten" => {
            a.only(&["axis"])?;
            let rank = ctx.shape(x()?)?.len();
            let ax = axis(a.int("axis", 1)?, rank, 1)?;
            node(Op::Flatten { axis: ax }, &[x()?])
        }
        "Reshape" => {
            a.only(&["allowzero"])?;
            let shape = ctx.ints(required(n, 1)?, "the target shape")?;
            if a.int("allowzero", 0)? != 0 && shape.contains(&0) {
                return Err(
                    "allowzero=1 with a 0 in the shape (an empty tensor) is not supported".into(),
                );
            }
            node(Op::Reshape { shape }, &[x()?])
        }
        "Transpose" => {
            a.only(&["perm"])?;
            let rank = ctx.shape(x()?)?.len();
            let perm = match a.sizes("perm")? {
                Some(p) => p,
                None => (0..rank).rev().collect(),
            };
            node(Op::Transpose { perm }, &[x()?])
        }
        "Concat" => {
            a.only(&["axis"])?;
            if !a.has("axis") {
                return Err("attribute \"axis\" is required".into());
            }
            let rank = ctx.shape(x()?)?.len();
            let ax = axis(a.int("axis", 0)?, rank, 0)?;
            let ins: Vec<&str> = n
                .inputs
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            node(Op::Concat { axis: ax }, &ins)
        }
        "Pad" => pad(n, &a, ctx),
        "DequantizeLinear" => dequantize(n, &a, ctx),
        "Constant" => constant(&a),
        "ConstantOfShape" => {
            a.only(&["value"])?;
            let value = match a.tensor("value")? {
                None => 0.0,
                Some(t) if t.data_type == FLOAT => match to_constant(t)?.f32_data() {
                    Some([v]) => *v,
                    _ => return Err("\"value\" must hold exactly one float".into()),
                },
                Some(_) => return Err("only float ConstantOfShape is supported".into()),
            };
            let shape = ctx
                .ints(x()?, "the shape")?
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
                .collect::<Result<Vec<_>, _>>()?;
            node(Op::ConstantOfShape { shape, value }, &[])
        }
        "Identity" => {
            a.only(&[])?;
            node(Op::Identity, &[x()?])
        }
        "Dropout" => {
            // Inference: identity. The ratio is irrelevant; training mode is not.
            a.only(&["seed", "ratio", "is_test"])?;
            if let Some(t) = input(n, 2) {
                let on = match &ctx.constant(t, "training_mode")?.data {
                    ConstData::U8(v) => v.iter().any(|&b| b != 0),
                    _ => true,
                };
                if on {
                    return Err("training_mode must be false".into());
                }
            }
            node(Op::Identity, &[x()?])
        }
        _ => Err(ConvError::Unsupported),
    }
}

fn clip(n: &NodeProto, a: &Attrs<'_>, ctx: &Ctx<'_>) -> R<Converted> {
    let (min, max) = if ctx.opset < 11 {
        a.only(&["min", "max"])?;
        (
            a.float("min", f32::NEG_INFINITY)?,
            a.float("max", f32::INFINITY)?,
        )
    } else {
        a.only(&[])?;
        let bound = |k, what, default| match input(n, k) {
            Some(name) => ctx.scalar(name, what),
            None => Ok(default),
        };
        (
            bound(1, "min", f32::NEG_INFINITY)?,
            bound(2, "max", f32::INFINITY)?,
        )
    };
    node(
        Op::Activation(Activation::Clip { min, max }),
        &[required(n, 0)?],
    )
}

fn pad(n: &NodeProto, a: &Attrs<'_>, ctx: &Ctx<'_>) -> R<Converted> {
    let x = required(n, 0)?;
    let rank = ctx.shape(x)?.len();
    let mode_name = a.string("mode", "constant")?;
    let (raw, value) = if ctx.opset < 11 {
        a.only(&["mode", "pads", "value"])?;
        let p = a
            .ints("pads")?
            .ok_or("attribute \"pads\" is required")?
            .to_vec();
        (p, a.float("value", 0.0)?)
    } else {
        a.only(&["mode"])?;
        let p = ctx.ints(required(n, 1)?, "pads")?;
        let v = match input(n, 2) {
            Some(c) => ctx.scalar(c, "constant_value")?,
            None => 0.0,
        };
        let p = match input(n, 3) {
            // opset 18 `axes`: pads only for the listed axes.
            Some(ax) => {
                let axes = ctx.ints(ax, "axes")?;
                if p.len() != 2 * axes.len() {
                    return Err("pads and axes lengths disagree".into());
                }
                let mut full = vec![0i64; 2 * rank];
                for (i, &ai) in axes.iter().enumerate() {
                    let d = axis(ai, rank, 0)?;
                    full[d] = p[i];
                    full[d + rank] = p[i + axes.len()];
                }
                full
            }
            None => p,
        };
        (p, v)
    };
    let pads = raw
        .iter()
        .map(|&p| {
            usize::try_from(p).map_err(|_| format!("negative pad {p} (cropping) is not supported"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mode = match mode_name.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => return Err(format!("mode {other:?} is not supported").into()),
    };
    node(Op::Pad(Pad { pads, mode }), &[x])
}

fn dequantize(n: &NodeProto, a: &Attrs<'_>, ctx: &Ctx<'_>) -> R<Converted> {
    a.only(&["axis", "block_size", "output_dtype"])?;
    let odt = a.int("output_dtype", 0)?;
    if odt != 0 && odt != i64::from(FLOAT) {
        return Err("only float output is supported".into());
    }
    let x = required(n, 0)?;
    ctx.constant(x, "the quantised data")?;
    let rank = ctx.shape(x)?.len();
    let ax = if rank == 0 {
        0
    } else {
        axis(a.int("axis", 1)?, rank, 0)?
    };
    let block = usize::try_from(a.int("block_size", 0)?).map_err(|_| "negative block_size")?;
    let mut ins = vec![x, required(n, 1)?];
    if let Some(z) = input(n, 2) {
        ins.push(z);
    }
    for name in &ins[1..] {
        ctx.constant(name, "the scale and zero point")?;
    }
    node(
        Op::DequantizeLinear {
            axis: ax,
            block_size: block,
        },
        &ins,
    )
}

fn constant(a: &Attrs<'_>) -> R<Converted> {
    a.only(&[
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ])?;
    let c = if let Some(t) = a.tensor("value")? {
        to_constant(t)?
    } else if a.has("value_float") {
        Constant::f32(vec![], vec![a.float("value_float", 0.0)?])?
    } else if let Some(v) = a.floats("value_floats")? {
        Constant::f32(vec![v.len()], v.to_vec())?
    } else if a.has("value_int") {
        Constant::new(vec![], ConstData::I64(vec![a.int("value_int", 0)?]))?
    } else if let Some(v) = a.ints("value_ints")? {
        Constant::new(vec![v.len()], ConstData::I64(v.to_vec()))?
    } else {
        return Err("Constant without a supported value attribute".into());
    };
    Ok(Converted::Constant(c))
}
