//! Rendering one lane: each of its cameras' frames into its MP4, with the debug outputs (frame
//! hashes, PNGs, the detector check) per camera.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use engine::face::FaceChain;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::plan::LaneBuild;
use super::view::View;
use super::{Config, LOWER_NOISE_STREAM, NOISE_STREAM, SCENE_STREAM, encode, render, scene};
use super::{sub_seed, verify};

pub struct LaneOpts<'a> {
    pub out: &'a Path,
    pub dump: Option<&'a Path>,
    pub dump_every: u32,
    pub hash: bool,
    pub verify: Option<&'a FaceChain>,
}

/// What one camera of a lane produced.
pub struct ViewDone {
    pub cam: View,
    pub path: PathBuf,
    pub hash: Option<u64>,
    pub verify: Option<verify::Tally>,
}

pub struct LaneDone {
    pub seconds: f64,
    /// The upper camera first, then the lower one when there is one.
    pub views: Vec<ViewDone>,
}

/// One camera being rendered: its renderer, encoder, and the truth's face boxes per frame.
struct Camera<'a> {
    cam: View,
    name: String,
    path: PathBuf,
    renderer: render::LaneRenderer<'a>,
    enc: encode::Encoder,
    boxes: Vec<Vec<[f32; 4]>>,
    hash: Fnv,
    tally: verify::Tally,
}

impl<'a> Camera<'a> {
    fn new(cam: View, lane: &'a LaneBuild, i: usize, cfg: &Config, out: &Path) -> Result<Self> {
        // Both cameras draw the lane's one lighting and background from the same stream; the
        // sensor noise is each camera's own.
        let mut scene_rng = StdRng::seed_from_u64(sub_seed(cfg.seed, i, SCENE_STREAM));
        let lighting = lane.scenario.lighting(&mut scene_rng);
        let drop = scene::focal_px(cfg.h as f32) * cam.tilt().tan();
        let bg = scene::background(&mut scene_rng, cfg.w, cfg.h, &lighting, drop);
        let stream = match cam {
            View::Upper => NOISE_STREAM,
            View::Lower => LOWER_NOISE_STREAM,
        };
        let noise = StdRng::seed_from_u64(sub_seed(cfg.seed, i, stream));
        let (w, h, fps) = (cfg.w, cfg.h, cfg.fps);
        let renderer = render::LaneRenderer::new(cam, w, h, fps, bg, lighting, &lane.actors, noise);
        let name = format!("{}{}", lane.name, cam.suffix());
        let path = out.join(format!("{name}.mp4"));
        let enc = encode::Encoder::new(&path, w, h, fps)?;
        let mut boxes: Vec<Vec<[f32; 4]>> = vec![Vec::new(); lane.frames as usize];
        for walker in &lane.truth {
            let listed = match cam {
                View::Upper => Some(&walker.boxes),
                View::Lower => walker.lower_boxes.as_ref(),
            };
            for b in listed.into_iter().flatten() {
                if let Some(v) = boxes.get_mut(b.0 as usize) {
                    v.push([b.1, b.2, b.3, b.4]);
                }
            }
        }
        Ok(Camera {
            cam,
            name,
            path,
            renderer,
            enc,
            boxes,
            hash: Fnv::new(),
            tally: verify::Tally::default(),
        })
    }
}

pub fn render_lane(lane: &LaneBuild, i: usize, cfg: &Config, o: &LaneOpts) -> Result<LaneDone> {
    let t0 = Instant::now();
    let mut cams = vec![Camera::new(View::Upper, lane, i, cfg, o.out)?];
    if cfg.lower {
        cams.push(Camera::new(View::Lower, lane, i, cfg, o.out)?);
    }
    let mut rgb = Vec::new();
    for f in 0..lane.frames {
        for c in &mut cams {
            c.renderer.frame(f, &mut rgb);
            if o.hash {
                c.hash.write(&rgb);
            }
            if let Some(dir) = o.dump
                && f.is_multiple_of(o.dump_every)
            {
                let p = dir.join(format!("{}-{f:04}.png", c.name));
                image::RgbImage::from_raw(cfg.w as u32, cfg.h as u32, rgb.clone())
                    .ok_or_else(|| anyhow!("frame buffer size"))?
                    .save(&p)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if let Some(pipe) = o.verify {
                c.tally
                    .frame(pipe, &rgb, cfg.w, cfg.h, &c.boxes[f as usize])?;
            }
            c.enc.push(&rgb)?;
        }
    }
    let mut views = Vec::new();
    for c in cams {
        c.enc.finish()?;
        views.push(ViewDone {
            cam: c.cam,
            path: c.path,
            hash: o.hash.then_some(c.hash.0),
            verify: o.verify.map(|_| c.tally),
        });
    }
    Ok(LaneDone {
        seconds: t0.elapsed().as_secs_f64(),
        views,
    })
}

/// Each walker's head as cut (before masks), over grey, for eyeballing the crops.
pub fn dump_sprites(dir: &Path, lanes: &[LaneBuild]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for lane in lanes {
        for (a, w) in lane.actors.iter().zip(&lane.truth) {
            let l = &a.sprite.levels[0];
            let mut px = Vec::with_capacity(l.w * l.h * 3);
            for p in &l.px {
                for c in 0..3 {
                    px.push((p[c] + 128.0 * (1.0 - p[3])).clamp(0.0, 255.0) as u8);
                }
            }
            let p = dir.join(format!("sprite-{}-{}.png", w.walker, w.identity));
            image::RgbImage::from_raw(l.w as u32, l.h as u32, px)
                .ok_or_else(|| anyhow!("sprite buffer size"))?
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

/// FNV-1a, 64 bit: stable across platforms and Rust versions, unlike the std hasher.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
