// Element-wise ops with numpy broadcasting and a fused activation:
//   y = act(a <op> b)   (Add, Sub, Mul, Div), y = act(a) (standalone activations),
//   y = a >= 0 ? a : a * b (standalone PRelu with a broadcast slope).
// BlazeFace's residual `Relu(Add(a, b))` runs as one dispatch of this kernel.
// Operands are addressed through per-output-axis strides (0 along a broadcast axis), rank <= 8;
// `same` skips the index arithmetic when a, b and y share one shape (the residual case).
// Same binding layout as conv2d.wgsl: a in binding 1, b in binding 2, 3 and 4 unused.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Elt {
    total: u32, rank: u32,
    // 0 add, 1 sub, 2 mul, 3 div, 4 unary (y = act(a)), 5 prelu (slope b)
    op: u32,
    // 0 none, 1 relu, 2 leaky relu (p0 = alpha), 3 clip (p0 = min, p1 = max), 4 sigmoid
    act: u32,
    p0: f32, p1: f32, same: u32, _p: u32,
    dims: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
};

@group(0) @binding(0) var<uniform> e: Elt;
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read> unused0: array<S>;
@group(0) @binding(4) var<storage, read> unused1: array<S>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

fn activate(v: f32) -> f32 {
    switch e.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return select(v * e.p0, v, v >= 0.0); }
        case 3u: { return min(max(v, e.p0), e.p1); }
        case 4u: { return 1.0 / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // 2-D grid: large tensors exceed the 65535-workgroup limit of one dimension.
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= e.total) {
        return;
    }
    var ia = i;
    var ib = i;
    if (e.same == 0u) {
        ia = 0u;
        ib = 0u;
        var rest = i;
        // Innermost axis first: peel one output coordinate per step.
        for (var d = i32(e.rank) - 1; d >= 0; d--) {
            let du = u32(d);
            let len = e.dims[du / 4u][du % 4u];
            let coord = rest % len;
            rest = rest / len;
            ia += coord * e.sa[du / 4u][du % 4u];
            ib += coord * e.sb[du / 4u][du % 4u];
        }
    }
    let va = f32(a[ia]);
    var v = va;
    switch e.op {
        case 0u: { v = va + f32(b[ib]); }
        case 1u: { v = va - f32(b[ib]); }
        case 2u: { v = va * f32(b[ib]); }
        case 3u: { v = va / f32(b[ib]); }
        case 5u: { v = select(va * f32(b[ib]), va, va >= 0.0); }
        default: {}
    }
    y[i] = S(activate(v));
}
