//! `gate-calibrate pad`: presentation-attack detection measured as ISO/IEC 30107-3 asks: APCER per
//! attack species (attacks let through as live), BPCER (bona fide faces refused), at a stated
//! operating point (the live-probability threshold), on images an engineer collected at their own
//! station: bona fide captures, and captures of each species of attack.
//!
//! Each image goes through the station's chain up to the face (BlazeFace, the subject's face), then
//! through the PAD pair (`engine::face::pad`). An image where no face is found counts apart: a
//! station that finds no face opens no door, so it is neither a bona fide refusal of PAD nor an
//! attack PAD let through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use engine::face::pad::{self, PadPair};
use engine::face::{FaceChain, Rgb};
use serde::Serialize;

use crate::photo;
use crate::scores::{fmr, fnmr, threshold_for_bpcer};
use crate::select::{par_map, read_labels, threads};

/// The class of the bona fide captures (attack classes are named by their species).
const BONA_FIDE: &str = "bona fide";

#[derive(clap::Args)]
pub struct Args {
    /// Bona fide captures: an image file, a clip (an animated GIF or a video file such as the
    /// lane camera's MP4: one presentation, judged on the mean over its frames with a face, as the
    /// station judges a walk), or a folder (its labels.csv, else every image and clip in it).
    /// Repeatable.
    #[arg(long = "bona-fide")]
    bona_fide: Vec<PathBuf>,
    /// Attack captures of one species, `SPECIES=PATH` (file or folder as for --bona-fide).
    /// Repeatable; the same species may be named several times.
    #[arg(long)]
    attack: Vec<String>,
    /// The station's live-probability threshold (`[pad] threshold`): a face below it counts as
    /// refused.
    #[arg(long, default_value_t = 0.6)]
    threshold: f32,
    /// Folder with the face models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    models: PathBuf,
    /// Folder with the PAD networks (default: $GATE_PAD, else the workspace's assets/pad/).
    #[arg(long, default_value_os_t = pad::assets_dir())]
    pad: PathBuf,
    /// Print every image's live probability.
    #[arg(long)]
    each: bool,
    /// Crop around this face box instead of the detector's, in every image: `X,Y,W,H` (left, top,
    /// width, height, image pixels). For comparing the pair with another implementation on the
    /// same crop: upstream's samples were cut around its RetinaFace boxes, not ours (docs/pad.md).
    /// Still images only (a clip's face moves).
    #[arg(long, value_parser = face_box_arg)]
    face_box: Option<pad::FaceBox>,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of captures: the station's own honest walks, as `gated journal --kind decision
    /// --json` prints them (lanes in `observe` mode for the period; docs/pad.md). Proposes
    /// `threshold` and `attack_below` from them. Repeatable.
    #[arg(long, conflicts_with_all = ["bona_fide", "attack", "json", "each"])]
    journal: Vec<PathBuf>,
    /// With --journal: the station's `[pad] attack_below` now.
    #[arg(long, default_value_t = 0.2)]
    attack_below: f32,
    /// With --journal: the share of honest walks that may fail to show live (BPCER target).
    #[arg(long, default_value_t = 0.02)]
    bpcer: f64,
    /// With --journal: the share of honest walkers that may be alarmed as attacks.
    #[arg(long, default_value_t = 0.005)]
    alarm_rate: f64,
}

/// One class of captures: bona fide, or one attack species.
#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub class: String,
    pub images: usize,
    /// Images where no face was found (no door opens for them either way).
    pub no_face: usize,
    /// Live probabilities of the faces found, in image order.
    pub live: Vec<f32>,
    /// Bona fide: the share refused (BPCER). Attack: the share let through (APCER).
    pub error_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub threshold: f32,
    pub classes: Vec<ClassResult>,
    /// The highest threshold that keeps BPCER at or under 2 %, and every species' APCER there.
    pub at_bpcer_2pct: Option<(f32, Vec<(String, f64)>)>,
}

/// Image files named by `path`: itself, the paths of its labels.csv, or every image in it.
fn images(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    if !path.is_dir() {
        bail!("{}: no such file or folder", path.display());
    }
    if path.join("labels.csv").is_file() {
        let mut v: Vec<PathBuf> = read_labels(path)?.into_iter().map(|l| l.path).collect();
        v.sort();
        return Ok(v);
    }
    let mut v = Vec::new();
    for e in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
        let p = e?.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if crate::clip::is_clip(&p)
            || ["jpg", "jpeg", "png", "bmp", "pgm"].contains(&ext.to_ascii_lowercase().as_str())
        {
            v.push(p);
        }
    }
    v.sort();
    if v.is_empty() {
        bail!("{}: no labels.csv and no image files", path.display());
    }
    Ok(v)
}

/// `SPECIES=PATH` → (species, path).
fn species(arg: &str) -> Result<(String, PathBuf)> {
    match arg.split_once('=') {
        Some((s, p)) if !s.is_empty() && !p.is_empty() => Ok((s.to_owned(), PathBuf::from(p))),
        _ => bail!("--attack {arg:?}: expected SPECIES=PATH, e.g. print=attacks/print"),
    }
}

/// `--face-box X,Y,W,H`: four finite numbers, the width and height above 0.
fn face_box_arg(s: &str) -> Result<pad::FaceBox, String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s:?}: expected X,Y,W,H in image pixels ({e})"))?;
    match v[..] {
        [x, y, w, h] if v.iter().all(|c| c.is_finite()) && w > 0.0 && h > 0.0 => Ok([x, y, w, h]),
        _ => Err(format!(
            "{s:?}: expected X,Y,W,H in image pixels, four finite numbers, W and H above 0"
        )),
    }
}

/// The live probability of the subject's face in one image, cropped around `given` or else the
/// detector's box; `None` when no face is found (or no crop can be cut around the given box).
fn score_image(
    chain: &FaceChain,
    pair: &PadPair,
    view: Rgb<'_>,
    given: Option<pad::FaceBox>,
    what: &Path,
) -> Result<Option<f32>> {
    let face = match given {
        Some(b) => b,
        None => match chain
            .subject_face(view)
            .with_context(|| format!("detecting in {}", what.display()))?
        {
            Some(found) => pad::face_box(&found.detection),
            None => return Ok(None),
        },
    };
    let live = pair
        .live(&[(&view, face)])
        .with_context(|| format!("PAD on {}", what.display()))?;
    Ok(live.first().copied().flatten())
}

/// One presentation's live probability: a photo's, or for a clip (an animated GIF or a video
/// file: a walk) the mean over its frames that show a face, as the station judges a track. `None`
/// without a face.
fn score(
    chain: &FaceChain,
    pair: &PadPair,
    given: Option<pad::FaceBox>,
    path: &Path,
) -> Result<Option<f32>> {
    if crate::clip::is_clip(path) {
        let mut live = Vec::new();
        for (w, h, rgb) in crate::clip::frames(path)? {
            let view = Rgb { rgb: &rgb, w, h };
            live.extend(score_image(chain, pair, view, given, path)?);
        }
        return Ok((!live.is_empty()).then(|| live.iter().sum::<f32>() / live.len() as f32));
    }
    let img = photo::decode(path)?;
    let view = Rgb {
        rgb: img.as_raw(),
        w: img.width() as usize,
        h: img.height() as usize,
    };
    score_image(chain, pair, view, given, path)
}

/// Share of `live` on the wrong side of `t`: below it for bona fide, at or above for attacks.
fn error_rate(live: &[f32], t: f32, bona_fide: bool) -> f64 {
    if bona_fide {
        fnmr(live, t)
    } else {
        fmr(live, t)
    }
}

pub fn run(a: Args) -> Result<()> {
    if !a.journal.is_empty() {
        return crate::pad_journal::run(
            &a.journal,
            &crate::pad_journal::Targets {
                threshold: a.threshold,
                attack_below: a.attack_below,
                bpcer: a.bpcer,
                alarm_rate: a.alarm_rate,
            },
        );
    }
    if a.bona_fide.is_empty() && a.attack.is_empty() {
        bail!("give --bona-fide PATH and/or --attack SPECIES=PATH, or --journal FILE");
    }
    if !(0.0..=1.0).contains(&a.threshold) {
        bail!("--threshold must be in 0..=1 (is {})", a.threshold);
    }
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for p in &a.bona_fide {
        groups
            .entry(BONA_FIDE.into())
            .or_default()
            .extend(images(p)?);
    }
    for arg in &a.attack {
        let (s, p) = species(arg)?;
        if s == BONA_FIDE {
            bail!("--attack: {BONA_FIDE:?} is not an attack species");
        }
        groups.entry(s).or_default().extend(images(&p)?);
    }
    // A clip's face moves: one box for all its frames would crop beside it.
    if a.face_box.is_some()
        && let Some(clip) = groups.values().flatten().find(|p| crate::clip::is_clip(p))
    {
        bail!(
            "--face-box is for still images; {} is a clip",
            clip.display()
        );
    }
    // Arguments first, models after: a typo is named before seconds of loading.
    let chain = FaceChain::load(&a.models)?;
    let pair = PadPair::load(&a.pad, 1)?;
    let mut classes = Vec::new();
    for (class, paths) in groups {
        let bona = class == BONA_FIDE;
        let scored = par_map(&paths, threads(), |p| score(&chain, &pair, a.face_box, p));
        let mut live = Vec::new();
        let mut no_face = 0;
        for (p, s) in paths.iter().zip(scored) {
            match s? {
                Some(v) => {
                    if a.each {
                        println!("{class}\t{v:.4}\t{}", p.display());
                    }
                    live.push(v);
                }
                None => {
                    if a.each {
                        println!("{class}\tno face\t{}", p.display());
                    }
                    no_face += 1;
                }
            }
        }
        classes.push(ClassResult {
            error_rate: error_rate(&live, a.threshold, bona),
            class,
            images: paths.len(),
            no_face,
            live,
        });
    }
    let bona: Vec<f32> = classes
        .iter()
        .filter(|c| c.class == BONA_FIDE)
        .flat_map(|c| c.live.iter().copied())
        .collect();
    let at_bpcer_2pct = threshold_for_bpcer(&bona, 0.02).map(|t| {
        let apcer = classes
            .iter()
            .filter(|c| c.class != BONA_FIDE)
            .map(|c| (c.class.clone(), error_rate(&c.live, t, false)))
            .collect();
        (t, apcer)
    });
    let report = Report {
        threshold: a.threshold,
        classes,
        at_bpcer_2pct,
    };
    print_report(&report);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "PAD at threshold {:.2} (a face with live probability below it is refused as an attack)",
        r.threshold
    );
    println!(
        "{:<16} {:>7} {:>8} {:>8} {:>8}  measure",
        "class", "images", "no face", "median", "min/max"
    );
    for c in &r.classes {
        let mut s = c.live.clone();
        s.sort_by(f32::total_cmp);
        let med = s.get(s.len() / 2).map_or("-".into(), |v| format!("{v:.3}"));
        let range = match (s.first(), s.last()) {
            (Some(a), Some(b)) => format!("{a:.2}/{b:.2}"),
            _ => "-".into(),
        };
        let what = if c.class == BONA_FIDE {
            "BPCER"
        } else {
            "APCER"
        };
        println!(
            "{:<16} {:>7} {:>8} {:>8} {:>8}  {what} {:.1} % ({} of {})",
            c.class,
            c.images,
            c.no_face,
            med,
            range,
            100.0 * c.error_rate,
            (c.error_rate * c.live.len() as f64).round(),
            c.live.len()
        );
    }
    if let Some((t, apcer)) = &r.at_bpcer_2pct {
        let list: Vec<String> = apcer
            .iter()
            .map(|(s, v)| format!("{s} {:.1} %", 100.0 * v))
            .collect();
        println!(
            "at BPCER ≤ 2 % the threshold is {t:.3}; APCER there: {}",
            if list.is_empty() {
                "no attacks given".into()
            } else {
                list.join(", ")
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_the_wrong_side() {
        let live = [0.1, 0.4, 0.6, 0.9];
        assert_eq!(error_rate(&live, 0.5, true), 0.5);
        assert_eq!(error_rate(&live, 0.5, false), 0.5);
        assert_eq!(error_rate(&live, 0.95, false), 0.0);
        assert_eq!(error_rate(&[], 0.5, true), 0.0);
    }

    #[test]
    fn bpcer_threshold_refuses_at_most_the_share() {
        let live: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        // 2 of 100 may be refused: the threshold is the third lowest score.
        assert_eq!(threshold_for_bpcer(&live, 0.02), Some(0.02));
        assert_eq!(error_rate(&live, 0.02, true), 0.02);
        assert_eq!(threshold_for_bpcer(&[], 0.02), None);
    }

    #[test]
    fn a_face_box_is_four_numbers_with_a_size() {
        assert_eq!(
            face_box_arg("120,252,252,256"),
            Ok([120.0, 252.0, 252.0, 256.0])
        );
        assert_eq!(face_box_arg(" 1.5, 2, 3 ,4"), Ok([1.5, 2.0, 3.0, 4.0]));
        for bad in [
            "1,2,3",
            "1,2,3,4,5",
            "a,2,3,4",
            "1,2,0,4",
            "1,2,3,-4",
            "1,2,inf,4",
            "",
        ] {
            let e = face_box_arg(bad).unwrap_err();
            assert!(e.contains("X,Y,W,H"), "{bad}: {e}");
        }
    }

    #[test]
    fn species_needs_a_name_and_a_path() {
        assert!(species("print=a/b").is_ok());
        assert!(species("print").is_err());
        assert!(species("=a").is_err());
    }
}
