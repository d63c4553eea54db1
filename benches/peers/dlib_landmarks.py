#!/usr/bin/env python3
"""Reference landmarks by dlib for every photo of a labelled set (labels.csv), as CSV on stdout or -o.

Detection: dlib's HOG frontal detector (upsampled once for photos under 640 px), on the photo and, when
it finds nothing (tightly cropped sets), on the photo with a black border of --pad of its larger side.
The largest face is kept. Both the 5-point and the 68-point shape predictor run on that box.

Columns (all coordinates in pixels of the ORIGINAL photo, pixel centres as in OpenCV/dlib; empty when
no face was found):
  path            as in labels.csv (relative to the set folder)
  how             hog | hog_pad | none
  left,top,right,bottom   dlib's box
  re_x,re_y,le_x,le_y,nose_x,nose_y,mr_x,mr_y,ml_x,ml_y
                  ArcFace 5-point order from the 68-point model: person's right eye centre (mean of
                  points 36-41), left eye centre (42-47), nose tip (30), right mouth corner (48), left
                  mouth corner (54). "Right" = the person's right = image left.
  d5_0_x ... d5_4_y
                  the 5-point model's raw output in dlib's order: 0/1 outer/inner corner of the
                  person's LEFT eye (image right), 2/3 outer/inner corner of the person's RIGHT eye,
                  4 nose base (subnasale). Eye centres = mean of each pair.
"""

import argparse
import csv
import os
import sys
import time

import dlib

import common


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, help="folder with labels.csv")
    ap.add_argument("--per-identity", type=int, default=0, help="at most N photos per identity")
    ap.add_argument("--pad", type=float, default=0.25, help="border for the second detection try")
    ap.add_argument("-o", "--out", help="CSV file (default stdout)")
    a = ap.parse_args()

    rows = common.per_identity(common.read_labels(a.set), a.per_identity)
    det = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(common.model("shape_predictor_5_face_landmarks.dat"))
    sp68 = dlib.shape_predictor(common.model("shape_predictor_68_face_landmarks.dat"))
    out = open(a.out, "w", newline="") if a.out else sys.stdout
    w = csv.writer(out)
    names = ["re", "le", "nose", "mr", "ml"]
    w.writerow(
        ["path", "how", "left", "top", "right", "bottom"]
        + [f"{n}_{c}" for n in names for c in "xy"]
        + [f"d5_{i}_{c}" for i in range(5) for c in "xy"]
    )
    t0, found = time.time(), 0
    for rel, _ in rows:
        img = common.load_rgb(os.path.join(a.set, rel))
        r, how, b, im = common.detect_largest(det, img, a.pad)
        if r is None:
            w.writerow([rel, how] + [""] * 24)
            continue
        found += 1
        p5 = common.arcface5_from_68(sp68(im, r)) - b
        d5 = common.dlib5(sp5(im, r)) - b
        box = [r.left() - b, r.top() - b, r.right() - b, r.bottom() - b]
        w.writerow([rel, how] + box + [f"{v:.2f}" for v in p5.ravel()] + [f"{v:.2f}" for v in d5.ravel()])
    if a.out:
        out.close()
    print(
        f"{a.set}: {found}/{len(rows)} faces ({time.time() - t0:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
