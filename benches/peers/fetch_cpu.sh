#!/usr/bin/env bash
# The CPU peers of `cargo bench --bench cpu_engine`: onnxruntime and OpenVINO CPU wheels from PyPI,
# pinned, in the peers venv (models/peers/venv, git-ignored; the same one fetch.sh makes). Dev-time
# only: nothing here is used by the station.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${PEERS_DIR:-$root/models/peers}"
mkdir -p "$dest"
py="${PYTHON:-python3}"
[ -x "$dest/venv/bin/python" ] || "$py" -m venv --system-site-packages "$dest/venv"
"$dest/venv/bin/python" -m pip install --quiet \
  numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0 openvino==2026.4.1
echo "peers ready: $dest/venv/bin/python"
