//! `gate-calibrate keypoints`: BlazeFace keypoints against reference (dlib) landmarks, detection only
//! (no SFace): error per keypoint in inter-ocular units, and the least-squares 4-point template that
//! maps BlazeFace's eyes, nose and mouth centre onto the reference-aligned chip.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use engine::face::FaceChain;
use engine::face::align::TEMPLATE_4;
use engine::face::blazeface::Detection;

use crate::photo::Photo;
use crate::refmarks::{self, KeypointStats, RefMarks};
use crate::select;

pub struct Options {
    pub sets: Vec<PathBuf>,
    pub landmarks: Vec<PathBuf>,
    pub skip_per_identity: usize,
    pub per_identity: Option<usize>,
    pub pad: f32,
    pub models: PathBuf,
    pub json: Option<PathBuf>,
}

const NAMES: [&str; 4] = ["right eye", "left eye", "nose tip", "mouth centre"];

/// Prints the keypoint errors and returns them as JSON.
pub fn report(kp: &KeypointStats) -> serde_json::Value {
    println!(
        "BlazeFace keypoint error vs dlib 68-point (inter-ocular units; {} faces, {} left out as different faces):",
        kp.in_chip.len(),
        kp.mismatched
    );
    let mut j = serde_json::Map::new();
    for (k, name) in NAMES.iter().enumerate() {
        let (mean, median) = refmarks::mean_median(&kp.err[k]);
        println!("  {name:<13} mean {mean:.3}  median {median:.3}");
        j.insert(
            (*name).into(),
            serde_json::json!({"mean": mean, "median": median}),
        );
    }
    if !kp.err_eyes5.is_empty() {
        let (mean, median) = refmarks::mean_median(&kp.err_eyes5);
        println!("  eyes vs dlib 5-point eye centres: mean {mean:.3}  median {median:.3}");
        j.insert(
            "eyes vs 5-point".into(),
            serde_json::json!({"mean": mean, "median": median}),
        );
    }
    j.insert("faces".into(), kp.in_chip.len().into());
    j.insert("mismatched".into(), kp.mismatched.into());
    serde_json::Value::Object(j)
}

pub fn run(o: Options) -> Result<()> {
    if o.sets.len() != o.landmarks.len() {
        bail!(
            "give one --landmarks per --set ({} sets, {} landmark files)",
            o.sets.len(),
            o.landmarks.len()
        );
    }
    let t0 = Instant::now();
    let pipe = FaceChain::load(&o.models)?;
    let mut faces: Vec<(Detection, RefMarks)> = Vec::new();
    let mut per_set = Vec::new();
    for (set, lm) in o.sets.iter().zip(&o.landmarks) {
        let marks = refmarks::read(lm)?;
        let photos: Vec<_> = select::per_identity(
            select::read_labels(set)?,
            o.skip_per_identity,
            o.per_identity,
        )
        .into_iter()
        .filter(|p| marks.contains_key(&p.rel))
        .collect();
        let found = select::par_map(&photos, select::threads(), |p| {
            let r = Photo::load(&p.path, o.pad)
                .and_then(|ph| Ok((pipe.subject_face(ph.view())?, ph.border)))
                .with_context(|| p.path.display().to_string());
            match r {
                Ok((Some(f), border)) => marks
                    .get(&p.rel)
                    .map(|m| (f.detection, m.shifted(border as f32))),
                Ok((None, _)) => None,
                Err(e) => {
                    eprintln!("{e:#}");
                    None
                }
            }
        });
        let got: Vec<_> = found.into_iter().flatten().collect();
        println!(
            "{}: {} photos with dlib landmarks, BlazeFace found {}",
            set.display(),
            photos.len(),
            got.len()
        );
        per_set.push(serde_json::json!({"set": set, "photos": photos.len(), "both": got.len()}));
        faces.extend(got);
    }
    let mut kp = KeypointStats::default();
    for (d, r) in &faces {
        kp.add(d, r);
    }
    let kp_json = report(&kp);
    let Some(t) = kp.template() else {
        bail!("no face with both BlazeFace keypoints and reference landmarks");
    };
    let disc = |tpl: &[[f32; 2]; 4]| {
        let v: Vec<f32> = faces
            .iter()
            .filter_map(|(d, r)| refmarks::chip_discrepancy(d, r, tpl))
            .collect();
        refmarks::mean_median(&v)
    };
    let (d0, m0) = disc(&TEMPLATE_4);
    let (d1, m1) = disc(&t);
    println!(
        "least-squares 4-point template (BlazeFace eyes, nose, mouth centre in the reference chip):"
    );
    println!("  pub const TEMPLATE_4: [[f32; 2]; 4] = [");
    for p in &t {
        println!("      [{:.4}, {:.4}],", p[0], p[1]);
    }
    println!("  ];");
    println!("  current TEMPLATE_4: {TEMPLATE_4:?}");
    println!(
        "alignment vs reference chip (mean distance of the 5 reference points from ArcFace-5, chip px): TEMPLATE_4 mean {d0:.2} median {m0:.2}; derived mean {d1:.2} median {m1:.2}"
    );
    let flat: Vec<String> = t.iter().flatten().map(|v| format!("{v:.4}")).collect();
    println!("as --template4: {}", flat.join(","));
    println!("({:.0} s)", t0.elapsed().as_secs_f64());
    if let Some(path) = &o.json {
        let v = serde_json::json!({
            "sets": per_set, "keypoints": kp_json, "template": t,
            "chip_discrepancy_px": {"TEMPLATE_4": d0, "derived": d1},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
