//! `gate-calibrate eval`: verification accuracy of the station's chain on a labelled folder, and with
//! `--landmarks` the same SFace on chips aligned from reference (dlib) landmarks, side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use engine::face::align::{self, TEMPLATE_4};
use engine::face::prepare::cosine;
use engine::face::{Chip, FaceChain, Found};

use crate::photo::Photo;
use crate::refmarks::{self, KeypointStats, RefMarks};
use crate::scores::{self, Pairs, print_row, quantile, summary};
use crate::select::{self, Labelled};

pub struct Options {
    pub set: PathBuf,
    pub pairs: Option<PathBuf>,
    pub skip_per_identity: usize,
    pub per_identity: Option<usize>,
    pub pad: f32,
    pub models: PathBuf,
    pub json: Option<PathBuf>,
    pub landmarks: Option<PathBuf>,
    pub template4: Option<[[f32; 2]; 4]>,
    pub dump_chips: Option<PathBuf>,
    /// Write det/roc .png/.svg here.
    pub plots: Option<PathBuf>,
    /// Also score flip-averaged embeddings (each chip and its mirror), on both sides of a pair and
    /// on one side only (enrolment flips, the gate does not).
    pub flip: bool,
    /// Align from keypoints refined by the front-128 model (`FaceChain::refine`).
    pub refine: bool,
    /// Also score embeddings averaged over this many photos of a person (`crate::fuse`).
    pub fuse: Option<usize>,
    /// A masked variant of every photo: the style's name and colour (`crate::mask`).
    pub mask: Option<(String, [f32; 3])>,
    /// The station's per-frame threshold T: the verdict line is at T, and the DET marks it.
    pub threshold: Option<f32>,
}

/// The alignments compared: BlazeFace keypoints onto TEMPLATE_4, onto an alternative 4-point
/// template, and the reference 5 points onto the ArcFace 5-point template.
const METHODS: [&str; 3] = [
    "blazeface/TEMPLATE_4",
    "blazeface/--template4",
    "dlib-68 → ArcFace-5",
];

struct Sample {
    photo: Labelled,
    found: Option<Found>,
    reference: Option<RefMarks>,
    emb: [Option<Vec<f32>>; 3],
    /// With `--flip`: the flip-averaged embedding of the BlazeFace-aligned chip.
    flipped: Option<Vec<f32>>,
    /// With `--refine`: the embedding of the chip aligned from the refined keypoints (the plain
    /// one where the face was too small to refine or the window did not confirm it).
    refined: Option<Vec<f32>>,
    /// With `--mask`: the embedding of the masked photo (its face detected again), if found.
    masked: Option<Vec<f32>>,
    /// With `--refine`: the refined detection.
    refined_face: Option<engine::face::blazeface::Detection>,
    chip: Option<Vec<f32>>,
}

fn process(
    pipe: &FaceChain,
    o: &Options,
    marks: &BTreeMap<String, RefMarks>,
    p: &Labelled,
) -> Result<Sample> {
    let photo = Photo::load(&p.path, o.pad)?;
    let found = pipe.subject_face(photo.view())?;
    let reference = marks.get(&p.rel).map(|m| m.shifted(photo.border as f32));
    let mut sims = [None, None, None];
    if let Some(f) = &found {
        sims[0] = align::fit(&f.detection.keypoints[..4], &TEMPLATE_4);
        if let Some(t) = &o.template4 {
            sims[1] = align::fit(&f.detection.keypoints[..4], t);
        }
    }
    sims[2] = reference.as_ref().and_then(RefMarks::alignment);
    let mut chips = Vec::new();
    let mut which = Vec::new();
    for (k, s) in sims.iter().enumerate() {
        if let Some(s) = s {
            chips.push(Chip::cut(photo.view(), s)?);
            which.push(k);
        }
    }
    // With --flip the BlazeFace chip's mirror rides in the same SFace batch, last.
    let mirror = o.flip && which.first() == Some(&0);
    if let Some(c) = chips.first().filter(|_| mirror) {
        chips.push(c.mirrored());
    }
    // With --refine the chip from the refined keypoints rides in the batch too, after the mirror.
    let mut refined_at = None;
    let mut refined_face = None;
    if o.refine
        && which.first() == Some(&0)
        && let Some(f) = &found
    {
        let d = pipe.refine(photo.view(), &f.detection)?;
        refined_face = Some(d);
        if let Some(s) = align::fit(&d.keypoints[..4], &TEMPLATE_4) {
            chips.push(Chip::cut(photo.view(), &s)?);
            refined_at = Some(chips.len() - 1);
        }
    }
    // With --mask: the photo with a mask drawn from its face, the face found again on it.
    let mut masked_at = None;
    if let (Some((_, colour)), Some(f)) = (&o.mask, &found)
        && which.first() == Some(&0)
    {
        let d = &f.detection;
        let b = [
            d.center[0] - d.size[0] / 2.0,
            d.center[1] - d.size[1] / 2.0,
            d.size[0],
            d.size[1],
        ];
        let mut rgb = photo.rgb.clone();
        crate::mask::Mask::new(b, d.keypoints[2], d.keypoints[3])
            .paint_rgb(&mut rgb, photo.w, photo.h, *colour);
        let view = engine::face::Rgb {
            rgb: &rgb,
            w: photo.w,
            h: photo.h,
        };
        if let Some(m) = pipe.subject_face(view)?
            && let Some(s) = align::fit(&m.detection.keypoints[..4], &TEMPLATE_4)
        {
            chips.push(Chip::cut(view, &s)?);
            masked_at = Some(chips.len() - 1);
        }
    }
    let mut emb = [None, None, None];
    let mut flipped = None;
    let mut masked = None;
    let mut refined = None;
    if !chips.is_empty() {
        let out = pipe.embed(&chips)?;
        if mirror && let (Some(plain), Some(m)) = (out.first(), out.get(which.len())) {
            flipped = engine::face::flip_average(plain, m).map(|e| e.to_vec());
        }
        refined = refined_at.and_then(|k| out.get(k)).map(|e| e.to_vec());
        masked = masked_at.and_then(|k| out.get(k)).map(|e| e.to_vec());
        for (k, e) in which.iter().zip(out) {
            emb[*k] = Some(e.to_vec());
        }
    }
    let first = chips.first().filter(|_| which.first() == Some(&0));
    let chip = first
        .filter(|_| o.dump_chips.is_some())
        .map(|c| c.0.to_vec());
    Ok(Sample {
        photo: p.clone(),
        found,
        reference,
        emb,
        flipped,
        refined,
        refined_face,
        masked,
        chip,
    })
}

/// Genuine/impostor cosines over the samples `pick` gives an embedding for: the pairs file's pairs,
/// or every pair of the folder.
fn score<'a>(
    samples: &'a [Sample],
    listed: Option<&[(PathBuf, PathBuf, bool)]>,
    pick: impl Fn(&'a Sample) -> Option<&'a [f32]>,
) -> Pairs {
    score_sides(samples, listed, &pick, &pick)
}

/// As [`score`], the first photo of each pair embedded by `first`, the second by `second` (an
/// enrolment template against a gate probe).
fn score_sides<'a>(
    samples: &'a [Sample],
    listed: Option<&[(PathBuf, PathBuf, bool)]>,
    first: &dyn Fn(&'a Sample) -> Option<&'a [f32]>,
    second: &dyn Fn(&'a Sample) -> Option<&'a [f32]>,
) -> Pairs {
    let mut out = Pairs::default();
    match listed {
        Some(list) => {
            let by: BTreeMap<&Path, &Sample> = samples
                .iter()
                .map(|s| (s.photo.path.as_path(), s))
                .collect();
            for (k, (x, y, same)) in list.iter().enumerate() {
                let sample = |p: &PathBuf| by.get(p.as_path()).copied();
                let (Some(a), Some(b)) = (sample(x).and_then(first), sample(y).and_then(second))
                else {
                    out.skipped += 1;
                    continue;
                };
                let c = cosine(a, b);
                if *same {
                    out.genuine.push(c)
                } else {
                    out.impostor.push(c)
                }
                out.ordered.push(scores::ScoredPair {
                    score: c,
                    same: *same,
                    fold: scores::fold_of(k, list.len(), FOLDS),
                });
            }
        }
        None => {
            let v: Vec<(&str, &[f32], &[f32])> = samples
                .iter()
                .filter_map(|s| Some((s.photo.id.as_str(), first(s)?, second(s)?)))
                .collect();
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    let c = cosine(v[i].1, v[j].2);
                    if v[i].0 == v[j].0 {
                        out.genuine.push(c)
                    } else {
                        out.impostor.push(c)
                    }
                }
            }
        }
    }
    out
}

/// LFW's protocol: 10 folds, in file order.
const FOLDS: usize = 10;

/// A pairs file: CSV (file_x,file_y,Decision; names relative to <set>/images), or LFW's pairs.txt
/// (a first line of numbers, then `name n1 n2` same-person and `name1 n1 name2 n2` different-person
/// lines; photos at <set>/<name>/<name>_<nnnn>.jpg).
fn read_pairs(set: &Path, pf: &Path) -> Result<Vec<(PathBuf, PathBuf, bool)>> {
    let text = std::fs::read_to_string(pf).with_context(|| format!("reading {}", pf.display()))?;
    let first = text.lines().next().unwrap_or("");
    if !first.trim().is_empty() && first.split_whitespace().all(|w| w.parse::<usize>().is_ok()) {
        return read_lfw_pairs(set, pf, &text);
    }
    let mut out = Vec::new();
    for (line, rec) in select::read_csv(pf)?.rows {
        let f: Vec<&str> = rec.iter().collect();
        let [x, y, d] = f[..] else {
            anyhow::bail!("{}:{line}: expected file_x,file_y,Decision", pf.display());
        };
        out.push((
            set.join("images").join(x),
            set.join("images").join(y),
            d.eq_ignore_ascii_case("yes"),
        ));
    }
    Ok(out)
}

fn read_lfw_pairs(set: &Path, pf: &Path, text: &str) -> Result<Vec<(PathBuf, PathBuf, bool)>> {
    let photo = |name: &str, n: &str| -> Result<PathBuf> {
        let n: usize = n.parse()?;
        Ok(set.join(name).join(format!("{name}_{n:04}.jpg")))
    };
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let pair = match f[..] {
            [] => continue,
            [name, a, b] => (photo(name, a), photo(name, b), true),
            [x, a, y, b] => (photo(x, a), photo(y, b), false),
            _ => anyhow::bail!(
                "{}:{}: expected `name n1 n2` or `name1 n1 name2 n2`",
                pf.display(),
                k + 1
            ),
        };
        let bad = || format!("{}:{}: photo numbers must be integers", pf.display(), k + 1);
        out.push((pair.0.with_context(bad)?, pair.1.with_context(bad)?, pair.2));
    }
    Ok(out)
}

/// The photos of a set: its labels.csv (path,identity), or else one sub-folder per identity.
pub fn read_set(set: &Path) -> Result<Vec<Labelled>> {
    if set.join("labels.csv").exists() {
        return select::read_labels(set);
    }
    let dir = |p: &Path| {
        std::fs::read_dir(p).with_context(|| {
            format!(
                "{}: no labels.csv and not readable as <identity>/<photo> folders",
                p.display()
            )
        })
    };
    let mut out = Vec::new();
    for id in dir(set)? {
        let id = id?.path();
        if !id.is_dir() {
            continue;
        }
        let name = id
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in dir(&id)? {
            let f = f?.path();
            if f.is_file() {
                let rel = f
                    .strip_prefix(set)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .into_owned();
                out.push(Labelled {
                    path: f,
                    rel,
                    id: name.clone(),
                });
            }
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "{}: no labels.csv and no <identity>/<photo> files",
            set.display()
        );
    }
    out.sort();
    Ok(out)
}

/// A variant of the chain (`pick`) scored on both photos of every pair, and on the first only against
/// the plain chain's embedding of the second (a template made one way, a gate probe the other):
/// printed, and kept in `out` as `{key}_both` and `{key}_one_side`.
fn variant(
    samples: &[Sample],
    listed: Option<&[(PathBuf, PathBuf, bool)]>,
    label: &str,
    key: &str,
    pick: fn(&Sample) -> Option<&[f32]>,
    out: &mut serde_json::Value,
) {
    fn plain(s: &Sample) -> Option<&[f32]> {
        s.emb[0].as_deref()
    }
    let both = summary(&score(samples, listed, pick));
    let one = summary(&score_sides(samples, listed, &pick, &plain));
    print_row(&format!("{label}, both"), &both);
    print_row(&format!("{label}, one side"), &one);
    out[format!("{key}_both")] = both;
    out[format!("{key}_one_side")] = one;
}

pub fn run(o: Options) -> Result<()> {
    let t0 = Instant::now();
    let mut photos = select::per_identity(read_set(&o.set)?, o.skip_per_identity, o.per_identity);
    let marks = match &o.landmarks {
        Some(p) => refmarks::read(p)?,
        None => BTreeMap::new(),
    };
    if let Some(lm) = &o.landmarks
        && !photos.iter().any(|p| marks.contains_key(&p.rel))
    {
        anyhow::bail!(
            "{}: no row's path matches a photo of {} (paths must be as in its labels.csv)",
            lm.display(),
            o.set.display()
        );
    }
    let listed = match &o.pairs {
        Some(pf) => Some(read_pairs(&o.set, pf)?),
        None => None,
    };
    if let Some(list) = &listed {
        // Only the photos a pairs file names are scored; embedding the rest (13 000 for LFW) is waste.
        let named: std::collections::BTreeSet<&Path> = list
            .iter()
            .flat_map(|(x, y, _)| [x.as_path(), y.as_path()])
            .collect();
        photos.retain(|p| named.contains(p.path.as_path()));
    }
    if photos.is_empty() {
        anyhow::bail!(
            "{}: no photos selected (check labels.csv, --pairs and --per-identity)",
            o.set.display()
        );
    }
    let pipe = FaceChain::load(&o.models)?;
    let threads = select::threads();
    let samples: Vec<Sample> = select::par_map(&photos, threads, |p| {
        process(&pipe, &o, &marks, p).unwrap_or_else(|e| {
            eprintln!("{}: {e:#}", p.path.display());
            Sample {
                photo: p.clone(),
                found: None,
                reference: None,
                emb: [None, None, None],
                flipped: None,
                refined: None,
                refined_face: None,
                masked: None,
                chip: None,
            }
        })
    });
    let n = samples.len();
    let detected = samples.iter().filter(|s| s.found.is_some()).count();
    let by_front = samples
        .iter()
        .filter(|s| s.found.as_ref().is_some_and(|f| f.detector == "front-128"))
        .count();
    let several = samples
        .iter()
        .filter(|s| s.found.as_ref().is_some_and(|f| f.faces > 1))
        .count();
    let eyes = quantile(
        &samples
            .iter()
            .filter_map(|s| s.found.as_ref().map(|f| f.detection.eye_distance()))
            .collect::<Vec<_>>(),
        0.5,
    );
    let main = score(&samples, listed.as_deref(), |s| s.emb[0].as_deref());
    let eer = scores::eer(&main.genuine, &main.impostor);
    println!(
        "set: {}  ({:.0} s, {threads} threads)",
        o.set.display(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        verdict(&main.genuine, &main.impostor, o.threshold, eer)
    );
    println!(
        "photos: {n}  face found: {detected} ({:.1} %; {by_front} only by the front-128 model); median inter-eye distance {eyes:.1} px (after padding)",
        100.0 * detected as f64 / n.max(1) as f64
    );
    println!(
        "photos with several faces: {several} (the subject taken: of the faces at least half the largest's size, the one nearest the centre)"
    );
    if main.skipped > 0 {
        println!("pairs skipped (a photo without a face): {}", main.skipped);
    }
    let main_s = summary(&main);
    for t in [1e-2, 1e-3, 1e-4, 1e-5] {
        if let Some((th, f)) = scores::fnmr_at_fmr(&main.genuine, &main.impostor, t) {
            println!("FNMR at FMR {t:e}: {:.2} % (threshold {th:.3})", f * 100.0);
        }
    }
    if let Some(e) = eer {
        println!("EER: {:.2} % at cosine {:.3}", e.rate * 100.0, e.threshold);
    }
    println!(
        "at the authors' threshold 0.363: FMR {:.3} %  FNMR {:.2} %",
        scores::fmr(&main.impostor, 0.363) * 100.0,
        scores::fnmr(&main.genuine, 0.363) * 100.0
    );
    let extras = verification_extras(&main, &o)?;
    println!("all photos with a BlazeFace face:");
    print_row(METHODS[0], &main_s);
    let mut out = serde_json::json!({
        "set": o.set, "photos": n, "faces": detected, "front_only": by_front,
        "several_faces": several,
        "median_eye_distance_px": eyes, "blazeface": main_s, "seconds": t0.elapsed().as_secs_f64(),
        "station_threshold": o.threshold.map(|t| serde_json::json!({
            "t": t, "fmr": scores::fmr(&main.impostor, t), "fnmr": scores::fnmr(&main.genuine, t),
        })),
    });
    if let Some(m) = out.as_object_mut() {
        m.extend(extras);
    }
    if o.template4.is_some() {
        let alt = summary(&score(&samples, listed.as_deref(), |s| s.emb[1].as_deref()));
        print_row(METHODS[1], &alt);
        out["blazeface_template4"] = alt;
    }
    if o.flip {
        variant(
            &samples,
            listed.as_deref(),
            "flip-averaged",
            "flip",
            |s| s.flipped.as_deref(),
            &mut out,
        );
    }
    if o.refine {
        let large = samples
            .iter()
            .filter_map(|s| s.found.as_ref())
            .filter(|f| {
                f.detection.size[0].max(f.detection.size[1]) >= engine::face::refine::MIN_SIDE
            })
            .count();
        println!(
            "refined: {large} faces at least {} px wide",
            engine::face::refine::MIN_SIDE
        );
        variant(
            &samples,
            listed.as_deref(),
            "refined (front-128)",
            "refined",
            |s| s.refined.as_deref(),
            &mut out,
        );
        out["refined_faces"] = large.into();
    }
    if let Some(n) = o.fuse {
        let embedded: Vec<(&str, &[f32])> = (samples.iter())
            .filter_map(|s| Some((s.photo.id.as_str(), s.emb[0].as_deref()?)))
            .collect();
        out["fused"] = crate::fuse::report(&embedded, n, o.threshold)?;
    }
    if let Some((style, _)) = &o.mask {
        fn plain(s: &Sample) -> Option<&[f32]> {
            s.emb[0].as_deref()
        }
        fn masked(s: &Sample) -> Option<&[f32]> {
            s.masked.as_deref()
        }
        let with_face = samples.iter().filter(|s| s.emb[0].is_some()).count();
        let found = samples.iter().filter(|s| s.masked.is_some()).count();
        println!("masked ({style}): the face found again on {found} of {with_face} masked photos");
        let sides = score_sides(&samples, listed.as_deref(), &plain, &masked);
        let both = score(&samples, listed.as_deref(), masked);
        let one = summary(&sides);
        let two = summary(&both);
        print_row("masked probe, plain tmpl", &one);
        print_row("masked, both", &two);
        let mut m = serde_json::json!({
            "style": style, "found": found, "of": with_face, "one_side": one, "both": two,
        });
        if let Some(t) = o.threshold {
            // Beside the unmasked rates at T, over the same pairs' kinds.
            let rates = |p: &Pairs| (scores::fmr(&p.impostor, t), scores::fnmr(&p.genuine, t));
            let (f1, n1) = rates(&sides);
            let (f2, n2) = rates(&both);
            println!(
                "  at T = {t}: masked probe vs plain template FMR {:.3} % FNMR {:.2} %; masked both FMR {:.3} % FNMR {:.2} %",
                f1 * 100.0,
                n1 * 100.0,
                f2 * 100.0,
                n2 * 100.0
            );
            m["at_t"] = serde_json::json!({
                "one_side": {"fmr": f1, "fnmr": n1}, "both": {"fmr": f2, "fnmr": n2},
            });
        }
        out["masked"] = m;
    }
    if o.landmarks.is_some() {
        out["reference"] = reference_report(&samples, listed.as_deref(), &o);
    }
    if let Some(path) = &o.dump_chips {
        let chips: Vec<f32> = samples
            .iter()
            .filter_map(|s| s.chip.as_deref())
            .flatten()
            .copied()
            .collect();
        let k = chips.len() / (3 * align::CHIP * align::CHIP);
        crate::npy::write_f32(path, &[k, 3, align::CHIP, align::CHIP], &chips)?;
        println!("wrote {k} BlazeFace-aligned chips to {}", path.display());
    }
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// LFW-style k-fold accuracy (with a pairs file) and the DET/ROC plots (with `--plots`).
fn verification_extras(
    main: &Pairs,
    o: &Options,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    if o.pairs.is_some() {
        match scores::k_fold_accuracy(&main.ordered, FOLDS) {
            Ok(a) => {
                println!(
                    "{FOLDS}-fold accuracy (LFW protocol, folds in file order, threshold from the other 9): {:.2} % ± {:.2} %",
                    a.mean * 100.0,
                    a.std * 100.0
                );
                out.insert(
                    "ten_fold".into(),
                    serde_json::json!({
                        "mean": a.mean, "std": a.std,
                        "folds": a.folds.iter().map(|f| serde_json::json!({"accuracy": f.0, "threshold": f.1}))
                            .collect::<Vec<_>>(),
                    }),
                );
            }
            Err(e) => println!("{FOLDS}-fold accuracy: n/a ({e:#})"),
        }
    }
    if let Some(dir) = &o.plots {
        let curve = scores::curve(&main.genuine, &main.impostor)
            .with_context(|| format!("--plots {}", dir.display()))?;
        let set = o.set.file_name().map_or_else(
            || o.set.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let files = crate::plot::det_roc(
            dir,
            &set,
            &curve,
            main.genuine.len(),
            main.impostor.len(),
            scores::eer(&main.genuine, &main.impostor),
            o.threshold.map(|t| {
                (
                    t,
                    scores::fmr(&main.impostor, t),
                    scores::fnmr(&main.genuine, t),
                )
            }),
        )?;
        for f in &files {
            println!("wrote {}", f.display());
        }
        out.insert("plots".into(), serde_json::json!(files));
    }
    Ok(out)
}

/// Reference detection rate, keypoint error, chip discrepancy and the side-by-side scores on the
/// photos where both BlazeFace and dlib found a face.
fn reference_report(
    samples: &[Sample],
    listed: Option<&[(PathBuf, PathBuf, bool)]>,
    o: &Options,
) -> serde_json::Value {
    let with_ref = samples.iter().filter(|s| s.reference.is_some()).count();
    let both: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.emb[0].is_some() && s.emb[2].is_some())
        .collect();
    println!(
        "dlib found a face in {with_ref} of {} photos; both found one in {}",
        samples.len(),
        both.len()
    );
    let mut kp = KeypointStats::default();
    let mut disc: [Vec<f32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for s in &both {
        if let (Some(f), Some(r)) = (&s.found, &s.reference) {
            kp.add(&f.detection, r);
            disc[0].extend(refmarks::chip_discrepancy(&f.detection, r, &TEMPLATE_4));
            if let Some(t) = &o.template4 {
                disc[1].extend(refmarks::chip_discrepancy(&f.detection, r, t));
            }
            if let Some(d) = &s.refined_face {
                disc[2].extend(refmarks::chip_discrepancy(d, r, &TEMPLATE_4));
            }
        }
    }
    let kp_json = crate::keypoints::report(&kp);
    let (d0, _) = refmarks::mean_median(&disc[0]);
    println!(
        "alignment vs reference chip (mean distance of the 5 reference points from ArcFace-5, chip px): TEMPLATE_4 {d0:.2}"
    );
    let mut disc_json = serde_json::json!({ "TEMPLATE_4": d0 });
    if o.template4.is_some() {
        let (d1, _) = refmarks::mean_median(&disc[1]);
        println!("  --template4 {d1:.2}");
        disc_json["template4"] = d1.into();
    }
    if o.refine {
        let (d2, _) = refmarks::mean_median(&disc[2]);
        println!("  refined (front-128) {d2:.2}");
        disc_json["refined"] = d2.into();
    }
    // Side by side on the same photos: an embedding counts only where all compared ones exist.
    let all = |s: &Sample| {
        s.emb[0].is_some() && s.emb[2].is_some() && (o.template4.is_none() || s.emb[1].is_some())
    };
    println!("side by side on the photos where both found a face:");
    let mut rows = serde_json::Map::new();
    for (k, name) in METHODS.iter().enumerate() {
        if k == 1 && o.template4.is_none() {
            continue;
        }
        let s = summary(&score(samples, listed, |s| {
            if all(s) { s.emb[k].as_deref() } else { None }
        }));
        print_row(name, &s);
        rows.insert((*name).into(), s);
    }
    if o.refine {
        let s = summary(&score(samples, listed, |s| {
            if all(s) { s.refined.as_deref() } else { None }
        }));
        print_row("refined (front-128)", &s);
        rows.insert("refined".into(), s);
    }
    if let Some(t) = &o.template4 {
        println!("  (--template4 = {t:?})");
    }
    serde_json::json!({
        "dlib_faces": with_ref, "both": both.len(), "keypoints": kp_json,
        "chip_discrepancy_px": disc_json, "side_by_side": rows,
    })
}

/// The line that comes first: the error rates at the station's threshold when it is known (what a
/// station engineer decides on), else the EER with a hint how to get them.
fn verdict(genuine: &[f32], impostor: &[f32], t: Option<f32>, eer: Option<scores::Eer>) -> String {
    let eer_text = eer.map_or("EER n/a".to_owned(), |e| {
        format!("EER {:.2} % at {:.3}", e.rate * 100.0, e.threshold)
    });
    match t {
        Some(t) => {
            let (fmr, fnmr) = (scores::fmr(impostor, t), scores::fnmr(genuine, t));
            format!(
                "verdict at the station's threshold T = {t:.3}: FMR {:.4} % ({} of {} impostor pairs), FNMR {:.2} % ({} of {} genuine pairs); {eer_text}",
                fmr * 100.0,
                (fmr * impostor.len() as f64).round() as u64,
                impostor.len(),
                fnmr * 100.0,
                (fnmr * genuine.len() as f64).round() as u64,
                genuine.len(),
            )
        }
        None => format!(
            "verdict: {eer_text} on {} genuine and {} impostor pairs (--threshold T or --station FILE gives the rates at the station's T)",
            genuine.len(),
            impostor.len()
        ),
    }
}
