// What the station needs of each embedded face, computed where SFace left it so that neither the
// embedding nor the chip comes back to the CPU. Host code, layout and tolerances: probe/mod.rs and
// probe/tests.rs beside this file.
//
// - `unit`: one workgroup per face. SFace's raw 128-D output → the unit probe that matching reads
//   (`gallery::normalise`, the CPU reference): all 128 values finite and not all zero, else the
//   probe is zeros and marked invalid. The norm is taken of the vector scaled by its largest
//   magnitude, so no finite input overflows or underflows f32 (the reference sums in f64).
// - `quality`: one workgroup per face. Over the chip's face region (`face::quality::FACE`, chip
//   x 24..88, y 36..104; every pixel interior, so the 4-neighbour Laplacian needs no clamping):
//   the mean BT.601 luma and the variance of the Laplacian of the luma (`face::quality::measure`'s
//   `luma_mean` and `sharpness`). The variance is taken about the mean in a second pass, which in
//   f32 keeps what the reference's f64 `E[L²] − E[L]²` keeps.
//
// Per face the host reads one vec4<u32> of `results`: (valid, bits of sharpness, bits of luma, 0).

const DIM: u32 = 128u;
const CHIP: u32 = 112u;
const PLANE: u32 = 12544u;       // CHIP · CHIP
const CHIP_LEN: u32 = 37632u;    // 3 · PLANE
const X0: u32 = 24u;
const Y0: u32 = 36u;
const RW: u32 = 64u;             // face region width (24..88)
const RH: u32 = 68u;             // face region height (36..104)
const QW: u32 = 256u;

struct Params {
    faces: u32,
    _p0: u32, _p1: u32, _p2: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> raw: array<f32>;
@group(0) @binding(2) var<storage, read> chips: array<f32>;
@group(0) @binding(3) var<storage, read_write> unit_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> results: array<vec4<u32>>;

var<workgroup> red: array<f32, QW>;

fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Sum (or max, `use_max`) of red[0..n] into red[0]; every invocation must call it.
fn reduce(li: u32, n: u32, use_max: bool) {
    for (var step = n / 2u; step > 0u; step = step / 2u) {
        if (li < step) {
            if (use_max) {
                red[li] = max(red[li], red[li + step]);
            } else {
                red[li] = red[li] + red[li + step];
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(128)
fn unit(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let f = wg.x;
    if (f >= p.faces) {
        return; // uniform per workgroup: no barrier is skipped by half a group
    }
    let x = raw[f * DIM + li];
    // Non-finite values count as NaN magnitudes: the max below turns them into a flag.
    let ok = finite(x);
    red[li] = select(1.0, 0.0, ok);
    workgroupBarrier();
    reduce(li, DIM, true);
    let bad = red[0] > 0.0;
    workgroupBarrier();
    red[li] = select(abs(x), 0.0, !ok);
    workgroupBarrier();
    reduce(li, DIM, true);
    let m = red[0];
    workgroupBarrier();
    let s = select(x / m, 0.0, bad || m == 0.0);
    red[li] = s * s;
    workgroupBarrier();
    reduce(li, DIM, false);
    let norm = sqrt(red[0]);
    let valid = !bad && m > 0.0;
    unit_out[f * DIM + li] = select(0.0, s / norm, valid);
    if (li == 0u) {
        results[f].x = select(0u, 1u, valid);
    }
}

fn luma(at: u32) -> f32 {
    return 0.299 * chips[at] + 0.587 * chips[PLANE + at] + 0.114 * chips[2u * PLANE + at];
}

@compute @workgroup_size(256)
fn quality(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let f = wg.x;
    if (f >= p.faces) {
        return;
    }
    let base = f * CHIP_LEN;
    let n = RW * RH;
    var sum_y = 0.0;
    var sum_l = 0.0;
    for (var i = li; i < n; i += QW) {
        let at = base + (Y0 + i / RW) * CHIP + X0 + i % RW;
        let c = luma(at);
        sum_y += c;
        sum_l += luma(at - 1u) + luma(at + 1u) + luma(at - CHIP) + luma(at + CHIP) - 4.0 * c;
    }
    red[li] = sum_y;
    workgroupBarrier();
    reduce(li, QW, false);
    let mean_y = red[0] / f32(n);
    workgroupBarrier();
    red[li] = sum_l;
    workgroupBarrier();
    reduce(li, QW, false);
    let mean_l = red[0] / f32(n);
    workgroupBarrier();
    var dev = 0.0;
    for (var i = li; i < n; i += QW) {
        let at = base + (Y0 + i / RW) * CHIP + X0 + i % RW;
        let l = luma(at - 1u) + luma(at + 1u) + luma(at - CHIP) + luma(at + CHIP) - 4.0 * luma(at);
        dev += (l - mean_l) * (l - mean_l);
    }
    red[li] = dev;
    workgroupBarrier();
    reduce(li, QW, false);
    if (li == 0u) {
        results[f].y = bitcast<u32>(red[0] / f32(n));
        results[f].z = bitcast<u32>(mean_y);
    }
}
