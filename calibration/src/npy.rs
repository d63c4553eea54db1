//! Minimal NumPy `.npy` (version 1.0, little-endian float32, C order) reading and writing: how chips
//! travel between gate-calibrate and the Python peers (`benches/peers/ort_bench.py`).

use std::path::Path;

use anyhow::{Context, Result, bail};

pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        bail!(
            "npy {}: shape {shape:?} does not hold {} values",
            path.display(),
            data.len()
        );
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({tuple}), }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces and a newline to 64 bytes.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Reads a float32 C-order array: (shape, values).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bad = |why: &str| anyhow::anyhow!("{}: not a float32 .npy file ({why})", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown version")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("short header"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("dtype must be '<f4', C order"));
    }
    let shape_str = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    if body.len() != n * 4 {
        return Err(bad("data length does not match the shape"));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        let p = std::env::temp_dir().join(format!("npy-{}.npy", std::process::id()));
        let data: Vec<f32> = (0..24).map(|x| x as f32 * 0.5).collect();
        write_f32(&p, &[2, 3, 4], &data).expect("writes");
        let bytes = std::fs::read(&p).expect("read");
        assert_eq!((bytes.len() - 24 * 4) % 64, 0);
        let (shape, back) = read_f32(&p).expect("reads");
        assert_eq!(shape, [2, 3, 4]);
        assert_eq!(back, data);
        assert!(write_f32(&p, &[5], &data).is_err());
        std::fs::write(&p, b"nope").expect("write");
        assert!(read_f32(&p).is_err());
    }
}
