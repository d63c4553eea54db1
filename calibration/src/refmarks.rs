//! Reference landmarks from a second opinion (dlib, `benches/peers/dlib_landmarks.py`), and how far
//! BlazeFace's keypoints and alignment are from them.
//!
//! The CSV has a header; columns are found by name: `path` (relative to the set folder, as in
//! labels.csv), `re_x,re_y,le_x,le_y,nose_x,nose_y,mr_x,mr_y,ml_x,ml_y` (ArcFace 5-point order from
//! dlib's 68-point model: eye centres, nose tip, mouth corners; pixels of the original photo, pixel
//! centres) and optionally `d5_0_x … d5_4_y` (dlib's 5-point model: outer/inner corner of the person's
//! left eye, of the right eye, nose base). Empty fields: dlib found no face.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use engine::face::align::{self, ARCFACE_5, Similarity};
use engine::face::blazeface::Detection;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefMarks {
    /// ArcFace order: right eye, left eye, nose tip, right and left mouth corner.
    pub arc5: [[f32; 2]; 5],
    /// Eye centres from dlib's 5-point model (right, left), when the CSV has them.
    pub eyes5: Option<[[f32; 2]; 2]>,
}

impl RefMarks {
    pub fn shifted(&self, by: f32) -> RefMarks {
        let s = |p: [f32; 2]| [p[0] + by, p[1] + by];
        RefMarks {
            arc5: self.arc5.map(s),
            eyes5: self.eyes5.map(|e| e.map(s)),
        }
    }

    /// The reference alignment: least-squares similarity of the 5 points onto the ArcFace template
    /// (what insightface's `norm_crop` does with its own 5 points).
    pub fn alignment(&self) -> Option<Similarity> {
        align::fit(&self.arc5, &ARCFACE_5)
    }

    pub fn inter_ocular(&self) -> f32 {
        dist(self.arc5[0], self.arc5[1])
    }

    /// Midpoint of the mouth corners: what BlazeFace's 4th keypoint stands for.
    pub fn mouth_centre(&self) -> [f32; 2] {
        mid(self.arc5[3], self.arc5[4])
    }
}

pub fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn mid(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
}

/// Reads the CSV into path (relative, as written) → landmarks; rows without a face are left out.
pub fn read(path: &Path) -> Result<BTreeMap<String, RefMarks>> {
    let table = crate::select::read_csv(path)?;
    let cols: Vec<&str> = table.header.iter().map(String::as_str).collect();
    if cols.iter().all(|c| c.is_empty()) {
        bail!("{}:1: empty file, expected a header", path.display());
    }
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let Some(pcol) = col("path") else {
        bail!("{}:1: no `path` column", path.display());
    };
    let mut arc = Vec::new();
    for n in ["re", "le", "nose", "mr", "ml"] {
        for c in ["x", "y"] {
            match col(&format!("{n}_{c}")) {
                Some(i) => arc.push(i),
                None => bail!("{}:1: no `{n}_{c}` column", path.display()),
            }
        }
    }
    let d5: Option<Vec<usize>> = (0..5)
        .flat_map(|i| ["x", "y"].map(move |c| format!("d5_{i}_{c}")))
        .map(|name| col(&name))
        .collect();
    let mut out = BTreeMap::new();
    for (n, rec) in &table.rows {
        let f: Vec<&str> = rec.iter().collect();
        if f.len() != cols.len() {
            bail!(
                "{}:{n}: {} fields, the header has {}",
                path.display(),
                f.len(),
                cols.len()
            );
        }
        if arc.iter().any(|&i| f[i].is_empty()) {
            continue; // no face
        }
        let num = |i: usize| -> Result<f32> {
            f[i].parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("{}:{n}: `{}` is not a number", path.display(), f[i]))
        };
        let mut arc5 = [[0f32; 2]; 5];
        for (k, p) in arc5.iter_mut().enumerate() {
            *p = [num(arc[2 * k])?, num(arc[2 * k + 1])?];
        }
        let eyes5 = match &d5 {
            Some(d) if d.iter().all(|&i| !f[i].is_empty()) => {
                let p = |k: usize| -> Result<[f32; 2]> { Ok([num(d[2 * k])?, num(d[2 * k + 1])?]) };
                // dlib 5-point: 0/1 the person's left eye, 2/3 the right eye.
                Some([mid(p(2)?, p(3)?), mid(p(0)?, p(1)?)])
            }
            _ => None,
        };
        out.insert(f[pcol].to_owned(), RefMarks { arc5, eyes5 });
    }
    Ok(out)
}

/// BlazeFace keypoint errors in inter-ocular units (reference eye-centre distance), and the data to
/// derive a 4-point template: each face's BlazeFace keypoints mapped into the reference chip.
#[derive(Debug, Default, Clone)]
pub struct KeypointStats {
    /// Per keypoint (right eye, left eye, nose tip, mouth centre): errors vs the 68-point reference.
    pub err: [Vec<f32>; 4],
    /// Eye-centre errors vs dlib's 5-point eye centres (both eyes pooled).
    pub err_eyes5: Vec<f32>,
    /// BlazeFace keypoints in reference-chip coordinates, one [4] per face.
    pub in_chip: Vec<[[f32; 2]; 4]>,
    /// Faces left out because BlazeFace and dlib found different faces (eye midpoints > 1 IOD apart).
    pub mismatched: usize,
}

impl KeypointStats {
    pub fn add(&mut self, d: &Detection, r: &RefMarks) {
        let iod = r.inter_ocular();
        let Some(s) = r.alignment() else { return };
        if iod <= 1.0
            || dist(
                mid(d.keypoints[0], d.keypoints[1]),
                mid(r.arc5[0], r.arc5[1]),
            ) > iod
        {
            self.mismatched += 1;
            return;
        }
        let refs = [r.arc5[0], r.arc5[1], r.arc5[2], r.mouth_centre()];
        for ((err, kp), rp) in self.err.iter_mut().zip(d.keypoints).zip(refs) {
            err.push(dist(kp, rp) / iod);
        }
        if let Some(e5) = r.eyes5 {
            for (kp, rp) in d.keypoints.iter().zip(e5) {
                self.err_eyes5.push(dist(*kp, rp) / iod);
            }
        }
        self.in_chip
            .push([0, 1, 2, 3].map(|k| s.apply(d.keypoints[k])));
    }

    /// The least-squares 4-point template: the mean position of BlazeFace's keypoints in the reference
    /// chip (minimises the summed squared distance to them). `None` without faces.
    pub fn template(&self) -> Option<[[f32; 2]; 4]> {
        if self.in_chip.is_empty() {
            return None;
        }
        let n = self.in_chip.len() as f64;
        let mut t = [[0f64; 2]; 4];
        for f in &self.in_chip {
            for k in 0..4 {
                t[k][0] += f[k][0] as f64 / n;
                t[k][1] += f[k][1] as f64 / n;
            }
        }
        Some(t.map(|p| [p[0] as f32, p[1] as f32]))
    }
}

/// How far a BlazeFace alignment with `template` puts the reference's 5 points from the ArcFace
/// template: mean distance in chip pixels (0 = the same chip as the reference alignment).
pub fn chip_discrepancy(d: &Detection, r: &RefMarks, template: &[[f32; 2]; 4]) -> Option<f32> {
    let s = align::fit(&d.keypoints[..4], template)?;
    Some(
        r.arc5
            .iter()
            .zip(ARCFACE_5)
            .map(|(p, t)| dist(s.apply(*p), t))
            .sum::<f32>()
            / 5.0,
    )
}

/// "x0,y0,x1,y1,x2,y2,x3,y3" → a 4-point template.
pub fn parse_template(s: &str) -> Result<[[f32; 2]; 4]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("template `{s}`: expected 8 numbers"))?;
    let [a, b, c, d, e, f, g, h] = v[..] else {
        bail!("template `{s}`: expected 8 numbers, got {}", v.len());
    };
    Ok([[a, b], [c, d], [e, f], [g, h]])
}

/// Mean and median.
pub fn mean_median(v: &[f32]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let mean = s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64;
    let median = s.get(s.len() / 2).map_or(f64::NAN, |&m| m as f64);
    (mean, median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("refmarks-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn reads_rows_skips_missing_faces_and_names_bad_lines() {
        let head = "path,how,re_x,re_y,le_x,le_y,nose_x,nose_y,mr_x,mr_y,ml_x,ml_y,d5_0_x,d5_0_y,d5_1_x,d5_1_y,d5_2_x,d5_2_y,d5_3_x,d5_3_y,d5_4_x,d5_4_y";
        let good = format!(
            "{head}\na.pgm,hog,10,20,30,20,20,30,12,40,28,40,34,20,26,20,6,20,14,20,20,33\nb.pgm,none,,,,,,,,,,,,,,,,,,,,\n"
        );
        let m = read(&write("good.csv", &good)).expect("reads");
        assert_eq!(m.len(), 1);
        let r = m["a.pgm"];
        assert_eq!(r.arc5[2], [20.0, 30.0]);
        assert_eq!(r.eyes5, Some([[10.0, 20.0], [30.0, 20.0]]));
        assert_eq!(r.inter_ocular(), 20.0);
        let bad = format!("{head}\na.pgm,hog,10,20,30,x,20,30,12,40,28,40,1,1,1,1,1,1,1,1,1,1\n");
        let e = read(&write("bad.csv", &bad)).expect_err("refused");
        assert!(format!("{e:#}").contains("bad.csv:2"), "{e:#}");
        let short = format!("{head}\na.pgm,hog,10\n");
        let e = read(&write("short.csv", &short)).expect_err("refused");
        assert!(format!("{e:#}").contains("short.csv:2"), "{e:#}");
        assert!(read(Path::new("/nonexistent/x.csv")).is_err());
    }

    #[test]
    fn keypoints_on_the_reference_give_zero_error_and_the_template() {
        // A face whose reference points are exactly the ArcFace template ×2 + 7: BlazeFace keypoints
        // at the same eyes/nose/mouth centre map back onto TEMPLATE_4.
        let r = RefMarks {
            arc5: ARCFACE_5.map(|p| [p[0] * 2.0 + 7.0, p[1] * 2.0 + 7.0]),
            eyes5: None,
        };
        let mut kp = [[0f32; 2]; 6];
        for (k, p) in [r.arc5[0], r.arc5[1], r.arc5[2], r.mouth_centre()]
            .iter()
            .enumerate()
        {
            kp[k] = *p;
        }
        let d = Detection {
            score: 0.9,
            center: [0.0; 2],
            size: [1.0; 2],
            keypoints: kp,
        };
        let mut st = KeypointStats::default();
        st.add(&d, &r);
        assert!(st.err.iter().all(|e| e.len() == 1 && e[0] < 1e-6));
        let t = st.template().expect("template");
        for (a, b) in t.iter().zip(align::TEMPLATE_4) {
            assert!(dist(*a, b) < 1e-3, "{a:?} vs {b:?}");
        }
        let disc = chip_discrepancy(&d, &r, &align::TEMPLATE_4).expect("fits");
        assert!(disc < 1e-2, "{disc}");
        assert!(parse_template("1,2,3,4,5,6,7,8").is_ok());
        assert!(parse_template("1,2,3").is_err());
        assert!(parse_template("1,2,3,4,5,6,7,z").is_err());
    }
}
