"""Shared helpers of the dlib peer scripts: labels.csv reading, image loading, dlib models, the
68 → ArcFace-5 landmark conversion. See README.md in this folder for formats and conventions."""

import csv
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEERS = os.environ.get("PEERS_DIR", os.path.join(ROOT, "models", "peers"))


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def read_labels(set_dir):
    """[(relative path, identity)] from <set>/labels.csv (header path,identity)."""
    path = os.path.join(set_dir, "labels.csv")
    if not os.path.isfile(path):
        die(f"{path}: not found")
    out = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if n == 1:
                continue
            if len(row) < 2 or not row[0].strip():
                die(f"{path}:{n}: expected path,identity")
            out.append((row[0].strip(), row[1].strip()))
    return out


def per_identity(rows, k):
    """At most k photos per identity, first by path (the same choice as gate-calibrate eval)."""
    if not k:
        return sorted(rows)
    seen, out = {}, []
    for p, i in sorted(rows):
        seen[i] = seen.get(i, 0) + 1
        if seen[i] <= k:
            out.append((p, i))
    return out


def load_rgb(path):
    """RGB8 HxWx3 array; the format is sniffed from the content (Yale files have no extension)."""
    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")


def model(name):
    path = os.path.join(PEERS, name)
    if not os.path.isfile(path):
        die(f"{path}: not found (run benches/peers/fetch.sh)")
    return path


def pad_image(img, frac):
    """Black border of frac * max(h, w) on every side; returns (padded, border)."""
    b = int(max(img.shape[:2]) * frac)
    if b == 0:
        return img, 0
    out = np.zeros((img.shape[0] + 2 * b, img.shape[1] + 2 * b, 3), np.uint8)
    out[b : b + img.shape[0], b : b + img.shape[1]] = img
    return out, b


def detect_largest(detector, img, pad):
    """dlib HOG on the photo, then (tightly cropped sets) on the photo with a black border.
    Small photos are upsampled once (HOG's window is 80 px). Returns (rect, how, border) of the
    largest face, rect in the coordinates of the image it was found in; (None, "none", 0) if none."""
    up = 1 if max(img.shape[:2]) < 640 else 0
    for how, frac in (("hog", 0.0), ("hog_pad", pad)):
        im, b = pad_image(img, frac)
        rects = detector(im, up)
        if len(rects):
            r = max(rects, key=lambda r: r.width() * r.height())
            return r, how, b, im
        if frac == 0.0 and pad == 0.0:
            break
    return None, "none", 0, img


def arcface5_from_68(shape):
    """ArcFace 5-point order (person's right eye, left eye, nose tip, right and left mouth corner; the
    person's right is the image's left) from dlib's 68 points: eye centres = mean of the 6 contour
    points (36-41, 42-47), nose tip = 30, mouth corners = 48, 54. Coordinates: pixel centres."""
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
    return np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def dlib5(shape):
    """dlib's 5-point predictor order: 0 person's-left eye outer corner (image right), 1 its inner
    corner, 2 person's-right eye outer corner (image left), 3 its inner corner, 4 nose base
    (subnasale, = 68-point index 33)."""
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
