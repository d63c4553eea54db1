#!/usr/bin/env python3
"""The PyTorch baseline of the engine benchmark: runs the very graphs our engine runs (written by
`benches/engine.rs --export DIR`: optimised graph as JSON + every weight as f32) in PyTorch, on the
same inputs (engine/tests/fixtures, tiled like the Rust benchmark), checks that its outputs equal
ours, and times it at each batch in f32 and f16. With `--ours FILE.json` (the Rust benchmark's
`--json`), prints each of our rows beside PyTorch's and the ratio ours/PyTorch in items/s.

    python3 benches/gpu/torch_ref.py --export DIR --ours ours.json [--device cuda] [--batches 1,8,32]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "engine", "tests", "fixtures")


def inputs(model):
    """Exactly benches/engine.rs `inputs`: 4 SFace chips NCHW 0-255, 2 BlazeFace images NHWC [-1,1]
    (the back model's upsampled 2x by pixel repetition). Returns (one set, items in it)."""
    if model == "sface":
        raw = np.fromfile(os.path.join(FIX, "sface_chips.u8"), dtype=np.uint8)
        return raw.reshape(4, 112, 112, 3).transpose(0, 3, 1, 2).astype(np.float32), 4
    img = np.fromfile(os.path.join(FIX, "blazeface_inputs.u8"), dtype=np.uint8)
    img = img.reshape(2, 128, 128, 3).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    if model == "back":
        img = img.repeat(2, axis=1).repeat(2, axis=2)
    return img, 2


def tiled(one, n_one, batch):
    reps = math.ceil(batch / n_one)
    return np.concatenate([one] * reps, axis=0)[:batch]


class Net:
    def __init__(self, export, name, device, dtype):
        doc = json.load(open(os.path.join(export, f"{name}.json")))
        raw = np.fromfile(os.path.join(export, f"{name}.bin"), dtype="<f4")
        self.consts = {}
        for k, v in doc["constants"].items():
            a = raw[v["offset"] // 4: v["offset"] // 4 + v["len"]].reshape(v["shape"])
            self.consts[k] = torch.from_numpy(a.copy()).to(device=device, dtype=dtype)
        self.nodes = doc["nodes"]
        self.input = doc["inputs"][0]["name"]
        self.outputs = doc["outputs"]
        self.dtype = dtype

    @staticmethod
    def act(y, kind, slope=None):
        if kind == "Relu":
            return F.relu(y)
        if kind == "Sigmoid":
            return torch.sigmoid(y)
        if kind == "PRelu":
            return F.prelu(y, slope.reshape(-1))
        return y

    def node(self, n, xs):
        op = n["op"]
        if op == "Conv":
            w = n["window"]
            t, l, b, r = w["pads"]
            x = xs[0]
            if t or l or b or r:
                x = F.pad(x, (l, r, t, b))
            bias = xs[2] if len(xs) > 2 else None
            y = F.conv2d(x, xs[1], bias, tuple(w["stride"]), 0, tuple(w["dilation"]), n["groups"])
            return self.act(y, n["act"], xs[3] if len(xs) > 3 else None)
        if op == "Gemm":
            a = xs[0].t() if n["trans_a"] else xs[0]
            bm = xs[1].t() if n["trans_b"] else xs[1]
            y = n["alpha"] * (a @ bm)
            if len(xs) > 2:
                y = y + n["beta"] * xs[2]
            return self.act(y, n["act"], xs[3] if len(xs) > 3 else None)
        if op == "Affine":
            x = xs[0]
            s = torch.tensor(n["scale"], device=x.device, dtype=x.dtype)
            h = torch.tensor(n["shift"], device=x.device, dtype=x.dtype)
            if s.numel() > 1:
                shape = [1, -1] + [1] * (x.dim() - 2)
                s, h = s.reshape(shape), h.reshape(shape)
            return x * s + h
        if op == "Act":
            return self.act(xs[0], n["act"], xs[1] if len(xs) > 1 else None)
        if op == "Binary":
            a, b = xs
            return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[n["kind"]](a, b)
        if op == "MaxPool":
            w = n["window"]
            t, l, b, r = w["pads"]
            x = xs[0]
            if t or l or b or r:
                x = F.pad(x, (l, r, t, b), value=-math.inf)
            return F.max_pool2d(x, tuple(w["kernel"]), tuple(w["stride"]), 0, tuple(w["dilation"]),
                                ceil_mode=w["ceil"])
        if op == "Flatten":
            x = xs[0]
            return x.reshape(math.prod(x.shape[: n["axis"]]), -1)
        if op == "Reshape":
            x = xs[0]
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(n["shape"])]
            return x.reshape(shape)
        if op == "Transpose":
            return xs[0].permute(n["perm"])
        if op == "Pad":
            x = xs[0]
            rank = x.dim()
            p = n["pads"]
            pairs = []
            for d in reversed(range(rank)):
                pairs += [p[d], p[rank + d]]
            return F.pad(x, tuple(pairs), value=n["value"])
        raise SystemExit(f"op {op} (node {n['name']}) has no PyTorch rendition")

    def __call__(self, x):
        env = dict(self.consts)
        env[self.input] = x
        for n in self.nodes:
            env[n["output"]] = self.node(n, [env[i] for i in n["inputs"]])
        return [env[o] for o in self.outputs]


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--ours")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--models", default="sface,front,back")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    # The baseline in f32 means f32: no TF32 shortcuts in convolutions or matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    batches = [int(b) for b in a.batches.split(",")]
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__} on {name}")
    rows = []
    for model in a.models.split(","):
        one, n_one = inputs(model)
        for dtype in (torch.float32, torch.float16):
            net = Net(a.export, model, a.device, dtype)
            for batch in batches:
                x = torch.from_numpy(tiled(one, n_one, batch)).to(a.device, dtype)
                with torch.no_grad():
                    out = net(x)
                    ours = os.path.join(a.export, f"ours_{model}_F32_b{batch}.f32")
                    check = ""
                    if dtype == torch.float32 and os.path.exists(ours):
                        o = np.fromfile(ours, dtype="<f4")
                        t = out[0].float().cpu().numpy().reshape(-1)
                        rng = max(1.0, float(np.abs(o).max()))
                        diff = float(np.abs(o - t).max()) if o.size == t.size else float("nan")
                        check = f"  max |ours - torch| {diff:.2e} (range {rng:.1f})"
                        if not diff <= 1e-3 * rng:
                            raise SystemExit(f"{model} b{batch}: PyTorch rendition differs from ours by {diff}")
                    for _ in range(3):
                        net(x)
                    sync(a.device)
                    t0 = time.perf_counter()
                    for _ in range(a.iters):
                        net(x)
                    sync(a.device)
                ms = (time.perf_counter() - t0) * 1e3 / a.iters
                eng = "torch-" + ("f32" if dtype == torch.float32 else "f16")
                rows.append({"model": model, "engine": eng, "batch": batch, "ms_per_batch": ms,
                             "items_per_s": batch / (ms / 1e3)})
                print(f"{model:<6} {eng:<10} batch {batch:>3}: {ms:>10.3f} ms/batch {batch / (ms / 1e3):>10.1f} items/s{check}")
    if a.json:
        json.dump({"device": name, "rows": rows}, open(a.json, "w"), indent=1)
    if a.ours:
        ours = json.load(open(a.ours))
        print(f"\nours on {ours['adapter']} (copy {ours['copy_bytes_per_s'] / 1e9:.1f} GB/s) vs PyTorch on {name}")
        print("| model | batch | precision | ours items/s | PyTorch items/s | ours/PyTorch |")
        print("|---|---|---|---|---|---|")
        for r in ours["rows"]:
            if not r["engine"].startswith("wgsl-"):
                continue
            prec = r["engine"][5:]
            t = [x for x in rows if x["model"] == r["model"] and x["batch"] == r["batch"] and x["engine"] == "torch-" + prec]
            if t:
                print(f"| {r['model']} | {r['batch']} | {prec} | {r['items_per_s']:.1f} | {t[0]['items_per_s']:.1f} | {r['items_per_s'] / t[0]['items_per_s']:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
