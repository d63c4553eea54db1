// Batched, tiled matrix product with fused bias and activation:
//   C[b][m][n] = act(sum_k A[b][m][k] * B[b][k][n] + bias)
// Every operand is addressed through strides, so one kernel serves 1x1 convolutions (A = weights
// [Cout x Cin] shared by the batch, B = one image [Cin x H*W]) and fully connected layers (A = the
// batch of flattened features, B = the transposed weight matrix).
// 16x64 output tile per workgroup (16x16 invocations, 4 columns each), K consumed in 16-wide
// slices through workgroup memory.
// Split-K (splits > 1): when M·N gives only a handful of tiles and K is long (SFace's 50176 -> 128
// fully connected layer), workgroup z also picks one k_chunk-long slice of K; `main` then writes raw
// partial sums to cm laid out [splits][batch][m][n], and `reduce_k` adds them in a fixed order
// (deterministic) and applies bias and activation.

// Storage element type: f32, or f16 when the host compiles the f16 variant (it rewrites this
// alias and adds `enable f16;`). Arithmetic is f32 either way; loads widen, stores narrow.
alias S = f32;

struct Gemm {
    batch: u32, m: u32, n: u32, k: u32,
    a_b: u32, a_m: u32, a_k: u32, _p0: u32,
    b_b: u32, b_k: u32, b_n: u32, _p1: u32,
    c_b: u32, c_m: u32, c_n: u32, _p2: u32,
    // bias/slope indexed by 0 nothing, 1 row (m), 2 column (n)
    bias_on: u32,
    // 0 none, 1 relu, 2 prelu
    act: u32,
    // number of K slices (1: no split) and their length (a multiple of 16)
    splits: u32, k_chunk: u32,
};

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read> bias: array<S>;
@group(0) @binding(4) var<storage, read> slope: array<S>;
@group(0) @binding(5) var<storage, read_write> cm: array<S>;

const T: u32 = 16u;
// Output columns per invocation: a workgroup covers a 16 x 64 tile, so each pair of barriers is
// amortised over 64 multiply-adds per invocation instead of 16 (barriers are what a CPU Vulkan
// such as lavapipe pays most for). Columns lx, lx+16, lx+32, lx+48 keep loads and stores contiguous
// across a row of invocations. The per-output summation order is unchanged.
const CW: u32 = 4u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
    let bi = wg.z / g.splits;
    let sp = wg.z % g.splits;
    let row = wg.y * T + li.y;
    let col0 = wg.x * T * CW + li.x;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    let k0 = sp * g.k_chunk;
    let k1 = min(g.k, k0 + g.k_chunk);
    let tiles = (k1 - k0 + T - 1u) / T;
    for (var t = 0u; t < tiles; t++) {
        let ka = k0 + t * T + li.x;
        if (row < g.m && ka < k1) {
            ta[li.y][li.x] = f32(a[bi * g.a_b + row * g.a_m + ka * g.a_k]);
        } else {
            ta[li.y][li.x] = 0.0;
        }
        let kb = k0 + t * T + li.y;
        for (var j = 0u; j < CW; j++) {
            let col = col0 + j * T;
            if (col < g.n && kb < k1) {
                tb[li.y][li.x + j * T] = f32(b[bi * g.b_b + kb * g.b_k + col * g.b_n]);
            } else {
                tb[li.y][li.x + j * T] = 0.0;
            }
        }
        workgroupBarrier();
        for (var i = 0u; i < T; i++) {
            let av = ta[li.y][i];
            for (var j = 0u; j < CW; j++) {
                acc[j] += av * tb[i][li.x + j * T];
            }
        }
        workgroupBarrier();
    }
    if (row >= g.m || bi >= g.batch) {
        return;
    }
    for (var j = 0u; j < CW; j++) {
        let col = col0 + j * T;
        if (col >= g.n) {
            break;
        }
        if (g.splits > 1u) {
            cm[((sp * g.batch + bi) * g.m + row) * g.n + col] = S(acc[j]);
        } else {
            cm[bi * g.c_b + row * g.c_m + col * g.c_n] = S(finish(acc[j], row, col));
        }
    }
}

// Bias and activation of one finished dot product.
fn finish(sum: f32, row: u32, col: u32) -> f32 {
    var acc = sum;
    var ch = 0u;
    if (g.bias_on == 1u) {
        ch = row;
    } else if (g.bias_on == 2u) {
        ch = col;
    }
    if (g.bias_on != 0u) {
        acc += f32(bias[ch]);
    }
    if (g.act == 1u) {
        acc = max(acc, 0.0);
    } else if (g.act == 2u) {
        acc = select(acc * f32(slope[ch]), acc, acc >= 0.0);
    } else if (g.act == 3u) {
        acc = 1.0 / (1.0 + exp(-acc));
    }
    return acc;
}

// Split-K second pass: `a` holds the partial sums [splits][batch][m][n].
@compute @workgroup_size(64)
fn reduce_k(@builtin(global_invocation_id) gid: vec3<u32>) {
    let total = g.batch * g.m * g.n;
    let i = gid.x;
    if (i >= total) {
        return;
    }
    let col = i % g.n;
    let row = (i / g.n) % g.m;
    let bi = i / (g.m * g.n);
    var acc = 0.0;
    for (var s = 0u; s < g.splits; s++) {
        acc += f32(a[s * total + i]);
    }
    cm[bi * g.c_b + row * g.c_m + col * g.c_n] = S(finish(acc, row, col));
}

// The same product for CPU adapters (lavapipe): no workgroup memory and no barriers, which a
// CPU Vulkan runs as coroutine switches per SIMD group, and a 4x4 register block per invocation
// (rows li.y + 16i, columns li.x + 16j of a 64x64 workgroup tile) so every value loaded is used
// four times. Out-of-range rows/columns load a clamped in-range element and are not stored.
// Measured on lavapipe: SFace's 1x1 convolutions and fully connected layer (docs/engine.md).
@compute @workgroup_size(16, 16)
fn main_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
    let bi = wg.z / g.splits;
    let sp = wg.z % g.splits;
    let row0 = wg.y * 4u * T + li.y;
    let col0 = wg.x * T * CW + li.x;
    if (row0 >= g.m || col0 >= g.n || bi >= g.batch) {
        return;
    }
    var r: array<u32, 4>;
    var c: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        r[i] = min(row0 + i * T, g.m - 1u);
        c[i] = min(col0 + i * T, g.n - 1u);
    }
    let ab = bi * g.a_b;
    let bb = bi * g.b_b;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k0 = sp * g.k_chunk;
    let k1 = min(g.k, k0 + g.k_chunk);
    for (var k = k0; k < k1; k++) {
        let ak = ab + k * g.a_k;
        let bk = bb + k * g.b_k;
        let bv = vec4<f32>(
            f32(b[bk + c[0] * g.b_n]),
            f32(b[bk + c[1] * g.b_n]),
            f32(b[bk + c[2] * g.b_n]),
            f32(b[bk + c[3] * g.b_n]),
        );
        acc0 += f32(a[ak + r[0] * g.a_m]) * bv;
        acc1 += f32(a[ak + r[1] * g.a_m]) * bv;
        acc2 += f32(a[ak + r[2] * g.a_m]) * bv;
        acc3 += f32(a[ak + r[3] * g.a_m]) * bv;
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i * T;
        if (row >= g.m) {
            break;
        }
        for (var j = 0u; j < CW; j++) {
            let col = col0 + j * T;
            if (col >= g.n) {
                break;
            }
            if (g.splits > 1u) {
                cm[((sp * g.batch + bi) * g.m + row) * g.n + col] = S(accs[i][j]);
            } else {
                cm[bi * g.c_b + row * g.c_m + col * g.c_n] = S(finish(accs[i][j], row, col));
            }
        }
    }
}
