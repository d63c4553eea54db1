// y = x * scale[c] + shift[c] over an NCHW tensor (c = channel), or one scale/shift for everything.
// What a model's input normalisation and unfoldable BatchNorms become after the load-time passes.
// Same binding layout as conv2d.wgsl/gemm.wgsl so one host path serves all three.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Affine {
    total: u32,
    hw: u32,
    channels: u32,
    // 1: scale[0]/shift[0] apply to every element
    scalar: u32,
};

@group(0) @binding(0) var<uniform> a: Affine;
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read> scale: array<S>;
@group(0) @binding(3) var<storage, read> shift: array<S>;
@group(0) @binding(4) var<storage, read> unused: array<S>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // 2-D grid: large tensors exceed the 65535-workgroup limit of one dimension.
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= a.total) {
        return;
    }
    var c = 0u;
    if (a.scalar == 0u) {
        c = (i / a.hw) % a.channels;
    }
    y[i] = S(f32(x[i]) * f32(scale[c]) + f32(shift[c]));
}
