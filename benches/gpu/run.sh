#!/bin/sh
# The engine benchmark on the GPU machine: our WGSL engine (f32, f16) at batch 1/8/32 beside the
# device's buffer-copy bandwidth, then the same graphs in PyTorch on the same GPU from the same
# weights, checked equal to ours, and the table of ours/PyTorch; then gallery matching against the
# copy bandwidth; then the recognition tick for 1/8/32/64 lanes. Results land in $OUT.
# Prepared by benches/gpu/build.sh; the Vulkan loader must be unpacked first (see there).
set -eu
OUT=${OUT:-/tmp/engine-bench}
mkdir -p "$OUT"
if [ -z "$(ldconfig -p | grep libvulkan)" ]; then
    echo "no Vulkan loader: unpack .gl/*.deb first (benches/gpu/build.sh)" >&2
    exit 1
fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
benches/gpu/bin/engine-bench --batches "${BATCHES:-1,8,32}" --iters "${ITERS:-20}" \
    --json "$OUT/ours.json" --export "$OUT/export" --profile >"$OUT/ours.txt" 2>&1 ||
    { cat "$OUT/ours.txt"; exit 1; }
grep -v '^    ' "$OUT/ours.txt"
PYTHONUNBUFFERED=1 python3 benches/gpu/torch_ref.py --export "$OUT/export" --ours "$OUT/ours.json" \
    --batches "${BATCHES:-1,8,32}" --json "$OUT/torch.json"
# Gallery matching: GB/s against the same device's copy bandwidth (issue 5's goal: >= 70 %).
benches/gpu/bin/matching-bench --json "$OUT/matching.json"
# The recognition tick for 1, 8, 32 and 64 lanes: per-stage time and lanes x frames/s.
benches/gpu/bin/tick-bench --lanes "${LANES:-1,8,32,64}" --iters "${ITERS:-20}" --models-dir models
# The profile of the largest batch, for where the time goes.
grep -A14 'profile' "$OUT/ours.txt" | tail -n 45
rm -rf "$OUT/export"
