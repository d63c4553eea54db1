//! DequantizeLinear on constants: `y = (x - zero_point) * scale`, per tensor, per axis, or
//! per block along an axis (opset 21 `block_size`). Weights are dequantised once at load so
//! every executor works in f32.

use super::{ConstData, Constant};
use crate::tensor::element_count;

/// Integer payload widened to i64 so the zero-point subtraction is exact for every type.
fn widen(c: &Constant) -> Result<Vec<i64>, String> {
    Ok(match &c.data {
        ConstData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        ConstData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        ConstData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        other => {
            return Err(format!(
                "quantised data must be int8, uint8 or int32, not {}",
                other.type_name()
            ));
        }
    })
}

fn same_type(a: &ConstData, b: &ConstData) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

pub fn dequantize(
    x: &Constant,
    scale: &Constant,
    zero_point: Option<&Constant>,
    axis: usize,
    block_size: usize,
) -> Result<Constant, String> {
    let q = widen(x)?;
    let s = scale.f32_data().ok_or("scale must be float")?;
    let zp: Vec<i64> = match zero_point {
        Some(z) => {
            if !same_type(&z.data, &x.data) {
                return Err("zero point must have the same type as the data".into());
            }
            if z.shape != scale.shape {
                return Err("zero point and scale shapes differ".into());
            }
            widen(z)?
        }
        None => vec![0; s.len()],
    };
    let dims = &x.shape;
    let per_tensor = s.len() == 1 && scale.shape.len() <= 1;
    let (outer, d, inner) = if per_tensor && block_size == 0 {
        (1, 1, q.len())
    } else {
        let a = *dims.get(axis).ok_or(format!("axis {axis} out of range"))?;
        let outer = element_count(&dims[..axis]).map_err(|e| e.to_string())?;
        let inner = element_count(&dims[axis + 1..]).map_err(|e| e.to_string())?;
        (outer, a, inner)
    };
    // Number of scale entries along the axis: 1 (per tensor), d (per axis) or the blocks.
    let (per, blocks) = if per_tensor && block_size == 0 {
        (usize::MAX, 1)
    } else if block_size == 0 {
        (1, d)
    } else {
        (block_size, d.div_ceil(block_size))
    };
    let expected = if per_tensor && block_size == 0 {
        1
    } else if block_size == 0 {
        d
    } else {
        outer * blocks * inner
    };
    if s.len() != expected || zp.len() != expected || q.len() != outer * d * inner {
        return Err(format!(
            "scale {:?} does not match data {:?} (axis {axis}, block_size {block_size})",
            scale.shape, x.shape
        ));
    }
    let mut out = Vec::with_capacity(q.len());
    for o in 0..outer {
        for i in 0..d {
            let b = if per == usize::MAX { 0 } else { i / per };
            for j in 0..inner {
                let si = if block_size == 0 {
                    b
                } else {
                    (o * blocks + b) * inner + j
                };
                let v = q[(o * d + i) * inner + j] - zp[si];
                out.push(v as f32 * s[si]);
            }
        }
    }
    Constant::f32(x.shape.clone(), out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(shape: Vec<usize>, d: ConstData) -> Constant {
        Constant::new(shape, d).unwrap()
    }

    #[test]
    fn per_tensor() {
        let x = c(vec![3], ConstData::U8(vec![0, 128, 255]));
        let s = c(vec![], ConstData::F32(vec![0.5]));
        let z = c(vec![], ConstData::U8(vec![128]));
        let y = dequantize(&x, &s, Some(&z), 1, 0).unwrap();
        assert_eq!(y.f32_data().unwrap(), &[-64.0, 0.0, 63.5]);
    }

    #[test]
    fn per_axis() {
        let x = c(vec![2, 2], ConstData::I8(vec![1, 2, 3, 4]));
        let s = c(vec![2], ConstData::F32(vec![1.0, 10.0]));
        let y = dequantize(&x, &s, None, 0, 0).unwrap();
        assert_eq!(y.f32_data().unwrap(), &[1.0, 2.0, 30.0, 40.0]);
        let y = dequantize(&x, &s, None, 1, 0).unwrap();
        assert_eq!(y.f32_data().unwrap(), &[1.0, 20.0, 3.0, 40.0]);
    }

    #[test]
    fn blocked_with_ragged_last_block() {
        // 2 rows of 5, blocks of 2 along axis 1 -> 3 blocks per row
        let x = c(
            vec![2, 5],
            ConstData::I8(vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2]),
        );
        let s = c(
            vec![2, 3],
            ConstData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        );
        let z = c(vec![2, 3], ConstData::I8(vec![0, 0, 0, 1, 1, 1]));
        let y = dequantize(&x, &s, Some(&z), 1, 2).unwrap();
        assert_eq!(
            y.f32_data().unwrap(),
            &[1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0]
        );
    }

    #[test]
    fn mismatches_are_errors() {
        let x = c(vec![2, 4], ConstData::I8(vec![0; 8]));
        let s = c(vec![2, 3], ConstData::F32(vec![1.0; 6]));
        assert!(dequantize(&x, &s, None, 1, 2).is_err());
        let z = c(vec![2, 2], ConstData::U8(vec![0; 4]));
        let s = c(vec![2, 2], ConstData::F32(vec![1.0; 4]));
        assert!(dequantize(&x, &s, Some(&z), 1, 2).is_err());
        let f = c(vec![1], ConstData::F32(vec![1.0]));
        assert!(dequantize(&f, &f, None, 0, 0).is_err());
    }
}
