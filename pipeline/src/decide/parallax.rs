//! The dense two-camera cue: what the pixels between a face's keypoints show when the two cameras
//! (`[lane.lower]`) see it at one instant from two heights.
//!
//! Why beside `stereo`'s keypoint slope: BlazeFace's six keypoints move with the face's overall
//! look, not with its parts, so a print bent about a vertical line (paper bends one way at a time)
//! shows them the same proportions as a head, only less of them; the slope tells a bent print
//! from a head by amount alone, and some bent prints reach a head's amount (docs/pad.md, "Dense
//! parallax"). The pixels do not: after the best affine map between the two views, a plane is
//! aligned everywhere; a sheet bent about a vertical line is left with a vertical shift that
//! changes from column to column but is straight down each column; a head's nose moves against
//! its cheeks and brow *within* a column.
//!
//! The measure, per paired frame (patches cut by `recognise::patch`): align the lower view's
//! patch to the upper's by the affine map that best matches their normalised intensities
//! (Gauss–Newton, started from the similarity that takes the upper view's eyes and mouth onto the
//! lower's: each camera's box jitters by several pixels on its own, beyond where Gauss–Newton
//! from the identity finds its way back, docs/pad.md); where each camera's motion is known, smear
//! each view along the other's as a shutter would and realign, so both views carry the same blur
//! (`smear`: a long shutter smears the two views of a moving face differently, and the shift
//! estimates then err the same way in every frame); estimate the vertical shift left at an
//! 8×8 grid over the face's central half, centred on its eyes and mouth (Lucas–Kanade, one
//! dimension: the cameras differ in height only); remove each grid column's best straight line
//! in y; the residual's RMS, in patch pixels, is the frame's *structure along y*, and the same of
//! the horizontal shifts its structure across (`Structure::relief`). The track is judged on its
//! frames together: each grid point's residual averaged over them first (`Structure::together`),
//! so noise, different in every frame, averages away and a nose does not.
//! `scripts/research/stereo_parallax.py` measures one frame with OpenCV's ECC and Farneback.

use std::sync::Arc;

use crate::recognise::patch::{Patch, SIDE};

mod smear;
pub(super) use smear::{Motion, Shutter};

/// A face's grey patches (`recognise::patch`) by the camera that cut them: one camera's before
/// `views::merge`, both once it has paired the two views of one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Patches {
    pub upper: Option<Arc<Patch>>,
    pub lower: Option<Arc<Patch>>,
}

/// Grid of shift estimates: 8×8 points 4 px apart over the central half of the face, centred on
/// the upper view's eyes and mouth so each point stays on one part of the face from frame to frame
/// while the box jitters about it (`Field`).
const GRID: usize = 8;
const GRID_STEP: usize = 4;
/// The grid's first point's coordinate, at most this far from the patch's edges (its windows,
/// shifted as far as `shift_at` lets them, stay inside the patch and off its border).
const GRID_FROM_LEAST: usize = MARGIN + 2;
const GRID_SPAN: usize = (GRID - 1) * GRID_STEP;
/// Half-size of each estimate's window (9×9 pixels).
const WIN: isize = 4;
/// Pixels of the border the alignment leaves out (the box edge, hair, background).
const MARGIN: usize = 8;

/// The pixels the alignment compares: the patch less its margin, row by row.
fn region() -> impl Iterator<Item = (usize, usize)> {
    (MARGIN..SIDE - MARGIN).flat_map(|y| (MARGIN..SIDE - MARGIN).map(move |x| (x, y)))
}
const REGION_PX: usize = (SIDE - 2 * MARGIN) * (SIDE - 2 * MARGIN);

/// A patch as normalised floats (zero mean, unit deviation over the aligned region), blurred once
/// so the Gauss–Newton steps see a smooth surface.
struct Image {
    px: Vec<f32>,
}

/// A patch's luma as floats under a 3×3 binomial blur, edges repeated: what [`Image`] normalises,
/// with or without a streak first (`smear::streaked`).
fn smooth(p: &Patch) -> Vec<f32> {
    let src = p.luma();
    let at = |x: isize, y: isize| {
        let (x, y) = (
            x.clamp(0, SIDE as isize - 1) as usize,
            y.clamp(0, SIDE as isize - 1) as usize,
        );
        src[y * SIDE + x] as f32
    };
    let mut px = vec![0.0f32; SIDE * SIDE];
    for y in 0..SIDE as isize {
        for x in 0..SIDE as isize {
            let mut s = 0.0;
            for (dy, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                for (dx, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    s += wx * wy * at(x + dx, y + dy);
                }
            }
            px[y as usize * SIDE + x as usize] = s / 16.0;
        }
    }
    px
}

/// Bilinear sample of a `SIDE`×`SIDE` float image, edges repeated.
fn bilinear(px: &[f32], x: f32, y: f32) -> f32 {
    let hi = (SIDE - 1) as f32;
    let (x, y) = (x.clamp(0.0, hi), y.clamp(0.0, hi));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(SIDE - 1), (y0 + 1).min(SIDE - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x: usize, y: usize| px[y * SIDE + x];
    (p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx) * (1.0 - fy)
        + (p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx) * fy
}

impl Image {
    /// `px` normalised over the aligned region; `None` for a blank patch (a covered lens, a black
    /// frame), which has nothing to align.
    fn normalised(mut px: Vec<f32>) -> Option<Image> {
        let n = REGION_PX as f32;
        let mean = region().map(|(x, y)| px[y * SIDE + x]).sum::<f32>() / n;
        let var = region()
            .map(|(x, y)| (px[y * SIDE + x] - mean).powi(2))
            .sum::<f32>()
            / n;
        if var.is_nan() || var <= 1.0 {
            return None;
        }
        let sd = var.sqrt();
        px.iter_mut().for_each(|v| *v = (*v - mean) / sd);
        Some(Image { px })
    }

    /// Bilinear sample with edges repeated, and the gradient (central differences of samples).
    fn sample(&self, x: f32, y: f32) -> f32 {
        bilinear(&self.px, x, y)
    }

    fn gradient(&self, x: f32, y: f32) -> [f32; 2] {
        [
            (self.sample(x + 1.0, y) - self.sample(x - 1.0, y)) / 2.0,
            (self.sample(x, y + 1.0) - self.sample(x, y - 1.0)) / 2.0,
        ]
    }
}

/// An affine map of patch coordinates about the centre: `[a, b, tx, c, d, ty]` adds to identity.
type Affine = [f32; 6];

fn warp(p: &Affine, x: f32, y: f32) -> [f32; 2] {
    let c = (SIDE as f32 - 1.0) / 2.0;
    let (u, v) = (x - c, y - c);
    [
        c + (1.0 + p[0]) * u + p[1] * v + p[2],
        c + p[3] * u + (1.0 + p[4]) * v + p[5],
    ]
}

/// Whether `p` has run off: a shift over a quarter of the patch, a scale off by half, or not a
/// number; not the same face.
fn runs_off(p: &Affine) -> bool {
    p[2].abs().max(p[5].abs()) > SIDE as f32 / 4.0
        || [p[0], p[1], p[3], p[4]].iter().any(|v| v.abs() > 0.5)
        || !p.iter().all(|v| v.is_finite())
}

/// Keypoints the alignment starts from: the eyes and the mouth (BlazeFace's 0, 1 and 3). Not the
/// nose: its parallax is the measure's signal, and not the ears, the first to turn out of view.
pub(super) const STARTS_FROM: [usize; 3] = [0, 1, 3];

/// The similarity (scale, rotation, shift; least squares) taking `ku`'s eyes and mouth, placed in
/// `upper`, onto `kl`'s placed in `lower`, as an [`Affine`]. `None` for degenerate keypoints or a
/// map that runs off.
fn start(upper: &Patch, lower: &Patch, ku: &[[f32; 2]; 6], kl: &[[f32; 2]; 6]) -> Option<Affine> {
    let a = STARTS_FROM.map(|i| upper.place(ku[i]));
    let b = STARTS_FROM.map(|i| lower.place(kl[i]));
    let (ma, mb) = (centroid(&a), centroid(&b));
    let (mut norm, mut re, mut im) = (0.0f32, 0.0f32, 0.0f32);
    for (pa, pb) in a.iter().zip(&b) {
        let (ax, ay, bx, by) = (pa[0] - ma[0], pa[1] - ma[1], pb[0] - mb[0], pb[1] - mb[1]);
        norm += ax * ax + ay * ay;
        re += ax * bx + ay * by;
        im += ax * by - ay * bx;
    }
    // Under a pixel's spread: the keypoints coincide and say nothing of scale or turn.
    if norm.is_nan() || norm < 1.0 {
        return None;
    }
    let (re, im) = (re / norm, im / norm);
    // lower = M (upper − ma) + mb, with M = [[re, −im], [im, re]]; `warp` works about the centre.
    let c = (SIDE as f32 - 1.0) / 2.0;
    let p: Affine = [
        re - 1.0,
        -im,
        mb[0] - c - re * (ma[0] - c) + im * (ma[1] - c),
        im,
        re - 1.0,
        mb[1] - c - im * (ma[0] - c) - re * (ma[1] - c),
    ];
    (!runs_off(&p)).then_some(p)
}

/// The mean of the eyes and the mouth placed in a patch.
pub(super) fn centroid(q: &[[f32; 2]; STARTS_FROM.len()]) -> [f32; 2] {
    let n = q.len() as f32;
    [
        q.iter().map(|v| v[0]).sum::<f32>() / n,
        q.iter().map(|v| v[1]).sum::<f32>() / n,
    ]
}

/// Where `upper`'s pixels are in `lower` (`p`), and the mean and deviation of `lower`'s
/// intensities over them: each patch is normalised over its own region, and the two boxes cover
/// different parts of the face (and the two cameras expose on their own), so `lower` is compared
/// as `(v − mean) / sd` over exactly what the upper region maps to, as OpenCV's ECC does.
struct Map {
    p: Affine,
    mean: f32,
    sd: f32,
}

impl Map {
    /// `p` with the mean and deviation of what `lower` shows over the region it maps; `None`
    /// where that is blank (a stretch of edge or flat skin is nothing to compare).
    fn under(lower: &Image, p: &Affine) -> Option<Map> {
        let n = REGION_PX as f32;
        let (mut s, mut s2) = (0.0f32, 0.0f32);
        for (x, y) in region() {
            let [wx, wy] = warp(p, x as f32, y as f32);
            let v = lower.sample(wx, wy);
            s += v;
            s2 += v * v;
        }
        let mean = s / n;
        let sd = (s2 / n - mean * mean).max(0.0).sqrt();
        (sd > 0.05).then_some(Map { p: *p, mean, sd })
    }

    /// How well `lower` under the map matches `upper` over the region: the mean product of their
    /// normalised intensities (1 for the same picture), as ECC scores an alignment.
    fn agreement(&self, upper: &Image, lower: &Image) -> Option<f32> {
        let score = region()
            .map(|(x, y)| {
                let [wx, wy] = warp(&self.p, x as f32, y as f32);
                (lower.sample(wx, wy) - self.mean) / self.sd * upper.px[y * SIDE + x]
            })
            .sum::<f32>()
            / REGION_PX as f32;
        score.is_finite().then_some(score)
    }

    /// `lower`'s normalised intensity and gradient at `upper`'s (`x`, `y`).
    fn at(&self, lower: &Image, x: f32, y: f32) -> (f32, [f32; 2]) {
        let [wx, wy] = warp(&self.p, x, y);
        let [gx, gy] = lower.gradient(wx, wy);
        (
            (lower.sample(wx, wy) - self.mean) / self.sd,
            [gx / self.sd, gy / self.sd],
        )
    }
}

/// The affine map taking `upper`'s pixels to where `lower` shows them, by Gauss–Newton from `p`
/// on the normalised intensities over the patch less its margin. `None` if a step is singular,
/// the map runs off, or what it maps onto is blank.
fn align(upper: &Image, lower: &Image, p: Affine) -> Option<Map> {
    let c = (SIDE as f32 - 1.0) / 2.0;
    let mut m = Map::under(lower, &p)?;
    for _ in 0..40 {
        let mut h = [[0.0f64; 6]; 6];
        let mut g = [0.0f64; 6];
        for (x, y) in region() {
            let (xf, yf) = (x as f32, y as f32);
            let (v, [gx, gy]) = m.at(lower, xf, yf);
            let r = (v - upper.px[y * SIDE + x]) as f64;
            let (u, v) = (xf - c, yf - c);
            let j = [gx * u, gx * v, gx, gy * u, gy * v, gy].map(f64::from);
            for a in 0..6 {
                g[a] += j[a] * r;
                for b in 0..6 {
                    h[a][b] += j[a] * j[b];
                }
            }
        }
        let step = solve6(h, g)?;
        let mut p = m.p;
        for (pi, si) in p.iter_mut().zip(step) {
            *pi -= si as f32;
        }
        if runs_off(&p) {
            return None;
        }
        m = Map::under(lower, &p)?;
        if step.iter().map(|s| s * s).sum::<f64>() < 1e-8 {
            break;
        }
    }
    Some(m)
}

/// Solves the 6×6 system `h x = g` (Gaussian elimination with partial pivoting); `None` when
/// singular. Local: the workspace has no linear-algebra crate, and one fixed 6×6 system per
/// Gauss–Newton step does not warrant one.
fn solve6(mut h: [[f64; 6]; 6], mut g: [f64; 6]) -> Option<[f64; 6]> {
    for col in 0..6 {
        let pivot = (col..6).max_by(|&a, &b| h[a][col].abs().total_cmp(&h[b][col].abs()))?;
        if h[pivot][col].is_nan() || h[pivot][col].abs() <= 1e-9 {
            return None;
        }
        h.swap(col, pivot);
        g.swap(col, pivot);
        let top = h[col];
        for row in col + 1..6 {
            let f = h[row][col] / top[col];
            for (v, t) in h[row][col..].iter_mut().zip(&top[col..]) {
                *v -= f * t;
            }
            g[row] -= f * g[col];
        }
    }
    let mut x = [0.0f64; 6];
    for row in (0..6).rev() {
        let s: f64 = (row + 1..6).map(|k| h[row][k] * x[k]).sum();
        x[row] = (g[row] - s) / h[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The shift left at grid point (`gx`, `gy`) after `p` along `axis` (0: x, 1: y), and the
/// texture across it (the sum of squared gradients, to which the estimate's precision is
/// proportional): Lucas–Kanade in one dimension over a 9×9 window, five steps; `None` on a window
/// without texture across it.
fn shift_at(
    upper: &Image,
    lower: &Image,
    m: &Map,
    gx: usize,
    gy: usize,
    axis: usize,
) -> Option<(f32, f32)> {
    let (mut d, mut texture) = (0.0f32, 0.0f32);
    for _ in 0..5 {
        let (mut num, mut den) = (0.0f32, 0.0f32);
        for oy in -WIN..=WIN {
            for ox in -WIN..=WIN {
                let (x, y) = ((gx as isize + ox) as f32, (gy as isize + oy) as f32);
                let (sx, sy) = if axis == 0 { (x + d, y) } else { (x, y + d) };
                let (v, grad) = m.at(lower, sx, sy);
                let g = grad[axis];
                let r = v - upper.px[(y as usize) * SIDE + x as usize];
                num += g * r;
                den += g * g;
            }
        }
        if den.is_nan() || den <= 1.0 {
            return None;
        }
        d = (d - num / den).clamp(-(WIN as f32), WIN as f32);
        texture = den;
    }
    d.is_finite().then_some((d, texture))
}

/// RMS of the shifts along `axis` left after each grid column's straight line in y, each point
/// weighted by its texture (a window of faint texture gives a noisy shift), and the points
/// measured. Each point's residual and weight go to `field` (row by row; weight 0: not measured).
fn column_residual(
    upper: &Image,
    lower: &Image,
    m: &Map,
    axis: usize,
    from: [usize; 2],
    field: &mut [Point; GRID * GRID],
) -> (f32, usize) {
    let (mut sum, mut weight, mut n) = (0.0f32, 0.0f32, 0usize);
    for col in 0..GRID {
        let gx = from[0] + col * GRID_STEP;
        let pts: Vec<(usize, f32, f32, f32)> = (0..GRID)
            .filter_map(|row| {
                let gy = from[1] + row * GRID_STEP;
                shift_at(upper, lower, m, gx, gy, axis).map(|(d, w)| (row, gy as f32, d, w))
            })
            .collect();
        if pts.len() < 4 {
            continue;
        }
        let k: f32 = pts.iter().map(|q| q.3).sum();
        let (my, md) = (
            pts.iter().map(|q| q.3 * q.1).sum::<f32>() / k,
            pts.iter().map(|q| q.3 * q.2).sum::<f32>() / k,
        );
        let sxx: f32 = pts.iter().map(|q| q.3 * (q.1 - my).powi(2)).sum();
        let slope = pts
            .iter()
            .map(|q| q.3 * (q.1 - my) * (q.2 - md))
            .sum::<f32>()
            / sxx;
        for &(row, y, d, w) in &pts {
            let r = d - md - slope * (y - my);
            field[row * GRID + col] = Point { r, w };
            sum += w * r * r;
        }
        weight += k;
        n += pts.len();
    }
    ((sum / weight.max(f32::MIN_POSITIVE)).sqrt(), n)
}

/// One grid point's shift left after its column's line, and the texture behind it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Point {
    r: f32,
    w: f32,
}

/// A frame's residual shifts at each grid point, by axis (0: across, 1: along y), on the grid
/// placed on the face (`GRID`): the same point is the same part of the face in every frame, so a
/// track's frames can be averaged point by point (`Structure::together`).
pub(super) type Field = [[Point; GRID * GRID]; 2];

/// One paired frame's pixels: the structure along y (module docs) and the same taken of the
/// horizontal shifts. The cameras differ in height only, yet heads show more structure across than
/// along (medians 0.56–0.60 px against 0.33–0.43 on the footage's normal and cast lanes, pictures
/// 0.07–0.12 against 0.06–0.09; docs/pad.md): a one-dimensional estimate along x answers a
/// vertical shift wherever the texture runs diagonally, so a nose's shift shows in both, a bent
/// sheet's in neither.
#[derive(Clone, PartialEq)]
pub(super) struct Structure {
    pub along_y: f32,
    pub across: f32,
    /// The residual shifts behind both (boxed: a track keeps up to `stereo::KEPT` frames).
    pub field: Box<Field>,
}

/// The two measures only: the field is 128 points a frame, too many for a log line.
impl std::fmt::Debug for Structure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Structure")
            .field("along_y", &self.along_y)
            .field("across", &self.across)
            .finish_non_exhaustive()
    }
}

impl Structure {
    /// The frame's relief, both measures together (as `together` takes a track's): the vertical
    /// residual is the parallax a vertical baseline makes, the horizontal one its echo (alone it
    /// parts the footage's heads from its pictures by a larger ratio, but an echo's strength
    /// depends on the skin's texture; docs/pad.md).
    pub(super) fn relief(&self) -> f32 {
        self.along_y.hypot(self.across)
    }

    /// The relief of a track's frames together: each grid point's residual averaged over the
    /// frames (weighted by texture), then measured as one frame's is. A head's nose moves the
    /// same way against its cheeks in every frame; noise does not, and averages away (a dim
    /// lane's noise lifts each frame's relief of a picture to a head's, docs/pad.md). A frame
    /// whose own relief is over twice the median frame's is left out: a pair matched to the wrong
    /// face or aligned askew is not averaged into the rest (a mean, unlike the median it
    /// replaces, follows one such frame). `None` without frames or where either measure's points,
    /// over all the frames, cover under half the grid.
    pub(super) fn together(frames: &[&Structure]) -> Option<f32> {
        let reliefs: Vec<f32> = frames.iter().map(|f| f.relief()).collect();
        let mut sorted = reliefs.clone();
        sorted.sort_by(f32::total_cmp);
        let median = *sorted.get(sorted.len() / 2)?;
        let mut sum: Field = [[Point::default(); GRID * GRID]; 2];
        let kept = (frames.iter().zip(&reliefs)).filter(|(_, r)| **r <= 2.0 * median);
        for (f, _) in kept {
            for (acc, pts) in sum.iter_mut().zip(f.field.iter()) {
                for (a, p) in acc.iter_mut().zip(pts) {
                    a.r += p.w * p.r;
                    a.w += p.w;
                }
            }
        }
        let rms = |acc: &[Point; GRID * GRID]| {
            let measured = acc.iter().filter(|p| p.w > 0.0);
            let (mut s, mut w, mut n) = (0.0f32, 0.0f32, 0usize);
            for p in measured {
                let mean = p.r / p.w;
                s += p.w * mean * mean;
                w += p.w;
                n += 1;
            }
            (n >= GRID * GRID / 2).then(|| (s / w).sqrt())
        };
        Some(rms(&sum[0])?.hypot(rms(&sum[1])?))
    }
}

/// Where the grid's first point goes in `upper` (`Field`): the grid centred on the eyes' and the
/// mouth's centroid, kept clear of the border.
fn grid_from(upper: &Patch, ku: &[[f32; 2]; 6]) -> Option<[usize; 2]> {
    let c = centroid(&STARTS_FROM.map(|i| upper.place(ku[i])));
    let most = SIDE - 1 - GRID_FROM_LEAST - GRID_SPAN;
    c.iter().all(|v| v.is_finite()).then(|| {
        c.map(|v| {
            (v - GRID_SPAN as f32 / 2.0)
                .round()
                .clamp(GRID_FROM_LEAST as f32, most as f32) as usize
        })
    })
}

/// The frame's structure (module docs), in patch pixels, of the face with keypoints `ku` in the
/// image `upper` was cut from and `kl` in `lower`'s, the views' smears equalised where each
/// camera's motion is known (`smear::equalised`, with the lane's `Shutter`). `None` when the
/// patches cannot be aligned (blank, degenerate keypoints, or not the same face) or under a
/// quarter of the grid has texture along y (the parallax's own direction).
pub(super) fn structure(
    upper: &Patch,
    lower: &Patch,
    ku: &[[f32; 2]; 6],
    kl: &[[f32; 2]; 6],
    smear: Option<(&Motion, &mut Shutter)>,
) -> Option<Structure> {
    let (su, sl) = (smooth(upper), smooth(lower));
    // The smoothed pixels outlive normalising only where they will be streaked: not on a lane
    // settled on its views as they are (most frames of a lane with a short shutter).
    let kept = (smear.as_ref())
        .is_some_and(|(_, shutter)| shutter.will_try())
        .then(|| (su.clone(), sl.clone()));
    let (u, l) = (Image::normalised(su)?, Image::normalised(sl)?);
    let m = align(&u, &l, start(upper, lower, ku, kl)?)?;
    let (u, l, m) = match (smear, kept) {
        (Some((motion, shutter)), Some((su, sl))) => {
            smear::equalised(&su, &sl, (u, l, m), motion, shutter)
        }
        // The plan is still made, so the lane's full searches keep their cadence.
        (Some((_, shutter)), None) => {
            shutter.plan();
            (u, l, m)
        }
        _ => (u, l, m),
    };
    let from = grid_from(upper, ku)?;
    let mut field: Box<Field> = Box::new([[Point::default(); GRID * GRID]; 2]);
    let (along_y, ny) = column_residual(&u, &l, &m, 1, from, &mut field[1]);
    // No measure is asked to cover half the grid in every frame: a face with texture in part
    // of it only (a screen's low contrast: seed 67's cast-lane tablet video measured 15 to 26
    // of the 64 points across in each of nine frames, seed 71's on the normal lane 17 to 29 on
    // both axes, and neither walk counted a frame) is pooled over the track's frames instead,
    // and judged where they cover half the grid (`together`). A frame still needs a quarter of
    // it along y, the parallax's own direction: a column or two of texture is too little to
    // place the frame's shifts beside the others'.
    let (across, _) = column_residual(&u, &l, &m, 0, from, &mut field[0]);
    (ny >= GRID * GRID / 4).then_some(Structure {
        along_y,
        across,
        field,
    })
}

#[cfg(test)]
#[path = "parallax_tests.rs"]
pub(super) mod tests;
