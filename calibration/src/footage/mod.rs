//! `gate-calibrate footage`: recorded multi-lane footage with ground truth. K lanes of walkers
//! approach a gate camera; each lane becomes an H.264 MP4 and `truth.json` says who walked, where
//! their face was in every frame and what the gate should decide (format: docs/footage.md).
//! Everything follows from `--seed`: the same seed and inputs give the same frames and truth.

mod attack;
mod encode;
mod plan;
mod preset;
mod render;
mod scene;
mod source;
mod truth;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args as ClapArgs;
use engine::face::FaceChain;
use rand::SeedableRng;
use rand::rngs::StdRng;

use plan::{LaneBuild, Rates};
use scene::Scenario;
use truth::{Expected, Truth};

#[derive(ClapArgs)]
#[group(required = true, multiple = false)]
pub struct SourceArgs {
    /// Folder of `<identity>/<image>` photos (photos without a face are skipped with a warning).
    #[arg(long)]
    faces: Option<PathBuf>,
    /// `labels.csv` (path,identity; paths relative to the file): every photo must show a face.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A fixed set: `default` (what scripts/setup generates into testdata/footage/default).
    #[arg(long, value_parser = ["default"])]
    preset: Option<String>,
    /// Print the truth.json version this generator writes, and exit.
    #[arg(long)]
    generator_version: bool,
}

#[derive(ClapArgs)]
pub struct Args {
    /// Output folder (created): L1.mp4, L2.mp4, …, truth.json.
    #[arg(long, required_unless_present = "generator_version")]
    out: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// Lanes (default 2).
    #[arg(long)]
    lanes: Option<usize>,
    /// Passages per lane (default 4); a tailgater comes on top of its lead.
    #[arg(long)]
    walkers: Option<usize>,
    /// Frames per second (default 10).
    #[arg(long)]
    fps: Option<u32>,
    /// WIDTHxHEIGHT, both even (default 640x480).
    #[arg(long)]
    size: Option<String>,
    /// Default 1.
    #[arg(long)]
    seed: Option<u64>,
    /// Lighting per lane, cycled (default normal,dim,backlit,cast,flicker).
    #[arg(long)]
    scenarios: Option<String>,
    /// Share of walkers wearing a mask over the lower face (default 0.2).
    #[arg(long)]
    mask_rate: Option<f64>,
    /// Share of passages with a second walker close behind (default 0.15).
    #[arg(long)]
    tailgate_rate: Option<f64>,
    /// Share of identities (and of passages) not enrolled (default 0.3).
    #[arg(long)]
    unknown_rate: Option<f64>,
    /// Share of enrolled identities whose ticket has expired (default 0.1).
    #[arg(long)]
    expired_rate: Option<f64>,
    /// Share of passages that are presentation attacks: a picture of an enrolled passenger held
    /// at face height (default 0).
    #[arg(long)]
    attack_rate: Option<f64>,
    /// Attack species drawn in turn, comma-separated (default: matte_print, glossy_print, phone,
    /// tablet; also curved_print, phone_video, tablet_video).
    #[arg(long)]
    attack_species: Option<String>,
    /// Metres every lane's camera stands beside the walking line, turned toward it (default 0:
    /// on the line). Off the line, the angle a face is seen from grows on the approach, which is
    /// what the station's planarity cue needs to tell a head from a picture (docs/pad.md).
    #[arg(long)]
    camera_offset: Option<f32>,
    /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    models: PathBuf,
    /// Where --preset finds the photos scripts/setup fetched.
    #[arg(long, default_value = "testdata")]
    testdata: PathBuf,
    /// Debug: write every --dump-every'th frame and each walker's head sprite as PNG here.
    #[arg(long)]
    dump_png: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    dump_every: u32,
    /// Print a hash of each lane's raw RGB frames (before encoding), for determinism checks.
    #[arg(long)]
    hash_frames: bool,
    /// Run both CPU detectors on every frame with a face and report what they find, by face size.
    #[arg(long)]
    verify: bool,
}

struct Config {
    lanes: usize,
    walkers: usize,
    fps: u32,
    w: usize,
    h: usize,
    seed: u64,
    scenarios: Vec<Scenario>,
    rates: Rates,
    camera_offset_m: f32,
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow!("--size '{s}': expected WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    // Even: the encoder's 4:2:0 chroma halves both; the bounds keep the walker geometry sane.
    if !(64..=3840).contains(&w)
        || !(64..=2160).contains(&h)
        || !w.is_multiple_of(2)
        || !h.is_multiple_of(2)
    {
        bail!("--size '{s}': width must be 64–3840 and height 64–2160, both even");
    }
    Ok((w, h))
}

fn rate(name: &str, v: Option<f64>, default: f64) -> Result<f64> {
    let v = v.unwrap_or(default);
    if !(0.0..=1.0).contains(&v) {
        bail!("--{name} must be between 0 and 1 (got {v})");
    }
    Ok(v)
}

fn config(a: &Args) -> Result<Config> {
    if a.source.preset.is_some() {
        let fixed = [
            ("lanes", a.lanes.is_some()),
            ("walkers", a.walkers.is_some()),
            ("fps", a.fps.is_some()),
            ("size", a.size.is_some()),
            ("seed", a.seed.is_some()),
            ("scenarios", a.scenarios.is_some()),
            ("mask-rate", a.mask_rate.is_some()),
            ("tailgate-rate", a.tailgate_rate.is_some()),
            ("unknown-rate", a.unknown_rate.is_some()),
            ("expired-rate", a.expired_rate.is_some()),
            ("attack-rate", a.attack_rate.is_some()),
            ("attack-species", a.attack_species.is_some()),
            ("camera-offset", a.camera_offset.is_some()),
        ];
        if let Some((name, _)) = fixed.iter().find(|(_, set)| *set) {
            bail!("--preset fixes the whole set; drop --{name} (or use --faces/--labels)");
        }
        let (w, h) = preset::SIZE;
        return Ok(Config {
            lanes: 2,
            walkers: 0,
            fps: preset::FPS,
            w,
            h,
            seed: preset::SEED,
            scenarios: vec![Scenario::Normal, Scenario::Dim],
            rates: Rates {
                mask: 0.0,
                tailgate: 0.0,
                unknown: 0.0,
                expired: 0.0,
                attack: 0.0,
                species: Vec::new(),
            },
            camera_offset_m: preset::CAMERA_OFFSET_M,
        });
    }
    let lanes = a.lanes.unwrap_or(2);
    if !(1..=32).contains(&lanes) {
        bail!("--lanes must be 1–32 (got {lanes})");
    }
    let walkers = a.walkers.unwrap_or(4);
    if !(1..=500).contains(&walkers) {
        bail!("--walkers must be 1–500 per lane (got {walkers})");
    }
    let fps = a.fps.unwrap_or(10);
    if !(1..=60).contains(&fps) {
        bail!("--fps must be 1–60 (got {fps})");
    }
    let (w, h) = parse_size(a.size.as_deref().unwrap_or("640x480"))?;
    let scenarios = match &a.scenarios {
        None => Scenario::ALL.to_vec(),
        Some(s) => s
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(Scenario::parse)
            .collect::<Result<Vec<_>>>()
            .context("--scenarios")?,
    };
    if scenarios.is_empty() {
        bail!("--scenarios is empty (known: normal, dim, backlit, cast, flicker)");
    }
    let camera_offset_m = a.camera_offset.unwrap_or(0.0);
    // Beyond ~0.4 m the near end of the walk is seen at over 40° and leaves the frame.
    if !(0.0..=0.4).contains(&camera_offset_m) {
        bail!("--camera-offset must be 0–0.4 m (got {camera_offset_m})");
    }
    Ok(Config {
        camera_offset_m,
        lanes,
        walkers,
        fps,
        w,
        h,
        seed: a.seed.unwrap_or(1),
        scenarios,
        rates: Rates {
            mask: rate("mask-rate", a.mask_rate, 0.2)?,
            tailgate: rate("tailgate-rate", a.tailgate_rate, 0.15)?,
            unknown: rate("unknown-rate", a.unknown_rate, 0.3)?,
            expired: rate("expired-rate", a.expired_rate, 0.1)?,
            attack: rate("attack-rate", a.attack_rate, 0.0)?,
            species: match &a.attack_species {
                None => attack::DEFAULT.to_vec(),
                Some(s) => s
                    .split(',')
                    .filter(|x| !x.trim().is_empty())
                    .map(|x| attack::Species::parse(x.trim()))
                    .collect::<Result<Vec<_>>>()
                    .context("--attack-species")?,
            },
        },
    })
}

pub fn run(a: Args) -> Result<()> {
    if a.source.generator_version {
        println!("{}", truth::VERSION);
        return Ok(());
    }
    let out = a.out.clone().ok_or_else(|| anyhow!("--out is required"))?;
    let cfg = config(&a)?;
    let started = Instant::now();
    let pipe = FaceChain::load(&a.models)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let (cast, skipped) = if a.source.preset.is_some() {
        (preset::default_cast(&pipe, &a.testdata)?, 0)
    } else {
        let (ids, strict) = match (&a.source.faces, &a.source.labels) {
            (Some(dir), _) => (source::from_folder(dir)?, false),
            (_, Some(file)) => (source::from_labels(file)?, true),
            _ => bail!("give --faces, --labels or --preset"),
        };
        let s = &cfg;
        plan::random_cast(
            ids,
            strict,
            &pipe,
            &mut rng,
            &s.scenarios,
            s.lanes,
            s.walkers,
            &s.rates,
        )?
    };
    if skipped > 0 {
        eprintln!("warning: {skipped} photo(s) skipped (unreadable or no face)");
    }
    let (lanes, mut enrol) =
        plan::build(&cast, &mut rng, cfg.fps, cfg.w, cfg.h, cfg.camera_offset_m)?;
    let prepared = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // A run that fails half way must not leave an older truth.json that looks complete.
    let truth_path = out.join("truth.json");
    if truth_path.exists() {
        std::fs::remove_file(&truth_path)
            .with_context(|| format!("removing {}", truth_path.display()))?;
    }
    enrolment_photos(&out, &cast, &mut enrol)?;
    if let Some(dir) = &a.dump_png {
        dump_sprites(dir, &lanes)?;
    }
    let opts = LaneOpts {
        out: &out,
        dump: a.dump_png.as_deref(),
        dump_every: a.dump_every.max(1),
        hash: a.hash_frames,
        verify: a.verify.then_some(&pipe),
    };
    // Lanes are independent (own RNG streams, own encoder): render them side by side.
    let results: Vec<Result<LaneDone>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| {
                let (cfg, opts) = (&cfg, &opts);
                s.spawn(move || render_lane(lane, i, cfg, opts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a lane's renderer panicked")))
            })
            .collect()
    });
    let mut truth_lanes = Vec::new();
    for (lane, r) in lanes.into_iter().zip(results) {
        let done = r?;
        let count = |e: Expected| lane.truth.iter().filter(|w| w.expected == e).count();
        let mut line = format!(
            "{} {}: {} walkers (open {}, closed {}, tailgating {}, attack {}), {} frames ({:.1} s) → {} [{:.1} s]",
            lane.name,
            lane.scenario.name(),
            lane.truth.len(),
            count(Expected::Open),
            count(Expected::Closed),
            count(Expected::Tailgating),
            count(Expected::Attack),
            lane.frames,
            lane.frames as f64 / cfg.fps as f64,
            done.path.display(),
            done.seconds,
        );
        if let Some(h) = done.hash {
            line += &format!(" frames-fnv64 {h:016x}");
        }
        if let Some(v) = done.verify {
            line += &format!(" | verify {}", v.summary());
        }
        println!("{line}");
        truth_lanes.push(truth::Lane {
            file: format!("{}.mp4", lane.name),
            lane: lane.name,
            scenario: lane.scenario.name().to_owned(),
            frames: lane.frames,
            camera: truth::Camera {
                offset_m: cfg.camera_offset_m,
                focal_px: truth::round1(scene::focal_px(cfg.h as f32)),
                aim_deg: truth::round1(scene::aim_deg(cfg.camera_offset_m)),
            },
            walkers: lane.truth,
        });
    }
    let truth = Truth {
        version: truth::VERSION,
        seed: cfg.seed,
        fps: cfg.fps,
        width: cfg.w as u32,
        height: cfg.h as u32,
        lanes: truth_lanes,
        enrol,
    };
    let text = compact_number_arrays(&serde_json::to_string_pretty(&truth)?) + "\n";
    let tmp = out.join("truth.json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &truth_path)
        .with_context(|| format!("writing {}", truth_path.display()))?;
    println!(
        "{}: {} lanes, {} enrolled; faces located in {prepared:.1} s, total {:.1} s",
        truth_path.display(),
        truth.lanes.len(),
        truth.enrol.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct LaneOpts<'a> {
    out: &'a Path,
    dump: Option<&'a Path>,
    dump_every: u32,
    hash: bool,
    verify: Option<&'a FaceChain>,
}

struct LaneDone {
    path: PathBuf,
    seconds: f64,
    hash: Option<u64>,
    verify: Option<verify::Tally>,
}

/// Independent seeds per lane and purpose, so a lane's pixels do not depend on the others.
fn sub_seed(seed: u64, lane: usize, purpose: u64) -> u64 {
    let x = seed
        ^ (lane as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ purpose.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x.rotate_left(29).wrapping_mul(0x94d0_49bb_1331_11eb)
}

fn render_lane(lane: &LaneBuild, i: usize, cfg: &Config, o: &LaneOpts) -> Result<LaneDone> {
    let t0 = Instant::now();
    let mut scene_rng = StdRng::seed_from_u64(sub_seed(cfg.seed, i, 1));
    let lighting = lane.scenario.lighting(&mut scene_rng);
    let bg = scene::background(&mut scene_rng, cfg.w, cfg.h, &lighting);
    let noise = StdRng::seed_from_u64(sub_seed(cfg.seed, i, 2));
    let mut r = render::LaneRenderer::new(cfg.w, cfg.h, cfg.fps, bg, lighting, &lane.actors, noise);
    let path = o.out.join(format!("{}.mp4", lane.name));
    let mut enc = encode::Encoder::new(&path, cfg.w, cfg.h, cfg.fps)?;
    let mut boxes: Vec<Vec<[f32; 4]>> = vec![Vec::new(); lane.frames as usize];
    for w in &lane.truth {
        for b in &w.boxes {
            if let Some(v) = boxes.get_mut(b.0 as usize) {
                v.push([b.1, b.2, b.3, b.4]);
            }
        }
    }
    let mut hash = Fnv::new();
    let mut tally = verify::Tally::default();
    let mut rgb = Vec::new();
    for f in 0..lane.frames {
        r.frame(f, &mut rgb);
        if o.hash {
            hash.write(&rgb);
        }
        if let Some(dir) = o.dump
            && f.is_multiple_of(o.dump_every)
        {
            let p = dir.join(format!("{}-{f:04}.png", lane.name));
            image::RgbImage::from_raw(cfg.w as u32, cfg.h as u32, rgb.clone())
                .ok_or_else(|| anyhow!("frame buffer size"))?
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(pipe) = o.verify {
            tally.frame(pipe, &rgb, cfg.w, cfg.h, &boxes[f as usize])?;
        }
        enc.push(&rgb)?;
    }
    enc.finish()?;
    Ok(LaneDone {
        path,
        seconds: t0.elapsed().as_secs_f64(),
        hash: o.hash.then_some(hash.0),
        verify: o.verify.map(|_| tally),
    })
}

/// Each walker's head as cut (before masks), over grey, for eyeballing the crops.
fn dump_sprites(dir: &Path, lanes: &[LaneBuild]) -> Result<()> {
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

/// Pretty JSON, but arrays of plain numbers on one line (`[12, 301.5, 88.2, 40.1, 40.1]`): the
/// per-frame boxes would otherwise take six lines each.
fn compact_number_arrays(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let Some(j) = rest.find(']') else { continue };
        let inner = &rest[..j];
        let numeric = !inner.trim().is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_whitespace() || ",.-+eE".contains(c));
        if numeric {
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            out.push_str(&parts.join(", "));
            out.push(']');
            rest = &rest[j + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// The enrolment centre reads JPEG and PNG only (docs/enrolment.md), so an enrolee whose photo is
/// in another format (AT&T's PGM, Yale's GIF) gets it written beside the footage as a PNG
/// (`enrol/NNNN.png`, numbered: identities come from a labels file and are not file names), with
/// the border the generator found the face with, since those sets are cropped too tightly for a
/// detector; truth.json points there and its face box moves with the border.
fn enrolment_photos(out: &Path, cast: &plan::Cast, enrol: &mut [truth::Enrol]) -> Result<()> {
    let mut written = 0;
    for p in &cast.people {
        let Some((f, _)) = &p.enrol else { continue };
        let ext = (f.path.extension().and_then(|e| e.to_str())).map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
            continue;
        }
        let Some(e) = enrol.iter_mut().find(|e| e.identity == p.name) else {
            continue;
        };
        let photo = &f.located.photo;
        let dir = out.join("enrol");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = format!("enrol/{written:04}.png");
        let img = image::RgbImage::from_raw(photo.w as u32, photo.h as u32, photo.rgb.clone())
            .ok_or_else(|| anyhow!("{}: decoded size does not match", f.path.display()))?;
        img.save_with_format(out.join(&name), image::ImageFormat::Png)
            .with_context(|| format!("writing {}", out.join(&name).display()))?;
        let b = photo.border as f32;
        e.photo = name;
        e.face = [e.face[0] + b, e.face[1] + b, e.face[2], e.face[3]];
        written += 1;
    }
    Ok(())
}
