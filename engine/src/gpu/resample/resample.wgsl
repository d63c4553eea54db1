// Resampling of packed RGBA8 frames (one u32 per pixel: r | g<<8 | b<<16 | a<<24, row-major) into
// network inputs. Several frames live in one storage buffer; a frame table gives each one's offset
// (pixels, relative to the binding) and size. Two entry points:
//   chips      one 112×112 chip per face, planar RGB f32 0–255 (SFace's NCHW input), bilinear,
//              outside the frame = black; face i at out_base + i·3·112·112.
//   letterbox  one input×input NHWC tensor in [−1, 1] per job (BlazeFace's input), aspect kept,
//              bars −1, bilinear at pixel centres with edge clamp; job j at out_base + j·input²·3.
// Host code: engine/src/gpu/resample.rs, which validates every descriptor first. The shader still
// checks frame indices, sizes and pixel indices itself, so a bad descriptor reads nothing outside
// its binding (it yields black / −1).
//
// Descriptor words `d` (u32; f32 values stored as bits):
//   frame f at 4·f:                    offset, width, height, 0
//   job j at jobs_at + j·job_words:    chips:     frame, tx, ty, 0, A[112], B[112]
//                                      letterbox: frame, x0, y0, wh, SX[input], SY[input]
//   (letterbox: wh = 0 samples the whole frame; else the window of width wh & 0xffff and height
//   wh >> 16 whose top-left is x0, y0, as if it were the frame)
// The host precomputes the per-column/per-row terms exactly as the CPU references compute them
// (A[k] = a·k, B[k] = b·k of the chip→frame similarity; SX/SY the letterbox source coordinates),
// so no product here can be contracted into an FMA: sample positions are bit-identical to the CPU
// reference on every driver, and only the bilinear blend can differ by rounding.

struct Params {
    count: u32,
    n_frames: u32,
    // first output element within the `out` binding
    out_base: u32,
    // letterbox side (0 for chips)
    input: u32,
    jobs_at: u32,
    job_words: u32,
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> frames: array<u32>;
@group(0) @binding(2) var<storage, read> d: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const CHIP: u32 = 112u;
const CHIP_PX: u32 = 12544u; // 112·112

struct Frame {
    base: u32,
    w: u32,
    h: u32,
    ok: bool,
};

// Frame `f` from the table, with `ok` false when the index or size is bad or the frame does not lie
// inside the frames binding.
fn frame(f: u32) -> Frame {
    var r = Frame(0u, 0u, 0u, false);
    if (f >= p.n_frames || 4u * f + 3u >= arrayLength(&d)) {
        return r;
    }
    r.base = d[4u * f];
    r.w = d[4u * f + 1u];
    r.h = d[4u * f + 2u];
    let len = arrayLength(&frames);
    r.ok = r.w > 0u && r.h > 0u && r.base <= len && r.w <= len - r.base
        && r.h <= (len - r.base) / r.w;
    return r;
}

// RGB of pixel (x, y), which the caller has checked lies inside the frame.
fn rgb(fr: Frame, x: u32, y: u32) -> vec3<f32> {
    let i = fr.base + y * fr.w + x;
    if (i >= arrayLength(&frames)) {
        return vec3<f32>(0.0);
    }
    let v = frames[i];
    return vec3<f32>(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu));
}

// Chip sampling: integer (x, y) outside the frame reads as black.
fn tap(fr: Frame, x: i32, y: i32) -> vec3<f32> {
    if (x < 0 || y < 0 || x >= i32(fr.w) || y >= i32(fr.h)) {
        return vec3<f32>(0.0);
    }
    return rgb(fr, u32(x), u32(y));
}

fn word_f32(i: u32) -> f32 {
    if (i >= arrayLength(&d)) {
        return 0.0;
    }
    return bitcast<f32>(d[i]);
}

@compute @workgroup_size(64)
fn chips(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px = gid.x;
    let face = gid.y;
    if (px >= CHIP_PX || face >= p.count) {
        return;
    }
    let o = p.out_base + face * 3u * CHIP_PX + px;
    if (o + 2u * CHIP_PX >= arrayLength(&out)) {
        return;
    }
    let u = px % CHIP;
    let v = px / CHIP;
    let job = p.jobs_at + face * p.job_words;
    var c = vec3<f32>(0.0);
    if (job < arrayLength(&d)) {
        let fr = frame(d[job]);
        let ta = job + 4u;
        let tb = ta + CHIP;
        // The CPU reference's Similarity::apply: (a·u − b·v) + tx, (b·u + a·v) + ty.
        let x = (word_f32(ta + u) - word_f32(tb + v)) + word_f32(job + 1u);
        let y = (word_f32(tb + u) + word_f32(ta + v)) + word_f32(job + 2u);
        let x0 = floor(x);
        let y0 = floor(y);
        // Written so that NaN fails it; beyond this range all four taps are outside anyway, and
        // inside it the i32 conversions are exact.
        if (fr.ok && x0 >= -1.0 && y0 >= -1.0 && x0 < f32(fr.w) && y0 < f32(fr.h)) {
            let fx = x - x0;
            let fy = y - y0;
            let xi = i32(x0);
            let yi = i32(y0);
            let top = tap(fr, xi, yi) * (1.0 - fx) + tap(fr, xi + 1, yi) * fx;
            let bottom = tap(fr, xi, yi + 1) * (1.0 - fx) + tap(fr, xi + 1, yi + 1) * fx;
            c = top * (1.0 - fy) + bottom * fy;
        }
    }
    out[o] = c.x;
    out[o + CHIP_PX] = c.y;
    out[o + 2u * CHIP_PX] = c.z;
}

@compute @workgroup_size(64)
fn letterbox(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = p.input;
    let px = gid.x;
    let job = gid.y;
    if (px >= n * n || job >= p.count) {
        return;
    }
    let o = p.out_base + (job * n * n + px) * 3u;
    if (o + 2u >= arrayLength(&out)) {
        return;
    }
    let ox = px % n;
    let oy = px / n;
    let at = p.jobs_at + job * p.job_words;
    var c = vec3<f32>(-1.0);
    if (at + 3u < arrayLength(&d)) {
        let fr = frame(d[at]);
        let sx = word_f32(at + 4u + ox);
        let sy = word_f32(at + 4u + n + oy);
        // The window: the whole frame, or a rectangle inside it (refused when it is not).
        var wx = 0u;
        var wy = 0u;
        var ww = fr.w;
        var wh = fr.h;
        var inside = true;
        let packed = d[at + 3u];
        if (packed != 0u) {
            wx = d[at + 1u];
            wy = d[at + 2u];
            ww = packed & 0xffffu;
            wh = packed >> 16u;
            inside = ww > 0u && wh > 0u && wx <= fr.w && ww <= fr.w - wx && wy <= fr.h
                && wh <= fr.h - wy;
        }
        let w = f32(ww);
        let h = f32(wh);
        // The CPU reference skips (leaves −1) where sx < −0.5, sy < −0.5, sx > w − 0.5 or
        // sy > h − 0.5; the positive form also sends NaN to the bars.
        if (fr.ok && inside && sx >= -0.5 && sy >= -0.5 && sx <= w - 0.5 && sy <= h - 0.5) {
            let x0 = max(floor(sx), 0.0);
            let y0 = max(floor(sy), 0.0);
            let fx = clamp(sx - x0, 0.0, 1.0);
            let fy = clamp(sy - y0, 0.0, 1.0);
            let xa = u32(x0);
            let ya = u32(y0);
            let xb = min(xa + 1u, ww - 1u);
            let yb = min(ya + 1u, wh - 1u);
            let top = rgb(fr, wx + xa, wy + ya) * (1.0 - fx) + rgb(fr, wx + xb, wy + ya) * fx;
            let bottom = rgb(fr, wx + xa, wy + yb) * (1.0 - fx) + rgb(fr, wx + xb, wy + yb) * fx;
            c = (top * (1.0 - fy) + bottom * fy) / 127.5 - 1.0;
        }
    }
    out[o] = c.x;
    out[o + 1u] = c.y;
    out[o + 2u] = c.z;
}
