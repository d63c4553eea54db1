//! Minimal protobuf wire-format reader.
//!
//! ONNX files are protobuf, but pulling in a code generator for the handful of messages the
//! importer needs would cost a build-time toolchain. Every read here is bounds-checked against
//! the borrowed input: a length prefix can never make us allocate or slice past the buffer, so
//! hostile files produce a [`WireError`] instead of a panic or a huge allocation.

pub use crate::error::WireError;

/// The payload of one field, borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Value<'_> {
    /// Wire type number, for error messages.
    pub fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        }
    }
}

/// One decoded field: its number and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
}

impl<'a> Field<'a> {
    pub fn as_u64(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            other => Err(self.unexpected("varint", other)),
        }
    }

    /// int64 fields: negative values travel as 10-byte two's complement varints.
    pub fn as_i64(&self) -> Result<i64, WireError> {
        self.as_u64().map(|v| v as i64)
    }

    /// int32 fields are sign-extended to 64 bits on the wire; anything outside i32 is corrupt.
    pub fn as_i32(&self) -> Result<i32, WireError> {
        let v = self.as_i64()?;
        i32::try_from(v).map_err(|_| WireError::OutOfRange {
            field: self.number,
            value: v,
        })
    }

    pub fn as_f32(&self) -> Result<f32, WireError> {
        match self.value {
            Value::Fixed32(v) => Ok(f32::from_bits(v)),
            other => Err(self.unexpected("fixed32", other)),
        }
    }

    pub fn as_bytes(&self) -> Result<&'a [u8], WireError> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            other => Err(self.unexpected("length-delimited", other)),
        }
    }

    pub fn as_str(&self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.as_bytes()?).map_err(|_| WireError::Utf8 { field: self.number })
    }

    /// Appends a repeated int64/int32 field that may be packed or not (both are legal on the
    /// wire whatever the schema says, so a reader must accept both).
    pub fn push_varints(&self, out: &mut Vec<i64>) -> Result<(), WireError> {
        match self.value {
            Value::Varint(v) => {
                out.push(v as i64);
                Ok(())
            }
            Value::Bytes(b) => {
                let mut r = Reader::new(b);
                while !r.is_empty() {
                    out.push(r.varint()? as i64);
                }
                Ok(())
            }
            other => Err(self.unexpected("varint or packed varints", other)),
        }
    }

    /// Appends a repeated float field, packed or not.
    pub fn push_f32s(&self, out: &mut Vec<f32>) -> Result<(), WireError> {
        match self.value {
            Value::Fixed32(v) => {
                out.push(f32::from_bits(v));
                Ok(())
            }
            Value::Bytes(b) => {
                if b.len() % 4 != 0 {
                    return Err(WireError::PackedLength {
                        field: self.number,
                        len: b.len(),
                        width: 4,
                    });
                }
                out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                Ok(())
            }
            other => Err(self.unexpected("fixed32 or packed fixed32", other)),
        }
    }

    fn unexpected(&self, expected: &'static str, found: Value<'_>) -> WireError {
        WireError::UnexpectedWireType {
            field: self.number,
            expected,
            found: found.wire_type(),
        }
    }
}

/// Sequential reader over one message's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated {
                    at: self.pos,
                    needed: 1,
                });
            };
            self.pos += 1;
            // The 10th byte may only carry the top bit of a u64; more means a corrupt varint.
            if i == 9 && byte > 1 {
                return Err(WireError::VarintTooLong { at: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong { at: start })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::BadWireType {
            at,
            field: u32::MAX,
            wire_type,
        })?;
        if number == 0 {
            return Err(WireError::ZeroField { at });
        }
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len_at = self.pos;
                let len = self.varint()?;
                let remaining = self.remaining();
                let n = usize::try_from(len)
                    .ok()
                    .filter(|&n| n <= remaining)
                    .ok_or(WireError::LengthOverrun {
                        at: len_at,
                        len,
                        remaining,
                    })?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            // 3/4 are proto2 groups, which ONNX never uses; 6/7 do not exist.
            _ => {
                return Err(WireError::BadWireType {
                    at,
                    field: number,
                    wire_type,
                });
            }
        };
        Ok(Some(Field { number, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn decodes_each_wire_type() {
        // field 1 varint 300, field 2 fixed64, field 3 bytes "hi", field 4 fixed32 1.5f
        let mut buf = vec![0x08, 0xac, 0x02, 0x11];
        buf.extend_from_slice(&7u64.to_le_bytes());
        buf.extend_from_slice(&[0x1a, 2, b'h', b'i', 0x25]);
        buf.extend_from_slice(&1.5f32.to_bits().to_le_bytes());
        let f = fields(&buf).unwrap();
        assert_eq!(f[0].as_u64().unwrap(), 300);
        assert_eq!(f[1].value, Value::Fixed64(7));
        assert_eq!(f[2].as_str().unwrap(), "hi");
        assert_eq!(f[3].as_f32().unwrap(), 1.5);
    }

    #[test]
    fn negative_int64_and_int32() {
        // -2 as a 10-byte varint
        let buf = [
            0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let f = fields(&buf).unwrap();
        assert_eq!(f[0].as_i64().unwrap(), -2);
        assert_eq!(f[0].as_i32().unwrap(), -2);
    }

    #[test]
    fn int32_out_of_range_is_an_error() {
        let buf = [0x08, 0x80, 0x80, 0x80, 0x80, 0x10];
        let f = fields(&buf).unwrap();
        assert!(matches!(f[0].as_i32(), Err(WireError::OutOfRange { .. })));
    }

    #[test]
    fn packed_and_unpacked_repeats() {
        let mut v = Vec::new();
        let packed = [0x0a, 3, 1, 0x96, 0x01];
        for f in fields(&packed).unwrap() {
            f.push_varints(&mut v).unwrap();
        }
        let unpacked = [0x08, 5];
        for f in fields(&unpacked).unwrap() {
            f.push_varints(&mut v).unwrap();
        }
        assert_eq!(v, vec![1, 150, 5]);

        let mut fl = Vec::new();
        let mut buf = vec![0x0a, 8];
        buf.extend_from_slice(&1.0f32.to_le_bytes());
        buf.extend_from_slice(&(-2.0f32).to_le_bytes());
        for f in fields(&buf).unwrap() {
            f.push_f32s(&mut fl).unwrap();
        }
        assert_eq!(fl, vec![1.0, -2.0]);
    }

    #[test]
    fn packed_floats_with_ragged_length() {
        let buf = [0x0a, 3, 0, 0, 0];
        let f = fields(&buf).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            f[0].push_f32s(&mut out),
            Err(WireError::PackedLength { .. })
        ));
    }

    #[test]
    fn hostile_inputs_are_errors() {
        // truncated varint
        assert!(matches!(
            fields(&[0x08, 0x80]),
            Err(WireError::Truncated { .. })
        ));
        // huge length prefix: no allocation, just an error
        let huge = [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            fields(&huge),
            Err(WireError::LengthOverrun { .. })
        ));
        // length one past the end
        assert!(matches!(
            fields(&[0x0a, 2, 0]),
            Err(WireError::LengthOverrun { .. })
        ));
        // groups and undefined wire types
        for wt in [3u8, 4, 6, 7] {
            assert!(matches!(
                fields(&[0x08 | wt]),
                Err(WireError::BadWireType { .. })
            ));
        }
        // 11-byte varint
        let long = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            fields(&long),
            Err(WireError::VarintTooLong { .. })
        ));
        // field number 0
        assert!(matches!(
            fields(&[0x00, 0]),
            Err(WireError::ZeroField { .. })
        ));
        // truncated fixed32 / fixed64
        assert!(matches!(
            fields(&[0x0d, 0, 0]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            fields(&[0x09, 0]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn type_mismatch_is_reported() {
        let f = fields(&[0x08, 1]).unwrap();
        assert!(matches!(
            f[0].as_bytes(),
            Err(WireError::UnexpectedWireType { .. })
        ));
        assert!(f[0].as_f32().is_err());
    }

    #[test]
    fn every_prefix_of_a_message_is_handled() {
        let mut buf = vec![0x08, 0xac, 0x02, 0x1a, 3, b'a', b'b', b'c', 0x25];
        buf.extend_from_slice(&2.0f32.to_le_bytes());
        for n in 0..buf.len() {
            let _ = fields(&buf[..n]);
        }
    }
}
