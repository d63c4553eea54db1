// Lighting statistics and normalisation of one camera frame (I420, BT.601).
//
// Four entry points, dispatched in order inside one compute pass:
//   tile_hist   one workgroup per tile: 256-bin histogram of full-range luma
//   stats       one workgroup: global histogram, mean, dark/bright percentiles, gain and gamma
//   tile_lut    one workgroup per tile: tone curve (gain+gamma), clipped equalisation (CLAHE), one
//               256-entry LUT per tile that maps raw luma straight to output luma
//   apply       one thread per pixel: bilinear blend of the four nearest tile LUTs, YUV -> RGBA8
//
// Histograms and percentiles are integers, so they equal the Rust reference exactly; the float parts
// (gamma, LUT, colour) follow the reference's formulas in the same order. The reference lives in
// pipeline/src/normalise/reference.rs and the test that compares them beside it.

struct Params {
    width: u32,
    height: u32,
    y_off: u32,
    y_stride: u32,
    u_off: u32,
    u_stride: u32,
    v_off: u32,
    v_stride: u32,
    tiles_x: u32,
    tiles_y: u32,
    tile_w: u32,
    tile_h: u32,
    // 1 when the source uses limited range (16..235), the usual for decoded video.
    limited_range: u32,
    target_mean: f32,
    gamma_min: f32,
    gamma_max: f32,
    clip_limit: f32,
    strength: f32,
    dark_q: f32,
    bright_q: f32,
    min_range: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

// Layout shared with the host (LightingStats in lighting.rs).
struct Stats {
    hist: array<u32, 256>,
    pixels: u32,
    dark: u32,
    bright: u32,
    _pad: u32,
    mean: f32,          // mean raw luma, 0..1
    stretched_mean: f32,// mean after the gain stretch, 0..1
    gamma: f32,
    gain: f32,          // 1 / (bright - dark) in luma units
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> tile_hists: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: Stats;
@group(0) @binding(4) var<storage, read_write> luts: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<u32>;

var<workgroup> wg_hist: array<atomic<u32>, 256>;
var<workgroup> wg_scan: array<u32, 256>;
var<workgroup> wg_excess: atomic<u32>;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn luma8(y: u32) -> u32 {
    if (p.limited_range == 0u) {
        return y;
    }
    let v = (i32(y) - 16) * 255 + 109;
    return u32(clamp(v / 219, 0, 255));
}

fn tile_rect(t: u32) -> vec4<u32> {
    let tx = t % p.tiles_x;
    let ty = t / p.tiles_x;
    let x0 = tx * p.tile_w;
    let y0 = ty * p.tile_h;
    return vec4<u32>(x0, y0, min(x0 + p.tile_w, p.width), min(y0 + p.tile_h, p.height));
}

@compute @workgroup_size(256)
fn tile_hist(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wg.x;
    atomicStore(&wg_hist[li], 0u);
    workgroupBarrier();
    let r = tile_rect(t);
    let w = r.z - r.x;
    let n = w * (r.w - r.y);
    for (var i = li; i < n; i += 256u) {
        let x = r.x + i % w;
        let y = r.y + i / w;
        atomicAdd(&wg_hist[luma8(byte_at(p.y_off + y * p.y_stride + x))], 1u);
    }
    workgroupBarrier();
    tile_hists[t * 256u + li] = atomicLoad(&wg_hist[li]);
}

fn tone(b: u32) -> f32 {
    let x = clamp((f32(b) - f32(stats.dark)) * stats.gain, 0.0, 1.0);
    return round(255.0 * pow(x, stats.gamma));
}

@compute @workgroup_size(256)
fn stats_main(@builtin(local_invocation_index) li: u32) {
    let tiles = p.tiles_x * p.tiles_y;
    var sum = 0u;
    for (var t = 0u; t < tiles; t++) {
        sum += tile_hists[t * 256u + li];
    }
    stats.hist[li] = sum;
    wg_scan[li] = sum;
    workgroupBarrier();
    if (li != 0u) {
        return;
    }
    var n = 0u;
    var acc = 0.0;
    for (var b = 0u; b < 256u; b++) {
        n += wg_scan[b];
        acc += f32(b) * f32(wg_scan[b]);
    }
    let nf = f32(max(n, 1u));
    let dark_at = u32(ceil(p.dark_q * nf));
    let bright_at = u32(ceil(p.bright_q * nf));
    var cum = 0u;
    var dark = 255u;
    var bright = 255u;
    var found_dark = false;
    for (var b = 0u; b < 256u; b++) {
        cum += wg_scan[b];
        if (!found_dark && cum >= max(dark_at, 1u)) {
            dark = b;
            found_dark = true;
        }
        if (cum >= max(bright_at, 1u)) {
            bright = b;
            break;
        }
    }
    let range = max(f32(bright) - f32(dark), p.min_range);
    let gain = 1.0 / range;
    var smean = 0.0;
    for (var b = 0u; b < 256u; b++) {
        smean += clamp((f32(b) - f32(dark)) * gain, 0.0, 1.0) * f32(wg_scan[b]);
    }
    smean = smean / nf;
    let m = clamp(smean, 0.02, 0.98);
    let gamma = clamp(log(p.target_mean) / log(m), p.gamma_min, p.gamma_max);
    stats.pixels = n;
    stats.dark = dark;
    stats.bright = bright;
    stats.mean = acc / (nf * 255.0);
    stats.stretched_mean = smean;
    stats.gamma = gamma;
    stats.gain = gain;
}

@compute @workgroup_size(256)
fn tile_lut(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wg.x;
    let r = tile_rect(t);
    let total = (r.z - r.x) * (r.w - r.y);
    atomicStore(&wg_hist[li], 0u);
    if (li == 0u) {
        atomicStore(&wg_excess, 0u);
    }
    workgroupBarrier();
    let my_tone = u32(tone(li));
    atomicAdd(&wg_hist[my_tone], tile_hists[t * 256u + li]);
    workgroupBarrier();
    // Clip and redistribute: the cap on any bin is what keeps CLAHE from amplifying sensor noise in
    // flat regions such as a plain wall behind the passenger.
    let limit = max(1u, u32(p.clip_limit * f32(total) / 256.0));
    let h = atomicLoad(&wg_hist[li]);
    if (h > limit) {
        atomicAdd(&wg_excess, h - limit);
    }
    workgroupBarrier();
    let excess = atomicLoad(&wg_excess);
    var c = min(h, limit) + excess / 256u;
    if (li < excess % 256u) {
        c += 1u;
    }
    wg_scan[li] = c;
    workgroupBarrier();
    // Hillis-Steele inclusive scan.
    for (var off = 1u; off < 256u; off = off * 2u) {
        var v = wg_scan[li];
        if (li >= off) {
            v += wg_scan[li - off];
        }
        workgroupBarrier();
        wg_scan[li] = v;
        workgroupBarrier();
    }
    let eq = round(255.0 * f32(wg_scan[my_tone]) / f32(max(total, 1u)));
    let tv = f32(my_tone);
    luts[t * 256u + li] = tv + p.strength * (eq - tv);
}

fn lut_at(tx: u32, ty: u32, b: u32) -> f32 {
    return luts[(ty * p.tiles_x + tx) * 256u + b];
}

fn to8(v: f32) -> u32 {
    return u32(clamp(round(v), 0.0, 255.0));
}

@compute @workgroup_size(16, 16)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    if (x >= p.width || y >= p.height) {
        return;
    }
    let b = luma8(byte_at(p.y_off + y * p.y_stride + x));
    let fx = clamp((f32(x) + 0.5) / f32(p.tile_w) - 0.5, 0.0, f32(p.tiles_x - 1u));
    let fy = clamp((f32(y) + 0.5) / f32(p.tile_h) - 0.5, 0.0, f32(p.tiles_y - 1u));
    let tx0 = u32(floor(fx));
    let ty0 = u32(floor(fy));
    let tx1 = min(tx0 + 1u, p.tiles_x - 1u);
    let ty1 = min(ty0 + 1u, p.tiles_y - 1u);
    let ax = fx - f32(tx0);
    let ay = fy - f32(ty0);
    let top = mix(lut_at(tx0, ty0, b), lut_at(tx1, ty0, b), ax);
    let bottom = mix(lut_at(tx0, ty1, b), lut_at(tx1, ty1, b), ax);
    let l = mix(top, bottom, ay);

    let cx = x / 2u;
    let cy = y / 2u;
    var cb = f32(byte_at(p.u_off + cy * p.u_stride + cx)) - 128.0;
    var cr = f32(byte_at(p.v_off + cy * p.v_stride + cx)) - 128.0;
    if (p.limited_range != 0u) {
        cb = cb * (255.0 / 224.0);
        cr = cr * (255.0 / 224.0);
    }
    let r = to8(l + 1.402 * cr);
    let g = to8(l - 0.344136 * cb - 0.714136 * cr);
    let bl = to8(l + 1.772 * cb);
    dst[y * p.width + x] = r | (g << 8u) | (bl << 16u) | (255u << 24u);
}
