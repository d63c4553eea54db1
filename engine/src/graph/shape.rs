//! Shape inference: the output shape of every op from its input shapes. The CPU reference
//! allocates from these same functions, so an executor that follows them agrees with it.
//!
//! Errors are plain strings; the caller wraps them with the node's name and op.

use super::op::{Activation, Conv, Op, Pool, Resize, ResizeTarget};
use crate::tensor::{MAX_ELEMENTS, MAX_RANK, element_count};

type R<T> = Result<T, String>;

fn count(shape: &[usize]) -> R<usize> {
    element_count(shape).map_err(|e| e.to_string())
}

fn arity(inputs: &[&[usize]], min: usize, max: usize) -> R<()> {
    if inputs.len() < min || inputs.len() > max {
        return Err(if min == max {
            format!("expects {min} inputs, has {}", inputs.len())
        } else {
            format!("expects {min} to {max} inputs, has {}", inputs.len())
        });
    }
    Ok(())
}

fn rank(what: &str, shape: &[usize], r: usize) -> R<()> {
    if shape.len() != r {
        return Err(format!("{what} must be {r}-D, got shape {shape:?}"));
    }
    Ok(())
}

/// Numpy multidirectional broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Whether `b` broadcasts to exactly `a` (ONNX unidirectional broadcasting).
pub fn broadcasts_to(b: &[usize], a: &[usize]) -> bool {
    b.len() <= a.len()
        && b.iter()
            .rev()
            .zip(a.iter().rev())
            .all(|(&db, &da)| db == da || db == 1)
}

fn conv_shape(c: &Conv, inputs: &[&[usize]]) -> R<Vec<usize>> {
    let max = if c.activation == Activation::PRelu {
        4
    } else {
        3
    };
    arity(inputs, 2, max)?;
    let (x, w) = (inputs[0], inputs[1]);
    rank("Conv input", x, 4)?;
    rank("Conv weight", w, 4)?;
    let (n, ch) = (x[0], x[1]);
    let g = c.group;
    if g == 0 || ch % g != 0 || w[0] % g != 0 {
        return Err(format!(
            "group {g} must divide input channels {ch} and output channels {}",
            w[0]
        ));
    }
    if w[1] != ch / g {
        return Err(format!(
            "weight {w:?} expects {} input channels per group, input has {ch} channels in {g} groups",
            w[1]
        ));
    }
    if [w[2], w[3]] != c.window.kernel {
        return Err(format!(
            "weight {w:?} disagrees with kernel_shape {:?}",
            c.window.kernel
        ));
    }
    let m = w[0];
    if let Some(b) = inputs.get(2)
        && (count(b)? != m || b.len() != 1)
    {
        return Err(format!("bias shape {b:?} should be [{m}]"));
    }
    if c.activation == Activation::PRelu {
        match inputs.get(3) {
            Some(s) if s.len() == 1 && (s[0] == m || s[0] == 1) => {}
            other => {
                return Err(format!(
                    "fused PRelu needs bias and a slope of shape [{m}], got {other:?}"
                ));
            }
        }
    }
    let r = c.window.resolve([x[2], x[3]])?;
    Ok(vec![n, m, r.out[0], r.out[1]])
}

fn pool_shape(p: &Pool, inputs: &[&[usize]]) -> R<Vec<usize>> {
    arity(inputs, 1, 1)?;
    let x = inputs[0];
    rank("pooling input", x, 4)?;
    let r = p.window.resolve([x[2], x[3]])?;
    Ok(vec![x[0], x[1], r.out[0], r.out[1]])
}

fn gemm_shape(trans_a: bool, trans_b: bool, act: Activation, inputs: &[&[usize]]) -> R<Vec<usize>> {
    let max = if act == Activation::PRelu { 4 } else { 3 };
    arity(inputs, 2, max)?;
    let (a, b) = (inputs[0], inputs[1]);
    rank("Gemm A", a, 2)?;
    rank("Gemm B", b, 2)?;
    let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != kb {
        return Err(format!("inner dimensions differ: A {a:?}, B {b:?}"));
    }
    if let Some(c) = inputs.get(2)
        && !broadcasts_to(c, &[m, n])
    {
        return Err(format!("C {c:?} does not broadcast to [{m}, {n}]"));
    }
    if act == Activation::PRelu {
        match inputs.get(3) {
            Some(s) if s.len() == 1 && (s[0] == n || s[0] == 1) => {}
            other => return Err(format!("fused PRelu slope should be [{n}], got {other:?}")),
        }
    }
    Ok(vec![m, n])
}

fn matmul_shape(inputs: &[&[usize]]) -> R<Vec<usize>> {
    arity(inputs, 2, 2)?;
    let (a, b) = (inputs[0], inputs[1]);
    if a.len() < 2 || b.len() < 2 {
        return Err(format!(
            "operands must be at least 2-D, got {a:?} and {b:?}"
        ));
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (kb, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != kb {
        return Err(format!("inner dimensions differ: {a:?} x {b:?}"));
    }
    if b.len() != 2 && a.len() != b.len() || b.len() != 2 && a[..a.len() - 2] != b[..b.len() - 2] {
        return Err(format!(
            "only a 2-D right operand or equal batch dims are supported: {a:?} x {b:?}"
        ));
    }
    let mut out = a[..a.len() - 2].to_vec();
    out.extend([m, n]);
    Ok(out)
}

fn reshape_shape(x: &[usize], target: &[i64]) -> R<Vec<usize>> {
    let total = count(x)?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        let d = match t {
            0 => *x
                .get(i)
                .ok_or(format!("0 at axis {i} but input {x:?} has no such axis"))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            t if t > 0 => usize::try_from(t).map_err(|_| "dimension too large")?,
            _ => return Err(format!("invalid target shape {target:?}")),
        };
        out.push(d);
    }
    let known = count(&out)?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape {x:?} to {target:?}"));
        }
        out[i] = total / known;
    }
    if count(&out)? != total {
        return Err(format!(
            "cannot reshape {x:?} ({total} elements) to {target:?}"
        ));
    }
    Ok(out)
}

fn dequantize_shape(axis: usize, block: usize, inputs: &[&[usize]]) -> R<Vec<usize>> {
    arity(inputs, 2, 3)?;
    let (x, s) = (inputs[0], inputs[1]);
    if let Some(zp) = inputs.get(2)
        && zp != &s
    {
        return Err(format!("zero point {zp:?} and scale {s:?} differ in shape"));
    }
    let per_tensor = count(s)? == 1 && s.len() <= 1;
    if block == 0 && per_tensor {
        return Ok(x.to_vec());
    }
    if axis >= x.len() {
        return Err(format!("axis {axis} out of range for {x:?}"));
    }
    if block == 0 {
        if s != [x[axis]] {
            return Err(format!("per-axis scale {s:?} should be [{}]", x[axis]));
        }
    } else {
        let mut want = x.to_vec();
        want[axis] = x[axis].div_ceil(block);
        if s != want.as_slice() {
            return Err(format!(
                "blocked scale {s:?} should be {want:?} for block_size {block}"
            ));
        }
    }
    Ok(x.to_vec())
}

fn resize_shape(r: &Resize, inputs: &[&[usize]]) -> R<Vec<usize>> {
    arity(inputs, 1, 1)?;
    let x = inputs[0];
    rank("Resize input", x, 4)?;
    let hw = match r.target {
        ResizeTarget::Sizes(s) => s,
        ResizeTarget::Scales(s) => {
            let mut hw = [0; 2];
            for i in 0..2 {
                let v = (x[i + 2] as f64 * f64::from(s[i])).floor();
                if !(v >= 1.0 && v <= MAX_ELEMENTS as f64) {
                    return Err(format!("scale {} gives an empty or huge output", s[i]));
                }
                hw[i] = v as usize;
            }
            hw
        }
    };
    if hw.contains(&0) {
        return Err("empty output".into());
    }
    Ok(vec![x[0], x[1], hw[0], hw[1]])
}

impl Op {
    /// Output shape for the given input shapes, or why they do not fit this op.
    pub fn output_shape(&self, inputs: &[&[usize]]) -> R<Vec<usize>> {
        if let Some(e) = inputs.iter().find(|s| s.contains(&0)) {
            return Err(format!(
                "empty input {e:?} (zero-sized tensors are not supported)"
            ));
        }
        let out = self.output_shape_unchecked(inputs)?;
        count(&out)?;
        if out.contains(&0) {
            return Err(format!(
                "empty tensor {out:?} (zero-sized tensors are not supported)"
            ));
        }
        Ok(out)
    }

    fn output_shape_unchecked(&self, inputs: &[&[usize]]) -> R<Vec<usize>> {
        match self {
            Op::Conv(c) => conv_shape(c, inputs),
            Op::BatchNorm { .. } => {
                arity(inputs, 5, 5)?;
                let x = inputs[0];
                if x.len() < 2 {
                    return Err(format!("input must be at least 2-D, got {x:?}"));
                }
                for p in &inputs[1..] {
                    if *p != [x[1]] {
                        return Err(format!("parameter shape {p:?} should be [{}]", x[1]));
                    }
                }
                Ok(x.to_vec())
            }
            Op::Affine { scale, shift } => {
                arity(inputs, 1, 1)?;
                let x = inputs[0];
                if scale.len() != shift.len() || scale.is_empty() {
                    return Err("scale and shift lengths differ".into());
                }
                if scale.len() > 1 && (x.len() < 2 || x[1] != scale.len()) {
                    return Err(format!("{} channels but input is {x:?}", scale.len()));
                }
                Ok(x.to_vec())
            }
            Op::Activation(a) => {
                if *a == Activation::PRelu {
                    arity(inputs, 2, 2)?;
                    if !broadcasts_to(inputs[1], inputs[0]) {
                        return Err(format!(
                            "slope {:?} does not broadcast to {:?}",
                            inputs[1], inputs[0]
                        ));
                    }
                } else {
                    arity(inputs, 1, 1)?;
                }
                Ok(inputs[0].to_vec())
            }
            Op::Binary(_) => {
                arity(inputs, 2, 2)?;
                broadcast(inputs[0], inputs[1])
            }
            Op::MaxPool(p) | Op::AveragePool(p) => pool_shape(p, inputs),
            Op::GlobalAveragePool => {
                arity(inputs, 1, 1)?;
                let x = inputs[0];
                if x.len() < 3 {
                    return Err(format!("input must be at least 3-D, got {x:?}"));
                }
                let mut out = x.to_vec();
                out[2..].fill(1);
                Ok(out)
            }
            Op::Gemm(g) => gemm_shape(g.trans_a, g.trans_b, g.activation, inputs),
            Op::MatMul => matmul_shape(inputs),
            Op::Flatten { axis } => {
                arity(inputs, 1, 1)?;
                let x = inputs[0];
                if *axis > x.len() {
                    return Err(format!("axis {axis} out of range for {x:?}"));
                }
                Ok(vec![count(&x[..*axis])?, count(&x[*axis..])?])
            }
            Op::Reshape { shape } => {
                arity(inputs, 1, 1)?;
                reshape_shape(inputs[0], shape)
            }
            Op::Transpose { perm } => {
                arity(inputs, 1, 1)?;
                let x = inputs[0];
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() {
                    return Err(format!("perm {perm:?} does not match rank of {x:?}"));
                }
                for &p in perm {
                    match seen.get_mut(p) {
                        Some(s) if !*s => *s = true,
                        _ => return Err(format!("perm {perm:?} is not a permutation")),
                    }
                }
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            Op::Concat { axis } => {
                arity(inputs, 1, usize::MAX)?;
                let first = inputs[0];
                if *axis >= first.len() {
                    return Err(format!("axis {axis} out of range for {first:?}"));
                }
                let mut out = first.to_vec();
                out[*axis] = 0;
                for s in inputs {
                    let same = s.len() == first.len()
                        && s.iter()
                            .zip(first)
                            .enumerate()
                            .all(|(i, (a, b))| i == *axis || a == b);
                    if !same {
                        return Err(format!(
                            "input shapes {inputs:?} differ outside axis {axis}"
                        ));
                    }
                    out[*axis] = out[*axis]
                        .checked_add(s[*axis])
                        .ok_or("concatenation too large")?;
                }
                Ok(out)
            }
            Op::Pad(p) => {
                arity(inputs, 1, 1)?;
                let x = inputs[0];
                let r = x.len();
                if p.pads.len() != 2 * r {
                    return Err(format!("pads {:?} should have {} entries", p.pads, 2 * r));
                }
                let mut out = Vec::with_capacity(r);
                for (i, &d) in x.iter().enumerate() {
                    let (b, e) = (p.pads[i], p.pads[i + r]);
                    if p.mode == super::op::PadMode::Reflect && (b >= d || e >= d) {
                        return Err(format!("reflect pad {b}/{e} needs more than {d} elements"));
                    }
                    out.push(
                        d.checked_add(b)
                            .and_then(|v| v.checked_add(e))
                            .ok_or("padding too large")?,
                    );
                }
                Ok(out)
            }
            Op::Resize(r) => resize_shape(r, inputs),
            Op::DequantizeLinear { axis, block_size } => {
                dequantize_shape(*axis, *block_size, inputs)
            }
            Op::ConstantOfShape { shape, .. } => {
                arity(inputs, 0, 0)?;
                if shape.len() > MAX_RANK {
                    return Err("rank too large".into());
                }
                Ok(shape.clone())
            }
            Op::Identity => {
                arity(inputs, 1, 1)?;
                Ok(inputs[0].to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::op::{BinaryOp, PadMode};

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 3, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast(&[1], &[5, 1]).unwrap(), vec![5, 1]);
        assert!(broadcast(&[2, 3], &[3, 2]).is_err());
        assert!(broadcasts_to(&[3, 1, 1], &[1, 3, 5, 5]));
        assert!(!broadcasts_to(&[1, 3, 5, 5], &[3, 1, 1]));
    }

    #[test]
    fn op_shapes() {
        let s = |op: &Op, i: &[&[usize]]| op.output_shape(i);
        assert_eq!(
            s(&Op::Reshape { shape: vec![0, -1] }, &[&[2, 3, 4]]).unwrap(),
            vec![2, 12]
        );
        assert!(s(&Op::Reshape { shape: vec![5, -1] }, &[&[2, 3, 4]]).is_err());
        assert!(
            s(
                &Op::Reshape {
                    shape: vec![-1, -1]
                },
                &[&[2, 3]]
            )
            .is_err()
        );
        assert_eq!(
            s(&Op::Flatten { axis: 1 }, &[&[2, 3, 4]]).unwrap(),
            vec![2, 12]
        );
        assert_eq!(
            s(
                &Op::Transpose {
                    perm: vec![0, 2, 3, 1]
                },
                &[&[1, 3, 4, 5]]
            )
            .unwrap(),
            vec![1, 4, 5, 3]
        );
        assert!(s(&Op::Transpose { perm: vec![0, 0] }, &[&[1, 3]]).is_err());
        assert_eq!(
            s(&Op::Concat { axis: 1 }, &[&[1, 2, 3], &[1, 4, 3]]).unwrap(),
            vec![1, 6, 3]
        );
        assert!(s(&Op::Concat { axis: 1 }, &[&[1, 2, 3], &[2, 4, 3]]).is_err());
        assert_eq!(
            s(&Op::Binary(BinaryOp::Add), &[&[2, 1, 3], &[4, 1]]).unwrap(),
            vec![2, 4, 3]
        );
        let pad = Op::Pad(crate::graph::op::Pad {
            pads: vec![0, 1, 0, 0, 0, 2, 0, 0],
            mode: PadMode::Constant(0.0),
        });
        assert_eq!(s(&pad, &[&[1, 3, 4, 4]]).unwrap(), vec![1, 6, 4, 4]);
        assert!(
            s(
                &Op::DequantizeLinear {
                    axis: 1,
                    block_size: 64
                },
                &[&[128, 50176], &[128, 784], &[128, 784]]
            )
            .is_ok()
        );
        assert!(
            s(
                &Op::DequantizeLinear {
                    axis: 1,
                    block_size: 64
                },
                &[&[128, 50176], &[128, 783]]
            )
            .is_err()
        );
        assert!(
            s(
                &Op::ConstantOfShape {
                    shape: vec![1 << 20, 1 << 20],
                    value: 0.0
                },
                &[]
            )
            .is_err()
        );
        assert_eq!(
            s(&Op::MatMul, &[&[2, 3, 4], &[4, 5]]).unwrap(),
            vec![2, 3, 5]
        );
    }
}
