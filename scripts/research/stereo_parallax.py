#!/usr/bin/env python3
"""Feasibility measurement for a dense two-camera PAD cue (docs/pad.md, "Dense parallax").

Question: on a lane with a lower camera, does the *pixel* parallax between the two views of one
instant tell a head from a picture, bent prints included, where the six BlazeFace keypoints cannot
(the keypoints move with the face's overall look: a bent print's nose moves in the same proportion
to its ears as a head's)?

Method, per frame where the footage's truth has the walker's face in both cameras (box at least
`--min-px` wide in each, whole in the frame) and the face is still farther than the lane's
decide-by distance (box narrower than `--max-px`: the cue must speak before the door):
1. cut the face box from each view, resample to 64x64 grey;
2. align the lower crop to the upper by the best affine map of their intensities (OpenCV's ECC):
   a picture, flat or not, is then aligned but for what an affine map cannot do;
3. dense optical flow (Farneback) between the aligned crops; keep the vertical component over the
   crop's central half (the cameras differ in height, so parallax is vertical);
4. per column, remove the flow's best straight line in y; the residual's RMS (pixels of the 64-px
   crop) is the frame's *structure along y*. A plane leaves noise. A sheet bent about a vertical
   line (a curved print: paper bends one way at a time) shifts each column by its own amount,
   which the per-column line removes. A head's nose moves against its cheeks and brow within the
   same columns, which it does not.
Per walker: the median over its frames. Printed per lane and presentation: min, 5th percentile,
median, 95th percentile, max.

Development-time research only, against footage from `gate-calibrate footage --lower-camera`
(truth.json's boxes; no detector involved). Needs numpy and opencv-python-headless:

    python3 -m pip install numpy opencv-python-headless
    python3 scripts/research/stereo_parallax.py FOOTAGE_DIR [--min-px 50] [--max-px 95]

A detector's boxes are not the truth's: `--jitter 0.08` moves and scales each view's box on its
own (normal, that fraction of the box: what takes the separation away), and `--start truth`
starts the alignment from the correspondence the jitter broke, `--start-noise 0.02` off by that
fraction of the crop (as keypoints would give it; the pipeline's `decide::parallax` starts from
the eyes and the mouth).
"""
import argparse
import collections
import json
from pathlib import Path

import cv2
import numpy as np

N = 64


def crop_map(box):
    """The 3x3 map from image pixels to the NxN crop of a face box (square about its centre)."""
    x, y, w, h = box
    cx, cy, s = x + w / 2, y + h / 2, max(w, h)
    return np.array([[N / s, 0, N / 2 - cx * N / s], [0, N / s, N / 2 - cy * N / s], [0, 0, 1]])


def crop(img, box):
    """The face box, square about its centre, resampled to NxN grey (0-1)."""
    m = crop_map(box)[:2].astype(np.float32)
    out = cv2.warpAffine(img, m, (N, N), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255


def jittered(box, rng, sigma):
    """The box moved and scaled as a detector's might be: normal, `sigma` of its size."""
    x, y, w, h = box
    j = rng.normal(0, sigma, 3)
    return [x + j[0] * w, y + j[1] * h, w * (1 + j[2]), h * (1 + j[2])]


def structure_along_y(upper, lower, start=None):
    """RMS of the vertical flow's residual after each column's straight line, or None when the
    two crops could not be aligned. `start`: the 2x3 map to start the alignment from (identity)."""
    warp = (np.eye(2, 3) if start is None else start[:2]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        _, warp = cv2.findTransformECC(upper, lower, warp, cv2.MOTION_AFFINE, criteria, None, 5)
    except cv2.error:
        return None
    aligned = cv2.warpAffine(lower, warp, (N, N), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    u8 = lambda a: (a * 255).astype(np.uint8)
    flow = cv2.calcOpticalFlowFarneback(u8(upper), u8(aligned), None, 0.5, 2, 9, 5, 5, 1.1, 0)
    q = N // 4
    v = flow[q:N - q, q:N - q, 1]
    ys = np.arange(N - 2 * q) - (N - 2 * q - 1) / 2
    a = np.stack([np.ones_like(ys), ys], 1)
    coef, *_ = np.linalg.lstsq(a, v, rcond=None)
    return float(np.sqrt(((v - a @ coef) ** 2).mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("footage", type=Path)
    ap.add_argument("--min-px", type=float, default=50)
    ap.add_argument("--max-px", type=float, default=95)
    ap.add_argument("--jitter", type=float, default=0.0)
    ap.add_argument("--start", choices=["identity", "truth"], default="identity")
    ap.add_argument("--start-noise", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = json.loads((args.footage / "truth.json").read_text())
    per_walker = collections.defaultdict(list)
    for lane in truth["lanes"]:
        if not lane.get("lower"):
            continue
        want = collections.defaultdict(list)
        for w in lane["walkers"]:
            kind = w.get("attack") or ("attack" if w["expected"] == "attack" else "bona fide")
            low = {b[0]: b[1:] for b in (w.get("lower_boxes") or [])}
            for f, *up in w["boxes"]:
                lo = low.get(f)
                whole = lambda b: b[0] > 2 and b[1] > 2 and b[0] + b[2] < truth["width"] - 2 \
                    and b[1] + b[3] < truth["height"] - 2
                if lo and args.min_px <= up[2] < args.max_px and lo[2] >= args.min_px \
                        and whole(up) and whole(lo):
                    want[f].append(((lane["lane"], lane["scenario"], kind, w["walker"]), up, lo))
        cams = [cv2.VideoCapture(str(args.footage / lane["file"])),
                cv2.VideoCapture(str(args.footage / lane["lower"]["file"]))]
        f = 0
        while True:
            (ok_u, up_img), (ok_l, lo_img) = cams[0].read(), cams[1].read()
            if not (ok_u and ok_l):
                break
            for key, up, lo in want.get(f, []):
                uj, lj = up, lo
                if args.jitter > 0:
                    uj, lj = jittered(up, rng, args.jitter), jittered(lo, rng, args.jitter)
                start = None
                if args.start == "truth":
                    # Where the truth's crops correspond (about the identity), seen through
                    # the jittered ones, then off by the keypoints' error.
                    start = crop_map(lj) @ np.linalg.inv(crop_map(lo)) @ crop_map(up) \
                        @ np.linalg.inv(crop_map(uj))
                    k = rng.normal(0, args.start_noise, 3)
                    start = start @ np.array([[1 + k[2], 0, k[0] * N], [0, 1 + k[2], k[1] * N],
                                              [0, 0, 1]])
                s = structure_along_y(crop(up_img, uj), crop(lo_img, lj), start)
                if s is not None:
                    per_walker[key].append(s)
            f += 1
    rows = collections.defaultdict(list)
    for (lane, scenario, kind, _), vals in per_walker.items():
        rows[(f"{lane} {scenario}", kind)].append(float(np.median(vals)))
        rows[("all lanes", kind)].append(float(np.median(vals)))
    print(f"structure along y, px of a {N}-px crop; per walker the median of its frames "
          f"(face box {args.min_px:g}-{args.max_px:g} px)")
    print(f"{'lane':16s} {'presentation':14s} {'walkers':>7s} {'min':>6s} {'p5':>6s} {'median':>6s} "
          f"{'p95':>6s} {'max':>6s}")
    for (lane, kind), vals in sorted(rows.items()):
        a = np.array(vals)
        p5, med, p95 = np.percentile(a, [5, 50, 95])
        print(f"{lane:16s} {kind:14s} {len(a):7d} {a.min():6.3f} {p5:6.3f} {med:6.3f} {p95:6.3f} "
              f"{a.max():6.3f}")


if __name__ == "__main__":
    main()
