//! Scalar and per-channel arithmetic as explicit [`Op::Affine`] nodes.
//!
//! SFace normalises its input inside the graph with `Sub 127.5` then `Mul 0.0078125`; those
//! become a single `Affine { scale: [0.0078125], shift: [-0.99609375] }` at the head of the
//! graph, where a GPU executor can see it and fold it into its own preprocessing. It cannot
//! be folded into the first Conv: that Conv zero-pads the *normalised* image, and zero there
//! is 127.5 in the raw input.
//!
//! An Affine that feeds a Flatten -> Gemm (SFace's `bn1` before the FC layer) is folded into
//! the Gemm's weights and bias instead.

use super::{channel_vector, sole_consumer};
use crate::error::{Error, Result};
use crate::graph::{BinaryOp, Constant, Graph, Op};

fn expand(v: &[f32], n: usize) -> Vec<f32> {
    if v.len() == n {
        v.to_vec()
    } else {
        vec![v[0]; n]
    }
}

/// Turns Add/Sub/Mul/Div with a scalar or per-channel constant into Affine nodes and
/// merges chains of them.
pub fn fuse_affine(g: &mut Graph) -> Result<()> {
    let declared = super::declared_batch(g);
    let shapes = g.infer_shapes(declared)?;
    for i in 0..g.nodes.len() {
        let Op::Binary(op) = g.nodes[i].op else {
            continue;
        };
        let (a, b) = (g.nodes[i].inputs[0], g.nodes[i].inputs[1]);
        let (x, c, const_first) = match (g.constant(a), g.constant(b)) {
            (None, Some(c)) => (a, c, false),
            (Some(c), None) => (b, c, true),
            _ => continue,
        };
        let xs = shapes.get(x)?;
        if shapes.get(g.nodes[i].output)? != xs {
            continue;
        }
        let ch = xs.get(1).copied().unwrap_or(1);
        let Some(v) = c
            .f32_data()
            .and_then(|d| channel_vector(&c.shape, d, xs.len(), ch))
        else {
            continue;
        };
        let ones = vec![1.0; v.len()];
        let zeros = vec![0.0; v.len()];
        let (scale, shift) = match (op, const_first) {
            (BinaryOp::Add, _) => (ones, v),
            (BinaryOp::Sub, false) => (ones, v.iter().map(|t| -t).collect()),
            (BinaryOp::Sub, true) => (vec![-1.0; v.len()], v),
            (BinaryOp::Mul, _) => (v, zeros),
            (BinaryOp::Div, false) => (v.iter().map(|d| 1.0 / d).collect(), zeros),
            (BinaryOp::Div, true) => continue,
        };
        g.nodes[i].op = Op::Affine { scale, shift };
        g.nodes[i].inputs = vec![x];
    }
    // Merge Affine -> Affine.
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::Affine {
            scale: s2,
            shift: t2,
        } = &g.nodes[i].op
        else {
            i += 1;
            continue;
        };
        let x = g.nodes[i].inputs[0];
        let p = g.producers().get(x.0).copied().flatten();
        let merge = p.filter(|&p| {
            matches!(g.nodes[p].op, Op::Affine { .. }) && sole_consumer(g, x) == Some(i)
        });
        let Some(p) = merge else {
            i += 1;
            continue;
        };
        let Op::Affine {
            scale: s1,
            shift: t1,
        } = &g.nodes[p].op
        else {
            i += 1;
            continue;
        };
        let n = s1.len().max(s2.len());
        let (s1, t1, s2, t2) = (expand(s1, n), expand(t1, n), expand(s2, n), expand(t2, n));
        let scale = (0..n).map(|k| s1[k] * s2[k]).collect();
        let shift = (0..n).map(|k| t1[k] * s2[k] + t2[k]).collect();
        g.nodes[p].op = Op::Affine { scale, shift };
        super::absorb(g, p, i);
    }
    g.remove_dead();
    Ok(())
}

/// Folds `Affine -> Flatten(axis 1) -> Gemm` into the Gemm: with `k` running over the
/// flattened `C x HW` features, `B'[k, n] = s[c(k)] B[k, n]` and
/// `C'[n] = beta C[n] + alpha sum_k t[c(k)] B[k, n]`.
pub fn fold_affine_into_gemm(g: &mut Graph) -> Result<()> {
    let declared = super::declared_batch(g);
    let mut i = 0;
    while i < g.nodes.len() {
        if !try_fold_one(g, i, declared)? {
            i += 1;
        }
    }
    g.remove_dead();
    Ok(())
}

fn try_fold_one(g: &mut Graph, i: usize, declared: usize) -> Result<bool> {
    let Op::Affine { scale, shift } = &g.nodes[i].op else {
        return Ok(false);
    };
    let Some(fi) = sole_consumer(g, g.nodes[i].output) else {
        return Ok(false);
    };
    if g.nodes[fi].op != (Op::Flatten { axis: 1 }) {
        return Ok(false);
    }
    let Some(gi) = sole_consumer(g, g.nodes[fi].output) else {
        return Ok(false);
    };
    let Op::Gemm(gm) = g.nodes[gi].op else {
        return Ok(false);
    };
    let gin = &g.nodes[gi].inputs;
    if gm.trans_a || gin[0] != g.nodes[fi].output {
        return Ok(false);
    }
    let Some(b) = g.constant(gin[1]).filter(|b| b.view().is_some()) else {
        return Ok(false);
    };
    let shapes = g.infer_shapes(declared)?;
    let xs = shapes.get(g.nodes[i].inputs[0])?;
    let hw: usize = xs.iter().skip(2).product();
    let (k, n) = if gm.trans_b {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    let channels = xs.get(1).copied().unwrap_or(1);
    if channels * hw != k || hw == 0 {
        return Ok(false);
    }
    let c_old: Vec<f32> = match gin.get(2) {
        None => vec![0.0; n],
        Some(&cid) => match g.constant(cid).and_then(|c| c.view()) {
            Some(c) if c.shape.iter().rev().skip(1).all(|&d| d == 1) => (0..n)
                .map(|j| c.data[if c.data.len() == 1 { 0 } else { j }])
                .collect(),
            _ => return Ok(false),
        },
    };
    let (s, t) = (expand(scale, channels), expand(shift, channels));
    let bd = b
        .f32_data()
        .ok_or_else(|| Error::Model("Gemm B is not float".into()))?;
    let mut nb = bd.to_vec();
    let mut acc = vec![0f64; n];
    for kk in 0..k {
        let ch = kk / hw;
        for (j, a) in acc.iter_mut().enumerate() {
            let idx = if gm.trans_b { j * k + kk } else { kk * n + j };
            *a += f64::from(t[ch]) * f64::from(bd[idx]);
            nb[idx] = bd[idx] * s[ch];
        }
    }
    let nc: Vec<f32> = (0..n)
        .map(|j| (f64::from(gm.beta * c_old[j]) + f64::from(gm.alpha) * acc[j]) as f32)
        .collect();
    let bshape = b.shape.clone();
    let base = g.name(g.nodes[gi].output).to_owned();
    let bname = g.fresh_name(&format!("{base}.weight"));
    let bid = g.add_constant(bname, Constant::f32(bshape, nb)?);
    let cname = g.fresh_name(&format!("{base}.bias"));
    let cid = g.add_constant(cname, Constant::f32(vec![n], nc)?);
    let a_in = g.nodes[gi].inputs[0];
    g.nodes[gi].inputs = vec![a_in, bid, cid];
    if let Op::Gemm(gm) = &mut g.nodes[gi].op {
        gm.beta = 1.0;
    }
    // Flatten now reads the Affine's input; the Affine is left dead.
    let x = g.nodes[i].inputs[0];
    g.nodes[fi].inputs = vec![x];
    g.nodes.remove(i);
    Ok(true)
}
