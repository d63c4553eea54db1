#!/usr/bin/env python3
"""Converts MiniVision's Silent-Face PAD networks (MiniFASNetV2 at 2.7x, MiniFASNetV1SE at 4.0x
the face box; PyTorch state dicts in ../shared/pad) to ONNX files our engine loads, and writes
golden outputs of the original network for the engine's tests.

Development time only (a fresh machine needs none of this: the ONNX files, their SOURCE.txt and
the goldens are committed). Needs torch, onnx, numpy:

    python3 -m venv /tmp/pad-venv && /tmp/pad-venv/bin/pip install torch onnx numpy
    /tmp/pad-venv/bin/python scripts/pad/convert.py --shared ../shared/pad

What it does, per model:
1. checks the state dict's sha256 against ../shared/pad/SOURCE.txt;
2. builds the network from the state dict with our own functional forward (below), batch norms
   folded into the convolutions and the linear layer, and checks it against upstream's own
   module (../shared/pad/upstream/MiniFASNet.py, imported from there, never copied) on random
   inputs;
3. exports the folded network to ONNX (input `input` [N,3,80,80] BGR in 0..255, output `logits`
   [N,3]; class 1 = live), and
4. runs upstream's module on the golden inputs (engine/tests/fixtures/pad_inputs.u8: the four
   committed SFace test chips resized to 80x80, and one noise image) and writes its logits.
"""
import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
MODELS = {
    # ONNX name: (state dict, upstream constructor)
    "minifasnet_v2_2.7_80x80.onnx": ("2.7_80x80_MiniFASNetV2.pth", "MiniFASNetV2"),
    "minifasnet_v1se_4.0_80x80.onnx": ("4_0_0_80x80_MiniFASNetV1SE.pth", "MiniFASNetV1SE"),
}
EPS = 1e-5  # BatchNorm's default epsilon, as upstream's modules use


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_state(path: Path) -> dict:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v.float() for k, v in sd.items()}


def fold(sd: dict, prefix: str):
    """Weight and bias of `prefix.conv` with `prefix.bn` folded in."""
    w = sd[f"{prefix}.conv.weight"]
    scale = sd[f"{prefix}.bn.weight"] / torch.sqrt(sd[f"{prefix}.bn.running_var"] + EPS)
    b = sd[f"{prefix}.bn.bias"] - sd[f"{prefix}.bn.running_mean"] * scale
    return w * scale.view(-1, 1, 1, 1), b


class Folded(torch.nn.Module):
    """MiniFASNet (V1, V2, V1SE) as a plain sequence read off the state dict's names, with every
    batch norm folded. Written from the published architecture: conv1 (3x3/2), conv2_dw, then
    depthwise blocks (1x1 expand, 3x3 depthwise, 1x1 project; residual inside conv_3/4/5, stride 2
    in conv_23/34/45; a squeeze-excitation on the last block of each residual stage in the SE
    variant), conv_6 (1x1, then a 5x5 depthwise over the 5x5 map), linear + bn, prob."""

    def __init__(self, sd: dict):
        super().__init__()
        self.sd = sd
        self.params = torch.nn.ParameterDict()

    def param(self, name: str, t: torch.Tensor) -> torch.Tensor:
        key = name.replace(".", "_")
        if key not in self.params:
            self.params[key] = torch.nn.Parameter(t.clone(), requires_grad=False)
        return self.params[key]

    def conv(self, x, prefix, stride=1, act=True, pad=None):
        w, b = fold(self.sd, prefix)
        w, b = self.param(prefix + ".w", w), self.param(prefix + ".b", b)
        # Plain ints (not traced sizes), so the export records constant attributes.
        channels, k = int(x.shape[1]), int(w.shape[-1])
        groups = channels if int(w.shape[1]) == 1 and channels > 1 else 1
        pad = k // 2 if pad is None else pad
        x = F.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
        if act:
            x = F.prelu(x, self.param(prefix + ".prelu", self.sd[f"{prefix}.prelu.weight"]))
        return x

    def se(self, x, prefix):
        s = F.adaptive_avg_pool2d(x, 1)  # exported as GlobalAveragePool
        for fc, bn, last in (("fc1", "bn1", False), ("fc2", "bn2", True)):
            w = self.sd[f"{prefix}.{fc}.weight"]
            scale = self.sd[f"{prefix}.{bn}.weight"] / torch.sqrt(
                self.sd[f"{prefix}.{bn}.running_var"] + EPS
            )
            b = self.sd[f"{prefix}.{bn}.bias"] - self.sd[f"{prefix}.{bn}.running_mean"] * scale
            w = self.param(f"{prefix}.{fc}.w", w * scale.view(-1, 1, 1, 1))
            s = F.conv2d(s, w, self.param(f"{prefix}.{fc}.b", b))
            s = torch.sigmoid(s) if last else F.relu(s)
        return x * s

    def block(self, x, prefix, stride, residual):
        y = self.conv(x, prefix + ".conv")
        y = self.conv(y, prefix + ".conv_dw", stride=stride)
        y = self.conv(y, prefix + ".project", act=False)
        if f"{prefix}.se_module.fc1.weight" in self.sd:
            y = self.se(y, prefix + ".se_module")
        return x + y if residual else y

    def forward(self, x):
        x = self.conv(x, "conv1", stride=2)
        x = self.conv(x, "conv2_dw")
        for stage, down in (("conv_3", "conv_23"), ("conv_4", "conv_34"), ("conv_5", "conv_45")):
            x = self.block(x, down, 2, False)
            n = 1 + max(int(m.group(1)) for k in self.sd if (m := re.match(rf"{stage}\.model\.(\d+)\.", k)))
            for i in range(n):
                x = self.block(x, f"{stage}.model.{i}", 1, True)
        x = self.conv(x, "conv_6_sep")
        x = self.conv(x, "conv_6_dw", act=False, pad=0)
        x = torch.flatten(x, 1)
        sd = self.sd
        scale = sd["bn.weight"] / torch.sqrt(sd["bn.running_var"] + EPS)
        w = self.param("linear.w", sd["linear.weight"] * scale.view(-1, 1))
        b = self.param("linear.b", sd["bn.bias"] - sd["bn.running_mean"] * scale)
        x = F.linear(x, w, b)
        # A zero bias makes the exporter write a Gemm (a bias-free linear becomes a MatMul, which
        # the GPU executor has no kernel for); the sum is the same.
        zero = torch.zeros(sd["prob.weight"].shape[0])
        return F.linear(x, self.param("prob.w", sd["prob.weight"]), self.param("prob.b", zero))


def upstream_module(shared: Path, ctor: str, sd: dict):
    sys.path.insert(0, str(shared / "upstream"))
    import MiniFASNet  # noqa: E402  (upstream's code, read from ../shared, not copied)

    # get_kernel(80, 80) upstream: ((80 + 15) // 16,) * 2
    m = getattr(MiniFASNet, ctor)(conv6_kernel=(5, 5))
    m.load_state_dict(sd)
    return m.eval()


def golden_inputs() -> np.ndarray:
    """[5, 80, 80, 3] u8 BGR: the four SFace test chips (RGB, 112x112) resized by area-average
    to 80x80 and turned to BGR, and one seeded noise image."""
    chips = np.fromfile(ROOT / "engine/tests/fixtures/sface_chips.u8", dtype=np.uint8)
    chips = chips.reshape(4, 112, 112, 3).astype(np.float32)
    t = torch.from_numpy(chips).permute(0, 3, 1, 2)
    small = F.interpolate(t, size=(80, 80), mode="area").permute(0, 2, 3, 1).numpy()
    small = np.clip(np.rint(small), 0, 255).astype(np.uint8)[..., ::-1]
    noise = np.random.default_rng(7).integers(0, 256, size=(1, 80, 80, 3), dtype=np.uint8)
    return np.concatenate([small, noise])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared/pad")
    ap.add_argument("--out", type=Path, default=ROOT / "assets/pad")
    ap.add_argument("--fixtures", type=Path, default=ROOT / "engine/tests/fixtures")
    args = ap.parse_args()
    pinned = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"models/(\S+)\s+sha256 ([0-9a-f]{64})", (args.shared / "SOURCE.txt").read_text())
    )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    inputs = golden_inputs()
    (args.fixtures / "pad_inputs.u8").write_bytes(inputs.tobytes())
    x = torch.from_numpy(inputs.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    record = {}
    for onnx_name, (pth, ctor) in MODELS.items():
        src = args.shared / "models" / pth
        digest = sha256(src)
        if pinned.get(pth) != digest:
            sys.exit(f"{pth}: sha256 {digest} is not the one SOURCE.txt pins")
        sd = load_state(src)
        original = upstream_module(args.shared, ctor, sd)
        ours = Folded(sd).eval()
        with torch.no_grad():
            ours(x)  # registers the folded parameters
            probe = torch.rand(3, 3, 80, 80) * 255
            a, b = original(probe), ours(probe)
            err = (a - b).abs().max().item() / (1 + a.abs().max().item())
            if err > 1e-4:
                sys.exit(f"{pth}: our folded network differs from upstream's by {err:.2e}")
            golden = original(x).numpy().astype("<f4")
        (args.fixtures / onnx_name.replace(".onnx", "_golden.f32")).write_bytes(golden.tobytes())
        dst = args.out / onnx_name
        torch.onnx.export(
            ours,
            (x[:1],),
            str(dst),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
            opset_version=13,
            do_constant_folding=True,
            dynamo=False,
        )
        probs = torch.softmax(torch.from_numpy(golden), 1).numpy()
        record[onnx_name] = {
            "source": pth,
            "source_sha256": digest,
            "onnx_sha256": sha256(dst),
            "folded_vs_upstream_max_rel_err": err,
            "golden_live_probability": [round(float(p), 6) for p in probs[:, 1]],
        }
        print(onnx_name, json.dumps(record[onnx_name]))
    (args.out / "convert.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
