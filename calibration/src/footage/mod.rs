//! `gate-calibrate footage`: recorded multi-lane footage with ground truth. K lanes of walkers
//! approach a gate camera; each lane becomes an H.264 MP4 and `truth.json` says who walked, where
//! their face was in every frame and what the gate should decide (format: docs/footage.md).
//! Everything follows from `--seed`: the same seed and inputs give the same frames and truth.

mod attack;
mod encode;
mod lane;
mod plan;
mod preset;
mod relief;
mod render;
mod scene;
mod source;
mod truth;
mod verify;
mod view;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args as ClapArgs;
use engine::face::FaceChain;
use rand::SeedableRng;
use rand::rngs::StdRng;

use lane::{LaneDone, LaneOpts};
use plan::Rates;
use scene::Scenario;
use truth::{Expected, Truth};
use view::{Posture, View};

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
    /// Every lane also gets a lower camera, 0.5 m below the upper one on the same spot and
    /// turned up 12°, written as `<lane>_lower.mp4`: it sees children, wheelchair users and
    /// passengers looking down at their phones that the upper one loses.
    #[arg(long)]
    lower_camera: bool,
    /// Postures some walkers take, comma-separated: phone, child, wheelchair (default: everyone
    /// stands).
    #[arg(long)]
    postures: Option<String>,
    /// Share of the walkers (attacks aside) who take one of --postures, in turn (default 0.5).
    #[arg(long)]
    posture_rate: Option<f64>,
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
    /// A second, lower camera per lane.
    lower: bool,
    /// Empty: everyone stands.
    postures: Vec<Posture>,
    posture_rate: f64,
}

/// `sub_seed` purposes: each stream is drawn from alone, so adding one leaves the others' draws
/// (and a seed's footage) as they were.
const SCENE_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
const POSTURE_STREAM: u64 = 3;
const LOWER_NOISE_STREAM: u64 = 4;

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
            ("postures", a.postures.is_some()),
            ("posture-rate", a.posture_rate.is_some()),
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
            rates: Rates::none(),
            camera_offset_m: preset::CAMERA_OFFSET_M,
            // Adds a view without changing the preset's own lanes.
            lower: a.lower_camera,
            postures: Vec::new(),
            posture_rate: 0.0,
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
    let postures = match &a.postures {
        None if a.posture_rate.is_some() => bail!("--posture-rate needs --postures"),
        None => Vec::new(),
        Some(s) => view::parse_list(s).context("--postures")?,
    };
    Ok(Config {
        camera_offset_m,
        lower: a.lower_camera,
        postures,
        posture_rate: rate("posture-rate", a.posture_rate, 0.5)?,
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
    let (lanes, mut enrol) = plan::build(&cast, &mut rng, &cfg)?;
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
        lane::dump_sprites(dir, &lanes)?;
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
                s.spawn(move || lane::render_lane(lane, i, cfg, opts))
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
        let done: LaneDone = r?;
        let count = |e: Expected| lane.truth.iter().filter(|w| w.expected == e).count();
        for v in &done.views {
            let mut line = match v.cam {
                View::Upper => format!(
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
                    v.path.display(),
                    done.seconds,
                ),
                View::Lower => format!("{} lower camera → {}", lane.name, v.path.display()),
            };
            if let Some(h) = v.hash {
                line += &format!(" frames-fnv64 {h:016x}");
            }
            if let Some(t) = &v.verify {
                line += &format!(" | verify {}", t.summary());
            }
            println!("{line}");
        }
        truth_lanes.push(lane_truth(lane, &cfg));
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
    let text = truth_text(&truth)?;
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

/// What `truth.json` says of a lane: its cameras and walkers.
fn lane_truth(lane: plan::LaneBuild, cfg: &Config) -> truth::Lane {
    let focal_px = truth::round1(scene::focal_px(cfg.h as f32));
    truth::Lane {
        file: format!("{}.mp4", lane.name),
        lower: cfg.lower.then(|| truth::LowerCamera {
            file: format!("{}{}.mp4", lane.name, View::Lower.suffix()),
            below_m: view::BELOW_M,
            tilt_deg: view::TILT_DEG,
            focal_px,
        }),
        lane: lane.name,
        scenario: lane.scenario.name().to_owned(),
        frames: lane.frames,
        camera: truth::Camera {
            offset_m: cfg.camera_offset_m,
            focal_px,
            aim_deg: truth::round1(scene::aim_deg(cfg.camera_offset_m)),
        },
        walkers: lane.truth,
    }
}

/// Independent seeds per lane and purpose, so a lane's pixels do not depend on the others.
fn sub_seed(seed: u64, lane: usize, purpose: u64) -> u64 {
    let x = seed
        ^ (lane as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ purpose.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x.rotate_left(29).wrapping_mul(0x94d0_49bb_1331_11eb)
}

/// `truth.json`'s bytes.
fn truth_text(truth: &Truth) -> Result<String> {
    Ok(compact_number_arrays(&serde_json::to_string_pretty(truth)?) + "\n")
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
