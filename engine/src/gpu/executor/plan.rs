//! The executor's plan: one entry per dispatch, recorded while buffers are assigned and bound once
//! they are all known. Also the planning of the element-wise, data-movement and pooling ops (what
//! BlazeFace needs besides Conv), kept apart from the Conv/Gemm planning in `executor.rs`.

use super::super::kernels::index as u;
use super::super::{
    Act, ConvGeom, Dispatch, EltAct, EltOp, GemmGeom, Kernels, Operands, Outside, PoolGeom,
    PoolMode, Region,
};
use crate::graph::{Activation, BinaryOp, Op, PadMode, Pool};

/// Buffer ids of one dispatch in binding order: x, w, bias, slope, y.
pub(super) type Ids = [usize; 5];

pub(super) enum Plan {
    Conv(ConvGeom, Act, Ids),
    Gemm(GemmGeom, Act, Ids),
    /// Split into this many K slices, partial sums in the scratch buffer (last id).
    GemmSplitK(GemmGeom, Act, u32, Ids, usize),
    Affine(u32, u32, u32, bool, Ids),
    Elt {
        op: EltOp,
        act: EltAct,
        a: Vec<usize>,
        b: Vec<usize>,
        out: Vec<usize>,
        ids: Ids,
    },
    Copy(Region, Ids),
    Pool(PoolGeom, PoolMode, Ids),
    /// planes, (h, w), (oh, ow); `ids[1]` holds the taps.
    Resize(u32, (u32, u32), (u32, u32), Ids),
}

impl Plan {
    /// Binds the dispatch; the error text is attached to the planning node by the caller.
    pub(super) fn bind(
        &self,
        device: &wgpu::Device,
        kernels: &Kernels,
        buffers: &[wgpu::Buffer],
    ) -> Result<Vec<Dispatch>, String> {
        let ops = |ids: &Ids| Operands {
            x: &buffers[ids[0]],
            w: &buffers[ids[1]],
            bias: &buffers[ids[2]],
            slope: &buffers[ids[3]],
            y: &buffers[ids[4]],
        };
        Ok(vec![match self {
            Plan::Conv(g, a, ids) => kernels.conv(device, g, *a, &ops(ids)),
            Plan::Gemm(g, a, ids) => kernels.gemm(device, g, *a, &ops(ids)),
            Plan::GemmSplitK(g, a, splits, ids, partial) => {
                return Ok(kernels
                    .gemm_split_k(device, g, *a, *splits, &ops(ids), &buffers[*partial])
                    .into());
            }
            Plan::Affine(total, hw, ch, scalar, ids) => {
                kernels.affine(device, *total, *hw, *ch, *scalar, &ops(ids))
            }
            Plan::Elt {
                op,
                act,
                a,
                b,
                out,
                ids,
            } => kernels.eltwise(device, *op, *act, a, b, out, &ops(ids))?,
            Plan::Copy(r, ids) => kernels.copy_region(device, r, &ops(ids))?,
            Plan::Pool(g, m, ids) => kernels.pool(device, g, *m, &ops(ids)),
            Plan::Resize(planes, hw, out, ids) => {
                kernels.resize(device, *planes, *hw, *out, &ops(ids))?
            }
        }])
    }
}

/// The element-wise form of an activation, or `None` for PRelu (it has a slope tensor).
pub(super) fn elt_act(a: &Activation) -> Option<EltAct> {
    match *a {
        Activation::None => Some(EltAct::None),
        Activation::Relu => Some(EltAct::Relu),
        Activation::LeakyRelu { alpha } => Some(EltAct::LeakyRelu(alpha)),
        Activation::Clip { min, max } => Some(EltAct::Clip(min, max)),
        Activation::Sigmoid => Some(EltAct::Sigmoid),
        Activation::PRelu => None,
    }
}

fn pool_geom(p: &Pool, x: &[usize], out: &[usize]) -> Result<PoolGeom, String> {
    let [n, c, h, w] = x[..] else {
        return Err(format!("input shape {x:?} is not NCHW"));
    };
    let r = p.window.resolve([h, w])?;
    if out.get(2..4) != Some(&r.out[..]) {
        return Err(format!(
            "window output {:?} differs from shape inference {out:?}",
            r.out
        ));
    }
    Ok(PoolGeom {
        planes: u(n * c)?,
        h: u(h)?,
        w: u(w)?,
        oh: u(r.out[0])?,
        ow: u(r.out[1])?,
        kh: u(p.window.kernel[0])?,
        kw: u(p.window.kernel[1])?,
        stride: (u(p.window.strides[0])?, u(p.window.strides[1])?),
        pads: (u(r.pads[0])?, u(r.pads[1])?, u(r.pads[2])?, u(r.pads[3])?),
        dil: (u(p.window.dilations[0])?, u(p.window.dilations[1])?),
    })
}

/// Plans an op without weights: `inputs` are the buffer ids of the node's inputs (activations or
/// uploaded constants), `shapes` their shapes, `y` the output buffer, `unused` a buffer for the
/// bindings the kernel does not read. `fused` is the activation of a following node folded into
/// this one (only offered for Add/Sub/Mul/Div). Ops without a kernel give an error.
pub(super) fn data_op(
    op: &Op,
    inputs: &[usize],
    shapes: &[Vec<usize>],
    out: &[usize],
    y: usize,
    unused: usize,
    fused: EltAct,
) -> Result<Vec<Plan>, String> {
    let (Some(&x), Some(xs)) = (inputs.first(), shapes.first()) else {
        return Err("no inputs".into());
    };
    let copy = |r: Region| Plan::Copy(r, [x, unused, unused, unused, y]);
    let elt = |op: EltOp, act: EltAct| -> Result<Plan, String> {
        let (b, bs) = match op {
            EltOp::Unary => (unused, xs.clone()),
            _ => match (inputs.get(1), shapes.get(1)) {
                (Some(&b), Some(bs)) => (b, bs.clone()),
                _ => return Err("second operand missing".into()),
            },
        };
        Ok(Plan::Elt {
            op,
            act,
            a: xs.clone(),
            b: bs,
            out: out.to_vec(),
            ids: [x, b, unused, unused, y],
        })
    };
    Ok(match op {
        Op::Binary(b) => vec![elt(
            match b {
                BinaryOp::Add => EltOp::Add,
                BinaryOp::Sub => EltOp::Sub,
                BinaryOp::Mul => EltOp::Mul,
                BinaryOp::Div => EltOp::Div,
            },
            fused,
        )?],
        Op::Activation(Activation::PRelu) => vec![elt(EltOp::PRelu, EltAct::None)?],
        Op::Activation(a) => vec![elt(
            EltOp::Unary,
            elt_act(a).ok_or("activation has no element-wise form")?,
        )?],
        Op::Transpose { perm } => vec![copy(Region::transpose(xs, perm)?)],
        Op::Pad(p) => vec![copy(match p.mode {
            PadMode::Constant(v) => Region::pad(xs, &p.pads, v, Outside::Fill)?,
            PadMode::Reflect => Region::pad(xs, &p.pads, 0.0, Outside::Reflect)?,
            PadMode::Edge => Region::pad(xs, &p.pads, 0.0, Outside::Edge)?,
        })],
        Op::Concat { axis } => {
            let mut plans = Vec::new();
            let mut offset = 0;
            for (&b, s) in inputs.iter().zip(shapes) {
                let r = Region::concat_part(s, out, *axis, offset);
                plans.push(Plan::Copy(r, [b, unused, unused, unused, y]));
                offset += s.get(*axis).copied().ok_or("axis beyond an input's rank")?;
            }
            plans
        }
        Op::MaxPool(p) => vec![Plan::Pool(
            pool_geom(p, xs, out)?,
            PoolMode::Max,
            [x, unused, unused, unused, y],
        )],
        Op::AveragePool(p) => {
            let mode = if p.count_include_pad {
                PoolMode::AverageIncludePad
            } else {
                PoolMode::Average
            };
            vec![Plan::Pool(
                pool_geom(p, xs, out)?,
                mode,
                [x, unused, unused, unused, y],
            )]
        }
        Op::GlobalAveragePool => {
            // Every spatial axis flattened into one row: a single window covering the plane.
            if xs.len() < 3 {
                return Err(format!("input shape {xs:?} has no spatial axes"));
            }
            let area: usize = xs[2..].iter().product();
            let g = PoolGeom {
                planes: u(xs[0] * xs[1])?,
                h: 1,
                w: u(area)?,
                oh: 1,
                ow: 1,
                kh: 1,
                kw: u(area)?,
                stride: (1, 1),
                pads: (0, 0, 0, 0),
                dil: (1, 1),
            };
            vec![Plan::Pool(
                g,
                PoolMode::Average,
                [x, unused, unused, unused, y],
            )]
        }
        _ => return Err("no kernel".into()),
    })
}
