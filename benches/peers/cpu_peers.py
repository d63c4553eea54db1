#!/usr/bin/env python3
"""onnxruntime and OpenVINO (CPU wheels from PyPI) on the three ONNX files the station runs, on the
exact inputs our CPU benchmark used, at 1 and 2 threads. Called by `cargo bench --bench cpu_engine`
so that every figure of its table comes from the same run on the same machine; also runnable alone.

Input: a folder with `<model>.f32` (raw little-endian float32, the input tensor at batch 1, as the
Rust benchmark wrote it) for model in sface, front, back. Output: one JSON object per line:
{"peer": "onnxruntime"|"openvino", "model": M, "threads": T, "ms": median ms per inference,
 "max_abs_diff": vs the first output our engine wrote (`<model>.out.f32`), "error": "..." on failure}

The SFace file lists its weights as graph inputs (29 of them without an initializer); the model is
rewritten in memory (`onnx_inputs.py`) so that both runtimes can load it. The
weights and operators are untouched. OpenVINO 2026 cannot import this int8 block-quantised file; that
is reported as an error row, not hidden.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from onnx_inputs import loadable

FILES = {
    "sface": ("face_recognition_sface_2021dec_int8bq.onnx", (1, 3, 112, 112)),
    "front": ("face_detection_front_128x128_barracuda.onnx", (1, 128, 128, 3)),
    "back": ("face_detection_back_256x256_barracuda.onnx", (1, 256, 256, 3)),
}


def timed(fn, iters, min_seconds):
    fn()  # warm-up (first-run allocation and kernel selection)
    times = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 10 * iters:
            break
    return statistics.median(times), out


def run_ort(model_bytes, x, threads, iters, min_s):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return timed(lambda: s.run(None, {name: x})[0], iters, min_s), ort.__version__


def run_ov(model_bytes, x, threads, iters, min_s):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(model=model_bytes)
    compiled = core.compile_model(
        model,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"},
    )
    req = compiled.create_infer_request()
    return timed(lambda: req.infer({0: x})[compiled.output(0)], iters, min_s), ov.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", required=True, help="folder with <model>.f32 written by the Rust benchmark")
    ap.add_argument("--models", required=True, help="folder with the ONNX files")
    ap.add_argument("--only", default="sface,front,back")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    a = ap.parse_args()
    for key in a.only.split(","):
        fname, shape = FILES[key]
        x = np.fromfile(os.path.join(a.inputs, key + ".f32"), dtype="<f4").reshape(shape)
        ours = np.fromfile(os.path.join(a.inputs, key + ".out.f32"), dtype="<f4")
        model = loadable(os.path.join(a.models, fname))
        for threads in [int(t) for t in a.threads.split(",")]:
            for peer, fn in (("onnxruntime", run_ort), ("openvino", run_ov)):
                row = {"peer": peer, "model": key, "threads": threads}
                try:
                    (ms, out), version = fn(model, x, threads, a.iters, a.min_seconds)
                    out = np.asarray(out, dtype=np.float32).ravel()
                    row.update(ms=ms, version=version)
                    if out.size == ours.size:
                        row["max_abs_diff"] = float(np.max(np.abs(out - ours)))
                except Exception as e:  # a peer that cannot load a file is a result, not a crash
                    row["error"] = str(e).splitlines()[0][:200]
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
