// Resize of the H and W axes of an NCHW tensor (ONNX Resize, nearest or linear). The host computes
// every output row's and column's source taps exactly as the CPU reference does (coordinate mode,
// nearest rounding, clamping) and uploads them: per tap (low index, high index, weight of high as
// f32 bits), output rows first, then output columns. Nearest is a tap with low == high and weight
// 0, so one blend serves both modes. Same binding layout as the other model kernels; the taps are
// u32 whatever the storage precision.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Resize {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, _p0: u32, _p1: u32, _p2: u32,
};

@group(0) @binding(0) var<uniform> r: Resize;
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read> taps: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 256u;
    let per_plane = r.oh * r.ow;
    if (i >= r.planes * per_plane) {
        return;
    }
    let p = i / per_plane;
    let oy = (i % per_plane) / r.ow;
    let ox = i % r.ow;
    let ty = oy * 3u;
    let tx = (r.oh + ox) * 3u;
    let y0 = taps[ty];
    let y1 = taps[ty + 1u];
    let fy = bitcast<f32>(taps[ty + 2u]);
    let x0 = taps[tx];
    let x1 = taps[tx + 1u];
    let fx = bitcast<f32>(taps[tx + 2u]);
    let base = p * r.h * r.w;
    let top = f32(x[base + y0 * r.w + x0]) * (1.0 - fx) + f32(x[base + y0 * r.w + x1]) * fx;
    let bottom = f32(x[base + y1 * r.w + x0]) * (1.0 - fx) + f32(x[base + y1 * r.w + x1]) * fx;
    y[i] = S(top * (1.0 - fy) + bottom * fy);
}
