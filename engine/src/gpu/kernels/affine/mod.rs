//! Per-channel (or scalar) `y = x * scale + shift` (`affine.wgsl`): what the passes leave of a
//! BatchNorm or a Mul/Add by constants that did not fold into a convolution.

use bytemuck::{Pod, Zeroable};

use super::{Dispatch, Kernels, Operands, Which, grid_256};

pub(super) const SOURCE: &str = include_str!("affine.wgsl");

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct AffineUniform {
    total: u32,
    hw: u32,
    channels: u32,
    scalar: u32,
}

impl Kernels {
    /// `y = x * scale[c] + shift[c]` over `total` elements in channels of `hw` (`ops.w` = scale,
    /// `ops.bias` = shift; a single-element scale applies to every element).
    pub fn affine(
        &self,
        device: &wgpu::Device,
        total: u32,
        hw: u32,
        channels: u32,
        scalar: bool,
        ops: &Operands,
    ) -> Dispatch {
        let u = AffineUniform {
            total,
            hw,
            channels,
            scalar: scalar as u32,
        };
        Dispatch {
            group: self.affine.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Affine,
            size: grid_256(total),
        }
    }
}
