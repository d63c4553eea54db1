//! Replays, on stable `cargo test`, every input the fuzzers keep: the crash (and slow) inputs found
//! so far (`fuzz/regressions/<target>/`, each one a bug that was fixed) and the seeds the fuzzers
//! start from (`fuzz/seeds/<target>/` and the repository's own sample files named in `SEEDS`).
//! Each entry must return; a panic fails the test with the file that caused it.

use std::path::{Path, PathBuf};

/// Folders of the repository whose files seed a target besides `fuzz/seeds/<target>`.
const SEEDS: &[(&str, &str)] = &[
    ("onnx_model", "engine/tests/fixtures/ops"),
    ("photo", "testdata/face_recognition"),
    ("photo", "testdata/face-api"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_kept_input_returns() {
    let root = root();
    let mut replayed = 0usize;
    for t in fuzz_entries::TARGETS {
        let mut inputs = files(&root.join("fuzz/regressions").join(t.name));
        inputs.extend(files(&root.join("fuzz/seeds").join(t.name)));
        for (name, dir) in SEEDS {
            if *name == t.name {
                inputs.extend(files(&root.join(dir)));
            }
        }
        assert!(!inputs.is_empty(), "{}: no seeds", t.name);
        for path in inputs {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let r = std::panic::catch_unwind(|| (t.run)(&bytes));
            assert!(r.is_ok(), "{} panicked on {}", t.name, path.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} inputs");
}

/// The names used by the cargo-fuzz targets and the seed folders are the table's.
#[test]
fn targets_are_named_once() {
    let mut names: Vec<&str> = fuzz_entries::TARGETS.iter().map(|t| t.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), fuzz_entries::TARGETS.len());
    for n in &names {
        assert!(fuzz_entries::target(n).is_some());
        assert!(
            root()
                .join("fuzz/fuzz_targets")
                .join(format!("{n}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{n}.rs"
        );
    }
}

/// Writes the generated seeds (`cargo test -p fuzz-entries -- --ignored write_seeds`): real
/// messages of every kind, made by the real encoders, so the fuzzers start from valid input.
#[test]
#[ignore = "writes fuzz/seeds; run by hand when a format changes"]
fn write_seeds() {
    use domain::changes::{
        CentreSigningKey, ChangeBatch, ChangeBody, ChangeOp, HexBytes, SignedChange, Upsert,
    };
    use domain::seal::{self, CentreSecretKey, DataKey, KeyId, StationSecretKey};
    use domain::{StationId, SubjectId};
    let seeds = root().join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let station = StationId::new("fuzz-station").unwrap();
    let subject = SubjectId::from_bytes([7; 16]);
    let key = DataKey::generate().unwrap();
    let sealed = seal::seal_template(&key, &subject, 1, &[0.1; 128]).unwrap();
    let st = StationSecretKey::generate(KeyId(1)).unwrap();
    let centre = CentreSecretKey::generate().unwrap();
    let wrapped =
        seal::wrap_for_station(&centre, &station, &st.public_key(), &subject, &key).unwrap();
    let upsert = ChangeBody {
        v: 1,
        station: station.clone(),
        seq: 3,
        op: ChangeOp::Upsert(Upsert {
            subject,
            template_version: 1,
            sealed: HexBytes(sealed.into_bytes()),
            wrapped_key: HexBytes(wrapped.into_bytes()),
            tickets: vec![],
            trip: None,
            postpay: false,
        }),
    };
    let erase = ChangeBody {
        v: 1,
        station: station.clone(),
        seq: 4,
        op: ChangeOp::Erase { subject },
    };
    let sk = CentreSigningKey::from_bytes(&[7; 32]);
    write(
        "sync_body",
        "upsert.json",
        &serde_json::to_vec(&upsert).unwrap(),
    );
    write(
        "sync_body",
        "erase.json",
        &serde_json::to_vec(&erase).unwrap(),
    );
    let changes: Vec<SignedChange> = [&upsert, &erase]
        .iter()
        .map(|b| SignedChange::sign(&sk, b).unwrap())
        .collect();
    write("sync_message", "upsert.json", &changes[0].encode());
    let batch = ChangeBatch {
        v: 1,
        station: station.clone(),
        after: 2,
        changes,
        head: 4,
    };
    write("sync_message", "batch.json", &batch.encode());
    // A station's passages, in and out: the body for `uplink_batch`, sealed for `uplink_message`.
    let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 5)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    let record = |direction, minutes: i64| domain::tickets::TripRecord {
        subject,
        station: station.clone(),
        direction,
        at: at + chrono::Duration::minutes(minutes),
        service_day: at.date(),
        verdict: domain::tickets::Verdict::Allow,
        ticket: Some(domain::tickets::TicketId(3)),
        entry_station: (direction == domain::tickets::Direction::Exit).then(|| station.clone()),
        fare: (direction == domain::tickets::Direction::Exit).then_some(150),
        charged: 0,
    };
    let trip = domain::tickets::OpenTrip {
        entry_station: station.clone(),
        entered_at: at,
        service_day: at.date(),
        ticket: domain::tickets::TicketId(3),
    };
    let passages = vec![
        domain::uplink::Numbered {
            seq: 8,
            passage: domain::uplink::Passage {
                lane: "L1".into(),
                track: 12,
                subject,
                trip: Some(trip),
                spent: None,
                record: record(domain::tickets::Direction::Entry, 0),
            },
        },
        domain::uplink::Numbered {
            seq: 9,
            passage: domain::uplink::Passage {
                lane: "L2".into(),
                track: 40,
                subject,
                trip: None,
                spent: Some(domain::tickets::TicketId(3)),
                record: record(domain::tickets::Direction::Exit, 25),
            },
        },
    ];
    let uplink = domain::uplink::PassageBatch {
        v: 1,
        station: station.clone(),
        after: 7,
        passages,
        head: 9,
        store: Some(7),
    };
    write(
        "uplink_batch",
        "in_and_out.json",
        &serde_json::to_vec(&uplink).unwrap(),
    );
    let sealed =
        domain::uplink::SignedPassages::seal(&fuzz_entries::uplink_key().unwrap(), &uplink)
            .unwrap();
    write("uplink_message", "in_and_out.json", &sealed.encode());
    // Small photos of both accepted formats: the decoder's whole path, quickly.
    let img = image::RgbImage::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 15) as u8, 90])
    });
    for (name, format) in [
        ("small.png", image::ImageFormat::Png),
        ("small.jpg", image::ImageFormat::Jpeg),
    ] {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        write("photo", name, &out.into_inner());
    }
}

/// The new targets start from input their parsers accept, so the fuzzer explores past the first
/// error: the example station file of the docs and a generated footage truth file.
#[test]
fn file_seeds_are_accepted() {
    let root = root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    pipeline::config::StationConfig::parse(
        &read("fuzz/seeds/station_toml/example.toml"),
        "example",
    )
    .unwrap();
    pipeline::demo::truth::Truth::parse(
        &read("fuzz/seeds/footage_truth/default.json"),
        Path::new("default.json"),
    )
    .unwrap();
    // The uplink seed is a batch the centre would book: its MAC and every check pass.
    let station = domain::StationId::new("fuzz-station").unwrap();
    let batch = domain::uplink::SignedPassages::decode(
        read("fuzz/seeds/uplink_message/in_and_out.json").as_bytes(),
    )
    .unwrap()
    .open(&fuzz_entries::uplink_key().unwrap(), &station)
    .unwrap();
    assert_eq!(batch.passages.len(), 2);
}
