//! Resize (`resize.wgsl`): the host computes every output row's and column's taps with the CPU
//! reference's own function; the kernel only blends them.

use super::{Dispatch, Kernels, Operands, Which, grid_256};

pub(super) const SOURCE: &str = include_str!("resize.wgsl");

impl Kernels {
    /// Resize of `planes` H×W planes to OH×OW from the taps in `ops.w` (see `resize.wgsl`).
    pub fn resize(
        &self,
        device: &wgpu::Device,
        planes: u32,
        hw: (u32, u32),
        out_hw: (u32, u32),
        ops: &Operands,
    ) -> Result<Dispatch, String> {
        let total = planes
            .checked_mul(out_hw.0)
            .and_then(|v| v.checked_mul(out_hw.1))
            .ok_or("output does not fit the kernel's 32-bit indices")?;
        let u = [planes, hw.0, hw.1, out_hw.0, out_hw.1, 0, 0, 0];
        Ok(Dispatch {
            group: self.resize.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Resize,
            size: grid_256(total),
        })
    }
}
