// MaxPool / AveragePool / GlobalAveragePool over NCHW planes, with padding, dilation and the
// two AveragePool divisors (count_include_pad counts the taps inside the padded extent, as the CPU
// reference does). One invocation per output element: x covers OH*OW, y the plane (n*C + c).
// Padding never contributes a value: MaxPool ignores it, AveragePool treats it as absent.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Pool {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, stride_h: u32,
    stride_w: u32, pad_t: u32, pad_l: u32, pad_b: u32,
    pad_r: u32, dil_h: u32, dil_w: u32,
    // 0 max, 1 average over real taps, 2 average over taps inside the padded extent
    mode: u32,
};

@group(0) @binding(0) var<uniform> p: Pool;
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read> unused0: array<S>;
@group(0) @binding(3) var<storage, read> unused1: array<S>;
@group(0) @binding(4) var<storage, read> unused2: array<S>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let o = gid.x;
    // Planes beyond the 65535 grid limit wrap into z.
    let plane = gid.y + gid.z * nw.y;
    if (o >= p.oh * p.ow || plane >= p.planes) {
        return;
    }
    let oy = o / p.ow;
    let ox = o % p.ow;
    let base = plane * p.h * p.w;
    // -inf: what the CPU reference gives for a window entirely in the padding.
    var mx = bitcast<f32>(0xff800000u);
    var sum = 0.0;
    var real = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.stride_h + ky * p.dil_h) - i32(p.pad_t);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.stride_w + kx * p.dil_w) - i32(p.pad_l);
            if (iy < i32(p.h + p.pad_b) && ix < i32(p.w + p.pad_r)) {
                padded += 1u;
            }
            if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
                continue;
            }
            let v = f32(x[base + u32(iy) * p.w + u32(ix)]);
            mx = max(mx, v);
            sum += v;
            real += 1u;
        }
    }
    var v = mx;
    if (p.mode != 0u) {
        let count = select(real, padded, p.mode == 2u);
        v = select(sum / f32(count), 0.0, count == 0u);
    }
    y[plane * p.oh * p.ow + o] = S(v);
}
