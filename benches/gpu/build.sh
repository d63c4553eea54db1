#!/bin/sh
# Prepares the engine benchmark for the GPU machine (no registries, no GStreamer there): builds the
# benchmark without the capture feature, copies it to benches/gpu/bin/ (git-ignored) and fetches the
# Vulkan loader debs into .gl/ (git-ignored), as /work/.library/device/README.md describes.
# Then run on the device, carrying benches/gpu/bin, .gl and models:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; sh benches/gpu/run.sh
set -eu
cd "$(dirname "$0")/../.."
mkdir -p benches/gpu/bin
for bench in engine matching tick; do
    exe=$(cargo bench -p gate-benches --bench $bench --no-default-features --no-run \
        --message-format=json 2>/dev/null | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [ -n "$exe" ] || { echo "build of $bench failed: run cargo bench -p gate-benches --bench $bench --no-run" >&2; exit 1; }
    if ldd "$exe" | grep -q gstreamer; then
        echo "$exe links GStreamer; the GPU machine has none" >&2
        exit 1
    fi
    cp "$exe" benches/gpu/bin/$bench-bench
done
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>.git/info/exclude
grep -qx '/benches/gpu/bin/' .git/info/exclude 2>/dev/null || echo /benches/gpu/bin/ >>.git/info/exclude
if [ ! -d .gl ] || [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update >/dev/null
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
echo "ready: $(du -ch benches/gpu/bin/* | tail -n 1 | cut -f1) in benches/gpu/bin/, .gl/"
