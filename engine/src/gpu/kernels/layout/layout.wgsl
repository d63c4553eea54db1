// Strided copy: Transpose, Pad (constant, reflect or edge) and each input of a Concat.
// One invocation per element of an iteration domain (rank <= 8). For domain coordinate c:
//   dst = dst_off + sum c[d] * dst_stride[d]
//   s[d] = c[d] - before[d]; any s[d] outside 0..src_len[d] -> y[dst] = fill (constant), or s[d]
//   mirrored (reflect, edge not repeated) or clamped (edge) into the source;
//   else y[dst] = x[sum s[d] * src_stride[d]].
// Transpose: domain = output shape, src_stride = input strides permuted. Pad: domain = output
// shape, before = leading pads. Concat: domain = one input's shape, dst_off = its offset along the
// axis, dst_stride = the output's strides (so several dispatches fill one output).
// Same binding layout as conv2d.wgsl: x in binding 1, 2 to 4 unused.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Layout {
    total: u32, rank: u32, dst_off: u32, fill: f32,
    dims: array<vec4<u32>, 2>,
    dst_stride: array<vec4<u32>, 2>,
    before: array<vec4<u32>, 2>,
    src_len: array<vec4<u32>, 2>,
    src_stride: array<vec4<u32>, 2>,
    // x: 0 outside reads fill, 1 reflect, 2 edge (ONNX Pad modes)
    outside: vec4<u32>,
};

@group(0) @binding(0) var<uniform> l: Layout;
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read> unused0: array<S>;
@group(0) @binding(3) var<storage, read> unused1: array<S>;
@group(0) @binding(4) var<storage, read> unused2: array<S>;
@group(0) @binding(5) var<storage, read_write> y: array<S>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= l.total) {
        return;
    }
    var rest = i;
    var dst = l.dst_off;
    var src = 0u;
    var inside = true;
    for (var d = i32(l.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let len = l.dims[q][r];
        let c = rest % len;
        rest = rest / len;
        dst += c * l.dst_stride[q][r];
        // Unsigned compare after the subtraction also catches c < before (it wraps around).
        let len_s = l.src_len[q][r];
        var s = c - l.before[q][r];
        if (c < l.before[q][r] || s >= len_s) {
            // Signed distance from the source's start (negative before it).
            let si = i32(c) - i32(l.before[q][r]);
            let last = i32(len_s) - 1;
            if (l.outside.x == 1u) {
                // Reflect without repeating the edge; the host keeps pads < len.
                var m = abs(si);
                if (m > last) {
                    m = 2 * last - m;
                }
                s = u32(clamp(m, 0, last));
            } else if (l.outside.x == 2u) {
                s = u32(clamp(si, 0, last));
            } else {
                inside = false;
            }
        }
        if (inside) {
            src += s * l.src_stride[q][r];
        }
    }
    if (inside) {
        y[dst] = x[src];
    } else {
        y[dst] = S(l.fill);
    }
}
