//! `gate-calibrate lighting`: what the light looks like on walkers' faces in recorded footage, per
//! lighting scenario, the `[lighting]` / `[normalise]` setpoints that follow from it, and whether a
//! gain/gamma correction towards the recommended target changes the false non-match rate.
//!
//! The "after" correction is a plain-Rust approximation of the gain + gamma half of the station's GPU
//! normaliser (pipeline/src/normalise/reference.rs), computed from the face box rather than the whole
//! frame, and without the CLAHE half: it answers "does moving the face to the target help", not
//! "what exactly will the station's shader output".

mod fnmr;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::lane::for_each_frame;
use crate::photo::Photo;
use crate::station_toml::{self, Edit, Section, Val, round4};
use fnmr::{apply_lut, crop, fnmr, gain_gamma_lut, mean_cos, score, templates};

#[derive(clap::Args)]
pub struct Args {
    /// Footage folder made by `gate-calibrate footage` (truth.json and one MP4 per lane).
    #[arg(long)]
    pub footage: PathBuf,
    /// Only these footage lanes (comma-separated or repeated); default all. [lighting] and
    /// [normalise] are station-wide, so --write always goes to those tables.
    #[arg(long = "lane", value_delimiter = ',')]
    pub lanes: Vec<String>,
    /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    pub models: PathBuf,
    /// Where truth.json's relative photo paths start (the generator's working directory).
    #[arg(long, default_value = ".")]
    pub photos_root: PathBuf,
    /// Cosine threshold for FNMR.
    #[arg(long, default_value_t = 0.45)]
    pub threshold: f32,
    /// Smallest face (truth box side, px) embedded for FNMR.
    #[arg(long, default_value_t = 80.0)]
    pub min_face: f32,
    /// Embed every Nth qualifying frame of each walker (CPU embedding is slow).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Light statistics and setpoints only; no embedding.
    #[arg(long)]
    pub no_fnmr: bool,
    /// Station file whose [normalise] target_mean / strength are the current values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Store the recommended [lighting] low/high and [normalise] target_mean/strength here.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// The parts of truth.json (docs/footage.md) read here; the generator's own types are private to it.
#[derive(Deserialize)]
struct Truth {
    lanes: Vec<TruthLane>,
    enrol: Vec<TruthEnrol>,
}

#[derive(Deserialize)]
struct TruthLane {
    lane: String,
    file: String,
    scenario: String,
    frames: u32,
    walkers: Vec<TruthWalker>,
}

#[derive(Deserialize)]
struct TruthWalker {
    identity: String,
    enrolled: bool,
    /// `[frame, x, y, w, h]`, frame pixels.
    boxes: Vec<(u32, f32, f32, f32, f32)>,
}

#[derive(Deserialize)]
struct TruthEnrol {
    identity: String,
    photo: String,
    face: [f32; 4],
}

/// The station's defaults (pipeline NormaliseParams, LightingLoopConfig) when no file says otherwise.
const TARGET_MEAN: f32 = 0.45;
const STRENGTH: f32 = 0.6;

fn luma(p: &[u8]) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

#[derive(Default)]
struct Acc {
    lanes: Vec<String>,
    frames: u64,
    scene_sum: f64,
    scene_n: u64,
    face_hist: Vec<u64>,
    box_std: Vec<f32>,
    /// Mean luma of the largest face per frame: what the station's lighting loop follows.
    frame_face: Vec<f32>,
    before: Vec<Option<f32>>,
    after: Vec<Option<f32>>,
}

#[derive(Serialize, Clone)]
pub struct ScenarioReport {
    pub scenario: String,
    pub lanes: Vec<String>,
    pub frames: u64,
    pub face_pixels: u64,
    pub scene_mean: f32,
    pub face_mean: f32,
    pub face_p5: f32,
    pub face_p95: f32,
    pub face_clipped: f32,
    pub face_contrast: f32,
    /// Coefficient of variation of the per-frame face luma (walker to walker, flicker).
    pub face_cv: f32,
    pub fnmr_samples: usize,
    pub fnmr_before: Option<f32>,
    pub fnmr_after: Option<f32>,
    pub undetected_before: usize,
    pub undetected_after: usize,
    pub mean_cos_before: Option<f32>,
    pub mean_cos_after: Option<f32>,
}

#[derive(Serialize)]
pub struct Recommendation {
    // f64 rounded to 4 decimals: the JSON and the station file then carry the same `0.38`.
    pub low: f64,
    pub high: f64,
    pub target_mean: f64,
    pub strength: f64,
    pub rule: Vec<String>,
}

fn quantile_hist(h: &[u64], q: f64) -> f32 {
    let n: u64 = h.iter().sum();
    let at = ((q * n as f64).ceil() as u64).max(1);
    let mut cum = 0;
    for (b, c) in h.iter().enumerate() {
        cum += c;
        if cum >= at {
            return b as f32 / 255.0;
        }
    }
    1.0
}

fn mean_std(v: &[f32]) -> (f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let m = v.iter().sum::<f32>() / v.len() as f32;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32;
    (m, var.sqrt())
}

fn r2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

/// The setpoints that follow from the measured face light; `rule` says why, in words.
pub fn recommend(rows: &[ScenarioReport], current_target: f32) -> Recommendation {
    let with_faces: Vec<&ScenarioReport> = rows.iter().filter(|r| r.face_mean > 0.01).collect();
    let mut rule = Vec::new();
    // Illumination scales a face's luma roughly linearly, so p95/mean and p5/mean survive the
    // lighting loop: they say where the face's highlights and shadows land once its mean sits at T.
    // Medians over scenarios: a lane whose light is wrong should get its light fixed by the loop,
    // not drag the station-wide target along.
    let median = |mut v: Vec<f32>, default: f32| {
        v.sort_by(f32::total_cmp);
        if v.is_empty() {
            default
        } else {
            v[v.len() / 2]
        }
    };
    let hi_ratio = median(
        with_faces
            .iter()
            .map(|r| r.face_p95 / r.face_mean)
            .collect(),
        1.0,
    );
    let lo_ratio = median(
        with_faces.iter().map(|r| r.face_p5 / r.face_mean).collect(),
        1.0,
    );
    let t_max = 0.92 / hi_ratio.max(1.0);
    let t_min = 0.08 / lo_ratio.max(0.05);
    // Highlights win a conflict: clipped skin carries no identity, dark skin still does.
    let target = r2(current_target.max(t_min).min(t_max).clamp(0.35, 0.55));
    rule.push(format!(
        "target_mean {target:.2}: median face p95/mean is {hi_ratio:.2}, so a face mean above \
         {t_max:.2} puts the face's highlights past 0.92 (clipping); median p5/mean is \
         {lo_ratio:.2}, so below {t_min:.2} its shadows sink under 0.08 (noise); the current \
         {current_target:.2} moved into that range (highlights first), within 0.35..0.55"
    ));
    let cv = with_faces.iter().map(|r| r.face_cv).fold(0.0f32, f32::max);
    let c = (1.5 * cv).clamp(0.15, 0.45);
    let low = r2((target * (1.0 - c)).max(0.05));
    let high = r2((target * (1.0 + c)).min(0.95));
    rule.push(format!(
        "[lighting] low {low:.2} / high {high:.2}: the loop drives the raw face luma into this band, \
         centred on target_mean so the normaliser's gamma stays near 1 (least noise and banding); \
         half-width ±{:.0} % = 1.5 × the largest frame-to-frame variation of face luma at fixed light \
         ({:.0} %, walkers and flicker), within 15..45 %, so the loop does not hunt",
        c * 100.0,
        cv * 100.0
    ));
    let backlight = with_faces
        .iter()
        .map(|r| r.scene_mean / r.face_mean)
        .fold(0.0f32, f32::max);
    let contrast = with_faces
        .iter()
        .map(|r| r.face_contrast)
        .fold(1.0f32, f32::min);
    let (strength, why) = if backlight > 1.6 {
        (
            0.8,
            format!(
                "scene/face luma reaches {backlight:.2} (backlight): one global curve cannot lift \
                 the face without blowing out the field, local equalisation can"
            ),
        )
    } else if contrast < 0.06 {
        (
            0.7,
            format!("face contrast is as low as {contrast:.3}: local equalisation restores detail"),
        )
    } else {
        (
            0.5,
            format!(
                "no backlight (scene/face ≤ {backlight:.2}) and face contrast ≥ {contrast:.3}: \
                 gain/gamma does most of the work; less CLAHE amplifies less sensor noise"
            ),
        )
    };
    rule.push(format!("[normalise] strength {strength:.1}: {why}"));
    Recommendation {
        low: round4(low),
        high: round4(high),
        target_mean: round4(target),
        strength: round4(strength),
        rule,
    }
}

pub fn run(o: Args) -> Result<()> {
    let tpath = o.footage.join("truth.json");
    let text = std::fs::read_to_string(&tpath).with_context(|| {
        format!(
            "reading {} (a folder made by `gate-calibrate footage`)",
            tpath.display()
        )
    })?;
    let truth: Truth =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", tpath.display()))?;
    if o.every == 0 {
        bail!("--every must be at least 1");
    }
    let lanes: Vec<_> = truth
        .lanes
        .iter()
        .filter(|l| o.lanes.is_empty() || o.lanes.contains(&l.lane))
        .collect();
    if lanes.is_empty() {
        bail!(
            "{}: none of the lanes {:?} (footage has {})",
            tpath.display(),
            o.lanes,
            truth
                .lanes
                .iter()
                .map(|l| l.lane.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let cfg_num = |table: &str, key: &str, default: f32| -> Result<f32> {
        Ok(match &o.config {
            Some(c) => station_toml::read_number(c, table, key)?.map_or(default, |v| v as f32),
            None => default,
        })
    };
    let current_target = cfg_num("normalise", "target_mean", TARGET_MEAN)?;
    let current_strength = cfg_num("normalise", "strength", STRENGTH)?;
    let tpl = if o.no_fnmr {
        None
    } else {
        Some(templates(&truth, &o)?)
    };
    // Pass 1 measures the light (and the raw-frame scores); the "after" scores need the recommended
    // target, which only exists once every lane is measured, so their crops wait in memory.
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut pending: Vec<(String, Photo, f32, [usize; 4], String)> = Vec::new();
    for lane in &lanes {
        let a = acc.entry(lane.scenario.clone()).or_default();
        if a.face_hist.is_empty() {
            a.face_hist = vec![0; 256];
        }
        a.lanes.push(lane.lane.clone());
        let mut by_frame: BTreeMap<u32, Vec<(usize, [f32; 4])>> = BTreeMap::new();
        for (wi, w) in lane.walkers.iter().enumerate() {
            for &(f, x, y, bw, bh) in &w.boxes {
                by_frame.entry(f).or_default().push((wi, [x, y, bw, bh]));
            }
        }
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        let video = o.footage.join(&lane.file);
        let n = for_each_frame(&video, |fr| {
            a.frames += 1;
            let mut s = 0.0f64;
            for p in fr.rgb.chunks_exact(3) {
                s += f64::from(luma(p));
            }
            a.scene_sum += s / 255.0;
            a.scene_n += (fr.w * fr.h) as u64;
            let Some(boxes) = u32::try_from(fr.index).ok().and_then(|i| by_frame.get(&i)) else {
                return Ok(true);
            };
            let mut largest: Option<(f32, f32)> = None;
            for &(wi, [x, y, bw, bh]) in boxes {
                let (x0, y0) = (x.max(0.0) as usize, y.max(0.0) as usize);
                let (x1, y1) = (((x + bw) as usize).min(fr.w), ((y + bh) as usize).min(fr.h));
                let mut v = Vec::new();
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        let l = luma(&fr.rgb[(yy * fr.w + xx) * 3..]);
                        a.face_hist[l.round().clamp(0.0, 255.0) as usize] += 1;
                        v.push(l / 255.0);
                    }
                }
                let (m, sd) = mean_std(&v);
                if !v.is_empty() {
                    a.box_std.push(sd);
                    if largest.is_none_or(|(area, _)| area < bw * bh) {
                        largest = Some((bw * bh, m));
                    }
                }
                let wk = &lane.walkers[wi];
                if let Some(t) = &tpl
                    && wk.enrolled
                    && bh.min(bw) >= o.min_face
                    && t.by_identity.contains_key(&wk.identity)
                {
                    let k = seen.entry(wi).or_default();
                    *k += 1;
                    if (*k - 1).is_multiple_of(o.every) {
                        let (ph, c, fb) = crop(&fr.rgb, fr.w, fr.h, [x, y, bw, bh]);
                        let half = bw.max(bh) / 2.0;
                        a.before.push(score(t, &ph, c, half, &wk.identity)?);
                        pending.push((lane.scenario.clone(), ph, half, fb, wk.identity.clone()));
                    }
                }
            }
            if let Some((_, m)) = largest {
                a.frame_face.push(m);
            }
            Ok(true)
        })?;
        if u64::from(lane.frames) != n {
            eprintln!(
                "warning: {} decoded {n} frames, truth.json says {}",
                video.display(),
                lane.frames
            );
        }
    }
    let mut rows: Vec<ScenarioReport> = acc
        .iter()
        .map(|(sc, a)| {
            let face_px: u64 = a.face_hist.iter().sum();
            let face_mean = a
                .face_hist
                .iter()
                .enumerate()
                .map(|(b, c)| b as f64 * *c as f64)
                .sum::<f64>()
                / (face_px.max(1) as f64 * 255.0);
            let clipped =
                a.face_hist[..5].iter().sum::<u64>() + a.face_hist[251..].iter().sum::<u64>();
            let (fm, fsd) = mean_std(&a.frame_face);
            ScenarioReport {
                scenario: sc.clone(),
                lanes: a.lanes.clone(),
                frames: a.frames,
                face_pixels: face_px,
                scene_mean: (a.scene_sum / a.scene_n.max(1) as f64) as f32,
                face_mean: face_mean as f32,
                face_p5: quantile_hist(&a.face_hist, 0.05),
                face_p95: quantile_hist(&a.face_hist, 0.95),
                face_clipped: clipped as f32 / face_px.max(1) as f32,
                face_contrast: mean_std(&a.box_std).0,
                face_cv: if fm > 0.0 { fsd / fm } else { 0.0 },
                fnmr_samples: a.before.len(),
                fnmr_before: fnmr(&a.before, o.threshold),
                fnmr_after: None,
                undetected_before: a.before.iter().filter(|s| s.is_none()).count(),
                undetected_after: 0,
                mean_cos_before: mean_cos(&a.before),
                mean_cos_after: None,
            }
        })
        .collect();
    let rec = recommend(&rows, current_target);
    if let Some(t) = &tpl {
        for (sc, mut ph, half, [x0, y0, x1, y1], id) in pending {
            let mut hist = [0u32; 256];
            for yy in y0..y1 {
                for xx in x0..x1 {
                    let l = luma(&ph.rgb[(yy * ph.w + xx) * 3..]);
                    hist[l.round().clamp(0.0, 255.0) as usize] += 1;
                }
            }
            apply_lut(&mut ph.rgb, &gain_gamma_lut(&hist, rec.target_mean as f32));
            let c = ph.w as f32 / 2.0;
            let s = score(t, &ph, c, half, &id)?;
            if let Some(a) = acc.get_mut(&sc) {
                a.after.push(s);
            }
        }
        for r in &mut rows {
            if let Some(a) = acc.get(&r.scenario) {
                r.fnmr_after = fnmr(&a.after, o.threshold);
                r.undetected_after = a.after.iter().filter(|s| s.is_none()).count();
                r.mean_cos_after = mean_cos(&a.after);
            }
        }
    }
    print_report(&rows, &rec, &o, current_target, current_strength);
    if let Some(j) = &o.json {
        let doc = serde_json::json!({
            "footage": o.footage,
            "threshold": o.threshold,
            "min_face_px": o.min_face,
            "every": o.every,
            "current": {"target_mean": current_target, "strength": current_strength},
            "scenarios": rows,
            "recommendation": rec,
            "after_is": "gain+gamma from the face box towards target_mean (CPU approximation of the \
                         station normaliser without CLAHE)",
        });
        std::fs::write(j, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", j.display()))?;
    }
    if let Some(station) = &o.write {
        let t = |n: &str| Section::Table(n.into());
        let backup = station_toml::write(
            station,
            &[
                Edit::new(t("lighting"), "low", Val::Float(rec.low)),
                Edit::new(t("lighting"), "high", Val::Float(rec.high)),
                Edit::new(t("normalise"), "target_mean", Val::Float(rec.target_mean)),
                Edit::new(t("normalise"), "strength", Val::Float(rec.strength)),
            ],
        )?;
        println!(
            "wrote [lighting] low/high and [normalise] target_mean/strength to {} (previous file \
             kept as {})",
            station.display(),
            backup.display()
        );
    }
    Ok(())
}

fn opt(v: Option<f32>, pct: bool) -> String {
    match v {
        Some(x) if pct => format!("{:.1}%", x * 100.0),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

fn print_report(rows: &[ScenarioReport], rec: &Recommendation, o: &Args, t: f32, s: f32) {
    println!(
        "luma 0-1 (BT.601 of the decoded RGB); face = inside the truth boxes; clipped = <5 or >250 of 255"
    );
    println!(
        "{:<9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6} | {:>4} {:>8} {:>8} {:>7} {:>7}",
        "scenario",
        "frames",
        "scene",
        "face",
        "p5",
        "p95",
        "clipped",
        "contrast",
        "cv",
        "n",
        "FNMR raw",
        "FNMR adj",
        "cos raw",
        "cos adj"
    );
    for r in rows {
        println!(
            "{:<9} {:>6} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7.2}% {:>8.3} {:>6.3} | {:>4} {:>8} {:>8} {:>7} {:>7}",
            r.scenario,
            r.frames,
            r.scene_mean,
            r.face_mean,
            r.face_p5,
            r.face_p95,
            r.face_clipped * 100.0,
            r.face_contrast,
            r.face_cv,
            r.fnmr_samples,
            opt(r.fnmr_before, true),
            opt(r.fnmr_after, true),
            opt(r.mean_cos_before, false),
            opt(r.mean_cos_after, false),
        );
    }
    if o.no_fnmr {
        println!("(FNMR skipped: --no-fnmr)");
    } else {
        println!(
            "FNMR at cosine {:.2} over enrolled walkers' faces >= {:.0} px ({}); a face the \
             detector misses counts as a non-match; adj = gain+gamma from the face box towards \
             target_mean {:.2} (approximates the GPU normaliser without CLAHE)",
            o.threshold,
            o.min_face,
            if o.every == 1 {
                "every frame".to_owned()
            } else {
                format!("every {}th frame", o.every)
            },
            rec.target_mean
        );
    }
    println!("recommended (current: target_mean {t:.2}, strength {s:.1}):");
    println!(
        "  [lighting] low = {:.2}, high = {:.2}; [normalise] target_mean = {:.2}, strength = {:.1}",
        rec.low, rec.high, rec.target_mean, rec.strength
    );
    for r in &rec.rule {
        println!("  - {r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommendation_centres_on_target() {
        let row = |sc: &str, scene: f32, face: f32| ScenarioReport {
            scenario: sc.into(),
            lanes: vec![],
            frames: 1,
            face_pixels: 1,
            scene_mean: scene,
            face_mean: face,
            face_p5: face * 0.6,
            face_p95: face * 1.4,
            face_clipped: 0.0,
            face_contrast: 0.1,
            face_cv: 0.1,
            fnmr_samples: 0,
            fnmr_before: None,
            fnmr_after: None,
            undetected_before: 0,
            undetected_after: 0,
            mean_cos_before: None,
            mean_cos_after: None,
        };
        let r = recommend(&[row("normal", 0.4, 0.45), row("dim", 0.15, 0.17)], 0.45);
        assert_eq!(r.target_mean, 0.45);
        assert!((r.low + r.high) / 2.0 - 0.45 < 0.011 && r.low < 0.45 && r.high > 0.45);
        assert_eq!(r.strength, 0.5);
        let r = recommend(&[row("backlit", 0.7, 0.2)], 0.45);
        assert_eq!(r.strength, 0.8);
    }
}
