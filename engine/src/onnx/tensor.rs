//! TensorProto -> [`Constant`]: dtype handling, raw vs typed storage, size checks.

use super::proto::TensorProto;
use crate::graph::{ConstData, Constant};
use crate::tensor::element_count;

pub const FLOAT: i32 = 1;
pub const UINT8: i32 = 2;
pub const INT8: i32 = 3;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;
pub const BOOL: i32 = 9;
pub const FLOAT16: i32 = 10;

/// ONNX TensorProto.DataType names, for messages about types we refuse.
pub fn dtype_name(t: i32) -> &'static str {
    match t {
        1 => "float",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "an unknown type",
    }
}

/// IEEE half -> f32, exact (every half is representable as f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

fn raw_chunks<const W: usize>(
    raw: &[u8],
    n: usize,
) -> Result<impl Iterator<Item = [u8; W]> + '_, String> {
    if raw.len() != n.checked_mul(W).ok_or("tensor too large")? {
        return Err(format!(
            "raw_data has {} bytes, expected {n} elements of {W} bytes",
            raw.len()
        ));
    }
    Ok(raw.chunks_exact(W).map(|c| {
        let mut a = [0u8; W];
        a.copy_from_slice(c);
        a
    }))
}

fn typed_len<T>(v: &[T], n: usize, field: &str) -> Result<(), String> {
    if v.len() != n {
        return Err(format!("{field} has {} values, expected {n}", v.len()));
    }
    Ok(())
}

fn narrow<T: TryFrom<i64>>(v: &[i64], what: &str) -> Result<Vec<T>, String> {
    v.iter()
        .map(|&x| T::try_from(x).map_err(|_| format!("value {x} out of range for {what}")))
        .collect()
}

/// Converts an initializer (or Constant attribute) into an engine constant.
pub fn to_constant(t: &TensorProto) -> Result<Constant, String> {
    if t.external {
        return Err(
            "weights stored in an external file are not supported; save the model with its weights embedded"
                .into(),
        );
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<_, _>>()?;
    let n = element_count(&shape).map_err(|e| e.to_string())?;
    let raw = t.raw_data.as_deref();
    let data = match t.data_type {
        FLOAT => match raw {
            Some(r) => ConstData::F32(raw_chunks::<4>(r, n)?.map(f32::from_le_bytes).collect()),
            None => {
                typed_len(&t.float_data, n, "float_data")?;
                ConstData::F32(t.float_data.clone())
            }
        },
        FLOAT16 => match raw {
            Some(r) => ConstData::F32(
                raw_chunks::<2>(r, n)?
                    .map(|b| f16_to_f32(u16::from_le_bytes(b)))
                    .collect(),
            ),
            None => {
                typed_len(&t.int32_data, n, "int32_data")?;
                let bits: Vec<u16> = narrow(&t.int32_data, "float16")?;
                ConstData::F32(bits.into_iter().map(f16_to_f32).collect())
            }
        },
        INT8 => match raw {
            Some(r) => ConstData::I8(raw_chunks::<1>(r, n)?.map(i8::from_le_bytes).collect()),
            None => {
                typed_len(&t.int32_data, n, "int32_data")?;
                ConstData::I8(narrow(&t.int32_data, "int8")?)
            }
        },
        // Bools only appear as flags (Dropout's training_mode); one byte each like uint8.
        UINT8 | BOOL => match raw {
            Some(r) => ConstData::U8(raw_chunks::<1>(r, n)?.map(|b| b[0]).collect()),
            None => {
                typed_len(&t.int32_data, n, "int32_data")?;
                ConstData::U8(narrow(&t.int32_data, "uint8")?)
            }
        },
        INT32 => match raw {
            Some(r) => ConstData::I32(raw_chunks::<4>(r, n)?.map(i32::from_le_bytes).collect()),
            None => {
                typed_len(&t.int32_data, n, "int32_data")?;
                ConstData::I32(narrow(&t.int32_data, "int32")?)
            }
        },
        INT64 => match raw {
            Some(r) => ConstData::I64(raw_chunks::<8>(r, n)?.map(i64::from_le_bytes).collect()),
            None => {
                typed_len(&t.int64_data, n, "int64_data")?;
                ConstData::I64(t.int64_data.clone())
            }
        },
        other => {
            return Err(format!(
                "element type {} ({other}) is not supported",
                dtype_name(other)
            ));
        }
    };
    Constant::new(shape, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(dims: Vec<i64>, data_type: i32) -> TensorProto {
        TensorProto {
            dims,
            data_type,
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_floats() {
        let mut t = tp(vec![2], FLOAT);
        t.raw_data = Some([1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        assert_eq!(to_constant(&t).unwrap().f32_data().unwrap(), &[1.5, -2.0]);
        let mut t = tp(vec![1, 2], FLOAT);
        t.float_data = vec![3.0, 4.0];
        assert_eq!(to_constant(&t).unwrap().shape, vec![1, 2]);
    }

    #[test]
    fn ints() {
        let mut t = tp(vec![3], INT8);
        t.int32_data = vec![-128, 0, 127];
        assert_eq!(
            to_constant(&t).unwrap().data,
            ConstData::I8(vec![-128, 0, 127])
        );
        t.int32_data = vec![-129, 0, 0];
        assert!(to_constant(&t).is_err());
        let mut t = tp(vec![2], INT64);
        t.raw_data = Some([5i64.to_le_bytes(), (-1i64).to_le_bytes()].concat());
        assert_eq!(to_constant(&t).unwrap().data, ConstData::I64(vec![5, -1]));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        let mut t = tp(vec![1], FLOAT16);
        t.raw_data = Some(0x3800u16.to_le_bytes().to_vec());
        assert_eq!(to_constant(&t).unwrap().f32_data().unwrap(), &[0.5]);
    }

    #[test]
    fn hostile_tensors() {
        // dims claim far more than the data holds
        let mut t = tp(vec![1 << 40, 1 << 40], FLOAT);
        t.raw_data = Some(vec![0; 8]);
        assert!(to_constant(&t).is_err());
        let mut t = tp(vec![3], FLOAT);
        t.raw_data = Some(vec![0; 8]);
        assert!(to_constant(&t).is_err());
        assert!(to_constant(&tp(vec![-1], FLOAT)).is_err());
        assert!(to_constant(&tp(vec![2], 8)).unwrap_err().contains("string"));
        let mut t = tp(vec![1], FLOAT);
        t.external = true;
        assert!(to_constant(&t).unwrap_err().contains("external"));
        // zero-element tensors are legal (e.g. an empty Resize roi)
        assert_eq!(to_constant(&tp(vec![0], FLOAT)).unwrap().data.len(), 0);
    }
}
