//! `gate-calibrate identify`: 1:N identification on a labelled folder, and the threshold T, margin M
//! and fusion depth k a station with a gallery of N people needs for a target false-positive
//! identification rate (FPIR).
//!
//! Split (deterministic): identities sorted by name, the first round(fraction · n) are enrolled with
//! their first photo (by path) as the gallery entry; their other photos are the mated probes; every
//! photo of the other identities is a non-mated probe. A search returns the best gallery entry.
//! - FNIR(T): mated probes whose best entry is not their own, or scores below T.
//! - FPIR(T): non-mated probes whose best entry scores ≥ T.
//!
//! The recommendation extrapolates from the per-comparison impostor distribution (every pair of
//! photos of different people in the set) to a gallery of N: a non-mated search is a false positive
//! when any of its N comparisons matches, FPIR ≈ 1 − (1 − FMR(T))^N.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use engine::face::align::{self, TEMPLATE_4};
use engine::face::prepare::cosine;
use engine::face::{Chip, FaceChain};
use serde::Serialize;

use crate::photo::Photo;
use crate::scores::{self, Tail};
use crate::select;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with labels.csv (path,identity), or one sub-folder of photos per identity.
    #[arg(long)]
    set: PathBuf,
    /// Use at most this many photos per identity (first by path, after --skip-per-identity).
    #[arg(long)]
    per_identity: Option<usize>,
    #[arg(long, default_value_t = 0)]
    skip_per_identity: usize,
    /// Border added around each photo, as a fraction of its larger side.
    #[arg(long, default_value_t = 0.5)]
    pad: f32,
    /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    models: PathBuf,
    /// Fraction of the identities (sorted by name, first ones) that are enrolled.
    #[arg(long, default_value_t = 0.5)]
    enrolled_fraction: f64,
    /// Per-walker FPIR the station must meet.
    #[arg(long, default_value_t = 0.001)]
    target_fpir: f64,
    /// Gallery sizes N to recommend for.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    gallery_sizes: Vec<u64>,
    /// The relaxed single-frame level: T_r is the highest threshold that loses at most this fraction
    /// of mated frames; k-frame fusion then has to bring the impostor rate down to the target.
    #[arg(long, default_value_t = 0.01)]
    frame_fnir: f64,
    /// The margin M may hold back at most this fraction of correctly ranked mated probes.
    #[arg(long, default_value_t = 0.01)]
    margin_loss: f64,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write T, M and k for `--write-gallery` into this station file (a backup is kept).
    #[arg(long)]
    write: Option<PathBuf>,
    /// The lane to write them to (its per-lane overrides); default the station-wide [decision].
    #[arg(long, requires = "write")]
    lane: Option<String>,
    /// Which gallery size's recommendation to write; default the first of --gallery-sizes.
    #[arg(long, requires = "write")]
    write_gallery: Option<u64>,
    /// Write the margin M even when it was measured on a smaller gallery than the one written
    /// for. There the second-best score rises, so the M measured here holds back more mated
    /// walkers than it did in the measurement; without this flag, T and k are written and M is
    /// left as it is.
    #[arg(long, requires = "write")]
    force_margin: bool,
}

/// Largest fusion depth considered: a walker gives the camera a handful of good frames.
const K_MAX: u32 = 5;

/// Per-search FPIR at gallery size `n` when one comparison false-matches with probability `fmr`.
pub fn fpir_for_fmr(fmr: f64, n: f64) -> f64 {
    // 1 − (1 − fmr)^n without losing the small numbers to rounding.
    -(n * (-fmr).ln_1p()).exp_m1()
}

/// The per-comparison FMR that gives per-search FPIR `fpir` at gallery size `n`.
pub fn fmr_for_fpir(fpir: f64, n: f64) -> f64 {
    -((-fpir).ln_1p() / n).exp_m1()
}

/// Smallest k ≤ K_MAX with `p1`^k ≤ `target` (frames as independent trials).
pub fn fusion_depth(p1: f64, target: f64) -> Option<u32> {
    (1..=K_MAX).find(|&k| p1.powi(k as i32) <= target)
}

/// One search: the best and second-best gallery scores, and whether the best is the probe's mate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub best: f32,
    pub second: f32,
    pub correct: bool,
}

pub fn search(gallery: &[(usize, Vec<f32>)], probe: &[f32], mate: Option<usize>) -> Hit {
    let mut h = Hit {
        best: f32::NEG_INFINITY,
        second: f32::NEG_INFINITY,
        correct: false,
    };
    for (id, g) in gallery {
        let s = cosine(g, probe);
        if s > h.best {
            h.second = h.best;
            h.best = s;
            h.correct = mate == Some(*id);
        } else if s > h.second {
            h.second = s;
        }
    }
    h
}

/// Gallery, mated and non-mated probes: (identity index, embedding).
#[derive(Debug, Default)]
pub struct Split {
    pub gallery: Vec<(usize, Vec<f32>)>,
    pub mated: Vec<(usize, Vec<f32>)>,
    pub non_mated: Vec<(usize, Vec<f32>)>,
    pub names: Vec<String>,
}

/// `photos`: (identity, embedding) sorted by path. Identities without any embedding take no part.
pub fn split(photos: &[(String, Vec<f32>)], fraction: f64) -> Result<Split> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!("--enrolled-fraction must be between 0 and 1, not {fraction}");
    }
    let mut by: BTreeMap<&str, Vec<&Vec<f32>>> = BTreeMap::new();
    for (id, e) in photos {
        by.entry(id).or_default().push(e);
    }
    let n = by.len();
    if n < 2 {
        bail!("1:N evaluation needs at least 2 identities with a face found, have {n}");
    }
    let enrolled = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
    let mut s = Split::default();
    for (k, (id, embs)) in by.into_iter().enumerate() {
        s.names.push(id.to_owned());
        let mut it = embs.into_iter().cloned();
        if k < enrolled {
            s.gallery.extend(it.next().map(|e| (k, e)));
            s.mated.extend(it.map(|e| (k, e)));
        } else {
            s.non_mated.extend(it.map(|e| (k, e)));
        }
    }
    if s.mated.is_empty() {
        bail!("no mated probes: the enrolled identities have one photo each with a face");
    }
    Ok(s)
}

/// Every cross-identity pair's cosine: the per-comparison impostor distribution.
pub fn impostor_scores(photos: &[(String, Vec<f32>)]) -> Vec<f32> {
    let mut out = Vec::new();
    for (i, a) in photos.iter().enumerate() {
        for b in &photos[i + 1..] {
            if a.0 != b.0 {
                out.push(cosine(&a.1, &b.1));
            }
        }
    }
    out
}

/// The largest value v with at most floor(`loss` · n) of `v`s below it (an exact order statistic).
pub fn lower_quantile(values: &[f32], loss: f64) -> Option<f32> {
    let mut s = values.to_vec();
    s.sort_by(f32::total_cmp);
    s.get((loss * s.len() as f64).floor() as usize).copied()
}

/// A threshold read off the impostor scores, or extrapolated beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub t: f64,
    pub extrapolated: bool,
    /// The Gaussian fit's threshold, for comparison (extrapolated only).
    pub gauss: Option<f64>,
}

pub struct Impostors {
    pub scores: Vec<f32>,
    pub tail: Option<Tail>,
}

impl Impostors {
    pub fn new(scores: Vec<f32>) -> Result<Self> {
        scores::reject_nan(&scores, "impostor scores")?;
        if scores.is_empty() {
            bail!("no impostor scores: need photos of at least 2 people");
        }
        let tail = Tail::fit(&scores).ok();
        Ok(Self { scores, tail })
    }

    /// The lowest threshold with FMR ≤ `fmr`: the exact quantile while there are at least 1/fmr
    /// scores, else the exponential tail (the cautious model).
    pub fn threshold(&self, fmr: f64) -> Result<Threshold> {
        if let Some((t, _)) = scores::fnmr_at_fmr(&[], &self.scores, fmr) {
            return Ok(Threshold {
                t: t as f64,
                extrapolated: false,
                gauss: None,
            });
        }
        let Some(tail) = &self.tail else {
            bail!(
                "FMR {fmr:.1e} needs {:.0} impostor scores or a tail fit; have {} scores, too few to fit",
                1.0 / fmr,
                self.scores.len()
            );
        };
        Ok(Threshold {
            t: tail.exp_threshold(fmr),
            extrapolated: true,
            gauss: Some(tail.gauss_threshold(fmr)),
        })
    }

    /// FMR at `t`: counted while at least one impostor score reaches `t` (as `threshold` reads exact
    /// quantiles down to 1/n), modelled by the exponential tail beyond (the bool says so).
    pub fn fmr(&self, t: f64) -> (f64, bool) {
        let counted = scores::fmr(&self.scores, t as f32);
        match &self.tail {
            Some(tail) if counted == 0.0 => (tail.exp_fmr(t), true),
            _ => (counted, false),
        }
    }
}

#[derive(Debug, Serialize)]
struct DepthRow {
    k: u32,
    frame_fpir: f64,
    fmr: f64,
    threshold: Threshold,
    mated_frame_fnir: f64,
}

#[derive(Debug, Serialize)]
struct Recommendation {
    gallery_size: u64,
    single_frame: Threshold,
    single_frame_fmr: f64,
    relaxed_threshold: f64,
    relaxed_fmr: f64,
    relaxed_fmr_extrapolated: bool,
    relaxed_frame_fpir: f64,
    fusion_depth: Option<u32>,
    by_depth: Vec<DepthRow>,
}

fn embed(pipe: &FaceChain, path: &Path, pad: f32) -> Result<Option<Vec<f32>>> {
    let photo = Photo::load(path, pad)?;
    let Some(f) = pipe.subject_face(photo.view())? else {
        return Ok(None);
    };
    let Some(s) = align::fit(&f.detection.keypoints[..4], &TEMPLATE_4) else {
        return Ok(None);
    };
    let chip = Chip::cut(photo.view(), &s)?;
    Ok(Some(pipe.embed_one(&chip)?.to_vec()))
}

fn check(a: &Args) -> Result<()> {
    let unit = |v: f64, name: &str, open_low: bool| {
        let ok = v < 1.0 && if open_low { v > 0.0 } else { v >= 0.0 };
        if ok {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{name} must be in {}0, 1), not {v}",
                if open_low { "(" } else { "[" }
            ))
        }
    };
    unit(a.enrolled_fraction, "--enrolled-fraction", true)?;
    unit(a.target_fpir, "--target-fpir", true)?;
    unit(a.frame_fnir, "--frame-fnir", false)?;
    unit(a.margin_loss, "--margin-loss", false)?;
    if a.gallery_sizes.is_empty() || a.gallery_sizes.contains(&0) {
        bail!("--gallery-sizes must be positive numbers");
    }
    Ok(())
}

fn fmt_t(t: &Threshold) -> String {
    let over = if t.t > 1.0 {
        " — above 1, no cosine reaches it"
    } else {
        ""
    };
    match t.gauss {
        Some(g) if t.extrapolated => {
            format!("{:.3} (extrapolated; Gaussian fit {g:.3}){over}", t.t)
        }
        _ => format!("{:.3} (measured){over}", t.t),
    }
}

pub fn run(a: Args) -> Result<()> {
    check(&a)?;
    let t0 = Instant::now();
    let photos = select::per_identity(
        crate::eval::read_set(&a.set)?,
        a.skip_per_identity,
        a.per_identity,
    );
    if photos.is_empty() {
        bail!("{}: no photos selected", a.set.display());
    }
    let pipe = FaceChain::load(&a.models)?;
    let threads = select::threads();
    let embs = select::par_map(&photos, threads, |p| {
        embed(&pipe, &p.path, a.pad).unwrap_or_else(|e| {
            eprintln!("{}: {e:#}", p.path.display());
            None
        })
    });
    let found: Vec<(String, Vec<f32>)> = photos
        .iter()
        .zip(embs)
        .filter_map(|(p, e)| e.map(|e| (p.id.clone(), e)))
        .collect();
    println!(
        "set: {}  photos {}  face found {}  ({:.0} s, {threads} threads)",
        a.set.display(),
        photos.len(),
        found.len(),
        t0.elapsed().as_secs_f64()
    );
    let sp = split(&found, a.enrolled_fraction).with_context(|| a.set.display().to_string())?;
    let mated: Vec<Hit> = sp
        .mated
        .iter()
        .map(|(id, e)| search(&sp.gallery, e, Some(*id)))
        .collect();
    let non_mated: Vec<Hit> = sp
        .non_mated
        .iter()
        .map(|(_, e)| search(&sp.gallery, e, None))
        .collect();
    // A mated probe ranked wrongly is a miss at every T: its score for FNIR is −∞.
    let mated_eff: Vec<f32> = mated
        .iter()
        .map(|h| if h.correct { h.best } else { f32::NEG_INFINITY })
        .collect();
    let nm_best: Vec<f32> = non_mated.iter().map(|h| h.best).collect();
    scores::reject_nan(&mated_eff, "mated search scores")?;
    scores::reject_nan(&nm_best, "non-mated search scores")?;
    let rank1_miss = scores::fnmr(&mated_eff, f32::MIN);
    println!(
        "gallery {} enrolled identities (first photo each) of {}; mated probes {}; non-mated probes {} ({} identities)",
        sp.gallery.len(),
        sp.names.len(),
        mated.len(),
        non_mated.len(),
        sp.names.len() - sp.gallery.len()
    );
    println!(
        "rank-1 misses (best entry not the mate): {:.2} %",
        rank1_miss * 100.0
    );
    let mut at = serde_json::Map::new();
    for f in [0.01, 0.003] {
        match scores::fnmr_at_fmr(&mated_eff, &nm_best, f) {
            Some((t, fnir)) => {
                println!("FNIR at FPIR {f}: {:.2} % (T {t:.3})", fnir * 100.0);
                at.insert(
                    format!("{f}"),
                    serde_json::json!({"fnir": fnir, "threshold": t}),
                );
            }
            None => println!(
                "FNIR at FPIR {f}: n/a ({} non-mated probes measure FPIR down to {:.3})",
                nm_best.len(),
                1.0 / nm_best.len().max(1) as f64
            ),
        }
    }
    let nm_max = nm_best.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let t_zero = nm_max.next_up();
    let fnir_zero = scores::fnmr(&mated_eff, t_zero);
    if !nm_best.is_empty() {
        println!(
            "FNIR at FPIR 0 (T just above the highest non-mated best score {nm_max:.3}): {:.2} %",
            fnir_zero * 100.0
        );
    }

    // Margin: best − second of correctly ranked mated probes.
    let margins: Vec<f32> = mated
        .iter()
        .filter(|h| h.correct && h.second.is_finite())
        .map(|h| h.best - h.second)
        .collect();
    let margin = lower_quantile(&margins, a.margin_loss);
    let nm_margin_below = margin.map(|m| {
        non_mated
            .iter()
            .filter(|h| h.second.is_finite() && h.best - h.second < m)
            .count() as f64
            / non_mated.len().max(1) as f64
    });
    match (margin, nm_margin_below) {
        (Some(m), Some(nm)) => println!(
            "margin M = {m:.3}: the largest M that holds back at most {:.1} % of the {} correctly ranked mated probes (best − second < M); it would also hold back {:.1} % of non-mated probes. Measured on a gallery of {}: in a larger gallery the second-best score rises, so treat M as an upper bound.",
            a.margin_loss * 100.0,
            margins.len(),
            nm * 100.0,
            sp.gallery.len()
        ),
        _ => println!(
            "margin M: n/a (needs a gallery of at least 2 and correctly ranked mated probes)"
        ),
    }

    let imp = Impostors::new(impostor_scores(&found))?;
    let n_imp = imp.scores.len();
    println!(
        "\nper-comparison impostor scores: {n_imp} (every pair of photos of different people); exact quantiles reach FMR {:.1e}",
        1.0 / n_imp as f64
    );
    if let Some(tl) = &imp.tail {
        println!(
            "tail model for lower FMR: FMR(T) = {:.4} · exp(−(T − {:.3}) / {:.4}) for T ≥ {:.3} (exponential fit on the top {} scores; the Gaussian fit N({:.3}, {:.3}) is shown beside it)",
            tl.exceed, tl.u, tl.beta, tl.u, tl.top, tl.mean, tl.sd
        );
    }
    let t_r = lower_quantile(&mated_eff, a.frame_fnir)
        .filter(|t| t.is_finite())
        .map(f64::from);
    let Some(t_r) = t_r else {
        bail!(
            "rank-1 misses ({:.2} %) exceed --frame-fnir {}: no threshold keeps mated frames",
            rank1_miss * 100.0,
            a.frame_fnir
        );
    };
    let (fmr_r, fmr_r_extra) = imp.fmr(t_r);
    let mated_fnir_at = |t: f64| scores::fnmr(&mated_eff, t as f32);
    let mut recs = Vec::new();
    println!(
        "\ntarget per-walker FPIR {}; relaxed single-frame threshold T_r = {t_r:.3} (the highest T losing at most {:.1} % of mated frames)",
        a.target_fpir,
        a.frame_fnir * 100.0
    );
    println!(
        "  FMR(T_r) = {fmr_r:.3e} ({})",
        if fmr_r_extra {
            "extrapolated by the tail model"
        } else {
            "counted"
        }
    );
    for &n in &a.gallery_sizes {
        let nf = n as f64;
        println!("\nN = {n}");
        let f1 = fmr_for_fpir(a.target_fpir, nf);
        let t1 = imp.threshold(f1)?;
        println!(
            "  single frame: FMR needed = 1 − (1 − {})^(1/{n}) = {f1:.3e}",
            a.target_fpir
        );
        println!("                T = {}", fmt_t(&t1));
        let p1 = fpir_for_fmr(fmr_r, nf);
        let k = fusion_depth(p1, a.target_fpir);
        println!("  relaxed: per-frame FPIR at T_r = 1 − (1 − {fmr_r:.3e})^{n} = {p1:.3e}");
        let mut line = String::from("  fusion: FPIR_k = FPIR_1^k:");
        for kk in 1..=K_MAX {
            line += &format!("  k={kk} → {:.2e}", p1.powi(kk as i32));
        }
        println!("{line}");
        match k {
            Some(k) => println!(
                "  → k = {k}: {p1:.3e}^{k} = {:.3e} ≤ {} at T_r = {t_r:.3}, margin M = {}",
                p1.powi(k as i32),
                a.target_fpir,
                margin.map_or("n/a".into(), |m| format!("{m:.3}"))
            ),
            None => println!(
                "  → no k ≤ {K_MAX} meets {} at T_r: raise T (see k = {K_MAX} below)",
                a.target_fpir
            ),
        }
        let mut by_depth = Vec::new();
        for kk in 1..=K_MAX {
            let frame_fpir = a.target_fpir.powf(1.0 / kk as f64);
            let fmr = fmr_for_fpir(frame_fpir, nf);
            let th = imp.threshold(fmr)?;
            by_depth.push(DepthRow {
                k: kk,
                frame_fpir,
                fmr,
                threshold: th,
                mated_frame_fnir: mated_fnir_at(th.t),
            });
        }
        println!("  alternatively, T set for k frames (frame FPIR = target^(1/k)):");
        println!("    k  frame FPIR   FMR needed   mated-frame FNIR   T");
        for r in &by_depth {
            println!(
                "    {}  {:<10.3e}  {:<11.3e}  {:>14.2} %   {}",
                r.k,
                r.frame_fpir,
                r.fmr,
                r.mated_frame_fnir * 100.0,
                fmt_t(&r.threshold)
            );
        }
        recs.push(Recommendation {
            gallery_size: n,
            single_frame: t1,
            single_frame_fmr: f1,
            relaxed_threshold: t_r,
            relaxed_fmr: fmr_r,
            relaxed_fmr_extrapolated: fmr_r_extra,
            relaxed_frame_fpir: p1,
            fusion_depth: k,
            by_depth,
        });
    }
    println!(
        "\nassumption: frames of one walker are independent trials (optimistic: frames of the same face are correlated); extrapolated thresholds rest on the fitted tail, not on measured scores."
    );
    let out = serde_json::json!({
        "set": a.set, "photos": photos.len(), "faces": found.len(),
        "identities": sp.names.len(), "gallery": sp.gallery.len(),
        "mated_probes": mated.len(), "non_mated_probes": non_mated.len(),
        "rank1_miss": rank1_miss, "fnir_at_fpir": at,
        "fnir_at_fpir_0": {"fnir": fnir_zero, "threshold": t_zero},
        "margin": margin, "margin_loss": a.margin_loss, "non_mated_below_margin": nm_margin_below,
        "impostor_scores": n_imp, "tail": imp.tail.map(|t| serde_json::json!({
            "u": t.u, "exceed": t.exceed, "beta": t.beta, "top": t.top, "mean": t.mean, "sd": t.sd })),
        "target_fpir": a.target_fpir, "frame_fnir": a.frame_fnir,
        "recommendations": recs, "seconds": t0.elapsed().as_secs_f64(),
    });
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &a.write {
        write_back(
            path,
            &a,
            &recs,
            margin.map(|m| (m, sp.gallery.len() as u64)),
        )?;
    }
    Ok(())
}

/// Stores the chosen gallery size's T, M and k in the station file: the relaxed threshold with its
/// fusion depth when one meets the target, else the threshold set for the default depth k = 3.
/// `margin` is M and the size of the gallery it was measured on. M is written only when that gallery
/// is at least the written one, or with `--force-margin`: otherwise it is an upper bound, and the
/// tool does not store what it does not believe.
fn write_back(
    path: &Path,
    a: &Args,
    recs: &[Recommendation],
    margin: Option<(f32, u64)>,
) -> Result<()> {
    use crate::station_toml::{self, Edit, Section, Val};
    let n = a.write_gallery.or(a.gallery_sizes.first().copied());
    let rec = recs
        .iter()
        .find(|r| Some(r.gallery_size) == n)
        .with_context(|| format!("--write-gallery {n:?}: not one of --gallery-sizes"))?;
    let (t, k) = match rec.fusion_depth {
        Some(k) => (rec.relaxed_threshold, k),
        None => {
            let row = rec
                .by_depth
                .iter()
                .find(|r| r.k == 3)
                .context("no k = 3 row")?;
            (row.threshold.t, 3)
        }
    };
    let section = match &a.lane {
        Some(id) => Section::Lane(id.clone()),
        None => Section::Table("decision".into()),
    };
    let mut edits = vec![
        Edit::new(
            section.clone(),
            "threshold",
            Val::Float(station_toml::round4(t as f32)),
        ),
        Edit::new(section.clone(), "k", Val::Int(k as i64)),
    ];
    let margin = match margin_to_write(margin, rec.gallery_size, a.force_margin) {
        Ok(m) => m,
        Err(why) => {
            println!("\n{why}");
            None
        }
    };
    if let Some(m) = margin {
        edits.push(Edit::new(
            section.clone(),
            "margin",
            Val::Float(station_toml::round4(m)),
        ));
    }
    let backup = station_toml::write(path, &edits)?;
    println!(
        "\nwrote {section} threshold = {t:.4}, k = {k}{} to {} (backup {})",
        margin.map_or(String::new(), |m| format!(", margin = {m:.4}")),
        path.display(),
        backup.display()
    );
    Ok(())
}

/// The margin to store: M when it was measured on a gallery at least as large as the station's
/// (`gallery`), or when forced; otherwise why not.
fn margin_to_write(
    margin: Option<(f32, u64)>,
    gallery: u64,
    force: bool,
) -> Result<Option<f32>, String> {
    match margin {
        Some((m, measured)) if measured < gallery && !force => Err(format!(
            "margin not written: M = {m:.4} was measured on a gallery of {measured}, the station's is \
             {gallery}; there the second-best score rises and this M would hold back more mated \
             walkers than measured. Measure on a gallery that large, or pass --force-margin to write \
             it anyway."
        )),
        Some((m, _)) => Ok(Some(m)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_margin_from_a_smaller_gallery_is_written_only_when_forced() {
        assert_eq!(
            margin_to_write(Some((0.1, 10_000)), 10_000, false),
            Ok(Some(0.1))
        );
        let why = margin_to_write(Some((0.1, 40)), 10_000, false).unwrap_err();
        assert!(
            why.contains("gallery of 40") && why.contains("--force-margin"),
            "{why}"
        );
        assert_eq!(
            margin_to_write(Some((0.1, 40)), 10_000, true),
            Ok(Some(0.1))
        );
        assert_eq!(margin_to_write(None, 10_000, false), Ok(None));
    }

    #[test]
    fn fpir_arithmetic() {
        // FMR 1e-6 over N = 1e5 comparisons: 1 − (1 − 1e-6)^100000 = 1 − e^(−0.1) ≈ 0.0952.
        let p = fpir_for_fmr(1e-6, 1e5);
        assert!((p - 0.095_162_6).abs() < 1e-6, "{p}");
        // And back: the FMR that gives that FPIR.
        assert!((fmr_for_fpir(p, 1e5) - 1e-6).abs() < 1e-15);
        // Target 1e-3 at N = 1e6 needs about 1e-9 per comparison.
        let f = fmr_for_fpir(1e-3, 1e6);
        assert!((f - 1.0005e-9).abs() < 1e-12, "{f}");
        assert_eq!(fpir_for_fmr(0.0, 1e6), 0.0);
        // Fusion: per-frame 0.05 needs 3 frames for 1e-3 (0.05³ = 1.25e-4; 0.05² = 2.5e-3 is too much).
        assert_eq!(fusion_depth(0.05, 1e-3), Some(3));
        assert_eq!(fusion_depth(1e-4, 1e-3), Some(1));
        assert_eq!(fusion_depth(0.5, 1e-3), None);
    }

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn split_and_search() {
        let photos: Vec<(String, Vec<f32>)> = vec![
            ("a".into(), unit([1.0, 0.0, 0.0])),
            ("a".into(), unit([1.0, 0.1, 0.0])),
            ("b".into(), unit([0.0, 1.0, 0.0])),
            ("b".into(), unit([0.1, 1.0, 0.0])),
            ("c".into(), unit([0.0, 0.0, 1.0])),
            ("d".into(), unit([0.0, 0.2, 1.0])),
        ];
        let s = split(&photos, 0.5).expect("split");
        assert_eq!(s.names, ["a", "b", "c", "d"]);
        assert_eq!(s.gallery.len(), 2);
        assert_eq!((s.mated.len(), s.non_mated.len()), (2, 2));
        let h = search(&s.gallery, &s.mated[0].1, Some(s.mated[0].0));
        assert!(h.correct && h.best > 0.99 && h.second < 0.2, "{h:?}");
        let h = search(&s.gallery, &s.non_mated[1].1, None);
        assert!(!h.correct && h.best < 0.3, "{h:?}");
        // Cross-identity pairs: 6 photos, 2 same-identity pairs of 15.
        assert_eq!(impostor_scores(&photos).len(), 13);
        assert!(split(&photos[..2], 0.5).is_err(), "one identity");
        assert!(split(&photos, 1.0).is_err());
        assert!(split(&[], 0.5).is_err());
        // Each enrolled identity with a single photo: no mated probe.
        let single = vec![
            ("a".to_string(), unit([1.0, 0.0, 0.0])),
            ("b".to_string(), unit([0.0, 1.0, 0.0])),
        ];
        assert!(split(&single, 0.5).is_err());
    }

    #[test]
    fn thresholds_measured_then_extrapolated() {
        // Impostors N(0.1, 0.1), 100 000 stratified samples.
        let s: Vec<f32> = (0..100_000)
            .map(|k| (0.1 + 0.1 * scores::probit((k as f64 + 0.5) / 1e5)) as f32)
            .collect();
        let imp = Impostors::new(s).expect("impostors");
        let t = imp.threshold(1e-3).expect("measured");
        assert!(
            !t.extrapolated && (t.t - (0.1 + 0.1 * 3.090_23)).abs() < 2e-3,
            "{t:?}"
        );
        let t = imp.threshold(1e-7).expect("extrapolated");
        assert!(t.extrapolated, "{t:?}");
        let g = t.gauss.expect("gauss");
        assert!((g - (0.1 + 0.1 * 5.199_34)).abs() < 2e-3, "{t:?}");
        assert!(t.t >= g, "the exponential tail is the cautious one: {t:?}");
        let (f, extra) = imp.fmr(t.t);
        assert!(extra && (f - 1e-7).abs() < 1e-12);
        let (f, extra) = imp.fmr(0.1);
        assert!(!extra && (f - 0.5).abs() < 1e-4);
        assert!(Impostors::new(vec![]).is_err());
        assert!(Impostors::new(vec![0.1, f32::NAN]).is_err());
        // Too few to fit a tail: measured where possible, an error (not a panic) beyond.
        let few = Impostors::new(vec![0.1; 20]).expect("few");
        assert!(few.threshold(1e-6).is_err());
    }

    #[test]
    fn margin_quantile() {
        let m: Vec<f32> = (0..100).map(|k| k as f32 / 100.0).collect();
        // At most 1 of 100 may fall below M: M = the second smallest.
        assert_eq!(lower_quantile(&m, 0.01), Some(0.01));
        assert_eq!(lower_quantile(&m, 0.0), Some(0.0));
        assert_eq!(lower_quantile(&[], 0.01), None);
    }
}
