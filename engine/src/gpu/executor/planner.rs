//! Buffers for one batch size: activations assigned best-fit from a pool as their last reader
//! passes, constants (weights, index tables) uploaded once in the model's storage precision.

use wgpu::util::DeviceExt;

use super::super::{Act, GemmGeom, Kernels, Precision};
use super::plan::Plan;
use super::{GpuRunError, R};
use crate::graph::{Graph, TensorId};

pub(super) struct Planner<'a> {
    pub(super) device: &'a wgpu::Device,
    pub(super) buffers: Vec<wgpu::Buffer>,
    pub(super) free: Vec<usize>,
    /// Last node index that reads each buffer.
    pub(super) last: Vec<usize>,
    /// Buffers only the current node uses (split-K partial sums), pooled after it.
    pub(super) scratch: Vec<usize>,
    pub(super) planned_bytes: u64,
    pub(super) precision: Precision,
}

/// Bytes of `elems` values in `precision`, rounded up to 4 (storage bindings are sized in words).
pub(super) fn byte_size(elems: usize, precision: Precision) -> R<u64> {
    (elems.max(1) as u64)
        .checked_mul(precision.element_bytes())
        .map(|b| b.next_multiple_of(4))
        .ok_or(GpuRunError::TooLarge(elems))
}

impl<'a> Planner<'a> {
    pub(super) fn new(device: &'a wgpu::Device, precision: Precision) -> Self {
        Self {
            device,
            buffers: Vec::new(),
            free: Vec::new(),
            last: Vec::new(),
            scratch: Vec::new(),
            planned_bytes: 0,
            precision,
        }
    }

    pub(super) fn alloc(&mut self, elems: usize, last: usize) -> R<usize> {
        let bytes = byte_size(elems, self.precision)?;
        // Best fit among the free buffers; a new one only when none is large enough.
        let pick = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| self.buffers[**b].size() >= bytes)
            .min_by_key(|(_, b)| self.buffers[**b].size())
            .map(|(i, _)| i);
        let id = match pick {
            Some(i) => self.free.swap_remove(i),
            None => {
                self.planned_bytes += bytes;
                self.buffers
                    .push(self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("activation"),
                        size: bytes,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }));
                self.last.push(0);
                self.buffers.len() - 1
            }
        };
        self.last[id] = last;
        Ok(id)
    }

    /// A GEMM dispatch, split along K when the output has too few tiles to fill the device.
    pub(super) fn gemm(&mut self, g: GemmGeom, act: Act, ids: [usize; 5], node: usize) -> R<Plan> {
        let splits = Kernels::split_k_for(&g);
        if splits <= 1 {
            return Ok(Plan::Gemm(g, act, ids));
        }
        let elems = splits as usize * g.batch as usize * g.m as usize * g.n as usize;
        let partial = self.alloc(elems, node)?;
        self.scratch.push(partial);
        Ok(Plan::GemmSplitK(g, act, splits, ids, partial))
    }

    /// Constant words uploaded as they are, whatever the precision (index tables).
    pub(super) fn constant_u32(&mut self, data: &[u32]) -> usize {
        let data = if data.is_empty() { &[0][..] } else { data };
        self.upload("index table", bytemuck::cast_slice(data))
    }

    pub(super) fn constant(&mut self, data: &[f32]) -> usize {
        let data = if data.is_empty() { &[0.0][..] } else { data };
        let bytes: Vec<u8> = match self.precision {
            Precision::F32 => bytemuck::cast_slice(data).to_vec(),
            Precision::F16 => {
                let mut b: Vec<u8> = data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                b.resize(b.len().next_multiple_of(4), 0);
                b
            }
        };
        self.upload("weights", &bytes)
    }

    /// The graph constant `id` times `scale`, uploaded; `None` when `id` is not a constant.
    pub(super) fn graph_constant(
        &mut self,
        graph: &Graph,
        id: TensorId,
        scale: f32,
    ) -> Option<usize> {
        let c = graph.constant(id)?.f32_data()?;
        Some(if scale == 1.0 {
            self.constant(c)
        } else {
            self.constant(&c.iter().map(|v| v * scale).collect::<Vec<_>>())
        })
    }

    fn upload(&mut self, label: &str, contents: &[u8]) -> usize {
        self.buffers.push(
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::STORAGE,
                }),
        );
        self.last.push(usize::MAX);
        self.buffers.len() - 1
    }

    /// An f32 buffer outside the pool (the f16 model's f32 input and outputs).
    pub(super) fn f32_buffer(&self, len: usize, label: &str) -> R<wgpu::Buffer> {
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: byte_size(len, Precision::F32)?,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }
}
