//! BatchNormalization folding.
//!
//! Inference BN is `y = x * s + t` per channel with `s = gamma / sqrt(var + eps)` and
//! `t = beta - mean * s`. After a Conv (or Gemm) that nobody else reads, `s` scales the
//! weights of each output channel and `t` joins the bias, so the BN disappears. Elsewhere
//! (SFace's `bn1` follows a PRelu) it becomes an [`Op::Affine`] node, which the affine pass
//! may still fold into a later Gemm.

use super::{absorb, sole_consumer};
use crate::error::Result;
use crate::graph::{Activation, Constant, Graph, Op, TensorId};

fn f32s(g: &Graph, id: TensorId) -> Option<Vec<f32>> {
    g.constant(id)
        .and_then(|c| c.f32_data())
        .map(<[f32]>::to_vec)
}

/// `(s, t)` of a BatchNorm node, if its parameters are constants.
fn scale_shift(g: &Graph, inputs: &[TensorId], eps: f32) -> Option<(Vec<f32>, Vec<f32>)> {
    let (gamma, beta, mean, var) = (
        f32s(g, inputs[1])?,
        f32s(g, inputs[2])?,
        f32s(g, inputs[3])?,
        f32s(g, inputs[4])?,
    );
    let s: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let t = beta
        .iter()
        .zip(&mean)
        .zip(&s)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Some((s, t))
}

fn add_const(g: &mut Graph, base: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<TensorId> {
    let name = g.fresh_name(base);
    Ok(g.add_constant(name, Constant::f32(shape, data)?))
}

/// Scales output channel `m` of a Conv's weights `[M, ...]` by `s[m]` and sets the bias
/// to `b * s + t`.
fn fold_into_conv(g: &mut Graph, p: usize, s: &[f32], t: &[f32]) -> Result<bool> {
    let node = &g.nodes[p];
    let (Some(w), bias) = (g.constant(node.inputs[1]), node.inputs.get(2)) else {
        return Ok(false);
    };
    let Some(wd) = w.f32_data() else {
        return Ok(false);
    };
    let m = w.shape[0];
    if s.len() != m {
        return Ok(false);
    }
    let per = wd.len() / m;
    let mut nw = wd.to_vec();
    for (chunk, &sc) in nw.chunks_exact_mut(per).zip(s) {
        chunk.iter_mut().for_each(|v| *v *= sc);
    }
    let old_b = match bias {
        Some(&b) => match f32s(g, b) {
            Some(v) => v,
            None => return Ok(false),
        },
        None => vec![0.0; m],
    };
    let nb: Vec<f32> = old_b
        .iter()
        .zip(s)
        .zip(t)
        .map(|((b, s), t)| b * s + t)
        .collect();
    let wshape = w.shape.clone();
    let base = g.name(node.output).to_owned();
    let wid = add_const(g, &format!("{base}.weight"), wshape, nw)?;
    let bid = add_const(g, &format!("{base}.bias"), vec![m], nb)?;
    let x = g.nodes[p].inputs[0];
    g.nodes[p].inputs = vec![x, wid, bid];
    Ok(true)
}

/// Gemm `Y[M,N]`: scales output column `n` (row of B when `trans_b`) and rewrites C as a
/// `[N]` vector; folding is skipped when C varies per row (it would tie C to the batch).
fn fold_into_gemm(g: &mut Graph, p: usize, s: &[f32], t: &[f32]) -> Result<bool> {
    let node = &g.nodes[p];
    let Op::Gemm(gm) = node.op else {
        return Ok(false);
    };
    let Some(b) = g.constant(node.inputs[1]) else {
        return Ok(false);
    };
    let Some(bd) = b.f32_data() else {
        return Ok(false);
    };
    let n = if gm.trans_b { b.shape[0] } else { b.shape[1] };
    if s.len() != n {
        return Ok(false);
    }
    let c = match node.inputs.get(2) {
        None => vec![0.0; n],
        Some(&cid) => match g.constant(cid) {
            Some(c) if c.shape.iter().rev().skip(1).all(|&d| d == 1) => {
                let Some(cd) = c.f32_data() else {
                    return Ok(false);
                };
                (0..n)
                    .map(|j| cd[if cd.len() == 1 { 0 } else { j }])
                    .collect()
            }
            _ => return Ok(false),
        },
    };
    let mut nbd = bd.to_vec();
    let k = bd.len() / n;
    for (idx, v) in nbd.iter_mut().enumerate() {
        let col = if gm.trans_b { idx / k } else { idx % n };
        *v *= s[col];
    }
    let nc: Vec<f32> = (0..n).map(|j| gm.beta * c[j] * s[j] + t[j]).collect();
    let bshape = b.shape.clone();
    let base = g.name(node.output).to_owned();
    let bid = add_const(g, &format!("{base}.weight"), bshape, nbd)?;
    let cid = add_const(g, &format!("{base}.bias"), vec![n], nc)?;
    let a = g.nodes[p].inputs[0];
    g.nodes[p].inputs = vec![a, bid, cid];
    if let Op::Gemm(gm) = &mut g.nodes[p].op {
        gm.beta = 1.0;
    }
    Ok(true)
}

pub fn fold_batch_norm(g: &mut Graph) -> Result<()> {
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::BatchNorm { epsilon } = g.nodes[i].op else {
            i += 1;
            continue;
        };
        let inputs = g.nodes[i].inputs.clone();
        let Some((s, t)) = scale_shift(g, &inputs, epsilon) else {
            i += 1;
            continue;
        };
        let producer = g.producers().get(inputs[0].0).copied().flatten();
        let merged = match producer {
            Some(p) if sole_consumer(g, inputs[0]) == Some(i) => match g.nodes[p].op {
                Op::Conv(c) if c.activation == Activation::None => fold_into_conv(g, p, &s, &t)?,
                Op::Gemm(gm) if gm.activation == Activation::None => fold_into_gemm(g, p, &s, &t)?,
                _ => false,
            },
            _ => false,
        };
        match (merged, producer) {
            (true, Some(p)) => absorb(g, p, i),
            _ => {
                g.nodes[i].op = Op::Affine { scale: s, shift: t };
                g.nodes[i].inputs = vec![inputs[0]];
                i += 1;
            }
        }
    }
    // A BatchNorm with computed parameters stays as it is; the executors support it.
    g.remove_dead();
    Ok(())
}
