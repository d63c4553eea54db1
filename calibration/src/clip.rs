//! `gate-calibrate detect --clip`: per-frame face counts on a clip (an animated GIF, a video file a
//! station camera recorded, or a folder of PNG/JPEG frames in name order), both BlazeFace models on
//! the whole frame, optionally against a second opinion (`benches/peers/dlib_clip.py`: CSV
//! `frame,left,top,right,bottom`, one row per face). `gate-calibrate pad` reads its clips here too.
//!
//! A reference face counts as found when a detection's centre lies inside its box grown by a quarter
//! on every side.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use engine::face::blazeface::Detection;
use image::AnimationDecoder;

use engine::face::{FaceChain, Rgb};

pub struct Options {
    pub clip: PathBuf,
    pub models: PathBuf,
    pub reference: Option<PathBuf>,
    pub min_score: f32,
    pub dump_frames: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

/// Video containers GStreamer's decodebin reads (what station cameras and recorders write).
const VIDEO: [&str; 6] = ["mp4", "m4v", "mkv", "webm", "mov", "avi"];

/// More frames than this in one clip is a recording of many walks, not a clip of one: refused
/// rather than held in memory (at 1280×720 it is ~4 GB of RGB).
const MAX_FRAMES: u64 = 1500;

/// Whether `path` names a clip (a GIF or a video file) rather than one image.
pub fn is_clip(path: &Path) -> bool {
    is_video(path) || extension(path).is_some_and(|e| e == "gif")
}

fn is_video(path: &Path) -> bool {
    extension(path).is_some_and(|e| VIDEO.contains(&e.as_str()))
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// Frames as RGB8 (width, height, pixels).
pub fn frames(clip: &Path) -> Result<Vec<(usize, usize, Vec<u8>)>> {
    if is_video(clip) {
        let mut out = Vec::new();
        let n = crate::lane::for_each_frame(clip, |f| {
            if out.len() as u64 >= MAX_FRAMES {
                bail!(
                    "{}: more than {MAX_FRAMES} frames; cut it to one walk (e.g. gst-launch-1.0 or ffmpeg)",
                    clip.display()
                );
            }
            out.push((f.w, f.h, f.rgb));
            Ok(true)
        })?;
        if n == 0 {
            bail!("{}: no frames decoded", clip.display());
        }
        return Ok(out);
    }
    let rgb = |f: image::RgbaImage| {
        let (w, h) = (f.width() as usize, f.height() as usize);
        (
            w,
            h,
            image::DynamicImage::ImageRgba8(f).to_rgb8().into_raw(),
        )
    };
    if clip.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(clip)
            .with_context(|| format!("reading {}", clip.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        names.sort();
        return names
            .iter()
            .map(|p| {
                let img = image::open(p).with_context(|| format!("decoding {}", p.display()))?;
                Ok(rgb(img.to_rgba8()))
            })
            .collect();
    }
    let file = File::open(clip).with_context(|| format!("reading {}", clip.display()))?;
    let dec = image::codecs::gif::GifDecoder::new(BufReader::new(file)).with_context(|| {
        format!(
            "{}: not a GIF (give a GIF, a video file or a folder of frames)",
            clip.display()
        )
    })?;
    dec.into_frames()
        .enumerate()
        .map(|(i, f)| {
            f.map(|f| rgb(f.into_buffer()))
                .with_context(|| format!("{}: frame {i}", clip.display()))
        })
        .collect()
}

/// Reference boxes per frame from a CSV with header `frame,left,top,right,bottom`.
fn read_reference(path: &Path) -> Result<BTreeMap<usize, Vec<[f32; 4]>>> {
    let mut out: BTreeMap<usize, Vec<[f32; 4]>> = BTreeMap::new();
    for (line, rec) in crate::select::read_csv(path)?.rows {
        let f: Vec<&str> = rec.iter().collect();
        let bad = || {
            format!(
                "{}:{line}: expected frame,left,top,right,bottom",
                path.display()
            )
        };
        let [fr, l, t, r, b] = f[..] else {
            bail!(bad())
        };
        let fr: usize = fr.parse().with_context(bad)?;
        let mut bx = [0f32; 4];
        for (v, s) in bx.iter_mut().zip([l, t, r, b]) {
            *v = s.parse().with_context(bad)?;
        }
        out.entry(fr).or_default().push(bx);
    }
    Ok(out)
}

fn hits(bx: &[f32; 4], d: &Detection) -> bool {
    let (gw, gh) = ((bx[2] - bx[0]) / 4.0, (bx[3] - bx[1]) / 4.0);
    let [cx, cy] = d.center;
    cx >= bx[0] - gw && cx <= bx[2] + gw && cy >= bx[1] - gh && cy <= bx[3] + gh
}

fn draw_box(rgb: &mut [u8], w: usize, h: usize, c: [f32; 2], s: [f32; 2], colour: [u8; 3]) {
    let (x0, y0) = (
        (c[0] - s[0] / 2.0).max(0.0) as usize,
        (c[1] - s[1] / 2.0).max(0.0) as usize,
    );
    let x1 = ((c[0] + s[0] / 2.0).max(0.0) as usize).min(w.saturating_sub(1));
    let y1 = ((c[1] + s[1] / 2.0).max(0.0) as usize).min(h.saturating_sub(1));
    let mut put = |x: usize, y: usize| {
        if x < w && y < h {
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour);
        }
    };
    for x in x0..=x1 {
        put(x, y0);
        put(x, y1);
    }
    for y in y0..=y1 {
        put(x0, y);
        put(x1, y);
    }
}

pub fn run(o: Options) -> Result<()> {
    let mut pipe = FaceChain::load(&o.models)?;
    pipe.min_score = o.min_score;
    let frames = frames(&o.clip)?;
    let reference = match &o.reference {
        Some(p) => Some(read_reference(p)?),
        None => None,
    };
    if let Some(d) = &o.dump_frames {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let per = crate::select::par_map(
        &frames.iter().enumerate().collect::<Vec<_>>(),
        crate::select::threads(),
        |(i, (w, h, rgb))| -> Result<(Vec<Detection>, Vec<Detection>)> {
            let img = Rgb { rgb, w: *w, h: *h };
            let back = pipe.detect_back(img)?;
            let front = pipe.detect_front(img)?;
            if let Some(dir) = &o.dump_frames {
                let mut img = rgb.clone();
                for b in reference
                    .as_ref()
                    .and_then(|r| r.get(i))
                    .into_iter()
                    .flatten()
                {
                    let c = [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
                    draw_box(
                        &mut img,
                        *w,
                        *h,
                        c,
                        [b[2] - b[0], b[3] - b[1]],
                        [255, 255, 0],
                    );
                }
                for d in &back {
                    draw_box(&mut img, *w, *h, d.center, d.size, [255, 0, 0]);
                }
                for d in &front {
                    draw_box(&mut img, *w, *h, d.center, d.size, [0, 255, 0]);
                }
                let p = dir.join(format!("frame{i:04}.png"));
                image::save_buffer(
                    &p,
                    &img,
                    *w as u32,
                    *h as u32,
                    image::ExtendedColorType::Rgb8,
                )
                .with_context(|| format!("writing {}", p.display()))?;
            }
            Ok((back, front))
        },
    );
    let (mut any_back, mut any_front, mut any_either, mut n_back, mut n_front) = (0, 0, 0, 0, 0);
    let (mut ref_faces, mut ref_hit_back, mut ref_hit_either, mut ref_frames) = (0, 0, 0, 0);
    let mut rows = Vec::new();
    println!(
        "frame  back-256  front-128  {}",
        if reference.is_some() {
            "reference  found(back/either)"
        } else {
            ""
        }
    );
    for (i, r) in per.into_iter().enumerate() {
        let (back, front) = r?;
        let refs = reference
            .as_ref()
            .and_then(|r| r.get(&i))
            .cloned()
            .unwrap_or_default();
        let hb = refs
            .iter()
            .filter(|b| back.iter().any(|d| hits(b, d)))
            .count();
        let he = refs
            .iter()
            .filter(|b| back.iter().chain(&front).any(|d| hits(b, d)))
            .count();
        any_back += usize::from(!back.is_empty());
        any_front += usize::from(!front.is_empty());
        any_either += usize::from(!back.is_empty() || !front.is_empty());
        n_back += back.len();
        n_front += front.len();
        ref_faces += refs.len();
        ref_frames += usize::from(!refs.is_empty());
        ref_hit_back += hb;
        ref_hit_either += he;
        let eyes: Vec<String> = back
            .iter()
            .map(|d| format!("{:.0}", d.eye_distance()))
            .collect();
        println!(
            "{i:5}  {:8}  {:9}  {}",
            back.len(),
            front.len(),
            if reference.is_some() {
                format!("{:9}  {hb}/{he}", refs.len())
            } else {
                String::new()
            }
        );
        rows.push(
            serde_json::json!({"frame": i, "back": back.len(), "front": front.len(),
            "reference": refs.len(), "found_back": hb, "found_either": he, "eye_px_back": eyes}),
        );
    }
    let n = rows.len().max(1) as f64;
    println!(
        "{}: {} frames; a face in {any_back} ({:.0} %) by back-256, {any_front} ({:.0} %) by front-128, {any_either} ({:.0} %) by either; faces per frame {:.2} (back), {:.2} (front)",
        o.clip.display(),
        rows.len(),
        100.0 * any_back as f64 / n,
        100.0 * any_front as f64 / n,
        100.0 * any_either as f64 / n,
        n_back as f64 / n,
        n_front as f64 / n
    );
    if reference.is_some() {
        let rf = ref_faces.max(1) as f64;
        println!(
            "reference: {ref_faces} faces in {ref_frames} frames; found by back-256 {ref_hit_back} ({:.1} %), by either {ref_hit_either} ({:.1} %)",
            100.0 * ref_hit_back as f64 / rf,
            100.0 * ref_hit_either as f64 / rf
        );
    }
    if let Some(path) = &o.json {
        let v = serde_json::json!({"clip": o.clip, "frames": rows.len(), "any_back": any_back,
            "any_front": any_front, "any_either": any_either, "faces_back": n_back, "faces_front": n_front,
            "reference_faces": ref_faces, "reference_frames": ref_frames,
            "reference_found_back": ref_hit_back, "reference_found_either": ref_hit_either, "per_frame": rows});
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_csv_is_read_and_bad_lines_are_named() {
        let dir = std::env::temp_dir();
        let good = dir.join(format!("clipref-{}-good.csv", std::process::id()));
        std::fs::write(
            &good,
            "frame,left,top,right,bottom\n0,10,10,50,50\n0,60,10,90,40\n3,1,2,3,4\n",
        )
        .expect("write");
        let r = read_reference(&good).expect("reads");
        assert_eq!(r[&0].len(), 2);
        assert_eq!(r[&3], vec![[1.0, 2.0, 3.0, 4.0]]);
        let bad = dir.join(format!("clipref-{}-bad.csv", std::process::id()));
        std::fs::write(
            &bad,
            "frame,left,top,right,bottom\n0,10,10,50,50\nx,1,2,3,4\n",
        )
        .expect("write");
        let e = read_reference(&bad).expect_err("refused");
        assert!(format!("{e:#}").contains("bad.csv:3"), "{e:#}");
        let d = Detection {
            score: 0.9,
            center: [55.0, 30.0],
            size: [20.0, 20.0],
            keypoints: [[0.0; 2]; 6],
        };
        assert!(
            hits(&[10.0, 10.0, 50.0, 50.0], &d),
            "inside the box grown by a quarter"
        );
        assert!(!hits(&[10.0, 10.0, 30.0, 30.0], &d));
    }

    #[test]
    fn a_video_that_is_not_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("walk.mp4");
        std::fs::write(&bad, b"not a video at all, just bytes").expect("write");
        assert!(is_clip(&bad) && is_clip(Path::new("w.GIF")) && !is_clip(Path::new("a.jpg")));
        let e = frames(&bad).expect_err("refused");
        assert!(format!("{e:#}").contains("walk.mp4"), "{e:#}");
    }

    #[test]
    fn a_missing_clip_is_an_error() {
        let e = frames(Path::new("/nonexistent/clip.gif")).expect_err("refused");
        assert!(format!("{e:#}").contains("/nonexistent/clip.gif"), "{e:#}");
    }
}
