//! Shared test helpers: model/fixture lookup and a tiny protobuf writer for building ONNX
//! models by hand.
#![allow(dead_code, unused_imports)]
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub use engine::face::prepare::l2_normalise;
pub use engine::face::{BACK, FRONT, SFACE};

/// Path of a fetched model. Missing models fail the test loudly: CI runs after
/// scripts/setup, and a silently skipped golden test would hide a broken engine.
pub fn model_path(file: &str) -> PathBuf {
    let p = engine::face::models_dir().join(file);
    assert!(
        p.is_file(),
        "model {} not found: run scripts/setup to fetch the models (or set GATE_MODELS to the folder holding them)",
        p.display()
    );
    p
}

/// The four committed SFace test chips (HWC u8) as one NCHW f32 batch in 0..255: SFace normalises
/// inside the graph.
pub fn sface_chips_nchw() -> Vec<f32> {
    let raw = fixture("sface_chips.u8");
    let (n, h, w) = (4, 112, 112);
    assert_eq!(raw.len(), n * h * w * 3);
    let mut data = vec![0f32; raw.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    data[((b * 3 + c) * h + y) * w + x] =
                        f32::from(raw[((b * h + y) * w + x) * 3 + c]);
                }
            }
        }
    }
    data
}

/// A photo fetched by scripts/setup into testdata/<set>/ (GATE_TESTDATA overrides the folder).
/// Missing files fail the test loudly, like missing models.
pub fn testdata(set: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("GATE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata"));
    let p = dir.join(set).join(name);
    assert!(
        p.is_file(),
        "{} not found: run scripts/setup to fetch the test images",
        p.display()
    );
    p
}

/// Folder of the single-op ONNX fixtures (tests/fixtures/ops, made by make_golden.py).
pub fn op_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops")
}

/// Names (without `.onnx`) of the single-op fixtures, sorted.
pub fn op_fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(op_fixture_dir())
        .expect("op fixtures")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".onnx")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn fixture_f32(name: &str) -> Vec<f32> {
    fixture(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Protobuf message writer (just enough wire format to build test models).
#[derive(Default, Clone)]
pub struct Msg(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

impl Msg {
    pub fn int(mut self, field: u32, v: i64) -> Self {
        varint(&mut self.0, u64::from(field) << 3);
        varint(&mut self.0, v as u64);
        self
    }
    pub fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        varint(&mut self.0, (u64::from(field) << 3) | 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    pub fn msg(self, field: u32, m: &Msg) -> Self {
        self.bytes(field, &m.0)
    }
    pub fn f32(mut self, field: u32, v: f32) -> Self {
        varint(&mut self.0, (u64::from(field) << 3) | 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn packed(self, field: u32, vals: &[i64]) -> Self {
        let mut b = Vec::new();
        for &v in vals {
            varint(&mut b, v as u64);
        }
        self.bytes(field, &b)
    }
}

pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> Msg {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    Msg::default()
        .packed(1, dims)
        .int(2, 1)
        .str(8, name)
        .bytes(9, &raw)
}

pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> Msg {
    Msg::default()
        .packed(1, dims)
        .int(2, 7)
        .str(8, name)
        .packed(7, data)
}

pub fn tensor_i8(name: &str, dims: &[i64], data: &[i8]) -> Msg {
    let raw: Vec<u8> = data.iter().map(|&v| v as u8).collect();
    Msg::default()
        .packed(1, dims)
        .int(2, 3)
        .str(8, name)
        .bytes(9, &raw)
}

pub fn value_info(name: &str, dims: &[i64]) -> Msg {
    let mut shape = Msg::default();
    for &d in dims {
        let dim = if d < 0 {
            Msg::default().str(2, "N")
        } else {
            Msg::default().int(1, d)
        };
        shape = shape.msg(1, &dim);
    }
    let tt = Msg::default().int(1, 1).msg(2, &shape);
    let ty = Msg::default().msg(1, &tt);
    Msg::default().str(1, name).msg(2, &ty)
}

pub fn attr_int(name: &str, v: i64) -> Msg {
    Msg::default().str(1, name).int(3, v).int(20, 2)
}
pub fn attr_ints(name: &str, v: &[i64]) -> Msg {
    Msg::default().str(1, name).packed(8, v).int(20, 7)
}
pub fn attr_float(name: &str, v: f32) -> Msg {
    Msg::default().str(1, name).f32(2, v).int(20, 1)
}
pub fn attr_string(name: &str, v: &str) -> Msg {
    Msg::default().str(1, name).str(4, v).int(20, 3)
}
pub fn attr_tensor(name: &str, t: &Msg) -> Msg {
    Msg::default().str(1, name).msg(5, t).int(20, 4)
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Msg]) -> Msg {
    let mut m = Msg::default();
    for i in inputs {
        m = m.str(1, i);
    }
    for o in outputs {
        m = m.str(2, o);
    }
    m = m.str(3, name).str(4, op);
    for a in attrs {
        m = m.msg(5, a);
    }
    m
}

pub fn model(opset: i64, nodes: &[Msg], inits: &[Msg], inputs: &[Msg], outputs: &[Msg]) -> Vec<u8> {
    let mut g = Msg::default().str(2, "test");
    for n in nodes {
        g = g.msg(1, n);
    }
    for t in inits {
        g = g.msg(5, t);
    }
    for i in inputs {
        g = g.msg(11, i);
    }
    for o in outputs {
        g = g.msg(12, o);
    }
    let opset = Msg::default().str(1, "").int(2, opset);
    Msg::default().int(1, 8).msg(8, &opset).msg(7, &g).0
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// BlazeFace input values: NHWC, u8 / 127.5 - 1, as make_golden.py feeds it.
pub fn blazeface_values(raw: &[u8]) -> Vec<f32> {
    raw.iter().map(|&v| f32::from(v) / 127.5 - 1.0).collect()
}

/// An RGB image of `size`² pixels, nearest-neighbour upsampled to twice the side.
pub fn upsample2x(raw: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    for y in 0..2 * size {
        for x in 0..2 * size {
            let i = ((y / 2) * size + x / 2) * 3;
            out.extend_from_slice(&raw[i..i + 3]);
        }
    }
    out
}
