//! `gate-calibrate lane` and `lighting`: the zone overlay (one camera's, or a lane camera's and its
//! lower camera's side by side), station-file write-back that leaves the engineer's file intact
//! apart from the values written, and the lighting report on tiny footage.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{inputs, run, text};

const ZONE_COLOUR: [u8; 3] = [255, 196, 0];

const STATION: &str = r#"# Station file an engineer has annotated.
[station]
id = "umeda-01"   # becomes part of every zenoh key

# Entry lane by the ticket office.
[[lane]]
id = "L1"
role = "entry"
source = "v4l2:///dev/video0"
zone = [0.15, 0.0, 0.85, 1.0]
threshold = 0.45   # tuned 2026-03

[[lane]]
id = "L2"
role = "exit"
source = "rtsp://192.0.2.10/stream1"
zone = [0.1, 0.0, 0.9, 1.0]     # first guess
# k = 3

[lighting]
low = 0.30      # brighten below
high = 0.65
step = 10

[store]
path = "/var/lib/gate/station.redb"
"#;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A flat grey still, so every drawn pixel is told apart from the frame.
fn grey_png(dir: &Path, w: u32, h: u32) -> PathBuf {
    still(dir, "frame.png", w, h, 128)
}

fn still(dir: &Path, name: &str, w: u32, h: u32, grey: u8) -> PathBuf {
    let p = dir.join(name);
    image::RgbImage::from_pixel(w, h, image::Rgb([grey; 3]))
        .save(&p)
        .expect("write png");
    p
}

/// STATION with a lower camera on L1 whose source is `lower` (a file:// URI); L2 has none.
fn two_cameras(lower: &Path) -> String {
    STATION.replace(
        "threshold = 0.45   # tuned 2026-03\n",
        &format!(
            "threshold = 0.45   # tuned 2026-03\n\n\
             [lane.lower]   # child height\n\
             source = \"file://{}\"\n\
             zone = [0.0, 0.5, 1.0, 1.0]   # its own frame\n\
             below_m = 0.5\n\
             focal_px = 473.0\n",
            lower.display()
        ),
    )
}

#[test]
fn lane_draws_the_zone_and_writes_it_back_keeping_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let frame = grey_png(tmp.path(), 160, 120);
    let station = tmp.path().join("station.toml");
    std::fs::write(&station, STATION).expect("write station");
    let png = tmp.path().join("lane.png");
    let o = run(&[
        "lane",
        "--image",
        s(&frame),
        "--zone",
        "0.25,0.1,0.75,0.9",
        "--out",
        s(&png),
        "--write",
        s(&station),
        "--lane",
        "L2",
    ]);
    assert!(o.status.success(), "lane failed:\n{}", text(&o));

    let img = image::open(&png).expect("lane.png decodes").to_rgb8();
    assert_eq!(img.dimensions(), (160, 120));
    // Zone edges at x = 40 and 120, y = 12 and 108.
    for (x, y) in [(40, 60), (120, 60), (80, 12), (80, 108)] {
        assert_eq!(img.get_pixel(x, y).0, ZONE_COLOUR, "border pixel ({x},{y})");
    }
    assert!(
        img.get_pixel(3, 100).0[0] < 128,
        "outside the zone is shaded"
    );

    let after = std::fs::read_to_string(&station).expect("station");
    let want = STATION.replace(
        "zone = [0.1, 0.0, 0.9, 1.0]     # first guess",
        "zone = [0.25, 0.1, 0.75, 0.9]     # first guess",
    );
    assert_eq!(after, want, "only L2's zone may change");
    let backup = tmp.path().join("station.toml.bak");
    assert_eq!(
        std::fs::read_to_string(&backup).expect("backup"),
        STATION,
        "backup is the original"
    );
    let doc: toml_edit::DocumentMut = after.parse().expect("written file parses");
    let lanes = doc["lane"].as_array_of_tables().expect("[[lane]]");
    let zone: Vec<f64> = lanes
        .get(1)
        .and_then(|t| t["zone"].as_array())
        .expect("L2 zone")
        .iter()
        .filter_map(|v| v.as_float())
        .collect();
    assert_eq!(zone, vec![0.25, 0.1, 0.75, 0.9]);
    assert_eq!(
        lanes.get(0).and_then(|t| t["threshold"].as_float()),
        Some(0.45)
    );

    // Drawing from the stored zone needs no --zone; a second write keeps a second backup.
    let o = run(&[
        "lane",
        "--image",
        s(&frame),
        "--config",
        s(&station),
        "--lane",
        "L2",
        "--out",
        s(&png),
    ]);
    assert!(o.status.success(), "lane --config failed:\n{}", text(&o));
    assert!(
        text(&o).contains("zone [0.25, 0.1, 0.75, 0.9]"),
        "{}",
        text(&o)
    );
}

#[test]
fn lane_refuses_bad_input_and_leaves_the_file_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let frame = grey_png(tmp.path(), 64, 48);
    let station = tmp.path().join("station.toml");
    std::fs::write(&station, STATION).expect("write station");
    let png = tmp.path().join("lane.png");
    let cases: [(&[&str], &str); 4] = [
        (&["--zone", "0.2,0,0.8,1", "--lane", "L9"], "L9"),
        (&["--zone", "0.8,0,0.2,1", "--lane", "L1"], "x0 < x1"),
        (&["--zone", "0,0,1.5,1", "--lane", "L1"], "0..1"),
        (&["--lane", "L1"], "--write stores the --zone"),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "lane",
            "--image",
            s(&frame),
            "--out",
            s(&png),
            "--write",
            s(&station),
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(text(&o).contains(want), "{extra:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
    assert_eq!(std::fs::read_to_string(&station).expect("station"), STATION);
    assert!(
        !tmp.path().join("station.toml.bak").exists(),
        "no backup for a refused write"
    );

    std::fs::write(&station, "[[lane]\nid = ").expect("write broken");
    let o = run(&[
        "lane",
        "--image",
        s(&frame),
        "--out",
        s(&png),
        "--zone",
        "0,0,1,1",
        "--write",
        s(&station),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not valid TOML"), "{}", text(&o));
}

#[test]
fn lane_draws_both_cameras_side_by_side() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let upper = grey_png(tmp.path(), 160, 120);
    let lower = still(tmp.path(), "lower.png", 160, 120, 90);
    let station = tmp.path().join("station.toml");
    std::fs::write(&station, two_cameras(&lower)).expect("write station");
    let png = tmp.path().join("lane.png");
    let check = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?} failed:\n{}", text(&o));
        let img = image::open(&png).expect("lane.png decodes").to_rgb8();
        // Two 160-wide frames and the 2-column gap between them.
        assert_eq!(img.dimensions(), (322, 120), "{args:?}");
        // Upper zone 0.25..0.75 of the left frame: edges at x = 40 and 120.
        for (x, y) in [(40, 80), (120, 80)] {
            assert_eq!(img.get_pixel(x, y).0, ZONE_COLOUR, "upper ({x},{y})");
        }
        // Lower zone [0, 0.5, 1, 1] of the right frame: top edge at y = 60, across it; above it
        // shaded, where the upper zone's edge would have been amber.
        for x in [30, 100, 150] {
            assert_eq!(img.get_pixel(162 + x, 60).0, ZONE_COLOUR, "lower top x={x}");
        }
        assert!(
            img.get_pixel(162 + 40, 45).0[0] < 90,
            "lower frame, above its zone"
        );
        assert_eq!(
            img.get_pixel(162 + 73, 95).0,
            [90, 90, 90],
            "lower frame, inside"
        );
        text(&o)
    };
    let given = check(&[
        "lane",
        "--image",
        s(&upper),
        "--lower-image",
        s(&lower),
        "--zone",
        "0.25,0,0.75,1",
        "--config",
        s(&station),
        "--out",
        s(&png),
    ]);
    assert!(
        given.contains("lane L1 lower: zone [0, 0.5, 1, 1]"),
        "{given}"
    );
    // The lower frame found through the lane's [lane.lower] source.
    let found = check(&[
        "lane",
        "--image",
        s(&upper),
        "--zone",
        "0.25,0,0.75,1",
        "--config",
        s(&station),
        "--out",
        s(&png),
    ]);
    assert_eq!(found, given);

    // A lane without a lower camera: the one frame, as before.
    let o = run(&[
        "lane",
        "--image",
        s(&upper),
        "--config",
        s(&station),
        "--lane",
        "L2",
        "--out",
        s(&png),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (160, 120));
}

#[test]
fn lane_view_lower_writes_the_lower_zone_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let frame = grey_png(tmp.path(), 64, 48);
    let lower = still(tmp.path(), "lower.png", 64, 48, 90);
    let station = tmp.path().join("station.toml");
    let original = two_cameras(&lower);
    std::fs::write(&station, &original).expect("write station");
    let png = tmp.path().join("lane.png");
    let args = |lane| {
        [
            "lane",
            "--view",
            "lower",
            "--image",
            s(&lower),
            "--zone",
            "0.2,0.4,0.8,1",
            "--lane",
            lane,
            "--out",
            s(&png),
            "--write",
            s(&station),
        ]
    };
    let o = run(&args("L1"));
    assert!(o.status.success(), "--view lower failed:\n{}", text(&o));
    assert!(text(&o).contains("[lane.lower] zone"), "{}", text(&o));
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (64, 48), "the lower frame alone");
    let after = std::fs::read_to_string(&station).expect("station");
    assert_eq!(
        after,
        original.replace(
            "zone = [0.0, 0.5, 1.0, 1.0]   # its own frame",
            "zone = [0.2, 0.4, 0.8, 1.0]   # its own frame"
        ),
        "only L1's lower zone may change"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("station.toml.bak")).expect("backup"),
        original
    );

    // L2 has no [lane.lower]: refused, the file and its backups as they were.
    let o = run(&args("L2"));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("lane L2 has no [lane.lower] table"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&station).expect("station"), after);
    assert!(!tmp.path().join("station.toml.bak.1").exists());

    // The lower frame comes from --image under --view lower; --lower-image is refused.
    let o = run(&[
        "lane",
        "--view",
        "lower",
        "--image",
        s(&frame),
        "--lower-image",
        s(&lower),
        "--out",
        s(&png),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--view lower"), "{}", text(&o));
}

#[test]
fn lighting_sees_the_dim_lane_darker_and_writes_setpoints() {
    let Some((models, photos)) = inputs() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // obama: one photo to enrol, others to walk with; biden: enrolled and walking with the same one.
    let faces = tmp.path().join("faces");
    common::face_folders(&photos, &faces, ["", ""]);
    let footage = tmp.path().join("footage");
    let o = run(&[
        "footage",
        "--out",
        s(&footage),
        "--faces",
        s(&faces),
        "--models",
        s(&models),
        "--lanes",
        "2",
        "--walkers",
        "1",
        "--size",
        "320x240",
        "--seed",
        "5",
        "--scenarios",
        "normal,dim",
        "--tailgate-rate",
        "0",
        "--mask-rate",
        "0",
        "--unknown-rate",
        "0",
    ]);
    assert!(o.status.success(), "footage failed:\n{}", text(&o));

    let station = tmp.path().join("station.toml");
    std::fs::write(&station, STATION).expect("write station");
    let json = tmp.path().join("lighting.json");
    let o = run(&[
        "lighting",
        "--footage",
        s(&footage),
        "--models",
        s(&models),
        "--json",
        s(&json),
        "--write",
        s(&station),
    ]);
    assert!(o.status.success(), "lighting failed:\n{}", text(&o));
    let out = text(&o);
    assert!(out.contains("recommended") && out.contains("FNMR"), "{out}");

    let v: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("lighting.json")).expect("json");
    let rows = v["scenarios"].as_array().expect("scenarios");
    let get = |sc: &str, k: &str| {
        rows.iter()
            .find(|r| r["scenario"] == sc)
            .and_then(|r| r[k].as_f64())
            .unwrap_or_else(|| panic!("{sc}.{k} in {v}"))
    };
    assert!(get("dim", "face_mean") < get("normal", "face_mean"), "{v}");
    assert!(
        get("dim", "scene_mean") < get("normal", "scene_mean"),
        "{v}"
    );
    assert!(get("normal", "face_pixels") > 0.0);
    let rec = &v["recommendation"];
    let (low, high, target) = (
        rec["low"].as_f64().expect("low"),
        rec["high"].as_f64().expect("high"),
        rec["target_mean"].as_f64().expect("target_mean"),
    );
    assert!(low < target && target < high, "{rec}");
    assert!(rows.iter().all(|r| r["fnmr_samples"].as_u64().is_some()));

    // Write-back: [lighting] values replaced in place with their comments, [normalise] added.
    let after = std::fs::read_to_string(&station).expect("station");
    assert!(after.starts_with(&STATION[..STATION.find("[lighting]").expect("lighting")]));
    assert!(
        after.contains(&format!("low = {low}      # brighten below")),
        "{after}"
    );
    assert!(after.contains("step = 10\n") && after.contains("[normalise]\ntarget_mean = "));
    let doc: toml_edit::DocumentMut = after.parse().expect("written file parses");
    assert_eq!(doc["lighting"]["high"].as_float(), Some(high));
    assert_eq!(doc["normalise"]["target_mean"].as_float(), Some(target));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("station.toml.bak")).expect("backup"),
        STATION
    );

    // The lane overlay on a decoded video frame has the video's size.
    let png = tmp.path().join("lane.png");
    let o = run(&[
        "lane",
        "--video",
        s(&footage.join("L1.mp4")),
        "--at",
        "0.5",
        "--zone",
        "0.2,0,0.8,1",
        "--out",
        s(&png),
        "--faces",
        "--models",
        s(&models),
    ]);
    assert!(o.status.success(), "lane --video failed:\n{}", text(&o));
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (320, 240));
    assert_eq!(img.get_pixel(64, 120).0, ZONE_COLOUR);
}
