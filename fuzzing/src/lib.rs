//! Every parser that takes input from outside the process, each behind one `fn(&[u8])` that must
//! return (never panic, never abort) whatever the bytes are.
//!
//! Why a crate of its own: the cargo-fuzz targets (`fuzz/fuzz_targets`, nightly, libFuzzer) and the
//! stable regression test (`fuzzing/tests/regressions.rs`, run by `cargo test --workspace`) must call the
//! same code, or a crash found by the fuzzer could be "fixed" in a path the test does not replay.
//! The table [`TARGETS`] is the one list both read. See `docs/fuzzing.md`.

use domain::StationId;
use domain::changes::{CentreSigningKey, ChangeBatch, ChangeBody, SignedChange};
use domain::seal::{CentreSecretKey, KeyId, StationSecretKey, UplinkKey};
use domain::uplink::{PassageBatch, SignedPassages};
use enrolment::photo::{self, DecodeLimits};
use protocol::messages as m;

/// A fuzz target: its name (the folder of its seeds and regressions) and its entry.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "bus_payload",
        run: bus_payload,
    },
    Target {
        name: "sync_message",
        run: sync_message,
    },
    Target {
        name: "sync_body",
        run: sync_body,
    },
    Target {
        name: "uplink_message",
        run: uplink_message,
    },
    Target {
        name: "uplink_batch",
        run: uplink_batch,
    },
    Target {
        name: "fare_table",
        run: fare_table,
    },
    Target {
        name: "onnx_model",
        run: onnx_model,
    },
    Target {
        name: "photo",
        run: photo,
    },
    Target {
        name: "station_toml",
        run: station_toml,
    },
    Target {
        name: "footage_truth",
        run: footage_truth,
    },
    Target {
        name: "enrold_toml",
        run: enrold_toml,
    },
    Target {
        name: "enrold_form",
        run: enrold_form,
    },
];

/// The entry of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|t| t.name == name).map(|t| t.run)
}

/// A zenoh payload as gated, the drivers and `gated ctl` decode it: every message type of the
/// station bus (`protocol::messages`), each with its own range checks.
pub fn bus_payload(data: &[u8]) {
    let _ = m::decode::<m::DoorCommand>(data);
    let _ = m::decode::<m::DoorState>(data);
    let _ = m::decode::<m::DoorSim>(data);
    let _ = m::decode::<m::Emergency>(data);
    let _ = m::decode::<m::LightCommand>(data);
    let _ = m::decode::<m::LightState>(data);
    let _ = m::decode::<m::LaneEvent>(data);
    let _ = m::decode::<m::Health>(data);
    let _ = m::decode::<m::CtlRequest>(data);
    let _ = m::decode::<m::CtlReply>(data);
    let _ = m::decode::<m::Decision>(data);
    let _ = m::decode::<protocol::CardState>(data);
    let _ = m::decode::<protocol::CardCommand>(data);
    let _ = m::decode::<protocol::CardPresent>(data);
}

/// The station for which sync messages are checked.
fn station() -> Option<StationId> {
    StationId::new("fuzz-station").ok()
}

/// A fixed centre key: the fuzzer cannot forge signatures, so [`sync_body`] signs what it makes.
fn centre() -> CentreSigningKey {
    CentreSigningKey::from_bytes(&[7; 32])
}

/// A template-distribution message off the wire, as the station's sync decodes it: one change or a
/// catch-up batch, then each change's signature check (against a key that did not sign it).
pub fn sync_message(data: &[u8]) {
    let Some(station) = station() else { return };
    let key = centre().verifying_key();
    if let Ok(c) = SignedChange::decode(data) {
        let _ = c.verify(&key, &station);
    }
    if let Ok(b) = ChangeBatch::decode(data) {
        for c in &b.changes {
            let _ = c.verify(&key, &station);
        }
    }
}

/// What comes after a valid signature: a change body (as JSON) signed by the centre's key, then
/// verified as the station does, which checks the sealed template and wrapped key blobs.
pub fn sync_body(data: &[u8]) {
    let (Some(station), Ok(body)) = (station(), serde_json::from_slice::<ChangeBody>(data)) else {
        return;
    };
    let key = centre();
    if let Ok(signed) = SignedChange::sign(&key, &body) {
        let _ = signed.verify(&key.verifying_key(), &station);
    }
}

/// The uplink key of a fixed station and centre pair (the station's side; the centre derives the
/// same): the fuzzer cannot forge a MAC, so [`uplink_batch`] makes one for what it builds.
pub fn uplink_key() -> Option<UplinkKey> {
    let st = StationSecretKey::from_bytes(KeyId(1), [5; 32]);
    let centre = CentreSecretKey::from_bytes([6; 32]);
    UplinkKey::for_station(&st, &station()?, &centre.public_key()).ok()
}

/// A station's passage batch off the wire, as the centre's ledger decodes it, then its MAC and
/// batch checks (`domain::uplink`).
pub fn uplink_message(data: &[u8]) {
    let (Some(station), Some(key)) = (station(), uplink_key()) else {
        return;
    };
    if let Ok(s) = SignedPassages::decode(data) {
        let _ = s.open(&key, &station);
    }
}

/// What comes after a valid MAC: a batch body (as JSON) authenticated with the right key, then the
/// centre's whole check (station, sequence run, each passage's consistency).
pub fn uplink_batch(data: &[u8]) {
    let (Some(station), Some(key), Ok(batch)) = (
        station(),
        uplink_key(),
        serde_json::from_slice::<PassageBatch>(data),
    ) else {
        return;
    };
    if let Ok(s) = SignedPassages::seal(&key, &batch) {
        let _ = s.open(&key, &station);
    }
}

/// A fare table file (`[fares]` TOML) as gated and enrold load it.
pub fn fare_table(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = domain::tickets::FareTable::parse(text, "fuzz");
    }
}

/// An ONNX file through our importer, then the shape inference every executor runs first.
pub fn onnx_model(data: &[u8]) {
    if let Ok(g) = engine::load_bytes(data) {
        let _ = g.infer_shapes(1);
    }
}

/// An uploaded enrolment photo through the bounded decoder (a small pixel budget, so that a
/// valid large image does not make a slow run).
pub fn photo(data: &[u8]) {
    let _ = photo::decode(
        data,
        DecodeLimits {
            max_pixels: 1 << 20,
        },
    );
}

/// A station file (`gated run --config`) through the parser and every check `gated config check`
/// makes before a station starts.
pub fn station_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pipeline::config::StationConfig::parse(text, "fuzz.toml");
    }
}

/// enrold's configuration (`enrold serve --config`, `enrold config check`): the parser and every
/// check it makes before the service starts.
pub fn enrold_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = enrolment::config::Config::parse(text, "fuzz.toml");
    }
}

/// The body of an enrolment (`POST /subjects`, multipart/form-data with boundary `X`): axum's
/// multipart reader, then enrold's form (the consent part's JSON and its checks, the photo parts
/// and their limits). The photos themselves are the `photo` target's.
pub fn enrold_form(data: &[u8]) {
    use axum::extract::FromRequest;
    let Ok(req) = axum::http::Request::builder()
        .method("POST")
        .uri("/subjects")
        .header("content-type", "multipart/form-data; boundary=X")
        .body(axum::body::Body::from(data.to_vec()))
    else {
        return;
    };
    let limits = enrolment::form::FormLimits {
        max_photos: 5,
        max_photo_bytes: 64 << 10,
    };
    let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    pollster::block_on(async {
        if let Ok(mp) = axum::extract::Multipart::from_request(req, &()).await {
            let _ = enrolment::form::read(mp, &limits, &["2026-01".to_owned()], || now).await;
        }
    });
}

/// A footage folder's `truth.json` (`gated demo --footage DIR`, the footage benchmark).
pub fn footage_truth(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pipeline::demo::truth::Truth::parse(text, std::path::Path::new("truth.json"));
    }
}
