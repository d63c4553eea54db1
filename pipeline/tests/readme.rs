//! README.md runs as written: every `sh` block marked `<!-- readme: run -->` is executed, top to
//! bottom in one bash (`set -euo pipefail`) from the workspace root, as a new user following it
//! after `scripts/setup` would: the demo, then an enrolment centre and a station on the recorded
//! footage, joined by the template distribution. Every other block must say why it is not run
//! (`<!-- readme: skip (why) -->`), so a new block cannot escape the check unnoticed.
//!
//! Two substitutions, both of where things are and neither of what is run: the README's scratch
//! folder `$PWD/run` becomes a temporary folder, and `target/release` the folder this test's
//! binaries were built in (the same in CI, which runs `cargo test --release`).
//!
//! Needs the release binaries of every package (gated, enrold, both drivers): run through
//! `cargo test --release --workspace`. Uses the README's fixed loopback ports (8440, 9464, 9465,
//! 7447–7450).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "<!-- readme: run -->";
const SKIP: &str = "<!-- readme: skip";

/// The README's shell blocks, each with the marker line above it (if any).
struct Block {
    line: usize,
    marker: Option<String>,
    body: String,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let marker = i
                .checked_sub(1)
                .map(|p| lines[p].trim())
                .filter(|m| m.starts_with("<!-- readme:"))
                .map(str::to_string);
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim_end() != "```" {
                end += 1;
            }
            out.push(Block {
                line: i + 1,
                marker,
                body: lines[start..end].join("\n") + "\n",
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn every_shell_block_is_marked() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let all = blocks(&readme);
    let unmarked: Vec<usize> = all
        .iter()
        .filter(|b| {
            !b.marker
                .as_deref()
                .is_some_and(|m| m == RUN || m.starts_with(SKIP))
        })
        .map(|b| b.line)
        .collect();
    assert!(
        unmarked.is_empty(),
        "README.md: the sh blocks at lines {unmarked:?} say neither {RUN} nor {SKIP} (why) -->"
    );
    assert!(
        all.iter()
            .filter(|b| b.marker.as_deref() == Some(RUN))
            .count()
            >= 3
    );
}

#[test]
fn the_readme_runs_as_written() {
    let root = workspace();
    let bins = Path::new(env!("CARGO_BIN_EXE_gated"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    for b in ["gated", "enrold", "door-driver", "light-driver"] {
        assert!(
            bins.join(b).is_file(),
            "{} missing: build every package (cargo test --release --workspace)",
            bins.join(b).display()
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let scratch = tempfile::tempdir().expect("tempdir");
    let run = scratch.path().join("run");
    let mut script = String::from("set -euo pipefail\n");
    for b in blocks(&readme)
        .iter()
        .filter(|b| b.marker.as_deref() == Some(RUN))
    {
        script += &format!("echo '### README.md line {}'\n", b.line);
        script += &b
            .body
            .replace("$PWD/run", &run.display().to_string())
            .replace("$PWD/target/release", &bins.display().to_string())
            .replace("target/release/", &format!("{}/", bins.display()));
    }
    let path = scratch.path().join("readme.sh");
    std::fs::write(&path, &script).expect("script");

    let log = scratch.path().join("readme.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new("bash")
        .arg(&path)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        // Its own process group, so what it left in the background goes with it.
        .process_group(0)
        .spawn()
        .expect("bash");
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let logs = ["enrold/enrold.log", "station/gated.log", "station/door.log"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(run.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            format!(
                "--- {f} (last lines)\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("README.md's commands failed ({s}):\n{output}\n{logs}"),
        None => panic!("README.md's commands still running after 900 s:\n{output}\n{logs}"),
    }

    // What the walk-through promises: the enrolled passenger got through lane L1.
    let enrolled: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("enrold/obama.json")).expect("obama.json"),
    )
    .expect("enrolment answer");
    let subject = enrolled["subject"].as_str().expect("subject");
    let journal = Command::new(bins.join("gated"))
        .args(["journal", "--config"])
        .arg(run.join("station/station.toml"))
        .args(["--lane", "L1", "--outcome", "open", "--json"])
        .output()
        .expect("gated journal");
    let opens = String::from_utf8_lossy(&journal.stdout);
    assert!(
        journal.status.success() && opens.contains(subject),
        "no L1 opening for {subject} in the journal:\n{opens}\n{}\n{output}\n{logs}",
        String::from_utf8_lossy(&journal.stderr)
    );
}
