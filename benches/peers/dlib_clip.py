#!/usr/bin/env python3
"""dlib HOG faces per frame of a clip (animated GIF, or a folder of PNG/JPEG frames in name order): the
second opinion `gate-calibrate detect --clip FILE --reference CSV` compares BlazeFace with.

CSV on stdout (or -o): header frame,left,top,right,bottom; one row per face, frames numbered from 0
in the same order as gate-calibrate reads them (GIF frames composited onto the full canvas). A summary
goes to stderr. HOG finds frontal faces of about 80/2^upsample px and larger.
"""

import argparse
import csv
import os
import sys

import dlib
import numpy as np
from PIL import Image, ImageSequence

import common


def frames(clip):
    if os.path.isdir(clip):
        names = sorted(n for n in os.listdir(clip) if n.lower().endswith((".png", ".jpg", ".jpeg")))
        for n in names:
            yield common.load_rgb(os.path.join(clip, n))
        return
    if not os.path.isfile(clip):
        common.die(f"{clip}: not found")
    with Image.open(clip) as im:
        for f in ImageSequence.Iterator(im):
            yield np.ascontiguousarray(np.asarray(f.convert("RGB")))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--upsample", type=int, default=2)
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    det = dlib.get_frontal_face_detector()
    out = open(a.out, "w", newline="") if a.out else sys.stdout
    w = csv.writer(out)
    w.writerow(["frame", "left", "top", "right", "bottom"])
    n = with_face = faces = 0
    for i, img in enumerate(frames(a.clip)):
        rects = det(img, a.upsample)
        n += 1
        with_face += bool(len(rects))
        faces += len(rects)
        for r in rects:
            w.writerow([i, r.left(), r.top(), r.right(), r.bottom()])
    if a.out:
        out.close()
    print(f"{a.clip}: {n} frames, a face in {with_face}, {faces} faces", file=sys.stderr)


if __name__ == "__main__":
    main()
