//! gate-calibrate: numbers a station engineer decides with.
//!
//! `eval`: verification accuracy of the station's face chain (BlazeFace → 4-point alignment → SFace)
//! on a labelled photo folder (`labels.csv`: path,identity) or a pairs file — genuine/impostor cosine
//! distributions, EER, FNMR at fixed FMR, detection rate.

mod faces;
mod scores;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gate-calibrate",
    version,
    about = "Accuracy evaluation and calibration for the face gate"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Genuine/impostor scores, EER and FNMR@FMR on a labelled folder (labels.csv) or a pairs file.
    Eval {
        /// Folder with labels.csv (path,identity; paths relative to the folder).
        #[arg(long)]
        set: PathBuf,
        /// Pairs CSV (file_x,file_y,Decision with Yes/No), file names relative to <set>/images.
        #[arg(long)]
        pairs: Option<PathBuf>,
        /// Use at most this many photos per identity (first by path), to bound the run time.
        #[arg(long)]
        per_identity: Option<usize>,
        /// Border added around each photo, as a fraction of its larger side (tightly cropped sets need it).
        #[arg(long, default_value_t = 0.5)]
        pad: f32,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Also write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn read_labels(set: &Path) -> Result<Vec<(PathBuf, String)>> {
    let path = set.join("labels.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let Some((p, id)) = line.split_once(',') else {
            bail!("{}:{}: expected path,identity", path.display(), n + 1);
        };
        out.push((set.join(p.trim()), id.trim().to_owned()));
    }
    Ok(out)
}

fn main() -> Result<()> {
    let Cli {
        cmd:
            Cmd::Eval {
                set,
                pairs,
                per_identity,
                pad,
                models,
                json,
            },
    } = Cli::parse();
    let t0 = Instant::now();
    let mut photos = read_labels(&set)?;
    photos.sort();
    if let Some(k) = per_identity {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        photos.retain(|(_, id)| {
            let c = count.entry(id.clone()).or_default();
            *c += 1;
            *c <= k
        });
    }
    let pipeline = faces::FacePipeline::load(&models, pad)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let results: Vec<(PathBuf, String, Option<faces::Face>)> = std::thread::scope(|s| {
        let chunks: Vec<_> = photos
            .chunks(photos.len().div_ceil(threads).max(1))
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let pipeline = &pipeline;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(p, id)| {
                            (
                                p.clone(),
                                id.clone(),
                                pipeline.face(p).unwrap_or_else(|e| {
                                    eprintln!("{}: {e:#}", p.display());
                                    None
                                }),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let detected = results.iter().filter(|r| r.2.is_some()).count();
    let by_front = results
        .iter()
        .filter(|r| r.2.as_ref().is_some_and(|f| f.detector == "front-128"))
        .count();
    let mut eyes: Vec<f32> = results
        .iter()
        .filter_map(|r| r.2.as_ref().map(|f| f.detection.eye_distance()))
        .collect();
    eyes.sort_by(f32::total_cmp);
    let emb: BTreeMap<PathBuf, (&str, &[f32])> = results
        .iter()
        .filter_map(|(p, id, f)| {
            f.as_ref()
                .map(|f| (p.clone(), (id.as_str(), f.embedding.as_slice())))
        })
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut missing_pairs = 0;
    match &pairs {
        Some(pf) => {
            let text =
                std::fs::read_to_string(pf).with_context(|| format!("reading {}", pf.display()))?;
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').map(str::trim).collect();
                let [x, y, d] = f[..] else { continue };
                match (
                    emb.get(&set.join("images").join(x)),
                    emb.get(&set.join("images").join(y)),
                ) {
                    (Some(a), Some(b)) => {
                        let s = engine::face::prepare::cosine(a.1, b.1);
                        if d.eq_ignore_ascii_case("yes") {
                            genuine.push(s)
                        } else {
                            impostor.push(s)
                        }
                    }
                    _ => missing_pairs += 1,
                }
            }
        }
        None => {
            let v: Vec<_> = emb.values().collect();
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    let s = engine::face::prepare::cosine(v[i].1, v[j].1);
                    if v[i].0 == v[j].0 {
                        genuine.push(s)
                    } else {
                        impostor.push(s)
                    }
                }
            }
        }
    }
    let stats = |v: &[f32]| {
        let mut s = v.to_vec();
        s.sort_by(f32::total_cmp);
        let q = |p: f64| {
            s.get(((s.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f32::NAN)
        };
        (
            s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64,
            q(0.05),
            q(0.5),
            q(0.95),
        )
    };
    let (gm, g5, g50, g95) = stats(&genuine);
    let (im, i5, i50, i95) = stats(&impostor);
    let e = scores::eer(&genuine, &impostor);
    let at = |t: f64| scores::fnmr_at_fmr(&genuine, &impostor, t);
    let authors = 0.363f32;
    println!(
        "set: {}  ({:.0} s, {threads} threads)",
        set.display(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "photos: {}  face found: {detected} ({:.1} %; {by_front} only by the front-128 model)",
        results.len(),
        100.0 * detected as f64 / results.len().max(1) as f64
    );
    if let Some(m) = eyes.get(eyes.len() / 2) {
        println!("median inter-eye distance of the faces found: {m:.1} px (after padding)");
    }
    if missing_pairs > 0 {
        println!("pairs skipped (a photo without a face): {missing_pairs}");
    }
    println!(
        "genuine pairs: {}  cosine mean {gm:.3}  p5 {g5:.3}  median {g50:.3}  p95 {g95:.3}",
        genuine.len()
    );
    println!(
        "impostor pairs: {}  cosine mean {im:.3}  p5 {i5:.3}  median {i50:.3}  p95 {i95:.3}",
        impostor.len()
    );
    if let Some(e) = e {
        println!("EER: {:.2} % at cosine {:.3}", e.rate * 100.0, e.threshold);
    }
    for t in [1e-2, 1e-3, 1e-4] {
        match at(t) {
            Some((th, f)) => println!("FNMR at FMR {t:e}: {:.2} % (threshold {th:.3})", f * 100.0),
            None => println!(
                "FNMR at FMR {t:e}: not measurable ({} impostor pairs)",
                impostor.len()
            ),
        }
    }
    println!(
        "at the authors' threshold {authors}: FMR {:.3} %  FNMR {:.2} %",
        scores::fmr(&impostor, authors) * 100.0,
        scores::fnmr(&genuine, authors) * 100.0
    );
    if let Some(path) = json {
        let v = serde_json::json!({
            "set": set, "photos": results.len(), "faces": detected, "front_only": by_front,
            "genuine": genuine.len(), "impostor": impostor.len(),
            "genuine_mean": gm, "impostor_mean": im,
            "eer": e.map(|e| e.rate), "eer_threshold": e.map(|e| e.threshold),
            "fnmr_at_fmr_1e-3": at(1e-3).map(|x| x.1),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
