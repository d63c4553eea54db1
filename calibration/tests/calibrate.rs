//! `gate-calibrate eval --plots` and `identify` end to end on the face_recognition test photos
//! (scripts/setup), and their refusals of sets they cannot evaluate.

use std::path::Path;

mod common;

use common::{inputs, run, text};

/// A set as `<identity>/<photo>` folders (no labels.csv): three photos of Obama, one of Biden.
fn folder_set(photos: &Path, dir: &Path) {
    common::face_folders(photos, dir, ["a_", "b_"]);
}

#[test]
fn eval_writes_plots_and_reports_folds() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = tmp.path().join("set");
    folder_set(&photos, &set);
    let plots = tmp.path().join("plots");
    let json = tmp.path().join("eval.json");
    let o = run(&[
        "eval",
        "--set",
        set.to_str().expect("utf-8"),
        "--models",
        models.to_str().expect("utf-8"),
        "--plots",
        plots.to_str().expect("utf-8"),
        "--json",
        json.to_str().expect("utf-8"),
        "--threshold",
        "0.45",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The verdict at the station's threshold comes first, right under the set's line.
    let out = text(&o);
    let lines: Vec<&str> = out.lines().collect();
    let set_line = lines
        .iter()
        .position(|l| l.starts_with("set: "))
        .expect("set line");
    assert!(
        lines[set_line + 1].starts_with("verdict at the station's threshold T = 0.450: FMR ")
            && lines[set_line + 1].contains("of 3 genuine pairs"),
        "{out}"
    );
    let det = std::fs::read_to_string(plots.join("det.svg")).expect("det.svg");
    assert!(det.contains("station T = 0.450"), "the DET does not mark T");
    for f in ["det.png", "det.svg", "roc.png", "roc.svg"] {
        let bytes = std::fs::read(plots.join(f)).expect(f);
        if f.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f}");
            image::load_from_memory(&bytes).expect("decodes");
        } else {
            let s = String::from_utf8(bytes).expect("utf-8");
            assert!(s.starts_with("<svg") || s.starts_with("<?xml"), "{f}");
            assert!(s.contains("</svg>"), "{f}");
        }
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parses");
    assert_eq!(v["blazeface"]["genuine"], 3, "{v}");
    assert_eq!(v["blazeface"]["impostor"], 3, "{v}");
    assert_eq!(v["plots"].as_array().map(Vec::len), Some(4));
    let t = v["station_threshold"]["t"]
        .as_f64()
        .expect("station_threshold.t");
    assert!((t - 0.45).abs() < 1e-6, "{v}");

    // A pairs file with fewer pairs than folds: the 10-fold accuracy is n/a, not a failure.
    let pairs = tmp.path().join("pairs.csv");
    std::fs::write(
        &pairs,
        "file_x,file_y,Decision\nobama.jpg,obama2.jpg,Yes\nobama.jpg,biden.jpg,No\n",
    )
    .expect("pairs");
    let images = tmp.path().join("paired");
    std::fs::create_dir_all(images.join("images")).expect("mkdir");
    let mut labels = String::from("path,identity\n");
    for (f, id) in [
        ("obama.jpg", "obama"),
        ("obama2.jpg", "obama"),
        ("biden.jpg", "biden"),
    ] {
        std::fs::copy(photos.join(f), images.join("images").join(f)).expect("copy");
        labels += &format!("images/{f},{id}\n");
    }
    std::fs::write(images.join("labels.csv"), labels).expect("labels");
    let o = run(&[
        "eval",
        "--set",
        images.to_str().expect("utf-8"),
        "--pairs",
        pairs.to_str().expect("utf-8"),
        "--models",
        models.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("10-fold accuracy: n/a"), "{}", text(&o));
    assert!(text(&o).contains("verdict: EER"), "{}", text(&o));
}

#[test]
fn identify_measures_then_refuses_to_extrapolate_from_three_impostors() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = tmp.path().join("set");
    folder_set(&photos, &set);
    let m = models.to_str().expect("utf-8");
    let s = set.to_str().expect("utf-8");
    let o = run(&["identify", "--set", s, "--models", m]);
    let t = text(&o);
    // Obama enrolled (first by name) with obama.jpg; obama2/3 mated, Biden non-mated.
    assert!(
        t.contains("gallery 1 enrolled identities") && t.contains("mated probes 2"),
        "{t}"
    );
    assert!(
        t.contains("rank-1 misses (best entry not the mate): 0.00 %"),
        "{t}"
    );
    assert!(
        !o.status.success(),
        "3 impostor scores cannot give FMR 1e-7: {t}"
    );
    assert!(t.contains("impostor scores or a tail fit"), "{t}");
    assert!(!t.contains("panicked"), "{t}");

    for (args, says) in [
        (vec!["--enrolled-fraction", "1.5"], "--enrolled-fraction"),
        (vec!["--target-fpir", "0"], "--target-fpir"),
        (vec!["--gallery-sizes", "0"], "--gallery-sizes"),
    ] {
        let mut a = vec!["identify", "--set", s, "--models", m];
        a.extend(args);
        let o = run(&a);
        assert!(!o.status.success());
        assert!(text(&o).contains(says), "{}", text(&o));
    }
    // One identity only.
    std::fs::remove_dir_all(set.join("b_biden")).expect("rm");
    let o = run(&["identify", "--set", s, "--models", m]);
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 2 identities"), "{}", text(&o));
}
