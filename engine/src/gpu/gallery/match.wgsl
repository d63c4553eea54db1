// Gallery matching: for P probes (unit vectors, f32) against N gallery rows (unit templates, one row
// per subject), the best and second-best row per probe by cosine similarity (= dot product), ties
// broken by the lower row index, rows whose subject is not in the candidate mask skipped. Host code
// and the layout rules: engine/src/gpu/gallery.rs; design and numbers: docs/engine.md ("Gallery
// and matching").
//
// Gallery layout (one storage buffer per page): rows in blocks of 32; within a block, vec4 k
// (k = 0..31, the 128-D row as 32 vec4) of the block's row `lane` is at `block·1024 + k·32 + lane`.
// Lane i of a 32-wide group reads row i of a block, so each of the group's loads is one contiguous
// 512-byte (f32) or 256-byte (f16) segment: the gallery is streamed exactly once per probe group,
// coalesced, without workgroup memory or barriers (cheap on CPU adapters, where barriers are not).
//
// Two passes:
// - `scan` (one dispatch per page): each invocation walks every `groups`-th block of its page, keeps
//   a top-2 per probe of its probe group in registers and writes it to `partial`, column `t` of the
//   probe's row (`t` unique over all pages). Probes are read straight from storage (every lane reads
//   the same address: a broadcast).
// - `reduce`: one workgroup per probe merges that probe's columns (each invocation a strided subset,
//   then a fixed tree in workgroup memory). The order of merging does not matter for the result: the
//   ranking (similarity descending, row ascending) is a total order over distinct rows.
//
// The host compiles this file with `PB` (probes per invocation: 1, 2, 4 or 8) rewritten, and for
// f16 storage the `gallery` binding and `load` below replaced by their f16 versions (the same vec4
// as two u32 of packed f16 pairs, widened with unpack2x16float: no shader-f16 feature is needed;
// arithmetic stays f32).

const PB: u32 = 8u;

const BLOCK: u32 = 32u;      // rows per interleaved block = lanes per group
const K4: u32 = 32u;         // vec4 per 128-D row
const NONE: u32 = 0xffffffffu;
const LOWEST: f32 = -3.4028235e38;

struct Scan {
    rows: u32,          // rows in this page
    row_base: u32,      // gallery row of the page's first row
    groups: u32,        // 32-lane groups scanning this page
    thread_base: u32,   // first `partial` column of this page
    threads: u32,       // `partial` columns per probe, all pages together
    probes: u32,        // P
    probe_groups: u32,  // ceil(P / PB)
    mask_on: u32,       // 1: skip rows whose subject's bit is clear
    mask_words: u32,    // u32 words in `mask`; subjects past it are not candidates
    _p0: u32, _p1: u32, _p2: u32,
};

@group(0) @binding(0) var<uniform> c: Scan;
@group(0) @binding(1) var<storage, read> gallery: array<vec4<f32>>;
fn load(i: u32) -> vec4<f32> { return gallery[i]; }
@group(0) @binding(2) var<storage, read> subjects: array<u32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read> probes: array<vec4<f32>>;
// Per probe and column: (best row, second row, bits of best similarity, bits of second).
@group(0) @binding(5) var<storage, read_write> partial: array<vec4<u32>>;

// Whether (s, r) ranks above (s0, r0): a real row beats none, then higher similarity, then lower
// row. A NaN similarity never ranks above anything (the host refuses non-finite inputs anyway).
fn better(s: f32, r: u32, s0: f32, r0: u32) -> bool {
    return r != NONE && (r0 == NONE || s > s0 || (s == s0 && r < r0));
}

// (s, r) into the top-2 `t` = (row 1, row 2, bits 1, bits 2).
fn insert(t: vec4<u32>, s: f32, r: u32) -> vec4<u32> {
    let s1 = bitcast<f32>(t.z);
    let s2 = bitcast<f32>(t.w);
    if (better(s, r, s1, t.x)) {
        return vec4<u32>(r, t.x, bitcast<u32>(s), t.z);
    }
    if (better(s, r, s2, t.y)) {
        return vec4<u32>(t.x, r, t.z, bitcast<u32>(s));
    }
    return t;
}

fn merge(a: vec4<u32>, b: vec4<u32>) -> vec4<u32> {
    return insert(insert(a, bitcast<f32>(b.z), b.x), bitcast<f32>(b.w), b.y);
}

fn empty() -> vec4<u32> {
    return vec4<u32>(NONE, NONE, bitcast<u32>(LOWEST), bitcast<u32>(LOWEST));
}

@compute @workgroup_size(64)
fn scan(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Probe groups vary fastest, so the workgroups that read the same blocks run together and the
    // second and later probe groups find the blocks in cache.
    let pg = wg.x % c.probe_groups;
    let group = (wg.x / c.probe_groups) * 2u + li / BLOCK;
    let lane = li % BLOCK;
    if (group >= c.groups) {
        return;
    }
    let p0 = pg * PB;
    var s1: array<f32, PB>;
    var s2: array<f32, PB>;
    var r1: array<u32, PB>;
    var r2: array<u32, PB>;
    for (var j = 0u; j < PB; j++) {
        s1[j] = LOWEST;
        s2[j] = LOWEST;
        r1[j] = NONE;
        r2[j] = NONE;
    }
    // Probes past P (when P is not a multiple of PB) repeat the last one; never written out.
    var pj: array<u32, PB>;
    for (var j = 0u; j < PB; j++) {
        pj[j] = min(p0 + j, c.probes - 1u) * K4;
    }
    let blocks = (c.rows + BLOCK - 1u) / BLOCK;
    for (var b = group; b < blocks; b += c.groups) {
        let local = b * BLOCK + lane;
        if (local >= c.rows) {
            continue;
        }
        let row = c.row_base + local;
        if (c.mask_on != 0u) {
            let subject = subjects[row];
            let w = subject / 32u;
            if (w >= c.mask_words || ((mask[w] >> (subject % 32u)) & 1u) == 0u) {
                continue;
            }
        }
        var acc: array<f32, PB>;
        let base = b * BLOCK * K4 + lane;
        for (var k = 0u; k < K4; k++) {
            let g = load(base + k * BLOCK);
            for (var j = 0u; j < PB; j++) {
                acc[j] += dot(g, probes[pj[j] + k]);
            }
        }
        for (var j = 0u; j < PB; j++) {
            let s = acc[j];
            if (better(s, row, s1[j], r1[j])) {
                s2[j] = s1[j];
                r2[j] = r1[j];
                s1[j] = s;
                r1[j] = row;
            } else if (better(s, row, s2[j], r2[j])) {
                s2[j] = s;
                r2[j] = row;
            }
        }
    }
    let t = c.thread_base + group * BLOCK + lane;
    for (var j = 0u; j < PB; j++) {
        if (p0 + j < c.probes) {
            let top = vec4<u32>(r1[j], r2[j], bitcast<u32>(s1[j]), bitcast<u32>(s2[j]));
            partial[(p0 + j) * c.threads + t] = top;
        }
    }
}

struct Reduce {
    threads: u32,   // columns per probe
    probes: u32,
    _p0: u32, _p1: u32,
};

const RW: u32 = 256u;

@group(0) @binding(6) var<uniform> rc: Reduce;
@group(0) @binding(7) var<storage, read> parts: array<vec4<u32>>;
// Per probe: (best row, second row, bits of best similarity, bits of second); NONE where absent.
@group(0) @binding(8) var<storage, read_write> top2: array<vec4<u32>>;

var<workgroup> tops: array<vec4<u32>, RW>;

@compute @workgroup_size(256)
fn reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = wg.x;
    var t = empty();
    if (p < rc.probes) {
        for (var i = li; i < rc.threads; i += RW) {
            t = merge(t, parts[p * rc.threads + i]);
        }
    }
    tops[li] = t;
    workgroupBarrier();
    for (var step = RW / 2u; step > 0u; step = step / 2u) {
        if (li < step) {
            tops[li] = merge(tops[li], tops[li + step]);
        }
        workgroupBarrier();
    }
    if (li == 0u && p < rc.probes) {
        top2[p] = tops[0];
    }
}
