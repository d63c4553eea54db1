//! Gemm and MatMul nodes whose weight operand is a constant: one GEMM call over all the rows
//! of the batch, with the bias written first and accumulated onto.

use gemm::Parallelism;

use super::constant_input;

/// Rows or columns per step of a split GEMM (a multiple of the micro-kernels' tiles).
const SPLIT_GRAIN: usize = 32;

/// Multiply-adds a GEMM must have per part before a second worker takes one.
const MIN_PART_MACS: usize = 1 << 17;
use super::team::{SharedOut, Workers};
use crate::graph::{Activation, Gemm, Graph, Node};

pub(super) struct GemmKernel {
    k: usize,
    n: usize,
    /// The constant operand B as stored, read as `[K, N]` through strides.
    b: Vec<f32>,
    /// Whether `b` is stored `[N, K]` (Gemm's `trans_b`).
    b_transposed: bool,
    /// Gemm's alpha (1 for MatMul).
    alpha: f32,
    /// `beta · C` broadcast to one output row (zeros without C).
    row_bias: Vec<f32>,
    activation: Activation,
    /// One slope per output column (fused PReLU only).
    slope: Vec<f32>,
}

impl GemmKernel {
    /// A Gemm with A computed (not transposed) and B, C, slope constant; `None` otherwise.
    pub(super) fn for_gemm(g: &Gemm, node: &Node, graph: &Graph) -> Option<Self> {
        if g.trans_a {
            return None;
        }
        let constant = |k: usize| constant_input(graph, node, k);
        let b = constant(1)?;
        let &[r, c] = b.shape else { return None };
        let (k, n) = if g.trans_b { (c, r) } else { (r, c) };
        let row_bias = match node.inputs.get(2) {
            None => vec![0.0; n],
            Some(_) => {
                let c = constant(2)?;
                match c.shape {
                    [] | [1] | [1, 1] => vec![g.beta * c.data[0]; n],
                    [x] | [1, x] if *x == n => c.data.iter().map(|v| g.beta * v).collect(),
                    _ => return None, // per-row C depends on the batch: the reference handles it
                }
            }
        };
        let slope = match g.activation {
            Activation::PRelu => {
                let s = constant(3)?;
                match s.data.len() {
                    1 => vec![s.data[0]; n],
                    l if l == n => s.data.to_vec(),
                    _ => return None,
                }
            }
            _ => Vec::new(),
        };
        Some(Self {
            k,
            n,
            b: b.data.to_vec(),
            b_transposed: g.trans_b,
            alpha: g.alpha,
            row_bias,
            activation: g.activation,
            slope,
        })
    }

    /// A MatMul whose second operand is a constant matrix `[K, N]`.
    pub(super) fn for_matmul(node: &Node, graph: &Graph) -> Option<Self> {
        let b = constant_input(graph, node, 1)?;
        let &[k, n] = b.shape else { return None };
        Some(Self {
            k,
            n,
            b: b.data.to_vec(),
            b_transposed: false,
            alpha: 1.0,
            row_bias: vec![0.0; n],
            activation: Activation::None,
            slope: Vec::new(),
        })
    }

    /// `a` is `[…, K]` (Gemm: `[M, K]`); returns `[…, N]`.
    pub(super) fn run(
        &self,
        a: &[f32],
        shape: &[usize],
        out_shape: &[usize],
        workers: Workers<'_>,
        mut out: Vec<f32>,
    ) -> Result<Vec<f32>, String> {
        let (k, n) = (self.k, self.n);
        if shape.len() < 2 || shape.last() != Some(&k) || out_shape.last() != Some(&n) {
            return Err(format!(
                "operand of shape {shape:?} does not fit weights [{k}, {n}] for output {out_shape:?}"
            ));
        }
        let rows = a.len() / k;
        if rows * k != a.len() || rows * n != out_shape.iter().product::<usize>() {
            return Err(format!(
                "operand of shape {shape:?} carries {} values",
                a.len()
            ));
        }
        out.clear();
        out.reserve(rows * n);
        for _ in 0..rows {
            out.extend_from_slice(&self.row_bias);
        }
        let (b_cs, b_rs) = if self.b_transposed {
            (k as isize, 1)
        } else {
            (1, n as isize)
        };
        product_onto(
            &mut out,
            (rows, n, k),
            a,
            &self.b,
            (b_rs, b_cs),
            self.alpha,
            workers,
        )?;
        if self.activation != Activation::None {
            for row in out.chunks_exact_mut(n) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self
                        .activation
                        .apply(*v, self.slope.get(j).copied().unwrap_or(0.0));
                }
            }
        }
        Ok(out)
    }
}

/// `dst[m×n] += beta · A[m×k] · B[k×n]`: A row-major, B read through `(row, column)` strides, dst
/// row-major. The one place the fast executor calls the GEMM crate (checks every extent first).
pub(super) fn product_onto(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    (b_rs, b_cs): (isize, isize),
    beta: f32,
    workers: Workers<'_>,
) -> Result<(), String> {
    let b_last = (k.saturating_sub(1) as isize) * b_rs + (n.saturating_sub(1) as isize) * b_cs;
    if dst.len() != m * n
        || a.len() != m * k
        || b_rs < 0
        || b_cs < 0
        || (k > 0 && n > 0 && b_last as usize >= b.len())
    {
        return Err(format!("GEMM operands do not fit {m}×{k} · {k}×{n}"));
    }
    let parts = workers
        .count()
        .min(m.max(n) / SPLIT_GRAIN)
        .min(m * n * k / MIN_PART_MACS)
        .max(1);
    let out = SharedOut(dst.as_mut_ptr());
    // The larger side is split between the workers, one single-threaded GEMM per part on its
    // rows (or columns) of dst: the executor's own team, not the gemm crate's rayon pool, so
    // its threads are the only ones that spin for work.
    let by_rows = m >= n;
    let side = if by_rows { m } else { n };
    workers.run(parts, &|p| {
        // Split points on whole grains, so that each part's GEMM keeps full micro-tiles.
        let at = |q: usize| (side * q / parts).next_multiple_of(SPLIT_GRAIN).min(side);
        let (from, to) = (at(p), at(p + 1));
        if from >= to {
            return;
        }
        let (rows, cols) = if by_rows {
            (to - from, n)
        } else {
            (m, to - from)
        };
        let (dst_at, a_at, b_at) = if by_rows {
            (from * n, from * k, 0)
        } else {
            (from, 0, from as isize * b_cs)
        };
        // SAFETY: dst is [m, n] and A is [m, k], both row-major and exactly that long; every
        // element of B read through (b_rs, b_cs) lies within `b` (checked above). This part
        // reads and writes only rows (or columns) from..to of dst, which no other part touches,
        // and the offsets keep every access inside those bounds.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                out.at(dst_at),
                1,
                n as isize,
                true,
                a.as_ptr().add(a_at),
                1,
                k as isize,
                b.as_ptr().offset(b_at),
                b_cs,
                b_rs,
                1.0,
                beta,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
    Ok(())
}
