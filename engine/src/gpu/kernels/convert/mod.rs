//! f32 ⇄ f16 conversion at a model's boundary in f16 storage (`convert.wgsl`): one dispatch narrows
//! the input, one widens each output, so callers only ever see f32.

use bytemuck::{Pod, Zeroable};

use super::{Dispatch, Kernel, Kernels, Operands, Which, grid_256};

const SOURCE: &str = include_str!("convert.wgsl");

/// The narrowing and widening kernels, compiled from the one source with its aliases swapped.
pub(super) fn compile(device: &wgpu::Device) -> (Kernel, Kernel) {
    let widen = SOURCE
        .replacen("alias In = f32;", "alias In = f16;", 1)
        .replacen("alias Out = f16;", "alias Out = f32;", 1);
    (
        Kernel::new(device, "convert.wgsl narrow", SOURCE),
        Kernel::new(device, "convert.wgsl widen", &widen),
    )
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ConvertUniform {
    total: u32,
    _pad: [u32; 3],
}

impl Kernels {
    /// `ops.y[i] = ops.x[i]` converted f32 → f16 (`widen == false`) or f16 → f32, for `total`
    /// elements. `None` in f32 mode, where there is nothing to convert.
    pub fn convert(
        &self,
        device: &wgpu::Device,
        total: u32,
        widen: bool,
        ops: &Operands,
    ) -> Option<Dispatch> {
        let (narrow_k, widen_k) = self.convert.as_ref()?;
        let u = ConvertUniform {
            total,
            _pad: [0; 3],
        };
        let (k, which) = if widen {
            (widen_k, Which::Widen)
        } else {
            (narrow_k, Which::Narrow)
        };
        Some(Dispatch {
            group: k.bind(device, bytemuck::bytes_of(&u), ops),
            which,
            size: grid_256(total),
        })
    }
}
