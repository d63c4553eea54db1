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

use std::collections::HashMap;

use wgpu::util::DeviceExt;

use super::plan::{Plan, data_op, elt_act};
use super::readback;
use super::{Act, Channel, ConvGeom, Dispatch, EltAct, GemmGeom, Kernels, Operands, Precision};
use crate::graph::{Activation, Graph, Op, TensorId};

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
    Readback(String),
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

struct Planner<'a> {
    device: &'a wgpu::Device,
    buffers: Vec<wgpu::Buffer>,
    free: Vec<usize>,
    /// Last node index that reads each buffer.
    last: Vec<usize>,
    /// Buffers only the current node uses (split-K partial sums), pooled after it.
    scratch: Vec<usize>,
    planned_bytes: u64,
    precision: Precision,
}

/// Bytes of `elems` values in `precision`, rounded up to 4 (storage bindings are sized in words).
fn byte_size(elems: usize, precision: Precision) -> R<u64> {
    (elems.max(1) as u64)
        .checked_mul(precision.element_bytes())
        .map(|b| b.next_multiple_of(4))
        .ok_or(GpuRunError::TooLarge(elems))
}

impl Planner<'_> {
    fn alloc(&mut self, elems: usize, last: usize) -> R<usize> {
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
    fn gemm(&mut self, g: GemmGeom, act: Act, ids: [usize; 5], node: usize) -> R<Plan> {
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
    fn constant_u32(&mut self, data: &[u32]) -> usize {
        let data = if data.is_empty() { &[0][..] } else { data };
        self.buffers.push(
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("index table"),
                    contents: bytemuck::cast_slice(data),
                    usage: wgpu::BufferUsages::STORAGE,
                }),
        );
        self.last.push(usize::MAX);
        self.buffers.len() - 1
    }

    fn constant(&mut self, data: &[f32]) -> usize {
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
        self.buffers.push(
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("weights"),
                    contents: &bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                }),
        );
        self.last.push(usize::MAX);
        self.buffers.len() - 1
    }
}

fn act_of(a: &Activation, node: &str, op: &'static str) -> R<Act> {
    match a {
        Activation::None => Ok(Act::None),
        Activation::Relu => Ok(Act::Relu),
        Activation::PRelu => Ok(Act::Prelu),
        other => Err(GpuRunError::Unsupported {
            node: node.into(),
            op,
            why: format!("fused activation {other:?}"),
        }),
    }
}

fn u(v: usize) -> R<u32> {
    u32::try_from(v).map_err(|_| GpuRunError::TooLarge(v))
}

impl GpuModel {
    pub fn new(device: &wgpu::Device, kernels: &Kernels, graph: &Graph, batch: usize) -> R<Self> {
        let shapes = graph.infer_shapes(batch)?;
        // Last reader of every tensor; graph outputs live to the end.
        let mut last_use = vec![0usize; graph.tensors.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            for t in &node.inputs {
                last_use[t.0] = i;
            }
        }
        for t in &graph.outputs {
            last_use[t.0] = usize::MAX;
        }
        // Readers of every tensor (node indices), to find activations that can fold into the
        // element-wise op before them.
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); graph.tensors.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            for t in &node.inputs {
                readers[t.0].push(i);
            }
        }
        // Activation nodes already computed by the Binary node before them.
        let mut fused_away = vec![false; graph.nodes.len()];
        let mut p = Planner {
            device,
            buffers: Vec::new(),
            free: Vec::new(),
            last: Vec::new(),
            scratch: Vec::new(),
            planned_bytes: 0,
            precision: kernels.precision(),
        };
        let mut of: HashMap<TensorId, usize> = HashMap::new();
        let [input_id] = graph.inputs[..] else {
            return Err(GpuRunError::Unsupported {
                node: "graph".into(),
                op: "Input",
                why: format!("{} inputs; one is supported", graph.inputs.len()),
            });
        };
        let input_len: usize = shapes.get(input_id)?.iter().product();
        let input = p.alloc(input_len, usize::MAX)?;
        of.insert(input_id, input);
        let const_buf = |p: &mut Planner, id: TensorId, scale: f32| -> Option<usize> {
            let c = graph.constant(id)?.f32_data()?;
            Some(if scale == 1.0 {
                p.constant(c)
            } else {
                p.constant(&c.iter().map(|v| v * scale).collect::<Vec<_>>())
            })
        };
        let mut dispatches = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        // Bound after planning: (kernel call, buffer ids) recorded first, bound once buffers are
        // final; each plan remembers its node for error messages.
        let mut plans: Vec<(usize, Plan)> = Vec::new();
        let zero = p.constant(&[0.0]);
        // PReLU slopes are a fused node's fourth input; other activations bind the dummy buffer.
        let slope_buf = |p: &mut Planner,
                         act: Act,
                         id: Option<TensorId>|
         -> Result<usize, &'static str> {
            match (act, id) {
                (Act::Prelu, Some(s)) => const_buf(p, s, 1.0).ok_or("PReLU slope must be constant"),
                (Act::Prelu, None) => Err("PReLU without slope"),
                _ => Ok(zero),
            }
        };
        for (i, node) in graph.nodes.iter().enumerate() {
            let op = node.op.name();
            let unsupported = |why: String| GpuRunError::Unsupported {
                node: node.name.clone(),
                op,
                why,
            };
            let out_shape = shapes.get(node.output)?.to_vec();
            let out_len: usize = out_shape.iter().product();
            if node.op.is_layout_noop() {
                let src = *of
                    .get(&node.inputs[0])
                    .ok_or_else(|| unsupported("input is not computed on the GPU".into()))?;
                p.last[src] = p.last[src].max(last_use[node.output.0]).max(i);
                of.insert(node.output, src);
                continue;
            }
            if fused_away[i] {
                // Computed (and its output mapped) by the Binary node that precedes it.
                continue;
            }
            // Binary + activation fusion: the activation must be the sum's only reader and the
            // sum must not be a graph output, so nothing else ever needs the unactivated value.
            let fusion = match &node.op {
                Op::Binary(_) if last_use[node.output.0] != usize::MAX => {
                    match readers[node.output.0][..] {
                        [j] => match &graph.nodes[j].op {
                            Op::Activation(a) => elt_act(a).map(|act| (j, act)),
                            _ => None,
                        },
                        _ => None,
                    }
                }
                _ => None,
            };
            let &x_id = node
                .inputs
                .first()
                .ok_or_else(|| unsupported("node has no inputs".into()))?;
            let x = of.get(&x_id).copied();
            let need_x =
                || x.ok_or_else(|| unsupported("first input must be a computed tensor".into()));
            let x_shape = shapes.get(x_id)?.to_vec();
            let y_last = match fusion {
                Some((j, _)) => last_use[graph.nodes[j].output.0],
                None => last_use[node.output.0],
            };
            let y = p.alloc(out_len, y_last)?;
            match &node.op {
                Op::Affine { scale, shift } => {
                    let x = need_x()?;
                    let channels = x_shape.get(1).copied().unwrap_or(1);
                    let hw: usize = x_shape.iter().skip(2).product();
                    let (s, b) = (p.constant(scale), p.constant(shift));
                    plans.push((
                        i,
                        Plan::Affine(
                            u(out_len)?,
                            u(hw.max(1))?,
                            u(channels)?,
                            scale.len() == 1,
                            [x, s, b, zero, y],
                        ),
                    ));
                }
                Op::Conv(c) => {
                    let x = need_x()?;
                    let act = act_of(&c.activation, &node.name, op)?;
                    let w_shape = shapes.get(node.inputs[1])?.to_vec();
                    let [n, cin, h, w] = x_shape[..] else {
                        return Err(unsupported(format!("input shape {x_shape:?} is not NCHW")));
                    };
                    let (cout, kh, kw) = (w_shape[0], w_shape[2], w_shape[3]);
                    let win = c
                        .window
                        .resolve([h, w])
                        .map_err(|e| unsupported(e.to_string()))?;
                    let wb = const_buf(&mut p, node.inputs[1], 1.0)
                        .ok_or_else(|| unsupported("weights must be constant".into()))?;
                    let bias = match node.inputs.get(2) {
                        Some(&b) => const_buf(&mut p, b, 1.0)
                            .ok_or_else(|| unsupported("bias must be constant".into()))?,
                        None => p.constant(&vec![0.0; cout]),
                    };
                    let slope = slope_buf(&mut p, act, node.inputs.get(3).copied())
                        .map_err(|why| unsupported(why.into()))?;
                    let pointwise = kh == 1
                        && kw == 1
                        && c.group == 1
                        && c.window.strides == [1, 1]
                        && win.pads == [0; 4];
                    if pointwise {
                        let hw = h * w;
                        let g = GemmGeom {
                            batch: u(n)?,
                            m: u(cout)?,
                            n: u(hw)?,
                            k: u(cin)?,
                            a: (0, u(cin)?, 1),
                            b: (u(cin * hw)?, u(hw)?, 1),
                            c: (u(cout * hw)?, u(hw)?, 1),
                            channel: Channel::Rows,
                        };
                        plans.push((i, p.gemm(g, act, [wb, x, bias, slope, y], i)?));
                    } else {
                        let g = ConvGeom {
                            n: u(n)?,
                            cin: u(cin)?,
                            h: u(h)?,
                            w: u(w)?,
                            cout: u(cout)?,
                            kh: u(kh)?,
                            kw: u(kw)?,
                            stride: (u(c.window.strides[0])?, u(c.window.strides[1])?),
                            pads: (
                                u(win.pads[0])?,
                                u(win.pads[1])?,
                                u(win.pads[2])?,
                                u(win.pads[3])?,
                            ),
                            dil: (u(c.window.dilations[0])?, u(c.window.dilations[1])?),
                            groups: u(c.group)?,
                        };
                        if g.out_hw() != (u(win.out[0])?, u(win.out[1])?) {
                            return Err(unsupported(format!(
                                "output size {:?} differs from shape inference {:?}",
                                g.out_hw(),
                                win.out
                            )));
                        }
                        plans.push((i, Plan::Conv(g, act, [x, wb, bias, slope, y])));
                    }
                }
                Op::Resize(rz) => {
                    let x = need_x()?;
                    let (&[n, c, h, w], &[_, _, oh, ow]) = (&x_shape[..], &out_shape[..]) else {
                        return Err(unsupported(format!("input shape {x_shape:?} is not NCHW")));
                    };
                    // The CPU reference's own taps: the kernel only blends, so both agree.
                    let mut taps = Vec::with_capacity(3 * (oh + ow));
                    for (lo, hi, f) in crate::cpu::resize::taps(rz, h, oh, 0)
                        .into_iter()
                        .chain(crate::cpu::resize::taps(rz, w, ow, 1))
                    {
                        taps.extend([u(lo)?, u(hi)?, f.to_bits()]);
                    }
                    let t = p.constant_u32(&taps);
                    plans.push((
                        i,
                        Plan::Resize(
                            u(n * c)?,
                            (u(h)?, u(w)?),
                            (u(oh)?, u(ow)?),
                            [x, t, zero, zero, y],
                        ),
                    ));
                }
                Op::Gemm(gm) => {
                    let x = need_x()?;
                    let act = act_of(&gm.activation, &node.name, op)?;
                    if gm.trans_a || x_shape.len() != 2 {
                        return Err(unsupported(
                            "A must be a 2-D [rows x k] tensor, not transposed".into(),
                        ));
                    }
                    let (rows, k) = (x_shape[0], x_shape[1]);
                    let out = out_shape[1];
                    let wb = const_buf(&mut p, node.inputs[1], gm.alpha)
                        .ok_or_else(|| unsupported("B must be constant".into()))?;
                    let b_strides = if gm.trans_b {
                        (0, 1, u(k)?)
                    } else {
                        (0, u(out)?, 1)
                    };
                    let bias = match node.inputs.get(2) {
                        Some(&b) => {
                            let len: usize = shapes.get(b)?.iter().product();
                            if len != out {
                                return Err(unsupported(format!(
                                    "C of {len} values; only a per-output bias is supported"
                                )));
                            }
                            const_buf(&mut p, b, gm.beta)
                                .ok_or_else(|| unsupported("C must be constant".into()))?
                        }
                        None => p.constant(&vec![0.0; out]),
                    };
                    let slope = slope_buf(&mut p, act, node.inputs.get(3).copied())
                        .map_err(|why| unsupported(why.into()))?;
                    let g = GemmGeom {
                        batch: 1,
                        m: u(rows)?,
                        n: u(out)?,
                        k: u(k)?,
                        a: (0, u(k)?, 1),
                        b: b_strides,
                        c: (0, u(out)?, 1),
                        channel: Channel::Columns,
                    };
                    plans.push((i, p.gemm(g, act, [x, wb, bias, slope, y], i)?));
                }
                other => {
                    // Weightless ops: every input is an activation or an uploaded constant.
                    let mut ids = Vec::with_capacity(node.inputs.len());
                    let mut in_shapes = Vec::with_capacity(node.inputs.len());
                    for &t in &node.inputs {
                        ids.push(match of.get(&t) {
                            Some(&b) => b,
                            None => const_buf(&mut p, t, 1.0).ok_or_else(|| {
                                unsupported("an input is neither computed nor a constant".into())
                            })?,
                        });
                        in_shapes.push(shapes.get(t)?.to_vec());
                    }
                    let act = fusion.map_or(EltAct::None, |(_, a)| a);
                    let planned = data_op(other, &ids, &in_shapes, &out_shape, y, zero, act)
                        .map_err(unsupported)?;
                    plans.extend(planned.into_iter().map(|pl| (i, pl)));
                }
            }
            of.insert(node.output, y);
            if let Some((j, _)) = fusion {
                fused_away[j] = true;
                of.insert(graph.nodes[j].output, y);
            }
            // Scratch and inputs read for the last time here go back to the pool (never the graph
            // input); later dispatches that reuse them are ordered after this node's.
            let scratch = std::mem::take(&mut p.scratch);
            p.free.extend(scratch);
            for t in &node.inputs {
                if let Some(&b) = of.get(t)
                    && b != input
                    && p.last[b] == i
                    && !p.free.contains(&b)
                {
                    p.free.push(b);
                }
            }
        }
        for (i, plan) in plans {
            let d =
                plan.bind(device, kernels, &p.buffers)
                    .map_err(|why| GpuRunError::Unsupported {
                        node: graph.nodes[i].name.clone(),
                        op: graph.nodes[i].op.name(),
                        why,
                    })?;
            let node = &graph.nodes[i];
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
        let mut outputs = Vec::new();
        for t in &graph.outputs {
            let b = *of.get(t).ok_or_else(|| GpuRunError::Unsupported {
                node: "graph".into(),
                op: "Output",
                why: "output not computed".into(),
            })?;
            outputs.push((p.buffers[b].clone(), shapes.get(*t)?.iter().product()));
        }
        // f16: the world outside sees f32. The host (or a resampling kernel) writes an f32 input
        // that one dispatch narrows into the model's first activation; each output is widened
        // into an f32 buffer after the last layer.
        let mut input_buf = p.buffers[input].clone();
        if kernels.precision() == Precision::F16 {
            let f32_buf = |len: usize, label: &str| -> R<wgpu::Buffer> {
                Ok(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: byte_size(len, Precision::F32)?,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            };
            let zero_buf = p.buffers[zero].clone();
            let convert = |x: &wgpu::Buffer, y: &wgpu::Buffer, len: usize, widen: bool| {
                let ops = Operands {
                    x,
                    w: &zero_buf,
                    bias: &zero_buf,
                    slope: &zero_buf,
                    y,
                };
                kernels
                    .convert(device, u(len)?, widen, &ops)
                    .ok_or(GpuRunError::TooLarge(len))
            };
            let outer = f32_buf(input_len, "input f32")?;
            dispatches.insert(0, convert(&outer, &p.buffers[input], input_len, false)?);
            labels.insert(0, "input (narrow to f16)".into());
            input_buf = outer;
            for (buf, len) in &mut outputs {
                let wide = f32_buf(*len, "output f32")?;
                dispatches.push(convert(buf, &wide, *len, true)?);
                labels.push("output (widen to f32)".into());
                *buf = wide;
            }
        }
        Ok(Self {
            batch,
            input: input_buf,
            input_len,
            outputs,
            dispatches,
            labels,
            planned_bytes: p.planned_bytes,
            _buffers: p.buffers,
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
                .map_err(|e| GpuRunError::Readback(e.to_string()))?;
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
        let bytes = readback::map_all(device, &reads.iter().collect::<Vec<_>>())
            .map_err(|e| GpuRunError::Readback(e.to_string()))?;
        Ok(bytes
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec::<u8, f32>(b))
            .collect())
    }
}
