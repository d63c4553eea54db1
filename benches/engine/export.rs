//! Writes a loaded, optimised graph as `<name>.json` (nodes, attributes, shapes) + `<name>.bin`
//! (every constant as little-endian f32), so `benches/gpu/torch_ref.py` can run *the same network
//! from the same weights* in PyTorch: the baseline of the GPU benchmark. Only the ops the three face
//! models have after `engine::load` are written; anything else is an error naming the node.
//! Windows are written resolved (explicit pads) for the model's declared input size.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use engine::Graph;
use engine::graph::{Activation, BinaryOp, Op, PadMode, TensorKind, Window2d};
use serde_json::{Value, json};

fn act(a: &Activation) -> Result<&'static str> {
    Ok(match a {
        Activation::None => "None",
        Activation::Relu => "Relu",
        Activation::PRelu => "PRelu",
        Activation::Sigmoid => "Sigmoid",
        other => bail!("activation {other:?} is not exported"),
    })
}

fn window(w: &Window2d, hw: [usize; 2]) -> Result<Value> {
    let r = w.resolve(hw).map_err(anyhow::Error::msg)?;
    Ok(json!({
        "kernel": w.kernel, "stride": w.strides, "dilation": w.dilations,
        // top, left, bottom, right
        "pads": r.pads, "ceil": w.ceil_mode,
    }))
}

pub fn export(graph: &Graph, name: &str, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let shapes = graph.infer_shapes(1)?;
    let mut bin: Vec<u8> = Vec::new();
    let mut constants = serde_json::Map::new();
    for t in &graph.tensors {
        if let TensorKind::Constant(c) = &t.kind {
            let Some(data) = c.f32_data() else {
                bail!("constant {:?} is not f32 after the passes", t.name);
            };
            constants.insert(
                t.name.clone(),
                json!({"shape": c.shape, "offset": bin.len(), "len": data.len()}),
            );
            bin.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        }
    }
    let mut nodes = Vec::new();
    for n in &graph.nodes {
        let ins: Vec<&str> = n.inputs.iter().map(|t| graph.name(*t)).collect();
        let hw = |i: usize| -> Result<[usize; 2]> {
            let s = shapes.get(n.inputs[i])?;
            match s[..] {
                [_, _, h, w] => Ok([h, w]),
                _ => bail!("node {:?}: input {s:?} is not NCHW", n.name),
            }
        };
        let mut v = match &n.op {
            Op::Conv(c) => json!({"op": "Conv", "window": window(&c.window, hw(0)?)?,
                                  "groups": c.group, "act": act(&c.activation)?}),
            Op::Gemm(g) => json!({"op": "Gemm", "alpha": g.alpha, "beta": g.beta,
                                  "trans_a": g.trans_a, "trans_b": g.trans_b,
                                  "act": act(&g.activation)?}),
            Op::Affine { scale, shift } => json!({"op": "Affine", "scale": scale, "shift": shift}),
            Op::Activation(a) => json!({"op": "Act", "act": act(a)?}),
            Op::Binary(b) => json!({"op": "Binary", "kind": match b {
                BinaryOp::Add => "Add", BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul", BinaryOp::Div => "Div" }}),
            Op::MaxPool(p) => json!({"op": "MaxPool", "window": window(&p.window, hw(0)?)?}),
            Op::Flatten { axis } => json!({"op": "Flatten", "axis": axis}),
            Op::Reshape { shape } => json!({"op": "Reshape", "shape": shape}),
            Op::Transpose { perm } => json!({"op": "Transpose", "perm": perm}),
            Op::Pad(p) => match p.mode {
                PadMode::Constant(value) => json!({"op": "Pad", "pads": p.pads, "value": value}),
                other => bail!("node {:?}: pad mode {other:?} is not exported", n.name),
            },
            other => bail!("node {:?}: op {} is not exported", n.name, other.name()),
        };
        v["name"] = json!(n.name);
        v["inputs"] = json!(ins);
        v["output"] = json!(graph.name(n.output));
        nodes.push(v);
    }
    let inputs: Vec<Value> = graph
        .inputs
        .iter()
        .map(|t| Ok(json!({"name": graph.name(*t), "shape": shapes.get(*t)?})))
        .collect::<Result<_>>()?;
    let outputs: Vec<&str> = graph.outputs.iter().map(|t| graph.name(*t)).collect();
    let doc = json!({"model": name, "inputs": inputs, "outputs": outputs,
                     "constants": constants, "nodes": nodes});
    fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&doc)?,
    )?;
    fs::write(dir.join(format!("{name}.bin")), bin)?;
    Ok(())
}
