//! Runs a loaded graph on the GPU for a fixed batch size: weights uploaded once, activation buffers
//! planned once with reuse, every dispatch bound once; a run is one upload, one command encoder, one
//! submit and one readback.
//!
//! Ops implemented here today: Affine, Conv (direct kernel; 1×1 stride-1 unpadded ungrouped convs as
//! GEMM) with fused bias and None/Relu/PRelu, Gemm (bias along the output, alpha/beta folded into the
//! constants), Resize (taps computed here by the CPU reference's function), the layout no-ops
//! Flatten/Reshape/Identity (aliases), and (planned in `plan.rs`) Add/Sub/Mul/Div with
//! broadcasting, standalone activations, Transpose, Pad (constant, reflect, edge), Concat,
//! MaxPool/AveragePool/GlobalAveragePool. That is all of SFace and BlazeFace after the passes.
//! A Binary op whose only reader is a Relu (or another non-PRelu activation) runs as one fused
//! dispatch, `y = relu(a + b)` for BlazeFace's residuals: the sum never exists in memory.
//! Any other op (MatMul, BatchNorm, ...) is refused with an error naming the node, so a
//! model never runs half on the GPU.
//!
//! Layout: `planner` (activation buffers from a pool, uploaded constants), `lower` (liveness, one
//! function per op family and the dispatcher between them), `plan` (the plans, the weightless ops'
//! lowering, binding), and here [`GpuModel`]: lowering, binding, the f16 boundary, and running.

use super::readback;
use super::{Dispatch, Kernels, Operands, Precision};
use crate::graph::Graph;

mod lower;
mod plan;
mod planner;

#[derive(Debug, thiserror::Error)]
pub enum GpuRunError {
    #[error(transparent)]
    Graph(#[from] crate::Error),
    #[error("node {node:?} ({op}) is not implemented on the GPU yet: {why}")]
    Unsupported {
        node: String,
        op: &'static str,
        why: String,
    },
    #[error("input has {got} values, the model at batch {batch} takes {want}")]
    Input {
        got: usize,
        want: usize,
        batch: usize,
    },
    #[error("tensor of {0} elements is too large for one GPU buffer")]
    TooLarge(usize),
    #[error("GPU readback failed: {0}")]
    Readback(#[from] readback::ReadbackError),
}

type R<T> = Result<T, GpuRunError>;

pub struct GpuModel {
    batch: usize,
    input: wgpu::Buffer,
    input_len: usize,
    /// Graph outputs: buffer and element count.
    outputs: Vec<(wgpu::Buffer, usize)>,
    dispatches: Vec<Dispatch>,
    /// The node (name and op) each dispatch belongs to, for `profile`.
    labels: Vec<String>,
    /// Bytes of activation memory after reuse, for the record.
    pub planned_bytes: u64,
    /// Kept alive for the bind groups.
    _buffers: Vec<wgpu::Buffer>,
}

impl GpuModel {
    /// Lowers `graph` onto `kernels` for `batch` inputs: buffers planned, weights uploaded and
    /// every dispatch bound, once.
    pub fn new(device: &wgpu::Device, kernels: &Kernels, graph: &Graph, batch: usize) -> R<Self> {
        let shapes = graph.infer_shapes(batch)?;
        let lowered = lower::lower(device, kernels.precision(), graph, &shapes)?;
        let (mut dispatches, mut labels) = bind(device, kernels, graph, &lowered)?;
        let p = &lowered.planner;
        let mut outputs = Vec::new();
        for t in &graph.outputs {
            let b = *lowered.of.get(t).ok_or_else(|| GpuRunError::Unsupported {
                node: "graph".into(),
                op: "Output",
                why: "output not computed".into(),
            })?;
            outputs.push((p.buffers[b].clone(), shapes.get(*t)?.iter().product()));
        }
        let mut input = p.buffers[lowered.input].clone();
        if kernels.precision() == Precision::F16 {
            input = f16_boundary(
                device,
                kernels,
                &lowered,
                &mut outputs,
                &mut dispatches,
                &mut labels,
            )?;
        }
        Ok(Self {
            batch,
            input,
            input_len: lowered.input_len,
            outputs,
            dispatches,
            labels,
            planned_bytes: lowered.planner.planned_bytes,
            _buffers: lowered.planner.buffers,
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of kernel dispatches one run records (fused ops count once).
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// Records the whole network into `pass` (after the caller wrote the input with `write_input`).
    pub fn record(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            kernels.record(pass, d);
        }
    }

    /// Runs every dispatch in its own submission and waits for it: wall time per dispatch with its
    /// node's label. For finding where a device spends its time (the inputs must be written first);
    /// the sum is larger than one `run`, which overlaps nothing but also waits only once.
    pub fn profile(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &Kernels,
    ) -> R<Vec<(String, std::time::Duration)>> {
        let mut out = Vec::with_capacity(self.dispatches.len());
        for (d, label) in self.dispatches.iter().zip(&self.labels) {
            let mut enc = device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                kernels.record(&mut pass, d);
            }
            let t = std::time::Instant::now();
            queue.submit([enc.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(readback::ReadbackError::Poll)?;
            out.push((label.clone(), t.elapsed()));
        }
        Ok(out)
    }

    pub fn write_input(&self, queue: &wgpu::Queue, input: &[f32]) -> R<()> {
        if input.len() != self.input_len {
            return Err(GpuRunError::Input {
                got: input.len(),
                want: self.input_len,
                batch: self.batch,
            });
        }
        queue.write_buffer(&self.input, 0, bytemuck::cast_slice(input));
        Ok(())
    }

    /// The f32 input buffer (the whole batch, NCHW or NHWC as the graph declares), for kernels that
    /// write the input on the GPU instead of `write_input` (the alignment warp writes chips here).
    pub fn input_buffer(&self) -> &wgpu::Buffer {
        &self.input
    }

    /// Graph output `i`: its f32 buffer and element count (the whole batch), for kernels that read
    /// it where it is (the station normalises and matches SFace's output on the GPU, `gpu::probe`).
    pub fn output(&self, i: usize) -> Option<(&wgpu::Buffer, usize)> {
        self.outputs.get(i).map(|(b, n)| (b, *n))
    }

    /// Uploads `input` (NCHW f32, the whole batch), runs the network, returns every graph output.
    pub fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &Kernels,
        input: &[f32],
    ) -> R<Vec<Vec<f32>>> {
        self.write_input(queue, input)?;
        self.run_with(device, queue, kernels, &mut |_| {})
    }

    /// Runs the network on whatever `prelude` writes into [`Self::input_buffer`] (recorded first, in
    /// the same pass and submission: the station's resampler cuts the inputs from the frames on the
    /// GPU), and returns every graph output.
    pub fn run_with(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &Kernels,
        prelude: &mut dyn FnMut(&mut wgpu::ComputePass<'_>),
    ) -> R<Vec<Vec<f32>>> {
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("model"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("model"),
                timestamp_writes: None,
            });
            prelude(&mut pass);
            self.record(kernels, &mut pass);
        }
        let reads: Vec<wgpu::Buffer> = self
            .outputs
            .iter()
            .map(|(b, len)| {
                let r = readback::staging(device, "output readback", (*len * 4) as u64);
                enc.copy_buffer_to_buffer(b, 0, &r, 0, (*len * 4) as u64);
                r
            })
            .collect();
        queue.submit([enc.finish()]);
        let bytes = readback::map_all(device, &reads.iter().collect::<Vec<_>>())?;
        Ok(bytes
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec::<u8, f32>(b))
            .collect())
    }
}

/// Binds every plan now that the buffers are final: the dispatches in order, each with its node's
/// label for `profile`.
fn bind(
    device: &wgpu::Device,
    kernels: &Kernels,
    graph: &Graph,
    lowered: &lower::Lowered,
) -> R<(Vec<Dispatch>, Vec<String>)> {
    let mut dispatches = Vec::new();
    let mut labels = Vec::new();
    for (i, plan) in &lowered.plans {
        let node = &graph.nodes[*i];
        let d = plan
            .bind(device, kernels, &lowered.planner.buffers)
            .map_err(|why| GpuRunError::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                why,
            })?;
        labels.extend(d.iter().map(|d| {
            format!(
                "{} {:?} {:?} ({})",
                node.name,
                d.which,
                d.size,
                node.op.name()
            )
        }));
        dispatches.extend(d);
    }
    Ok((dispatches, labels))
}

/// f16: the world outside sees f32. The host (or a resampling kernel) writes an f32 input that one
/// dispatch narrows into the model's first activation; each output is widened into an f32 buffer
/// after the last layer. Returns the f32 input buffer; `outputs` become the f32 ones.
fn f16_boundary(
    device: &wgpu::Device,
    kernels: &Kernels,
    lowered: &lower::Lowered,
    outputs: &mut [(wgpu::Buffer, usize)],
    dispatches: &mut Vec<Dispatch>,
    labels: &mut Vec<String>,
) -> R<wgpu::Buffer> {
    let p = &lowered.planner;
    let zero = &p.buffers[lowered.zero];
    let convert = |x: &wgpu::Buffer, y: &wgpu::Buffer, len: usize, widen: bool| {
        let ops = Operands {
            x,
            w: zero,
            bias: zero,
            slope: zero,
            y,
        };
        let total = u32::try_from(len).map_err(|_| GpuRunError::TooLarge(len))?;
        kernels
            .convert(device, total, widen, &ops)
            .ok_or(GpuRunError::TooLarge(len))
    };
    let len = lowered.input_len;
    let outer = p.f32_buffer(len, "input f32")?;
    dispatches.insert(0, convert(&outer, &p.buffers[lowered.input], len, false)?);
    labels.insert(0, "input (narrow to f16)".into());
    for (buf, len) in outputs.iter_mut() {
        let wide = p.f32_buffer(*len, "output f32")?;
        dispatches.push(convert(buf, &wide, *len, true)?);
        labels.push("output (widen to f32)".into());
        *buf = wide;
    }
    Ok(outer)
}
