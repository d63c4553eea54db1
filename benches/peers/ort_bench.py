#!/usr/bin/env python3
"""onnxruntime (CPU execution provider) running the same SFace ONNX file the engine runs, on the same
chips, at batch 1, 8, 32. Prints one JSON line per (threads, batch):
{"peer": "onnxruntime-cpu", "batch": B, "items_per_s": X, "threads": T, ...}

Chips: a float32 .npy of shape N x 3 x 112 x 112, values 0..255, RGB planes (what `gate-calibrate eval
--dump-chips FILE.npy` writes: the BlazeFace-aligned chips SFace sees). With fewer than B chips, the
batch cycles through them.

The file as shipped cannot run above batch 1 in onnxruntime (data is declared [1,3,112,112]) and lists
its weights as graph inputs, 29 of them without an initializer and unused; ORT wants a feed for those
and will not constant-fold initializers that are also inputs. So the model is rewritten in memory, with
the onnx package: inputs that are initializers or unused are dropped and the batch axis of `data` and
`fc1` becomes symbolic. The weights and operators are untouched; a check compares batch-B outputs with
batch-1 outputs. ORT's graph optimisations are on (ORT_ENABLE_ALL), as a deployment would run it.
"""

import argparse
import json
import os
import time

import numpy as np
import onnx
import onnxruntime as ort

import common
from onnx_inputs import loadable

SFACE = "face_recognition_sface_2021dec_int8bq.onnx"


def batch_generic_model(path):
    return loadable(path, symbolic_batch=True)


def session(model, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chips", required=True, help="float32 .npy, N x 3 x 112 x 112")
    ap.add_argument("--models", default=os.path.join(common.ROOT, "models"))
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to try")
    ap.add_argument("--min-seconds", type=float, default=3.0)
    a = ap.parse_args()
    if not os.path.isfile(a.chips):
        common.die(f"{a.chips}: not found")
    chips = np.load(a.chips)
    if chips.dtype != np.float32 or chips.ndim != 4 or chips.shape[1:] != (3, 112, 112):
        common.die(f"{a.chips}: expected float32 N x 3 x 112 x 112, got {chips.dtype} {chips.shape}")
    path = os.path.join(a.models, SFACE)
    if not os.path.isfile(path):
        common.die(f"{path}: not found (run scripts/setup)")
    model = batch_generic_model(path)
    for t in [int(x) for x in a.threads.split(",")]:
        s = session(model, t)
        ref = None
        for b in [int(x) for x in a.batch.split(",")]:
            x = chips[np.arange(b) % len(chips)]
            out = s.run(["fc1"], {"data": x})[0]  # warm-up
            if ref is None:
                ref = np.concatenate([s.run(["fc1"], {"data": chips[i : i + 1]})[0] for i in range(min(len(chips), 32))])
            k = min(b, len(ref))
            agree = float(np.abs(out[:k] - ref[:k]).max() / (np.abs(ref[:k]).max() + 1e-12))
            runs, t0 = 0, time.perf_counter()
            while runs == 0 or time.perf_counter() - t0 < a.min_seconds:
                s.run(["fc1"], {"data": x})
                runs += 1
            dt = time.perf_counter() - t0
            print(json.dumps({"peer": "onnxruntime-cpu", "batch": b, "items_per_s": round(runs * b / dt, 2),
                              "threads": t, "runs": runs, "ort": ort.__version__,
                              "max_rel_diff_vs_batch1": agree}), flush=True)


if __name__ == "__main__":
    main()
