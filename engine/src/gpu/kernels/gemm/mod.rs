//! Batched strided GEMM (`gemm.wgsl`) with fused bias and activation: 1×1 convolutions and fully
//! connected layers, two entry points (tiled for GPUs, register-blocked for CPU adapters) and a
//! split-K form for outputs with few tiles and a long K.

use bytemuck::{Pod, Zeroable};

use super::{Act, Dispatch, Kernels, Operands, Which};

pub(super) const SOURCE: &str = include_str!("gemm.wgsl");

/// Which `gemm.wgsl` entry point runs GEMMs (1×1 convolutions and fully connected layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmVariant {
    /// `main`: 16×64 tiles staged through workgroup memory; for GPUs.
    Tiled,
    /// `main_blocked`: 64×64 tiles, a 4×4 register block per invocation, no workgroup memory or
    /// barriers; for CPU adapters (lavapipe), where it runs SFace ~6× faster (docs/engine.md).
    Blocked,
}

impl GemmVariant {
    /// `Blocked` on CPU adapters, `Tiled` elsewhere; `GATE_GEMM=tiled|blocked` overrides.
    pub fn for_device(device: &wgpu::Device) -> Self {
        match std::env::var("GATE_GEMM").as_deref() {
            Ok("tiled") => GemmVariant::Tiled,
            Ok("blocked") => GemmVariant::Blocked,
            _ if device.adapter_info().device_type == wgpu::DeviceType::Cpu => GemmVariant::Blocked,
            _ => GemmVariant::Tiled,
        }
    }

    pub(super) fn entry(self) -> &'static str {
        match self {
            GemmVariant::Tiled => "main",
            GemmVariant::Blocked => "main_blocked",
        }
    }

    /// Output rows one workgroup covers.
    fn rows(self) -> u32 {
        match self {
            GemmVariant::Tiled => 16,
            GemmVariant::Blocked => 64,
        }
    }
}

/// `C[b] = act(A[b] · B[b] + bias)`, every operand addressed by strides (elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmGeom {
    pub batch: u32,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// (batch, row, k) strides of A
    pub a: (u32, u32, u32),
    /// (batch, k, column) strides of B
    pub b: (u32, u32, u32),
    /// (batch, row, column) strides of C
    pub c: (u32, u32, u32),
    /// Which axis bias and PReLU slopes follow.
    pub channel: Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rows,
    Columns,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct GemmUniform {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    a_b: u32,
    a_m: u32,
    a_k: u32,
    _p0: u32,
    b_b: u32,
    b_k: u32,
    b_n: u32,
    _p1: u32,
    c_b: u32,
    c_m: u32,
    c_n: u32,
    _p2: u32,
    bias_on: u32,
    act: u32,
    splits: u32,
    k_chunk: u32,
}

impl Kernels {
    pub fn gemm(&self, device: &wgpu::Device, g: &GemmGeom, act: Act, ops: &Operands) -> Dispatch {
        let u = Self::gemm_uniform(g, act, 1, g.k);
        Dispatch {
            group: self.gemm.bind(device, bytemuck::bytes_of(&u), ops),
            which: Which::Gemm,
            size: (
                g.n.div_ceil(64),
                g.m.div_ceil(self.gemm_variant.rows()),
                g.batch,
            ),
        }
    }

    /// How many K slices [`Kernels::gemm_split_k`] should use for `g` (1: run [`Kernels::gemm`]).
    /// Splitting pays when the output has few 16×64 tiles (each workgroup would walk a very long
    /// K alone while most of the device idles) and K is long enough that every slice keeps at
    /// least 512 terms; it aims at about 256 workgroups in all.
    pub fn split_k_for(g: &GemmGeom) -> u32 {
        let tiles = g.n.div_ceil(64) * g.m.div_ceil(16) * g.batch;
        if tiles >= 64 || g.k < 1024 {
            return 1;
        }
        (256 / tiles).min(g.k / 512).max(1)
    }

    /// Split-K GEMM as two dispatches: partial sums of `splits` K slices into `partial` (at least
    /// `splits · batch · m · n` floats), then their sum with bias and activation into `ops.y`.
    pub fn gemm_split_k(
        &self,
        device: &wgpu::Device,
        g: &GemmGeom,
        act: Act,
        splits: u32,
        ops: &Operands,
        partial: &wgpu::Buffer,
    ) -> [Dispatch; 2] {
        // Slices are whole 16-wide tiles; the count is recomputed so none is empty.
        let chunk = g.k.div_ceil(splits.max(1)).div_ceil(16) * 16;
        let splits = g.k.div_ceil(chunk);
        let u = Self::gemm_uniform(g, act, splits, chunk);
        let first = Operands { y: partial, ..*ops };
        let reduce = Operands { x: partial, ..*ops };
        [
            Dispatch {
                group: self.gemm.bind(device, bytemuck::bytes_of(&u), &first),
                which: Which::Gemm,
                size: (
                    g.n.div_ceil(64),
                    g.m.div_ceil(self.gemm_variant.rows()),
                    g.batch * splits,
                ),
            },
            Dispatch {
                group: self
                    .gemm_reduce
                    .bind(device, bytemuck::bytes_of(&u), &reduce),
                which: Which::GemmReduce,
                size: ((g.batch * g.m * g.n).div_ceil(64), 1, 1),
            },
        ]
    }

    fn gemm_uniform(g: &GemmGeom, act: Act, splits: u32, k_chunk: u32) -> GemmUniform {
        GemmUniform {
            batch: g.batch,
            m: g.m,
            n: g.n,
            k: g.k,
            a_b: g.a.0,
            a_m: g.a.1,
            a_k: g.a.2,
            _p0: 0,
            b_b: g.b.0,
            b_k: g.b.1,
            b_n: g.b.2,
            _p1: 0,
            c_b: g.c.0,
            c_m: g.c.1,
            c_n: g.c.2,
            _p2: 0,
            bias_on: match g.channel {
                Channel::Rows => 1,
                Channel::Columns => 2,
            },
            act: act.code(),
            splits,
            k_chunk,
        }
    }
}

#[cfg(test)]
mod tests;
