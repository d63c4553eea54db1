//! Face sources: which photos belong to whom, and the head "sprite" cut out of a photo around the
//! face the station's own detector finds in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use engine::face::FaceChain;
use engine::face::blazeface::Detection;

use crate::photo::Photo;

/// A person and their photos, sorted by path (the first is the enrolment photo).
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub photos: Vec<PathBuf>,
}

/// `<dir>/<identity>/<image>`: every regular, non-hidden file that is not obviously text counts as
/// a photo (the Yale set's files have no image extension); undecodable ones are skipped later.
pub fn from_folder(dir: &Path) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        let mut photos = Vec::new();
        for f in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
            let p = f
                .with_context(|| format!("reading {}", path.display()))?
                .path();
            let fname = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let text = p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["csv", "txt", "md", "json"].contains(&e.to_ascii_lowercase().as_str())
            });
            if p.is_file() && !text && !fname.is_some_and(|n| n.starts_with('.')) {
                photos.push(p);
            }
        }
        if !photos.is_empty() {
            photos.sort();
            out.push(Identity { name, photos });
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no <identity>/<image> folders with photos",
            dir.display()
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `labels.csv`: header, then `path,identity` with paths relative to the file's folder.
pub fn from_labels(file: &Path) -> Result<Vec<Identity>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut by_id: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((p, id)) = line.split_once(',') else {
            bail!("{}:{}: expected path,identity", file.display(), n + 1);
        };
        let (p, id) = (p.trim(), id.trim());
        if p.is_empty() || id.is_empty() {
            bail!("{}:{}: empty path or identity", file.display(), n + 1);
        }
        by_id.entry(id.to_owned()).or_default().push(base.join(p));
    }
    if by_id.is_empty() {
        bail!("{}: no photos listed", file.display());
    }
    Ok(by_id
        .into_iter()
        .map(|(name, mut photos)| {
            photos.sort();
            Identity { name, photos }
        })
        .collect())
}

/// A decoded photo with the faces found in it, in the photo's own pixels (border removed).
pub struct Located {
    pub photo: Photo,
    pub faces: Vec<Detection>,
}

/// Detections shifted from the padded photo back to the original's pixels.
fn unpad(d: &Detection, border: usize) -> Detection {
    let b = border as f32;
    let mut d = *d;
    d.center = [d.center[0] - b, d.center[1] - b];
    for k in &mut d.keypoints {
        *k = [k[0] - b, k[1] - b];
    }
    d
}

/// Every face the back-256 model finds (front-128 when it finds none), most confident first.
/// `pad`: border added around the photo, as a fraction of its larger side (portraits and tightly
/// cropped sets need context around the face; group photos do not, and shrink with it).
pub fn locate(pipe: &FaceChain, path: &Path, pad: f32) -> Result<Located> {
    let photo = Photo::load(path, pad)?;
    let faces = pipe
        .detect(photo.view())
        .with_context(|| format!("detecting faces in {}", path.display()))?;
    let faces = faces.iter().map(|d| unpad(d, photo.border)).collect();
    Ok(Located { photo, faces })
}

/// Sprite resolution: the face box is this many pixels high in level 0, about the largest face the
/// footage shows, so the renderer only ever shrinks (through the mip levels) or enlarges slightly.
const SPRITE_FACE: f32 = 200.0;

/// A head cut from a photo: premultiplied RGBA (colour 0–255, alpha 0–1) with a soft elliptical edge, in mip levels.
#[derive(Clone)]
pub struct Sprite {
    pub levels: Vec<Level>,
    /// Face box in level-0 pixels: x, y, w, h.
    pub face: [f32; 4],
    /// BlazeFace keypoints in level-0 pixels (right eye, left eye, nose, mouth, right ear, left ear).
    pub keypoints: [[f32; 2]; 6],
    /// Mean colour of the middle of the face, for the neck.
    pub skin: [f32; 3],
    /// What the sprite is drawn on, which sets its parallax (`render::Relief`).
    pub surface: Surface,
    /// A screen replaying a recorded face: what it shows moves inside the screen.
    pub video: Option<Video>,
}

/// A video replay on a screen: the recorded face sways inside `screen` (level-0 sprite pixels x0,
/// y0, x1, y1) as a head filmed while it moved, by up to `sway` pixels sideways and half that
/// vertically, turning up to `roll` radians, at `hz`. The bezel stays put, and so do the screen's
/// own artefacts drawn into the card, within the sway (a few pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Video {
    pub screen: [f32; 4],
    pub sway: f32,
    pub roll: f32,
    pub hz: f32,
    pub phase: f32,
}

impl Video {
    /// The card point whose pixel the screen shows at sprite point `q` at time `t` (seconds): `q`
    /// itself outside the screen, else the recorded face's point there, kept inside the screen.
    pub fn source(&self, q: [f32; 2], t: f64) -> [f32; 2] {
        let [x0, y0, x1, y1] = self.screen;
        if q[0] < x0 || q[0] >= x1 || q[1] < y0 || q[1] >= y1 {
            return q;
        }
        let a = (std::f64::consts::TAU * self.hz as f64 * t) as f32 + self.phase;
        let (dx, dy) = (self.sway * a.sin(), 0.5 * self.sway * (2.0 * a).sin());
        let (s, c) = (self.roll * a.cos()).sin_cos();
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let (u, v) = (q[0] - cx - dx, q[1] - cy - dy);
        [
            (cx + c * u + s * v).clamp(x0, x1 - 1.0),
            (cy - s * u + c * v).clamp(y0, y1 - 1.0),
        ]
    }
}

/// The shape a sprite is drawn on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Surface {
    /// A head: a generic head's depth fitted to the keypoints.
    Head,
    /// A print or a screen: every point on one plane.
    Flat,
    /// A print held bent about the vertical line through the eyes' midpoint: the paper falls back
    /// `sag` eye distances at 1.5 eye distances to either side (a parabola), so it shows some
    /// parallax, less than a head and without a nose.
    Bent { sag: f32 },
}

#[derive(Clone)]
pub struct Level {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[f32; 4]>,
}

impl Level {
    /// Bilinear premultiplied sample; transparent outside.
    pub fn sample(&self, x: f32, y: f32) -> [f32; 4] {
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - x0, fy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut out = [0.0f32; 4];
        for (dy, wy) in [(0, 1.0 - ay), (1, ay)] {
            for (dx, wx) in [(0, 1.0 - ax), (1, ax)] {
                let (xx, yy) = (x0 + dx, y0 + dy);
                if xx < 0 || yy < 0 || xx >= self.w as i64 || yy >= self.h as i64 {
                    continue;
                }
                let p = self.px[yy as usize * self.w + xx as usize];
                let wgt = wx * wy;
                for c in 0..4 {
                    out[c] += p[c] * wgt;
                }
            }
        }
        out
    }

    fn half(&self) -> Level {
        let (w, h) = ((self.w / 2).max(1), (self.h / 2).max(1));
        let mut px = vec![[0.0f32; 4]; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 4];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (sx, sy) = ((2 * x + dx).min(self.w - 1), (2 * y + dy).min(self.h - 1));
                    let p = self.px[sy * self.w + sx];
                    for c in 0..4 {
                        acc[c] += p[c] * 0.25;
                    }
                }
                px[y * w + x] = acc;
            }
        }
        Level { w, h, px }
    }
}

impl Sprite {
    /// Cuts the head around `face` (original-photo pixels) out of `photo`: about 1.7 face sizes
    /// wide and 2 high, shifted up for the hair; what lies outside the photo stays transparent.
    pub fn cut(photo: &Photo, face: &Detection) -> Sprite {
        Self::cut_shaped(photo, face, true)
    }

    /// The same rectangle of the photo without the oval edge: the photo a print or a screen shows.
    pub fn cut_rect(photo: &Photo, face: &Detection) -> Sprite {
        Self::cut_shaped(photo, face, false)
    }

    fn cut_shaped(photo: &Photo, face: &Detection, oval: bool) -> Sprite {
        let fs = face.size[0].max(face.size[1]).max(1.0);
        let k = SPRITE_FACE / fs;
        let (cw, ch) = (1.7 * fs, 2.0 * fs);
        let (ccx, ccy) = (face.center[0], face.center[1] - 0.15 * fs);
        let (x0, y0) = (ccx - cw / 2.0, ccy - ch / 2.0);
        let (w, h) = ((cw * k).round() as usize, (ch * k).round() as usize);
        let b = photo.border as f32;
        let (ow, oh) = (
            (photo.w - 2 * photo.border) as f32,
            (photo.h - 2 * photo.border) as f32,
        );
        // Box-filter big photos down (several samples per sprite pixel) so hair and edges don't alias.
        let n = (1.0 / k).ceil().clamp(1.0, 6.0) as usize;
        let mut px = vec![[0.0f32; 4]; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 4];
                for sy in 0..n {
                    for sx in 0..n {
                        let u = x0 + (x as f32 + (sx as f32 + 0.5) / n as f32) / k;
                        let v = y0 + (y as f32 + (sy as f32 + 0.5) / n as f32) / k;
                        if u < 0.0 || v < 0.0 || u >= ow || v >= oh {
                            continue;
                        }
                        let rgb = sample_rgb(photo, u + b, v + b);
                        for c in 0..3 {
                            acc[c] += rgb[c];
                        }
                        acc[3] += 1.0;
                    }
                }
                let inv = 1.0 / (n * n) as f32;
                let (ex, ey) = (
                    (x as f32 + 0.5) / w as f32 * 2.0 - 1.0,
                    (y as f32 + 0.5) / h as f32 * 2.0 - 1.0,
                );
                let r = (ex * ex + ey * ey).sqrt();
                let edge = if oval { smoothstep(1.0, 0.84, r) } else { 1.0 };
                px[y * w + x] = [
                    acc[0] * inv * edge,
                    acc[1] * inv * edge,
                    acc[2] * inv * edge,
                    acc[3] * inv * edge,
                ];
            }
        }
        let to = |p: [f32; 2]| [(p[0] - x0) * k, (p[1] - y0) * k];
        let fb = [
            (face.center[0] - face.size[0] / 2.0 - x0) * k,
            (face.center[1] - face.size[1] / 2.0 - y0) * k,
            face.size[0] * k,
            face.size[1] * k,
        ];
        let mut keypoints = [[0.0; 2]; 6];
        for (o, p) in keypoints.iter_mut().zip(face.keypoints.iter()) {
            *o = to(*p);
        }
        let base = Level { w, h, px };
        let skin = mean_colour(
            &base,
            [fb[0] + 0.3 * fb[2], fb[1] + 0.35 * fb[3]],
            0.4 * fb[2],
        );
        let mut s = Sprite {
            levels: vec![base],
            face: fb,
            keypoints,
            skin,
            surface: if oval { Surface::Head } else { Surface::Flat },
            video: None,
        };
        s.build_mips();
        s
    }

    pub fn build_mips(&mut self) {
        self.levels.truncate(1);
        while let Some(last) = self.levels.last() {
            if last.w < 8 || last.h < 8 {
                break;
            }
            let next = last.half();
            self.levels.push(next);
        }
    }

    /// Paints a surgical-style mask over the lower face (`crate::mask`).
    pub fn add_mask(&mut self, colour: [f32; 3]) {
        let mask = crate::mask::Mask::new(self.face, self.keypoints[2], self.keypoints[3]);
        let base = &mut self.levels[0];
        let (x0, x1, y0, y1) = mask.bounds(base.w, base.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let Some((cov, shade)) = mask.at(x, y) else {
                    continue;
                };
                let p = &mut base.px[y * base.w + x];
                let alpha = p[3];
                for c in 0..3 {
                    p[c] = p[c] * (1.0 - cov) + colour[c] * shade * alpha * cov;
                }
            }
        }
        self.build_mips();
    }
}

fn sample_rgb(photo: &Photo, x: f32, y: f32) -> [f32; 3] {
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor().max(0.0), fy.floor().max(0.0));
    let (ax, ay) = ((fx - x0).clamp(0.0, 1.0), (fy - y0).clamp(0.0, 1.0));
    let (x0, y0) = (x0 as usize, y0 as usize);
    let (x1, y1) = ((x0 + 1).min(photo.w - 1), (y0 + 1).min(photo.h - 1));
    let at = |x: usize, y: usize, c: usize| photo.rgb[(y * photo.w + x) * 3 + c] as f32;
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - ax) + at(x1, y0, c) * ax;
        let bot = at(x0, y1, c) * (1.0 - ax) + at(x1, y1, c) * ax;
        *o = top * (1.0 - ay) + bot * ay;
    }
    out
}

fn mean_colour(l: &Level, at: [f32; 2], size: f32) -> [f32; 3] {
    let (mut acc, mut n) = ([0.0f32; 3], 0.0f32);
    let (x0, y0) = (at[0].max(0.0) as usize, at[1].max(0.0) as usize);
    let s = size.max(1.0) as usize;
    for y in y0..(y0 + s).min(l.h) {
        for x in x0..(x0 + s).min(l.w) {
            let p = l.px[y * l.w + x];
            if p[3] > 0.5 {
                for c in 0..3 {
                    acc[c] += p[c] / p[3];
                }
                n += 1.0;
            }
        }
    }
    if n == 0.0 {
        return [170.0, 130.0, 110.0];
    }
    acc.map(|v| v / n)
}

pub fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}
