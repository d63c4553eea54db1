//! Max and average pooling over NCHW planes (`pool2d.wgsl`): padding, dilation, ceil mode and
//! `count_include_pad` as the CPU reference; GlobalAveragePool is one window over the whole plane.

use bytemuck::{Pod, Zeroable};

use super::{Dispatch, Kernels, Operands, Which};

pub(super) const SOURCE: &str = include_str!("pool2d.wgsl");

/// A pooling window over NCHW planes (`planes` = N·C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: u32,
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: (u32, u32),
    /// top, left, bottom, right
    pub pads: (u32, u32, u32, u32),
    pub dil: (u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Max,
    /// Average over the taps inside the input.
    Average,
    /// Average over the taps inside the padded extent (`count_include_pad`).
    AverageIncludePad,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct PoolUniform {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    pad_b: u32,
    pad_r: u32,
    dil_h: u32,
    dil_w: u32,
    mode: u32,
}

impl Kernels {
    /// Pooling of `ops.x` into `ops.y` (other bindings unused).
    pub fn pool(
        &self,
        device: &wgpu::Device,
        g: &PoolGeom,
        mode: PoolMode,
        ops: &Operands,
    ) -> Dispatch {
        let uni = PoolUniform {
            planes: g.planes,
            h: g.h,
            w: g.w,
            oh: g.oh,
            ow: g.ow,
            kh: g.kh,
            kw: g.kw,
            stride_h: g.stride.0,
            stride_w: g.stride.1,
            pad_t: g.pads.0,
            pad_l: g.pads.1,
            pad_b: g.pads.2,
            pad_r: g.pads.3,
            dil_h: g.dil.0,
            dil_w: g.dil.1,
            mode: match mode {
                PoolMode::Max => 0,
                PoolMode::Average => 1,
                PoolMode::AverageIncludePad => 2,
            },
        };
        // Planes fold into y and z to stay under the 65535-workgroup limit per dimension.
        let (gy, gz) = if g.planes <= 65_535 {
            (g.planes, 1)
        } else {
            (65_535, g.planes.div_ceil(65_535))
        };
        Dispatch {
            group: self.pool.bind(device, bytemuck::bytes_of(&uni), ops),
            which: Which::Pool,
            size: ((g.oh * g.ow).div_ceil(64), gy, gz),
        }
    }
}

#[cfg(test)]
mod tests;
