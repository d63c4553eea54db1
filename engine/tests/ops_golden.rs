//! Operator variants the face models do not use, checked against onnxruntime on tiny
//! models (tests/fixtures/ops, written by make_golden.py). No model download needed.

mod common;

use std::path::Path;

use common::{op_fixture_dir, op_fixture_names};
use engine::{Tensor, cpu, onnx};

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn operator_variants_match_onnxruntime() {
    let dir = op_fixture_dir();
    let names = op_fixture_names();
    assert!(
        names.len() >= 20,
        "op fixtures missing in {}",
        dir.display()
    );
    for name in &names {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let x = read_f32(&dir.join(format!("{name}.in.f32")));
        let want = read_f32(&dir.join(format!("{name}.out.f32")));
        let raw = onnx::import_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let opt = engine::load_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = Tensor::new(raw.input_shape(0).unwrap().to_vec(), x).unwrap();
        for (which, g) in [("imported", &raw), ("optimised", &opt)] {
            let y =
                cpu::run(g, std::slice::from_ref(&input)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(y[0].data.len(), want.len(), "{name} ({which}): output size");
            for (i, (a, b)) in y[0].data.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 + 1e-5 * b.abs(),
                    "{name} ({which}) [{i}]: {a} vs onnxruntime {b}"
                );
            }
        }
    }
}
