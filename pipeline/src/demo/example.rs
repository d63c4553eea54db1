//! `gated config example`: the annotated station file, as shipped (docs/station.example.toml) or
//! rewritten for a box without cameras: every path under one folder, and one lane per recording of
//! a footage folder. The README's walk-through runs a station this way (pipeline/tests/readme.rs).

use std::path::Path;

use super::truth::Truth;
use super::{DemoError, footage_source, lane_toml};
use crate::config::LaneRole;

/// The annotated example, every key with its default.
pub const EXAMPLE: &str = include_str!("../../../docs/station.example.toml");

/// The lanes of [`EXAMPLE`] start at this line and end before `[gpu]`.
const LANES_FROM: &str = "# One [[lane]] per gate lane.\n";
const LANES_TO: &str = "\n[gpu]\n";

/// [`EXAMPLE`], with `dir` in place of `/etc/gate` and `/var/lib/gate` (certificates, keys, store),
/// and with `footage`'s recordings as the lanes instead of a camera and an RTSP stream.
pub fn station_example(dir: Option<&Path>, footage: Option<&Path>) -> Result<String, DemoError> {
    let mut text = EXAMPLE.to_string();
    if let Some(dir) = dir {
        // Absolute, so the file works from any working directory.
        let dir = std::path::absolute(dir).map_err(|source| DemoError::Footage {
            path: dir.to_path_buf(),
            source,
        })?;
        let dir = format!("{}/", dir.display());
        text = text
            .replace("/var/lib/gate/", &dir)
            .replace("/etc/gate/", &dir);
    }
    if let Some(footage) = footage {
        let truth = Truth::load(footage)?;
        let mut lanes = format!(
            "# One [[lane]] per recording of the footage in {} (its truth.json). A station has a\n\
             # camera per lane instead: source = \"v4l2:///dev/video0\" or \"rtsp://host/stream\"\n\
             # (docs/capture.md). Recorded files play at their own speed, and `gated run` ends when\n\
             # they have played out (with --seconds it runs that long instead, and walkers still in\n\
             # view when the files end are left undecided).\n",
            footage.display()
        );
        for l in &truth.lanes {
            lanes += &lane_toml(&truth, l, &footage_source(footage, l)?, LaneRole::Entry);
            lanes += "\n";
        }
        // Both markers are in the shipped example (tested below); text without them is returned
        // with its own lanes rather than cut in the wrong place.
        if let (Some(from), Some(to)) = (text.find(LANES_FROM), text.find(LANES_TO)) {
            text.replace_range(from..=to, &lanes);
        }
    }
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::StationConfig;

    #[test]
    fn the_shipped_example_is_unchanged_without_options() {
        assert_eq!(station_example(None, None).unwrap(), EXAMPLE);
        assert!(EXAMPLE.contains(LANES_FROM) && EXAMPLE.contains(LANES_TO));
    }

    #[test]
    fn a_folder_and_footage_make_a_station_that_parses() {
        let work = tempfile::tempdir().unwrap();
        let footage = work.path().join("footage");
        std::fs::create_dir(&footage).unwrap();
        for f in ["A.mp4", "B.mp4"] {
            std::fs::write(footage.join(f), b"").unwrap();
        }
        std::fs::write(
            footage.join("truth.json"),
            r#"{"version":3,"seed":1,"fps":10,"width":640,"height":480,"enrol":[],
                "lanes":[{"lane":"A","file":"A.mp4","scenario":"normal","frames":1,"walkers":[]},
                         {"lane":"B","file":"B.mp4","scenario":"dim","frames":1,"walkers":[],
                          "camera":{"offset_m":0.5,"focal_px":473.0,"aim_deg":9.5}}]}"#,
        )
        .unwrap();
        let dir = work.path().join("station");
        let text = station_example(Some(&dir), Some(&footage)).unwrap();
        assert!(
            !text.contains("/etc/gate") && !text.contains("/var/lib/gate"),
            "{text}"
        );
        let cfg = StationConfig::parse(&text, "example").unwrap();
        let lanes: Vec<_> = cfg.lanes.iter().map(|l| l.id.get_ref().as_str()).collect();
        assert_eq!(lanes, ["A", "B"]);
        assert_eq!(cfg.store.path, dir.join("station.redb"));
        assert!(text.contains("[gpu]"), "the sections after the lanes stay");
    }
}
