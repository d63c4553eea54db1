//! `gate-calibrate footage`: determinism, decodable MP4s that match truth.json, and clear errors.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::Value;

mod common;

use common::{inputs, text};

fn run(args: &[&str]) -> Output {
    let mut all = vec!["footage"];
    all.extend_from_slice(args);
    common::run(&all)
}

/// `footage --out OUT --faces FACES --models MODELS` and `more`.
fn run_on(out: &Path, faces: &Path, models: &Path, more: &[&str]) -> Output {
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let (out, faces, models) = (s(out), s(faces), s(models));
    let mut all = vec!["--out", &out, "--faces", &faces, "--models", &models];
    all.extend_from_slice(more);
    run(&all)
}

/// Frames decoded from an MP4 (and their size), through the same kind of graph a lane uses.
fn decode(path: &Path) -> (usize, i32, i32) {
    gst::init().expect("gstreamer init");
    let desc = "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! \
                appsink name=sink sync=false";
    let pipeline = gst::parse::launch(desc)
        .expect("decode pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let src = pipeline.by_name("src").expect("filesrc");
    src.set_property("location", path.to_string_lossy().as_ref());
    let sink = pipeline
        .by_name("sink")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("play");
    let (mut n, mut w, mut h) = (0, 0, 0);
    while let Ok(sample) = sink.pull_sample() {
        if let Some(s) = sample.caps().and_then(|c| c.structure(0)) {
            w = s.get::<i32>("width").unwrap_or(0);
            h = s.get::<i32>("height").unwrap_or(0);
        }
        n += 1;
    }
    let bus = pipeline.bus().expect("bus");
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(error.is_none(), "decoding {}: {error:?}", path.display());
    (n, w, h)
}

#[test]
fn tiny_set_is_deterministic_decodable_and_consistent() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // <identity>/<image>: obama with three photos (one to enrol, two to walk with), biden with one.
    let faces = tmp.path().join("faces");
    common::face_folders(&photos, &faces, ["", ""]);
    let gen_set = |out: &Path| {
        let o = run_on(
            out,
            &faces,
            &models,
            &[
                "--lanes",
                "2",
                "--walkers",
                "1",
                "--size",
                "320x240",
                "--seed",
                "11",
                "--scenarios",
                "normal,flicker",
                "--tailgate-rate",
                "1",
                "--mask-rate",
                "0.5",
                "--unknown-rate",
                "0.5",
                "--hash-frames",
            ],
        );
        assert!(o.status.success(), "footage failed:\n{}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let words: Vec<&str> = stdout.split_whitespace().collect();
        let hashes: Vec<String> = words
            .windows(2)
            .filter(|w| w[0] == "frames-fnv64")
            .map(|w| w[1].to_owned())
            .collect();
        let truth = std::fs::read(out.join("truth.json")).expect("truth.json");
        (hashes, truth)
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (hash_a, truth_a) = gen_set(&a);
    let (hash_b, truth_b) = gen_set(&b);
    assert_eq!(hash_a.len(), 2, "one frame hash per lane");
    assert_eq!(hash_a, hash_b, "same seed, different frames");
    assert!(truth_a == truth_b, "same seed, different truth.json");

    let t: Value = serde_json::from_slice(&truth_a).expect("truth.json parses");
    assert_eq!(t["version"], 4);
    // The camera on the walking line (no --camera-offset), its focal length at 240 lines.
    assert_eq!(t["lanes"][0]["camera"]["offset_m"].as_f64(), Some(0.0));
    assert_eq!(t["lanes"][0]["camera"]["focal_px"].as_f64(), Some(236.5));
    // No attacks asked for: no walker carries the field.
    assert!(t["lanes"][0]["walkers"][0].get("attack").is_none());
    assert_eq!(
        (t["width"].as_f64(), t["height"].as_f64()),
        (Some(320.0), Some(240.0))
    );
    let fps = t["fps"].as_f64().expect("fps");
    let lanes = t["lanes"].as_array().expect("lanes");
    assert_eq!(lanes.len(), 2);
    let enrolled: Vec<&str> = t["enrol"]
        .as_array()
        .expect("enrol")
        .iter()
        .map(|e| e["identity"].as_str().expect("identity"))
        .collect();
    for lane in lanes {
        let frames = lane["frames"].as_u64().expect("frames");
        assert!((15..=40).contains(&frames), "~2 s at 10 fps, got {frames}");
        let file = a.join(lane["file"].as_str().expect("file"));
        assert_eq!(
            decode(&file),
            (frames as usize, 320, 240),
            "{}",
            file.display()
        );
        let walkers = lane["walkers"].as_array().expect("walkers");
        assert_eq!(walkers.len(), 2, "a lead and its tailgater");
        for w in walkers {
            let (first, last) = (
                w["first_frame"].as_u64().unwrap(),
                w["last_frame"].as_u64().unwrap(),
            );
            assert!(first < last && last < frames);
            assert!((w["t_first"].as_f64().unwrap() - first as f64 / fps).abs() < 1e-9);
            assert_eq!(w["expected"], "tailgating");
            assert!(w["group"].is_string());
            let id = w["identity"].as_str().unwrap();
            assert_eq!(
                w["enrolled"].as_bool(),
                Some(enrolled.contains(&id)),
                "{id}"
            );
            let boxes = w["boxes"].as_array().expect("boxes");
            assert!(
                boxes.len() as u64 >= last - first,
                "a box in (nearly) every frame"
            );
            for b in boxes {
                let v: Vec<f64> = b
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let (f, x, y, bw, bh) = (v[0] as u64, v[1], v[2], v[3], v[4]);
                assert!((first..=last).contains(&f));
                assert!(x >= 0.0 && y >= 0.0 && bw > 0.0 && bh > 0.0);
                assert!(
                    x + bw <= 320.0 + 1e-3 && y + bh <= 240.0 + 1e-3,
                    "box {v:?} leaves the frame"
                );
            }
        }
        let leads = walkers.iter().filter(|w| w["lead"] == true).count();
        assert_eq!(leads, 1);
    }
}

#[test]
fn bad_input_fails_with_a_message_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let out = out.to_str().expect("utf-8 path");
    let faces = tmp.path().to_str().expect("utf-8 path");
    for (args, needle) in [
        (vec!["--size", "640x"], "--size"),
        (vec!["--size", "641x480"], "--size"),
        (vec!["--lanes", "0"], "--lanes"),
        (vec!["--fps", "0"], "--fps"),
        (vec!["--scenarios", "normal,foggy"], "foggy"),
        (vec!["--mask-rate", "1.5"], "--mask-rate"),
    ] {
        let mut all = vec!["--out", out, "--faces", faces];
        all.extend(&args);
        let o = run(&all);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            text(&o).contains(needle),
            "{args:?}: message lacks {needle}:\n{}",
            text(&o)
        );
    }
    let o = run(&["--out", out, "--preset", "default", "--seed", "3"]);
    assert!(
        !o.status.success() && text(&o).contains("--seed"),
        "{}",
        text(&o)
    );

    // A labels file naming a photo that is not there, or not a photo at all.
    let Some((models, _)) = inputs() else {
        return;
    };
    std::fs::write(tmp.path().join("broken.jpg"), b"not a jpeg").expect("write");
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, "path,identity\nbroken.jpg,someone\n").expect("write");
    let o = run(&[
        "--out",
        out,
        "--labels",
        labels.to_str().expect("utf-8 path"),
        "--models",
        models.to_str().expect("utf-8 path"),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("broken.jpg"), "{}", text(&o));
}

/// Attacks are drawn as the truth says, and the PAD pair (`gate-calibrate pad`) refuses the
/// rendered pictures at the station's threshold while it passes the bona fide photos.
#[test]
fn attacks_are_drawn_and_the_pad_pair_refuses_them() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let faces = tmp.path().join("faces");
    common::face_folders(&photos, &faces, ["", ""]);
    let (out, png) = (tmp.path().join("out"), tmp.path().join("png"));
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let o = run_on(
        &out,
        &faces,
        &models,
        &[
            "--lanes",
            "1",
            "--walkers",
            "2",
            "--seed",
            "5",
            "--tailgate-rate",
            "0",
            "--mask-rate",
            "0",
            "--attack-rate",
            "1",
            "--attack-species",
            "phone,matte_print",
            "--dump-png",
            &s(&png),
            "--dump-every",
            "1",
        ],
    );
    assert!(o.status.success(), "footage failed:\n{}", text(&o));
    assert!(text(&o).contains("attack 2"), "{}", text(&o));
    let t: Value =
        serde_json::from_slice(&std::fs::read(out.join("truth.json")).expect("truth")).unwrap();
    let enrolled: Vec<&str> = t["enrol"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identity"].as_str().unwrap())
        .collect();
    let mut pad_args = vec!["pad".to_owned(), "--models".into(), s(&models)];
    for f in ["obama.jpg", "biden.jpg"] {
        pad_args.extend(["--bona-fide".into(), s(&photos.join(f))]);
    }
    let walkers = t["lanes"][0]["walkers"].as_array().unwrap();
    let species: Vec<&str> = walkers
        .iter()
        .map(|w| w["attack"].as_str().unwrap())
        .collect();
    assert_eq!(species, ["phone", "matte_print"]);
    for w in walkers {
        assert_eq!(w["expected"], "attack");
        assert_eq!(w["reason"], "presentation attack");
        // The picture shows someone enrolled: an attack worth making.
        assert!(enrolled.contains(&w["identity"].as_str().unwrap()));
        // The frame where the picture is largest, as the walker nears the gate.
        let big = w["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .max_by(|a, b| a[3].as_f64().unwrap().total_cmp(&b[3].as_f64().unwrap()))
            .unwrap();
        let frame = png.join(format!("L1-{:04}.png", big[0].as_u64().unwrap()));
        pad_args.extend([
            "--attack".into(),
            format!("{}={}", w["attack"].as_str().unwrap(), s(&frame)),
        ]);
    }
    // The lane's own MP4 as one clip: every frame shows a picture, judged as one walk.
    pad_args.extend([
        "--attack".into(),
        format!("lane_clip={}", s(&out.join("L1.mp4"))),
    ]);
    let json = tmp.path().join("pad.json");
    pad_args.extend(["--json".into(), s(&json)]);
    let args: Vec<&str> = pad_args.iter().map(String::as_str).collect();
    let o = common::run(&args);
    assert!(o.status.success(), "pad failed:\n{}", text(&o));
    println!("{}", text(&o));
    let r: Value = serde_json::from_slice(&std::fs::read(&json).expect("pad.json")).unwrap();
    let threshold = r["threshold"].as_f64().unwrap();
    assert!(
        (threshold - 0.6).abs() < 1e-6,
        "the station's default: {threshold}"
    );
    for c in r["classes"].as_array().unwrap() {
        let live: Vec<f64> = c["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(c["no_face"], 0, "{c}");
        assert!(live.iter().all(|v| (0.0..=1.0).contains(v)), "{c}");
        // Nobody wrongly refused, no picture let through.
        assert_eq!(c["error_rate"].as_f64(), Some(0.0), "{c}");
    }
    let clip = r["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "lane_clip")
        .expect("the MP4's class");
    assert_eq!(clip["images"], 1, "one clip, one presentation: {clip}");

    // Bad arguments are named.
    for (args, needle) in [
        (vec!["pad", "--attack", "print"], "SPECIES=PATH"),
        (
            vec!["pad", "--bona-fide", "/nonexistent/live"],
            "/nonexistent/live",
        ),
        (vec!["pad"], "--bona-fide"),
        (
            vec!["pad", "--bona-fide", ".", "--threshold", "2"],
            "--threshold",
        ),
    ] {
        let o = common::run(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    let o = run(&[
        "--out",
        &s(&out),
        "--faces",
        &s(&faces),
        "--attack-species",
        "mask",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("mask"),
        "{}",
        text(&o)
    );
}

/// A set in a format enrolment does not read (here PGM, as AT&T's) gets its enrolment photos
/// written beside the footage as PNGs with the border the face was found with, and truth.json
/// points there with the face box moved by that border.
#[test]
fn enrolment_photos_in_other_formats_are_written_as_png() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let faces = tmp.path().join("faces");
    common::face_folders(&photos, &faces, ["", ""]);
    let mut sizes = std::collections::HashMap::new();
    for id in ["obama", "biden"] {
        for entry in std::fs::read_dir(faces.join(id)).expect("dir") {
            let path = entry.expect("entry").path();
            let img = image::open(&path).expect("jpeg").to_luma8();
            let pgm = path.with_extension("pgm");
            img.save_with_format(&pgm, image::ImageFormat::Pnm)
                .expect("pgm");
            std::fs::remove_file(&path).expect("remove jpeg");
            sizes.insert(pgm, (img.width(), img.height()));
        }
    }
    let out = tmp.path().join("out");
    let o = run_on(
        &out,
        &faces,
        &models,
        &[
            "--lanes",
            "1",
            "--walkers",
            "1",
            "--size",
            "320x240",
            "--unknown-rate",
            "0",
        ],
    );
    assert!(o.status.success(), "footage failed:\n{}", text(&o));
    let t: Value = serde_json::from_slice(&std::fs::read(out.join("truth.json")).expect("truth"))
        .expect("json");
    let enrol = t["enrol"].as_array().expect("enrol");
    assert!(!enrol.is_empty(), "{t}");
    for e in enrol {
        let photo = e["photo"].as_str().expect("photo");
        assert!(
            photo.starts_with("enrol/") && photo.ends_with(".png"),
            "{photo}"
        );
        let bytes = std::fs::read(out.join(photo)).expect("written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{photo}");
        let img = image::load_from_memory(&bytes).expect("decodes");
        let face: Vec<f64> = (e["face"].as_array().expect("face").iter())
            .map(|v| v.as_f64().expect("number"))
            .collect();
        // Larger than every source photo by a border on each side, the face box inside it.
        let (w, h) = (img.width() as f64, img.height() as f64);
        assert!(
            sizes
                .values()
                .any(|&(w0, h0)| w > w0 as f64 && h > h0 as f64)
        );
        assert!(face[0] > 0.0 && face[1] > 0.0, "{face:?}");
        assert!(
            face[0] + face[2] < w && face[1] + face[3] < h,
            "{face:?} in {w}x{h}"
        );
    }
}
