//! Malformed and unsupported models: every one must give a clear error, never a panic or
//! an attempt at a huge allocation.

mod common;

use common::*;
use engine::{Error, onnx};

fn relu_model() -> Vec<u8> {
    model(
        13,
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, 3, 4, 4])],
        &[value_info("y", &[1, 3, 4, 4])],
    )
}

fn err(bytes: &[u8]) -> String {
    match engine::load_bytes(bytes) {
        Ok(_) => panic!("model unexpectedly loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_valid_tiny_model_loads() {
    let g = engine::load_bytes(&relu_model()).unwrap();
    assert_eq!(g.nodes.len(), 1);
}

#[test]
fn unsupported_op_is_named() {
    let m = model(
        13,
        &[
            node("Relu", "r", &["x"], &["h"], &[]),
            node(
                "Softmax",
                "the_softmax",
                &["h"],
                &["y"],
                &[attr_int("axis", 1)],
            ),
        ],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    let e = engine::load_bytes(&m).unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedOp { op_type, node, .. } if op_type == "Softmax" && node == "the_softmax")
    );
    let msg = e.to_string();
    assert!(
        msg.contains("\"Softmax\"") && msg.contains("\"the_softmax\"") && msg.contains("Conv"),
        "{msg}"
    );
}

#[test]
fn custom_domain_is_refused() {
    let mut n = node("Relu", "r", &["x"], &["y"], &[]);
    n = n.str(7, "com.microsoft");
    let m = model(
        13,
        &[n],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("com.microsoft"));
}

#[test]
fn unknown_attribute_is_refused() {
    let m = model(
        13,
        &[node("Relu", "r", &["x"], &["y"], &[attr_int("mystery", 1)])],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("mystery"));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = relu_model();
    for cut in 0..bytes.len() {
        let _ = onnx::import_bytes(&bytes[..cut]);
    }
    assert!(onnx::import_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(onnx::import_bytes(&[]).is_err());
}

#[test]
fn byte_flips_never_panic() {
    let bytes = relu_model();
    for i in 0..bytes.len() {
        for v in [0x00, 0x02, 0x07, 0x7f, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = engine::load_bytes(&b);
        }
    }
}

#[test]
fn huge_length_prefix_and_bad_wire_types() {
    // graph field (7) with a length of 2^62
    let mut b = vec![0x3a];
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    assert!(err(&b).contains("length prefix"));
    // field 1 with wire type 3 (group start)
    assert!(err(&[0x0b]).contains("wire type 3"));
    // 11-byte varint
    assert!(
        err(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .contains("varint")
    );
    // a nested message with an inner length running past its parent
    let inner_bad = Msg::default().bytes(1, &[0x0a, 0x7f, 0x00]);
    let m = Msg::default().msg(7, &inner_bad).0;
    assert!(err(&m).contains("GraphProto.node") || err(&m).contains("NodeProto"));
}

#[test]
fn absurd_shapes_are_refused_without_allocating() {
    // initializer claiming 2^40 x 2^40 floats with 8 bytes of data, used by an Add
    let big = Msg::default()
        .packed(1, &[1 << 40, 1 << 40])
        .int(2, 1)
        .str(8, "w")
        .bytes(9, &[0; 8]);
    let m = model(
        13,
        &[node("Add", "a", &["x", "w"], &["y"], &[])],
        &[big],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("\"w\""));
    // ConstantOfShape asking for 2^60 elements
    let m = model(
        13,
        &[
            node("ConstantOfShape", "c", &["s"], &["z"], &[]),
            node("Add", "a", &["x", "z"], &["y"], &[]),
        ],
        &[tensor_i64("s", &[2], &[1 << 30, 1 << 30])],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("elements"));
    // Input with an absurd declared shape
    let m = model(
        13,
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, 1 << 20, 1 << 20])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("elements"));
    // Reshape to an impossible shape
    let m = model(
        13,
        &[node("Reshape", "r", &["x", "s"], &["y"], &[])],
        &[tensor_i64("s", &[2], &[1 << 62, 4])],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("node \"r\""));
}

#[test]
fn structural_errors_name_the_culprit() {
    // undefined input
    let m = model(
        13,
        &[node("Relu", "r", &["nope"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    let e = err(&m);
    assert!(e.contains("\"nope\"") && e.contains("not defined"), "{e}");
    // output defined twice
    let m = model(
        13,
        &[
            node("Relu", "a", &["x"], &["y"], &[]),
            node("Relu", "b", &["x"], &["y"], &[]),
        ],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("already defined"));
    // conv weights that do not fit the input
    let m = model(
        13,
        &[node("Conv", "c", &["x", "w"], &["y"], &[])],
        &[tensor_f32("w", &[2, 5, 1, 1], &[0.0; 10])],
        &[value_info("x", &[1, 3, 4, 4])],
        &[value_info("y", &[1])],
    );
    let e = err(&m);
    assert!(
        e.contains("node \"c\" (Conv)") && e.contains("input channels"),
        "{e}"
    );
    // a secondary output we do not compute
    let m = model(
        13,
        &[node("Dropout", "d", &["x"], &["y", "mask"], &[])],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("mask", &[1, 3])],
    );
    assert!(err(&m).contains("secondary output"));
    // symbolic non-batch axis
    let m = model(
        13,
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, -1])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("axis 1"));
    // unsupported opset
    let m = model(
        99,
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1, 3])],
    );
    assert!(err(&m).contains("opset 99"));
    // Conv with 1-D kernel
    let m = model(
        13,
        &[node(
            "Conv",
            "c",
            &["x", "w"],
            &["y"],
            &[attr_ints("kernel_shape", &[3])],
        )],
        &[tensor_f32("w", &[1, 1, 3], &[0.0; 3])],
        &[value_info("x", &[1, 1, 8])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("4-D"));
    // Resize with cubic mode
    let m = model(
        13,
        &[node(
            "Resize",
            "rs",
            &["x", "", "sc"],
            &["y"],
            &[attr_string("mode", "cubic")],
        )],
        &[tensor_f32("sc", &[4], &[1., 1., 2., 2.])],
        &[value_info("x", &[1, 1, 4, 4])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("cubic"));
    // Reshape whose shape is computed at run time
    let m = model(
        13,
        &[node("Reshape", "r", &["x", "x"], &["y"], &[])],
        &[],
        &[value_info("x", &[1, 3])],
        &[value_info("y", &[1])],
    );
    assert!(err(&m).contains("constant"));
}

#[test]
fn run_time_input_errors() {
    let g = engine::load_bytes(&relu_model()).unwrap();
    let wrong = engine::Tensor::zeros(vec![1, 3, 4, 5]).unwrap();
    assert!(matches!(
        engine::cpu::run(&g, &[wrong]),
        Err(Error::Input(_))
    ));
    assert!(matches!(engine::cpu::run(&g, &[]), Err(Error::Input(_))));
    let ok = engine::Tensor::zeros(vec![5, 3, 4, 4]).unwrap();
    assert_eq!(
        engine::cpu::run(&g, &[ok]).unwrap()[0].shape,
        vec![5, 3, 4, 4]
    );
}
