// Batched, tiled matrix product with fused bias and activation:
//   C[b][m][n] = act(sum_k A[b][m][k] * B[b][k][n] + bias)
// Every operand is addressed through strides, so one kernel serves 1x1 convolutions (A = weights
// [Cout x Cin] shared by the batch, B = one image [Cin x H*W]) and fully connected layers (A = the
// batch of flattened features, B = the transposed weight matrix).
// 16x16 output tile per workgroup, K consumed in 16-wide slices through workgroup memory.

struct Gemm {
    batch: u32, m: u32, n: u32, k: u32,
    a_b: u32, a_m: u32, a_k: u32, _p0: u32,
    b_b: u32, b_k: u32, b_n: u32, _p1: u32,
    c_b: u32, c_m: u32, c_n: u32, _p2: u32,
    // bias/slope indexed by 0 nothing, 1 row (m), 2 column (n)
    bias_on: u32,
    // 0 none, 1 relu, 2 prelu
    act: u32, _p3: u32, _p4: u32,
};

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> slope: array<f32>;
@group(0) @binding(5) var<storage, read_write> cm: array<f32>;

const T: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
    let bi = wg.z;
    let row = wg.y * T + li.y;
    let col = wg.x * T + li.x;
    var acc = 0.0;
    let tiles = (g.k + T - 1u) / T;
    for (var t = 0u; t < tiles; t++) {
        let ka = t * T + li.x;
        if (row < g.m && ka < g.k) {
            ta[li.y][li.x] = a[bi * g.a_b + row * g.a_m + ka * g.a_k];
        } else {
            ta[li.y][li.x] = 0.0;
        }
        let kb = t * T + li.y;
        if (col < g.n && kb < g.k) {
            tb[li.y][li.x] = b[bi * g.b_b + kb * g.b_k + col * g.b_n];
        } else {
            tb[li.y][li.x] = 0.0;
        }
        workgroupBarrier();
        for (var i = 0u; i < T; i++) {
            acc += ta[li.y][i] * tb[i][li.x];
        }
        workgroupBarrier();
    }
    if (row >= g.m || col >= g.n || bi >= g.batch) {
        return;
    }
    var ch = 0u;
    if (g.bias_on == 1u) {
        ch = row;
    } else if (g.bias_on == 2u) {
        ch = col;
    }
    if (g.bias_on != 0u) {
        acc += bias[ch];
    }
    if (g.act == 1u) {
        acc = max(acc, 0.0);
    } else if (g.act == 2u) {
        acc = select(acc * slope[ch], acc, acc >= 0.0);
    }
    cm[bi * g.c_b + row * g.c_m + col * g.c_n] = acc;
}
