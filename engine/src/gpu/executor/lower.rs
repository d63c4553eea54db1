//! Lowering a graph onto the kernels for one batch size: liveness (last reader of every tensor,
//! activations that fold into the Binary op before them), then one function per op family that
//! turns a node into [`Plan`]s over planned buffers, and a small dispatcher between them. Plans are
//! bound into dispatches once every buffer is final ([`Lowered::bind`]).

use std::collections::HashMap;

use super::super::{Act, Channel, ConvGeom, EltAct, GemmGeom};
use super::plan::{Plan, data_op, elt_act};
use super::planner::Planner;
use super::{GpuRunError, R};
use crate::graph::{self, Activation, Graph, Node, Op, Shapes, TensorId};

/// The plans of a whole graph, with the buffers they name.
pub(super) struct Lowered<'a> {
    pub(super) planner: Planner<'a>,
    /// Plans in dispatch order, each with the index of its node (for error messages and labels).
    pub(super) plans: Vec<(usize, Plan)>,
    /// The buffer holding each computed tensor (layout no-ops alias their input's).
    pub(super) of: HashMap<TensorId, usize>,
    /// The graph input's buffer.
    pub(super) input: usize,
    pub(super) input_len: usize,
    /// A one-element constant for bindings a kernel does not read.
    pub(super) zero: usize,
}

/// Liveness of every tensor, computed once before lowering.
struct Liveness {
    /// Last node index that reads each tensor; graph outputs live to the end (`usize::MAX`).
    last_use: Vec<usize>,
    /// Node indices that read each tensor.
    readers: Vec<Vec<usize>>,
}

impl Liveness {
    fn of(graph: &Graph) -> Self {
        let mut last_use = vec![0usize; graph.tensors.len()];
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); graph.tensors.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            for t in &node.inputs {
                last_use[t.0] = i;
                readers[t.0].push(i);
            }
        }
        for t in &graph.outputs {
            last_use[t.0] = usize::MAX;
        }
        Self { last_use, readers }
    }

    /// Binary + activation fusion: the activation node that can run inside `node`'s dispatch. It
    /// must be the sum's only reader and the sum must not be a graph output, so nothing else ever
    /// needs the unactivated value.
    fn fusion(&self, graph: &Graph, node: &Node) -> Option<(usize, EltAct)> {
        match &node.op {
            Op::Binary(_) if self.last_use[node.output.0] != usize::MAX => {
                match self.readers[node.output.0][..] {
                    [j] => match &graph.nodes[j].op {
                        Op::Activation(a) => elt_act(a).map(|act| (j, act)),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The node being lowered: what every op family's function needs.
struct At<'n> {
    i: usize,
    node: &'n Node,
    /// The first input's buffer, when it is computed on the GPU (not a constant).
    x: Option<usize>,
    x_shape: Vec<usize>,
    out_shape: Vec<usize>,
    out_len: usize,
    y: usize,
}

impl At<'_> {
    fn unsupported(&self, why: impl Into<String>) -> GpuRunError {
        GpuRunError::Unsupported {
            node: self.node.name.clone(),
            op: self.node.op.name(),
            why: why.into(),
        }
    }

    fn x(&self) -> R<usize> {
        self.x
            .ok_or_else(|| self.unsupported("first input must be a computed tensor"))
    }

    /// The fused activation of a Conv or Gemm as the kernels' code.
    fn act(&self, a: &Activation) -> R<Act> {
        match a {
            Activation::None => Ok(Act::None),
            Activation::Relu => Ok(Act::Relu),
            Activation::PRelu => Ok(Act::Prelu),
            Activation::Sigmoid => Ok(Act::Sigmoid),
            other => Err(self.unsupported(format!("fused activation {other:?}"))),
        }
    }
}

fn u(v: usize) -> R<u32> {
    u32::try_from(v).map_err(|_| GpuRunError::TooLarge(v))
}

struct Lowering<'a> {
    graph: &'a Graph,
    shapes: &'a Shapes,
    live: Liveness,
    /// Activation nodes already computed by the Binary node before them.
    fused_away: Vec<bool>,
    out: Lowered<'a>,
}

/// Plans every node of `graph` at the batch `shapes` were inferred for.
pub(super) fn lower<'a>(
    device: &'a wgpu::Device,
    precision: super::super::Precision,
    graph: &'a Graph,
    shapes: &'a Shapes,
) -> R<Lowered<'a>> {
    let mut planner = Planner::new(device, precision);
    let [input_id] = graph.inputs[..] else {
        return Err(GpuRunError::Unsupported {
            node: "graph".into(),
            op: "Input",
            why: format!("{} inputs; one is supported", graph.inputs.len()),
        });
    };
    let input_len: usize = shapes.get(input_id)?.iter().product();
    let input = planner.alloc(input_len, usize::MAX)?;
    let zero = planner.constant(&[0.0]);
    let mut l = Lowering {
        graph,
        shapes,
        live: Liveness::of(graph),
        fused_away: vec![false; graph.nodes.len()],
        out: Lowered {
            planner,
            plans: Vec::new(),
            of: HashMap::from([(input_id, input)]),
            input,
            input_len,
            zero,
        },
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        l.node(i, node)?;
    }
    Ok(l.out)
}

impl<'a> Lowering<'a> {
    /// The dispatcher: aliases layout no-ops, skips fused activations, plans the node by its op
    /// family, then returns the buffers it read for the last time to the pool.
    fn node(&mut self, i: usize, node: &'a Node) -> R<()> {
        let out_shape = self.shapes.get(node.output)?.to_vec();
        let out_len: usize = out_shape.iter().product();
        if node.op.is_layout_noop() {
            return self.alias(i, node);
        }
        if self.fused_away[i] {
            // Computed (and its output mapped) by the Binary node that precedes it.
            return Ok(());
        }
        let fusion = self.live.fusion(self.graph, node);
        let Some(&x_id) = node.inputs.first() else {
            return Err(GpuRunError::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                why: "node has no inputs".into(),
            });
        };
        let x = self.out.of.get(&x_id).copied();
        let x_shape = self.shapes.get(x_id)?.to_vec();
        let y_last = match fusion {
            Some((j, _)) => self.live.last_use[self.graph.nodes[j].output.0],
            None => self.live.last_use[node.output.0],
        };
        let y = self.out.planner.alloc(out_len, y_last)?;
        let at = At {
            i,
            node,
            x,
            x_shape,
            out_shape,
            out_len,
            y,
        };
        let plans = match &node.op {
            Op::Affine { scale, shift } => vec![self.affine(&at, scale, shift)?],
            Op::Conv(c) => vec![self.conv(&at, c)?],
            Op::Resize(rz) => vec![self.resize(&at, rz)?],
            Op::Gemm(gm) => vec![self.gemm(&at, gm)?],
            other => self.weightless(&at, other, fusion.map_or(EltAct::None, |(_, a)| a))?,
        };
        self.out.plans.extend(plans.into_iter().map(|p| (i, p)));
        self.out.of.insert(node.output, y);
        if let Some((j, _)) = fusion {
            self.fused_away[j] = true;
            self.out.of.insert(self.graph.nodes[j].output, y);
        }
        self.release(i, node);
        Ok(())
    }

    /// Flatten/Reshape/Identity: the output is the input's buffer, kept alive as long as either.
    fn alias(&mut self, i: usize, node: &Node) -> R<()> {
        let src = *self
            .out
            .of
            .get(&node.inputs[0])
            .ok_or_else(|| GpuRunError::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                why: "input is not computed on the GPU".into(),
            })?;
        let p = &mut self.out.planner;
        p.last[src] = p.last[src].max(self.live.last_use[node.output.0]).max(i);
        self.out.of.insert(node.output, src);
        Ok(())
    }

    /// Scratch and inputs read for the last time at node `i` go back to the pool (never the graph
    /// input); later dispatches that reuse them are ordered after this node's.
    fn release(&mut self, i: usize, node: &Node) {
        let p = &mut self.out.planner;
        let scratch = std::mem::take(&mut p.scratch);
        p.free.extend(scratch);
        for t in &node.inputs {
            if let Some(&b) = self.out.of.get(t)
                && b != self.out.input
                && p.last[b] == i
                && !p.free.contains(&b)
            {
                p.free.push(b);
            }
        }
    }

    /// A constant input uploaded (times `scale`), or the error naming what had to be constant.
    fn constant(&mut self, at: &At, id: TensorId, scale: f32, what: &str) -> R<usize> {
        self.out
            .planner
            .graph_constant(self.graph, id, scale)
            .ok_or_else(|| at.unsupported(format!("{what} must be constant")))
    }

    /// PReLU slopes are a fused node's fourth input; other activations bind the unused buffer.
    fn slope(&mut self, at: &At, act: Act) -> R<usize> {
        match (act, at.node.inputs.get(3).copied()) {
            (Act::Prelu, Some(s)) => self
                .out
                .planner
                .graph_constant(self.graph, s, 1.0)
                .ok_or_else(|| at.unsupported("PReLU slope must be constant")),
            (Act::Prelu, None) => Err(at.unsupported("PReLU without slope")),
            _ => Ok(self.out.zero),
        }
    }

    fn affine(&mut self, at: &At, scale: &[f32], shift: &[f32]) -> R<Plan> {
        let x = at.x()?;
        let channels = at.x_shape.get(1).copied().unwrap_or(1);
        let hw: usize = at.x_shape.iter().skip(2).product();
        let p = &mut self.out.planner;
        let (s, b) = (p.constant(scale), p.constant(shift));
        Ok(Plan::Affine(
            u(at.out_len)?,
            u(hw.max(1))?,
            u(channels)?,
            scale.len() == 1,
            [x, s, b, self.out.zero, at.y],
        ))
    }

    /// Conv with fused bias and activation: the direct kernel, or GEMM for 1×1 stride-1 unpadded
    /// ungrouped convolutions.
    fn conv(&mut self, at: &At, c: &graph::Conv) -> R<Plan> {
        let x = at.x()?;
        let act = at.act(&c.activation)?;
        let w_shape = self.shapes.get(at.node.inputs[1])?.to_vec();
        let [n, cin, h, w] = at.x_shape[..] else {
            return Err(at.unsupported(format!("input shape {:?} is not NCHW", at.x_shape)));
        };
        let (cout, kh, kw) = (w_shape[0], w_shape[2], w_shape[3]);
        let win = c
            .window
            .resolve([h, w])
            .map_err(|why| at.unsupported(why))?;
        let wb = self.constant(at, at.node.inputs[1], 1.0, "weights")?;
        let bias = match at.node.inputs.get(2) {
            Some(&b) => self.constant(at, b, 1.0, "bias")?,
            None => self.out.planner.constant(&vec![0.0; cout]),
        };
        let slope = self.slope(at, act)?;
        let pointwise =
            kh == 1 && kw == 1 && c.group == 1 && c.window.strides == [1, 1] && win.pads == [0; 4];
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
            return self
                .out
                .planner
                .gemm(g, act, [wb, x, bias, slope, at.y], at.i);
        }
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
            return Err(at.unsupported(format!(
                "output size {:?} differs from shape inference {:?}",
                g.out_hw(),
                win.out
            )));
        }
        Ok(Plan::Conv(g, act, [x, wb, bias, slope, at.y]))
    }

    /// Resize with the CPU reference's own taps: the kernel only blends, so both agree.
    fn resize(&mut self, at: &At, rz: &graph::Resize) -> R<Plan> {
        let x = at.x()?;
        let (&[n, c, h, w], &[_, _, oh, ow]) = (&at.x_shape[..], &at.out_shape[..]) else {
            return Err(at.unsupported(format!("input shape {:?} is not NCHW", at.x_shape)));
        };
        let mut taps = Vec::with_capacity(3 * (oh + ow));
        for (lo, hi, f) in crate::cpu::resize::taps(rz, h, oh, 0)
            .into_iter()
            .chain(crate::cpu::resize::taps(rz, w, ow, 1))
        {
            taps.extend([u(lo)?, u(hi)?, f.to_bits()]);
        }
        let t = self.out.planner.constant_u32(&taps);
        let zero = self.out.zero;
        Ok(Plan::Resize(
            u(n * c)?,
            (u(h)?, u(w)?),
            (u(oh)?, u(ow)?),
            [x, t, zero, zero, at.y],
        ))
    }

    /// Gemm (a fully connected layer): alpha and beta folded into the uploaded B and C.
    fn gemm(&mut self, at: &At, gm: &graph::Gemm) -> R<Plan> {
        let x = at.x()?;
        let act = at.act(&gm.activation)?;
        if gm.trans_a || at.x_shape.len() != 2 {
            return Err(at.unsupported("A must be a 2-D [rows x k] tensor, not transposed"));
        }
        let (rows, k) = (at.x_shape[0], at.x_shape[1]);
        let out = at.out_shape[1];
        let wb = self.constant(at, at.node.inputs[1], gm.alpha, "B")?;
        let b_strides = if gm.trans_b {
            (0, 1, u(k)?)
        } else {
            (0, u(out)?, 1)
        };
        let bias = match at.node.inputs.get(2) {
            Some(&b) => {
                let len: usize = self.shapes.get(b)?.iter().product();
                if len != out {
                    return Err(at.unsupported(format!(
                        "C of {len} values; only a per-output bias is supported"
                    )));
                }
                self.constant(at, b, gm.beta, "C")?
            }
            None => self.out.planner.constant(&vec![0.0; out]),
        };
        let slope = self.slope(at, act)?;
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
        self.out
            .planner
            .gemm(g, act, [x, wb, bias, slope, at.y], at.i)
    }

    /// Weightless ops (element-wise, data movement, pooling): every input is an activation or an
    /// uploaded constant; `plan::data_op` picks the kernel.
    fn weightless(&mut self, at: &At, op: &Op, fused: EltAct) -> R<Vec<Plan>> {
        let mut ids = Vec::with_capacity(at.node.inputs.len());
        let mut in_shapes = Vec::with_capacity(at.node.inputs.len());
        for &t in &at.node.inputs {
            ids.push(match self.out.of.get(&t) {
                Some(&b) => b,
                None => self
                    .out
                    .planner
                    .graph_constant(self.graph, t, 1.0)
                    .ok_or_else(|| at.unsupported("an input is neither computed nor a constant"))?,
            });
            in_shapes.push(self.shapes.get(t)?.to_vec());
        }
        data_op(
            op,
            &ids,
            &in_shapes,
            &at.out_shape,
            at.y,
            self.out.zero,
            fused,
        )
        .map_err(|why| at.unsupported(why))
    }
}
