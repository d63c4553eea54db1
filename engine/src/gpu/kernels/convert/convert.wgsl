// Element type conversion between the f32 world outside a model (graph inputs written by the host
// or the resampling kernels, outputs read back) and the f16 activations inside it when the engine
// runs in f16 storage. The host compiles two variants of this file: `narrow` (In = f32, Out = f16,
// as written here) and `widen` (the aliases swapped). Same binding layout as the model kernels;
// bindings 2 to 4 are not declared, the pipeline layout still has them.

enable f16;

alias In = f32;
alias Out = f16;

struct Convert {
    total: u32, _p0: u32, _p1: u32, _p2: u32,
};

@group(0) @binding(0) var<uniform> c: Convert;
@group(0) @binding(1) var<storage, read> x: array<In>;
@group(0) @binding(5) var<storage, read_write> y: array<Out>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= c.total) {
        return;
    }
    // f16 saturates to ±inf above 65504; the model tests bound the values that occur.
    y[i] = Out(x[i]);
}
