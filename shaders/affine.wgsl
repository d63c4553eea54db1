// y = x * scale[c] + shift[c] over an NCHW tensor (c = channel), or one scale/shift for everything.
// What a model's input normalisation and unfoldable BatchNorms become after the load-time passes.
// Same binding layout as conv2d.wgsl/gemm.wgsl so one host path serves all three.

struct Affine {
    total: u32,
    hw: u32,
    channels: u32,
    // 1: scale[0]/shift[0] apply to every element
    scalar: u32,
};

@group(0) @binding(0) var<uniform> a: Affine;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read> unused: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

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
    y[i] = x[i] * scale[c] + shift[c];
}
