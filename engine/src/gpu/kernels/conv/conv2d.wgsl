// Direct 2-D convolution, NCHW, batched, with grouped/depthwise support and fused bias + activation.
// One invocation per output element: x covers OH*OW, y the output channel, z the image in the batch.
// Used for the convolutions that are not 1x1 (the first 3x3 stride-2 conv, depthwise 3x3, BlazeFace's
// 5x5 depthwise); 1x1 convolutions go through gemm.wgsl.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Conv {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, groups: u32,
    kh: u32, kw: u32, stride_h: u32, stride_w: u32,
    pad_t: u32, pad_l: u32, dil_h: u32, dil_w: u32,
    // 0 none, 1 relu, 2 prelu (per output channel slope)
    act: u32, _p0: u32, _p1: u32, _p2: u32,
};

@group(0) @binding(0) var<uniform> c: Conv;
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read> wt: array<S>;
@group(0) @binding(3) var<storage, read> bias: array<S>;
@group(0) @binding(4) var<storage, read> slope: array<S>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

fn activate(v: f32, oc: u32) -> f32 {
    if (c.act == 1u) {
        return max(v, 0.0);
    }
    if (c.act == 2u) {
        return select(v * f32(slope[oc]), v, v >= 0.0);
    }
    if (c.act == 3u) {
        return 1.0 / (1.0 + exp(-v));
    }
    return v;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x;
    let oc = gid.y;
    let n = gid.z;
    if (p >= c.oh * c.ow || oc >= c.cout || n >= c.n) {
        return;
    }
    let oy = p / c.ow;
    let ox = p % c.ow;
    let cin_g = c.cin / c.groups;
    let cout_g = c.cout / c.groups;
    let g = oc / cout_g;
    var acc = f32(bias[oc]);
    for (var ic = 0u; ic < cin_g; ic++) {
        let in_c = g * cin_g + ic;
        let x_base = (n * c.cin + in_c) * c.h * c.w;
        let w_base = (oc * cin_g + ic) * c.kh * c.kw;
        for (var ky = 0u; ky < c.kh; ky++) {
            // Signed arithmetic: padding makes the first taps fall before row 0.
            let iy = i32(oy * c.stride_h + ky * c.dil_h) - i32(c.pad_t);
            if (iy < 0 || iy >= i32(c.h)) {
                continue;
            }
            for (var kx = 0u; kx < c.kw; kx++) {
                let ix = i32(ox * c.stride_w + kx * c.dil_w) - i32(c.pad_l);
                if (ix < 0 || ix >= i32(c.w)) {
                    continue;
                }
                acc += f32(x[x_base + u32(iy) * c.w + u32(ix)]) * f32(wt[w_base + ky * c.kw + kx]);
            }
        }
    }
    y[(n * c.cout + oc) * c.oh * c.ow + p] = S(activate(acc, oc));
}
