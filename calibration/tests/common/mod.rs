//! What the gate-calibrate integration tests share: the binary, the inputs scripts/setup fetches,
//! and a labelled face folder made from them.
#![allow(dead_code)]
// each test binary uses its own subset
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_gate-calibrate");

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The models and test photos come from scripts/setup (CI runs it first); `None` (with the reason
/// printed) when they are missing.
pub fn inputs() -> Option<(PathBuf, PathBuf)> {
    let (models, photos) = (
        root().join("models"),
        root().join("testdata/face_recognition"),
    );
    for p in [&models, &photos] {
        if !p.is_dir() {
            eprintln!("skipping: {} missing (run scripts/setup)", p.display());
            return None;
        }
    }
    Some((models, photos))
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run gate-calibrate")
}

/// stdout then stderr, for messages and assertion output.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A set as `<identity>/<photo>` folders in `dir`: three photos of Obama (`obama`), one of Biden
/// (`biden`), each name given a prefix (so the sorted order can be fixed).
pub fn face_folders(photos: &Path, dir: &Path, prefix: [&str; 2]) {
    for (id, files) in [
        (
            format!("{}obama", prefix[0]),
            &["obama.jpg", "obama2.jpg", "obama3.jpg"][..],
        ),
        (format!("{}biden", prefix[1]), &["biden.jpg"][..]),
    ] {
        std::fs::create_dir_all(dir.join(&id)).expect("mkdir");
        for f in files {
            std::fs::copy(photos.join(f), dir.join(&id).join(f)).expect("copy photo");
        }
    }
}
