#!/usr/bin/env python3
"""dlib's CPU face pipeline throughput, the classic face_recognition chain: HOG frontal detector
(upsampled once, as face_recognition's default), 5-point shape predictor, ResNet-29 128-D descriptor
(dlib_face_recognition_resnet_model_v1, on dlib's own 150x150 chip, no jitter).

Two measurements, one JSON line each {peer, stage, batch, items_per_s, threads, ...}:
  stage "pipeline"   : photos of a set (labels.csv) through detect + landmarks + descriptor, one photo
                       at a time; items = faces described (the largest face per photo).
  stage "descriptor" : the descriptor alone on pre-cut 150x150 chips (dlib.get_face_chip) at batch
                       1, 8, 32 (a list of chips in one compute_face_descriptor call): the stage that
                       compares with SFace on 112x112 chips.
threads = the CPUs this process may run on (run it under `taskset -c 0` to measure one core; the
numbers in docs/evaluation.md were taken that way).
"""

import argparse
import json
import os
import time

import dlib
import numpy as np

import common


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, help="folder with labels.csv")
    ap.add_argument("--per-identity", type=int, default=0)
    ap.add_argument("--limit", type=int, default=40, help="at most this many photos")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--min-seconds", type=float, default=3.0)
    a = ap.parse_args()
    threads = len(os.sched_getaffinity(0))
    rows = common.per_identity(common.read_labels(a.set), a.per_identity)[: a.limit]
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(common.model("shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(common.model("dlib_face_recognition_resnet_model_v1.dat"))
    imgs = [common.load_rgb(os.path.join(a.set, p)) for p, _ in rows]

    # Pipeline: one photo at a time, as face_recognition.face_encodings does.
    t_det = t_lm = t_desc = 0.0
    chips = []
    for img in imgs:
        t0 = time.perf_counter()
        rects = det(img, 1)
        t1 = time.perf_counter()
        t_det += t1 - t0
        if not len(rects):
            continue
        r = max(rects, key=lambda r: r.width() * r.height())
        shape = sp(img, r)
        t2 = time.perf_counter()
        rec.compute_face_descriptor(img, shape, 0)
        t3 = time.perf_counter()
        t_lm += t2 - t1
        t_desc += t3 - t2
        chips.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
    total = t_det + t_lm + t_desc
    print(json.dumps({"peer": "dlib-cpu", "stage": "pipeline", "batch": 1, "photos": len(imgs),
                      "faces": len(chips), "items_per_s": round(len(chips) / total, 2) if total else None,
                      "ms_detect_per_photo": round(1e3 * t_det / max(len(imgs), 1), 1),
                      "ms_landmarks_per_face": round(1e3 * t_lm / max(len(chips), 1), 2),
                      "ms_descriptor_per_face": round(1e3 * t_desc / max(len(chips), 1), 1),
                      "threads": threads, "dlib": dlib.__version__}), flush=True)
    if not chips:
        common.die("no face found: nothing to describe")
    for b in [int(x) for x in a.batch.split(",")]:
        batch = [chips[i % len(chips)] for i in range(b)]
        rec.compute_face_descriptor(batch, 0)  # warm-up
        runs, t0 = 0, time.perf_counter()
        while runs == 0 or time.perf_counter() - t0 < a.min_seconds:
            rec.compute_face_descriptor(batch, 0)
            runs += 1
        dt = time.perf_counter() - t0
        print(json.dumps({"peer": "dlib-cpu", "stage": "descriptor", "batch": b,
                          "items_per_s": round(runs * b / dt, 2), "threads": threads, "runs": runs}), flush=True)


if __name__ == "__main__":
    main()
