//! Fare table loading and validation: every error names the key.

use std::io::Write;

use super::*;

#[test]
fn parses_the_example() {
    let t = table();
    assert_eq!(t.zone(&st("c")), Some(3));
    assert_eq!(t.zone(&st("zz")), None);
    assert_eq!(t.fare(&st("a1"), &st("a2")), Some(150));
    assert_eq!(t.fare(&st("d"), &st("a1")), Some(270));
    assert_eq!(t.fare(&st("a1"), &st("zz")), None);
    assert_eq!(t.fare_for_distance(4), None);
    assert_eq!(t.max_fare(), 270);
    assert_eq!(t.stations().count(), 5);
}

#[test]
fn service_day_boundary() {
    let t = table();
    assert_eq!(t.service_day(at("2026-03-02 03:59")), day("2026-03-01"));
    assert_eq!(t.service_day(at("2026-03-02 04:00")), day("2026-03-02"));
    assert_eq!(t.service_day(at("2026-03-01 00:00")), day("2026-02-28"));
    assert_eq!(t.service_day(at("2028-03-01 00:00")), day("2028-02-29"));
    let default = FareTable::parse("fares = [100]\n[stations]\nx = 0\n", "t").unwrap();
    assert_eq!(
        default.service_day_start(),
        chrono::NaiveTime::from_hms_opt(4, 0, 0).unwrap()
    );
    let midnight = FareTable::parse(
        "service_day_start = \"00:00\"\nfares = [100]\n[stations]\nx = 0\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        midnight.service_day(at("2026-03-02 00:00")),
        day("2026-03-02")
    );
    assert_eq!(
        midnight.service_day(at("2026-03-01 23:59")),
        day("2026-03-01")
    );
}

/// (name, toml, the key the error must name, a word the reason must contain)
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "no fares",
        "fares = []\n[stations]\nx = 1\n",
        "fares",
        "at least one",
    ),
    (
        "zero fare",
        "fares = [0]\n[stations]\nx = 1\n",
        "fares[0]",
        "not a fare",
    ),
    (
        "negative fare",
        "fares = [100, -5]\n[stations]\nx = 1\n",
        "fares[1]",
        "not a fare",
    ),
    (
        "huge fare",
        "fares = [5000000000]\n[stations]\nx = 1\n",
        "fares[0]",
        "not a fare",
    ),
    (
        "decreasing",
        "fares = [100, 200, 150]\n[stations]\nx = 1\n",
        "fares[2]",
        "less than",
    ),
    (
        "no stations",
        "fares = [100]\n[stations]\n",
        "stations",
        "at least one",
    ),
    (
        "bad station id",
        "fares = [100]\n[stations]\n\"a/b\" = 1\n",
        "stations.a/b",
        "station id",
    ),
    (
        "zone out of range",
        "fares = [100]\n[stations]\nx = 300\n",
        "stations.x",
        "zone 300",
    ),
    (
        "negative zone",
        "fares = [100]\n[stations]\nx = -1\n",
        "stations.x",
        "zone -1",
    ),
    (
        "fares too short for the zones",
        "fares = [100, 200]\n[stations]\nnear = 1\nfar = 3\nmid = 2\n",
        "stations.far",
        "up to a distance of 1",
    ),
    (
        "bad service day start",
        "service_day_start = \"25:00\"\nfares = [100]\n[stations]\nx = 1\n",
        "service_day_start",
        "HH:MM",
    ),
    (
        "service day start in the afternoon",
        "service_day_start = \"13:00\"\nfares = [100]\n[stations]\nx = 1\n",
        "service_day_start",
        "before 12:00",
    ),
];

#[test]
fn invalid_tables_name_the_key() {
    for (name, text, key, word) in INVALID {
        match FareTable::parse(text, "fares.toml") {
            Err(FareTableError::Invalid {
                origin,
                key: k,
                reason,
            }) => {
                assert_eq!(origin, "fares.toml", "{name}");
                assert_eq!(&k, key, "{name}");
                assert!(reason.contains(word), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn syntax_and_schema_errors_name_the_key() {
    let cases = [
        ("fares = [100]\n", "stations"),
        ("[stations]\nx = 1\n", "fares"),
        ("fares = [100]\nzones = 3\n[stations]\nx = 1\n", "zones"),
        ("fares = \"cheap\"\n[stations]\nx = 1\n", "fares"),
        ("fares = [100\n", "line"),
    ];
    for (text, needle) in cases {
        let err = FareTable::parse(text, "fares.toml").unwrap_err();
        assert!(
            matches!(err, FareTableError::Parse { .. }),
            "{text:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("fares.toml: "), "{msg}");
        assert!(
            msg.contains(needle),
            "{text:?} should mention {needle}: {msg}"
        );
    }
}

#[test]
fn load_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fares.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(TABLE.as_bytes())
        .unwrap();
    assert_eq!(FareTable::load(&path).unwrap(), table());

    let missing = dir.path().join("missing.toml");
    let err = FareTable::load(&missing).unwrap_err();
    assert!(matches!(err, FareTableError::Io { .. }));
    assert!(err.to_string().contains("missing.toml"), "{err}");

    std::fs::write(&path, "fares = [100, 50]\n[stations]\nx = 1\n").unwrap();
    let err = FareTable::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("fares.toml") && err.contains("fares[1]"),
        "{err}"
    );
}
