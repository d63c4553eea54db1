//! Direct convolution (`conv2d.wgsl`): any kernel size, stride, dilation, asymmetric padding and
//! groups (depthwise included), bias and a fused None/Relu/PRelu. 1×1 stride-1 unpadded ungrouped
//! convolutions run as GEMM instead (`super::gemm`).

use bytemuck::{Pod, Zeroable};

use super::{Act, Dispatch, Kernels, Operands, Which};

pub(super) const SOURCE: &str = include_str!("conv2d.wgsl");

/// A convolution's geometry (NCHW), as the importer's shape inference gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: (u32, u32),
    /// top, left, bottom, right
    pub pads: (u32, u32, u32, u32),
    pub dil: (u32, u32),
    pub groups: u32,
}

impl ConvGeom {
    pub fn out_hw(&self) -> (u32, u32) {
        let eff_h = self.dil.0 * (self.kh - 1) + 1;
        let eff_w = self.dil.1 * (self.kw - 1) + 1;
        let oh = (self.h + self.pads.0 + self.pads.2).saturating_sub(eff_h) / self.stride.0 + 1;
        let ow = (self.w + self.pads.1 + self.pads.3).saturating_sub(eff_w) / self.stride.1 + 1;
        (oh, ow)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ConvUniform {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    dil_h: u32,
    dil_w: u32,
    act: u32,
    _pad: [u32; 3],
}

impl Kernels {
    pub fn conv(&self, device: &wgpu::Device, g: &ConvGeom, act: Act, ops: &Operands) -> Dispatch {
        let (oh, ow) = g.out_hw();
        let u = ConvUniform {
            n: g.n,
            cin: g.cin,
            h: g.h,
            w: g.w,
            cout: g.cout,
            oh,
            ow,
            groups: g.groups,
            kh: g.kh,
            kw: g.kw,
            stride_h: g.stride.0,
            stride_w: g.stride.1,
            pad_t: g.pads.0,
            pad_l: g.pads.1,
            dil_h: g.dil.0,
            dil_w: g.dil.1,
            act: act.code(),
            _pad: [0; 3],
        };
        Dispatch {
            group: self.conv.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Conv,
            size: ((oh * ow).div_ceil(64), g.cout, g.n),
        }
    }
}

#[cfg(test)]
mod tests;
