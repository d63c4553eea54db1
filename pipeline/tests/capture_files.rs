//! Four lanes from H.264 files made by a GStreamer encode pipeline: one file missing, one corrupt.
//! The good lanes deliver every frame (benchmark mode) and the bad lanes report degraded, without
//! stopping the others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pipeline::capture::{Capture, clip::encode_test_clip};
use pipeline::config::StationConfig;
use protocol::LaneStatus;

const FRAMES: u32 = 45;

#[test]
fn good_lanes_deliver_every_frame_bad_lanes_degrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_a = dir.path().join("a.mp4");
    let good_b = dir.path().join("b.mp4");
    encode_test_clip(&good_a, 320, 240, 30, FRAMES, "ball").expect("encode a");
    encode_test_clip(&good_b, 320, 240, 30, FRAMES, "smpte").expect("encode b");
    // Corrupt: a real clip's header followed by garbage, so typefinding succeeds and decoding fails,
    // plus a lane of pure random bytes would be refused even earlier.
    let corrupt = dir.path().join("corrupt.mp4");
    let mut bytes = std::fs::read(&good_a).expect("read clip");
    for (i, b) in bytes.iter_mut().enumerate().skip(64) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1];
    }
    std::fs::write(&corrupt, &bytes).expect("write corrupt");
    let missing = dir.path().join("missing.mp4");

    let toml = format!(
        r#"
[station]
id = "t"
[capture]
mode = "benchmark"
[[lane]]
id = "A"
role = "entry"
source = "file://{}"
width = 320
height = 240
[[lane]]
id = "MISSING"
role = "entry"
source = "file://{}"
width = 320
height = 240
[[lane]]
id = "B"
role = "exit"
source = "file://{}"
width = 160
height = 120
[[lane]]
id = "CORRUPT"
role = "exit"
source = "file://{}"
width = 320
height = 240
[store]
path = "{}"
[zenoh]
insecure = true
"#,
        good_a.display(),
        missing.display(),
        good_b.display(),
        corrupt.display(),
        dir.path().join("s.redb").display()
    );
    let cfg = StationConfig::parse(&toml, "test.toml").expect("config");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cap = Capture::start(&cfg.cameras(), &cfg.capture, tx).expect("capture");
    let mut counts = HashMap::<usize, u32>::new();
    let mut seqs = HashMap::<usize, Vec<u64>>::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cap.all_done() && cap.hub.all_closed()) && Instant::now() < deadline {
        for f in cap.hub.take_batch(Duration::from_millis(50)).frames {
            assert!(
                f.buffer.size() >= f.layout.size(),
                "frame smaller than its layout"
            );
            *counts.entry(f.lane).or_default() += 1;
            seqs.entry(f.lane).or_default().push(f.seq);
            // A slow consumer must not lose frames in benchmark mode.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut last = HashMap::new();
    while let Ok(ev) = rx.try_recv() {
        last.insert(ev.lane, (ev.status, ev.detail));
    }
    eprintln!("frames per lane: {counts:?}; last status: {last:?}");
    assert_eq!(counts.get(&0), Some(&FRAMES), "lane A");
    assert_eq!(counts.get(&2), Some(&FRAMES), "lane B");
    assert_eq!(
        seqs[&0],
        (1..=FRAMES as u64).collect::<Vec<_>>(),
        "lane A frames in order, none skipped"
    );
    assert_eq!(last.get(&0).map(|s| s.0), Some(LaneStatus::Finished));
    assert_eq!(last.get(&2).map(|s| s.0), Some(LaneStatus::Finished));
    let (st, why) = last.get(&1).expect("missing lane reported");
    assert_eq!(*st, LaneStatus::Degraded);
    assert!(
        why.to_lowercase().contains("not found") || why.to_lowercase().contains("no such file"),
        "missing lane reason: {why}"
    );
    assert_eq!(
        last.get(&3).map(|s| s.0),
        Some(LaneStatus::Degraded),
        "corrupt lane"
    );
    assert_eq!(cap.counters[1].status(), LaneStatus::Degraded);
    cap.shutdown();
}

#[test]
fn random_bytes_file_is_degraded_with_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.mp4");
    std::fs::write(
        &junk,
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect::<Vec<_>>(),
    )
    .expect("write");
    let toml = format!(
        "[station]\nid = \"t\"\n[capture]\nmode = \"benchmark\"\n[[lane]]\nid = \"J\"\nrole = \"entry\"\nsource = \"file://{}\"\n[store]\npath = \"/tmp/x.redb\"\n[zenoh]\ninsecure = true\n",
        junk.display()
    );
    let cfg = StationConfig::parse(&toml, "t.toml").expect("config");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cap = Capture::start(&cfg.cameras(), &cfg.capture, tx).expect("capture");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cap.all_done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ev = rx.try_recv().expect("an event");
    assert_eq!(ev.status, LaneStatus::Degraded);
    assert!(!ev.detail.is_empty());
    cap.shutdown();
}

/// `[capture] repeat`: a recording played three times in a row is one long recording. Every frame
/// of every play arrives, times run on (each play 5 s after the last one's end), and the lane
/// finishes once, at the end of the last play.
#[test]
fn a_repeated_recording_plays_on_with_its_times_running_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("a.mp4");
    encode_test_clip(&clip, 160, 120, 30, FRAMES, "ball").expect("encode");
    let toml = format!(
        "[station]\nid = \"t\"\n[capture]\nmode = \"benchmark\"\nrepeat = 3\n\
         [[lane]]\nid = \"A\"\nrole = \"entry\"\nsource = \"file://{}\"\nwidth = 160\nheight = 120\nfps = 30\n\
         [store]\npath = \"{}\"\n[zenoh]\ninsecure = true\n",
        clip.display(),
        dir.path().join("s.redb").display()
    );
    let cfg = StationConfig::parse(&toml, "test.toml").expect("config");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cap = Capture::start(&cfg.cameras(), &cfg.capture, tx).expect("capture");
    let mut pts_ms = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cap.all_done() && cap.hub.all_closed()) && Instant::now() < deadline {
        for f in cap.hub.take_batch(Duration::from_millis(50)).frames {
            pts_ms.push(f.pts.expect("a recorded frame has a time").mseconds());
        }
    }
    let mut finished = 0;
    while let Ok(ev) = rx.try_recv() {
        assert_ne!(ev.status, LaneStatus::Degraded, "{}", ev.detail);
        finished += usize::from(ev.status == LaneStatus::Finished);
    }
    cap.shutdown();
    assert_eq!(
        pts_ms.len(),
        3 * FRAMES as usize,
        "every frame of every play"
    );
    assert!(
        pts_ms.windows(2).all(|w| w[0] < w[1]),
        "times run on: {pts_ms:?}"
    );
    // The second play starts the recording's length plus the 5 s gap after the first.
    let length_ms = u64::from(FRAMES) * 1000 / 30;
    let second = pts_ms[FRAMES as usize];
    assert!(
        second.abs_diff(length_ms + 5000) <= 40,
        "second play at {second} ms, expected {} ms",
        length_ms + 5000
    );
    assert_eq!(finished, 1);
}
