//! Strided copies (`layout.wgsl`): Transpose, Pad (constant, reflect, edge) and the parts of a
//! Concat, each one [`Region`] of the output read from the source or filled.

use bytemuck::{Pod, Zeroable};

use super::{Dispatch, Kernels, MAX_RANK, Operands, Which, arr8, grid_256, index as u};
use crate::tensor::strides;

pub(super) const SOURCE: &str = include_str!("layout.wgsl");

/// A strided copy (see `layout.wgsl`): Transpose, Pad (constant, reflect, edge), Concat parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Iteration domain; every other vector has one entry per domain axis.
    pub domain: Vec<usize>,
    pub dst_off: usize,
    pub dst_strides: Vec<usize>,
    /// Domain coordinates below `before` (or at/after `before + src_len`) get `fill`.
    pub before: Vec<usize>,
    pub src_len: Vec<usize>,
    pub src_strides: Vec<usize>,
    pub fill: f32,
    /// What a coordinate outside the source reads.
    pub outside: Outside,
}

/// How [`Region`] treats domain coordinates outside the source (ONNX Pad modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// The constant `fill`.
    Fill,
    /// Mirrored about the first/last element, which is not repeated (`reflect`): needs a pad
    /// smaller than the axis.
    Reflect,
    /// The nearest element (`edge`).
    Edge,
}

impl Region {
    /// `y = transpose(x, perm)` for `x` of shape `in_shape`.
    pub fn transpose(in_shape: &[usize], perm: &[usize]) -> Result<Self, String> {
        if perm.len() != in_shape.len() || perm.iter().any(|&p| p >= in_shape.len()) {
            return Err(format!("perm {perm:?} does not fit shape {in_shape:?}"));
        }
        let s = strides(in_shape);
        let domain: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
        Ok(Self {
            dst_off: 0,
            dst_strides: strides(&domain),
            before: vec![0; domain.len()],
            src_len: domain.clone(),
            src_strides: perm.iter().map(|&p| s[p]).collect(),
            domain,
            fill: 0.0,
            outside: Outside::Fill,
        })
    }

    /// Padding: `pads` holds all begins, then all ends (ONNX order); `fill` is read only by
    /// [`Outside::Fill`].
    pub fn pad(
        in_shape: &[usize],
        pads: &[usize],
        fill: f32,
        outside: Outside,
    ) -> Result<Self, String> {
        let r = in_shape.len();
        if pads.len() != 2 * r {
            return Err(format!("{} pads for rank {r}", pads.len()));
        }
        let too_wide = |d: usize| pads[d].max(pads[r + d]) >= in_shape[d].max(1);
        if outside == Outside::Reflect && (0..r).any(too_wide) {
            return Err(format!(
                "reflect pads {pads:?} must be smaller than the padded axes of {in_shape:?}"
            ));
        }
        let domain: Vec<usize> = (0..r)
            .map(|d| in_shape[d] + pads[d] + pads[r + d])
            .collect();
        Ok(Self {
            dst_off: 0,
            dst_strides: strides(&domain),
            before: pads[..r].to_vec(),
            src_len: in_shape.to_vec(),
            src_strides: strides(in_shape),
            domain,
            fill,
            outside,
        })
    }

    /// One Concat input (`in_shape`) written at `offset` along `axis` of the output.
    pub fn concat_part(
        in_shape: &[usize],
        out_shape: &[usize],
        axis: usize,
        offset: usize,
    ) -> Self {
        let out_strides = strides(out_shape);
        Self {
            domain: in_shape.to_vec(),
            dst_off: offset * out_strides.get(axis).copied().unwrap_or(0),
            dst_strides: out_strides,
            before: vec![0; in_shape.len()],
            src_len: in_shape.to_vec(),
            src_strides: strides(in_shape),
            fill: 0.0,
            outside: Outside::Fill,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct LayoutUniform {
    total: u32,
    rank: u32,
    dst_off: u32,
    fill: f32,
    dims: [u32; 8],
    dst_stride: [u32; 8],
    before: [u32; 8],
    src_len: [u32; 8],
    src_stride: [u32; 8],
    /// x: 0 fill, 1 reflect, 2 edge
    outside: [u32; 4],
}

impl Kernels {
    /// The strided copy of `r` from `ops.x` into `ops.y` (other bindings unused).
    pub fn copy_region(
        &self,
        device: &wgpu::Device,
        r: &Region,
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        let rank = r.domain.len();
        if rank > MAX_RANK
            || [&r.dst_strides, &r.before, &r.src_len, &r.src_strides]
                .iter()
                .any(|v| v.len() != rank)
        {
            return Err(format!("bad copy region {r:?}"));
        }
        let uni = LayoutUniform {
            total: u(r.domain.iter().product())?,
            rank: u(rank)?,
            dst_off: u(r.dst_off)?,
            fill: r.fill,
            dims: arr8(&r.domain)?,
            dst_stride: arr8(&r.dst_strides)?,
            before: arr8(&r.before)?,
            src_len: arr8(&r.src_len)?,
            src_stride: arr8(&r.src_strides)?,
            outside: [
                match r.outside {
                    Outside::Fill => 0,
                    Outside::Reflect => 1,
                    Outside::Edge => 2,
                },
                0,
                0,
                0,
            ],
        };
        Ok(Dispatch {
            group: self.layout.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Layout,
            size: grid_256(uni.total),
        })
    }
}

#[cfg(test)]
mod tests;
