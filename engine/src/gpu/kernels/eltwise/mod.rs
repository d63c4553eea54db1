//! Element-wise arithmetic with numpy broadcasting (`eltwise.wgsl`): Add/Sub/Mul/Div with a fused
//! activation, standalone activations and PRelu. Shapes are checked here (rank, broadcasting,
//! 32-bit sizes) so a caller gets an error string to attach to its node instead of a wrong dispatch.

use bytemuck::{Pod, Zeroable};

use super::{Dispatch, Kernels, MAX_RANK, Operands, Which, arr8, grid_256, index as u};

pub(super) const SOURCE: &str = include_str!("eltwise.wgsl");

/// The arithmetic of an element-wise dispatch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EltOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `y = act(a)`; `b` is not read.
    Unary,
    /// `y = a >= 0 ? a : a * b`, `b` the broadcast slope.
    PRelu,
}

/// Activation applied to an element-wise result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EltAct {
    None,
    Relu,
    LeakyRelu(f32),
    Clip(f32, f32),
    Sigmoid,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct EltUniform {
    total: u32,
    rank: u32,
    op: u32,
    act: u32,
    p0: f32,
    p1: f32,
    same: u32,
    _p: u32,
    dims: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
}

/// Element strides of `shape` as seen from an output of `out` (numpy broadcasting: `shape` is
/// aligned to the right; a size-1 or missing axis repeats, stride 0).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Result<Vec<usize>, String> {
    if shape.len() > out.len() {
        return Err(format!(
            "operand {shape:?} has more axes than the output {out:?}"
        ));
    }
    let s = crate::tensor::strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|d| {
            if d < lead {
                return Ok(0);
            }
            let (len, o) = (shape[d - lead], out[d]);
            if len == o {
                Ok(s[d - lead])
            } else if len == 1 {
                Ok(0)
            } else {
                Err(format!("operand {shape:?} does not broadcast to {out:?}"))
            }
        })
        .collect()
}

impl Kernels {
    /// `y = act(a op b)` (see [`EltOp`]); `ops.x` = a, `ops.w` = b (for `Unary` any buffer),
    /// `ops.bias`/`ops.slope` unused.
    #[allow(clippy::too_many_arguments)]
    pub fn eltwise(
        &self,
        device: &wgpu::Device,
        op: EltOp,
        act: EltAct,
        a_shape: &[usize],
        b_shape: &[usize],
        out_shape: &[usize],
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        if out_shape.len() > MAX_RANK {
            return Err(format!("rank {} above {MAX_RANK}", out_shape.len()));
        }
        let total: usize = out_shape.iter().product();
        let sa = broadcast_strides(a_shape, out_shape)?;
        let sb = if op == EltOp::Unary {
            vec![0; out_shape.len()]
        } else {
            broadcast_strides(b_shape, out_shape)?
        };
        let same = a_shape == out_shape && (op == EltOp::Unary || b_shape == out_shape);
        let (code, p0, p1) = match act {
            EltAct::None => (0, 0.0, 0.0),
            EltAct::Relu => (1, 0.0, 0.0),
            EltAct::LeakyRelu(alpha) => (2, alpha, 0.0),
            EltAct::Clip(lo, hi) => (3, lo, hi),
            EltAct::Sigmoid => (4, 0.0, 0.0),
        };
        let uni = EltUniform {
            total: u(total)?,
            rank: u(out_shape.len())?,
            op: match op {
                EltOp::Add => 0,
                EltOp::Sub => 1,
                EltOp::Mul => 2,
                EltOp::Div => 3,
                EltOp::Unary => 4,
                EltOp::PRelu => 5,
            },
            act: code,
            p0,
            p1,
            same: same as u32,
            _p: 0,
            dims: arr8(out_shape)?,
            sa: arr8(&sa)?,
            sb: arr8(&sb)?,
        };
        Ok(Dispatch {
            group: self.eltwise.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Eltwise,
            size: grid_256(uni.total),
        })
    }
}

#[cfg(test)]
mod tests;
