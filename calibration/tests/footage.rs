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
        let o = run(&[
            "--out",
            out.to_str().expect("utf-8 path"),
            "--faces",
            faces.to_str().expect("utf-8 path"),
            "--models",
            models.to_str().expect("utf-8 path"),
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
        ]);
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
    assert_eq!(t["version"], 1);
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
