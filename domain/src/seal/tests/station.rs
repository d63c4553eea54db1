//! Centre → station key wrap.

use super::*;
use crate::ids::StationId;

struct Setup {
    centre: CentreSecretKey,
    station: StationSecretKey,
    station_id: StationId,
    key: DataKey,
    wrapped: StationWrappedKey,
}

fn setup() -> Setup {
    let centre = CentreSecretKey::generate().unwrap();
    let station = StationSecretKey::generate(KeyId(5)).unwrap();
    let station_id = StationId::new("umeda-01").unwrap();
    let key = DataKey::generate().unwrap();
    let wrapped = wrap_for_station(
        &centre,
        &station_id,
        &station.public_key(),
        &subject(1),
        &key,
    )
    .unwrap();
    Setup {
        centre,
        station,
        station_id,
        key,
        wrapped,
    }
}

fn open(s: &Setup, wrapped: &StationWrappedKey) -> Result<DataKey, SealError> {
    open_from_centre(
        &s.station,
        &s.station_id,
        &s.centre.public_key(),
        &subject(1),
        wrapped,
    )
}

#[test]
fn station_opens_what_the_centre_wrapped() {
    let s = setup();
    assert_eq!(s.wrapped.as_bytes().len(), StationWrappedKey::LEN);
    assert_eq!(StationWrappedKey::LEN, 110);
    assert_eq!(s.wrapped.station_key_id(), KeyId(5));
    let key = open(&s, &s.wrapped).unwrap();
    assert_eq!(key.bytes(), s.key.bytes());
    // End to end: the template sealed at the centre opens at the station.
    let sealed = seal_template(&s.key, &subject(1), V, &template(1)).unwrap();
    assert_eq!(
        *open_template(&key, &subject(1), V, &sealed).unwrap(),
        template(1)
    );
    // Fresh ephemeral key and nonce per wrap.
    let again = wrap_for_station(
        &s.centre,
        &s.station_id,
        &s.station.public_key(),
        &subject(1),
        &s.key,
    )
    .unwrap();
    assert_ne!(again, s.wrapped);
}

#[test]
fn only_the_addressed_station_opens_it() {
    let s = setup();
    let centre_pub = s.centre.public_key();
    // Another station's key, even under the same key id.
    let other = StationSecretKey::generate(KeyId(5)).unwrap();
    assert!(is_auth(open_from_centre(
        &other,
        &s.station_id,
        &centre_pub,
        &subject(1),
        &s.wrapped
    )));
    // Another key id.
    let rotated = StationSecretKey::generate(KeyId(6)).unwrap();
    assert!(matches!(
        open_from_centre(
            &rotated,
            &s.station_id,
            &centre_pub,
            &subject(1),
            &s.wrapped
        ),
        Err(SealError::KeyId {
            found: KeyId(5),
            expected: KeyId(6),
            ..
        })
    ));
    // Right key, but the wrap claimed for another station name or subject.
    let noda = StationId::new("noda").unwrap();
    assert!(is_auth(open_from_centre(
        &s.station,
        &noda,
        &centre_pub,
        &subject(1),
        &s.wrapped
    )));
    assert!(is_auth(open_from_centre(
        &s.station,
        &s.station_id,
        &centre_pub,
        &subject(2),
        &s.wrapped
    )));
}

#[test]
fn only_the_pinned_centre_can_wrap() {
    let s = setup();
    // An attacker who knows the station's public key wraps a key of their choosing with their own
    // "centre" key: the station, pinned to the real centre, refuses it.
    let forger = CentreSecretKey::generate().unwrap();
    let forged = wrap_for_station(
        &forger,
        &s.station_id,
        &s.station.public_key(),
        &subject(1),
        &s.key,
    )
    .unwrap();
    assert!(is_auth(open(&s, &forged)));
}

#[test]
fn low_order_points_refused() {
    let s = setup();
    // An all-zero ephemeral key makes the key exchange all zeros: refused, not used as a key.
    let mut bytes = s.wrapped.as_bytes().to_vec();
    bytes[6..38].fill(0);
    let w = StationWrappedKey::from_bytes(bytes).unwrap();
    assert!(matches!(open(&s, &w), Err(SealError::WeakKey)));
    let zero_station = StationPublicKey {
        id: KeyId(5),
        key: [0; 32],
    };
    assert!(matches!(
        wrap_for_station(&s.centre, &s.station_id, &zero_station, &subject(1), &s.key),
        Err(SealError::WeakKey)
    ));
    let zero_centre = CentrePublicKey([0; 32]);
    assert!(matches!(
        open_from_centre(
            &s.station,
            &s.station_id,
            &zero_centre,
            &subject(1),
            &s.wrapped
        ),
        Err(SealError::WeakKey)
    ));
}

#[test]
fn tampered_truncated_and_garbage_refused() {
    let s = setup();
    for i in 0..StationWrappedKey::LEN {
        let mut b = s.wrapped.as_bytes().to_vec();
        b[i] ^= 0x04;
        let r = StationWrappedKey::from_bytes(b).and_then(|w| open(&s, &w));
        assert!(r.is_err(), "byte {i}");
    }
    for n in 0..StationWrappedKey::LEN {
        let r = StationWrappedKey::from_bytes(s.wrapped.as_bytes()[..n].to_vec());
        assert!(matches!(r, Err(SealError::Length { .. })), "prefix {n}");
    }
    let mut garbage = vec![0x5au8; StationWrappedKey::LEN];
    garbage[0] = FORMAT_VERSION;
    garbage[1] = b'S';
    garbage[2..6].copy_from_slice(&5u32.to_be_bytes());
    let w = StationWrappedKey::from_bytes(garbage).unwrap();
    assert!(open(&s, &w).is_err());
}

#[test]
fn station_and_centre_key_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let s = setup();
    let station_path = dir.path().join("station.key");
    let centre_path = dir.path().join("centre.key");
    s.station.write_file(&station_path).unwrap();
    s.centre.write_file(&centre_path).unwrap();
    let station = StationSecretKey::load_file(KeyId(5), &station_path).unwrap();
    let centre = CentreSecretKey::load_file(&centre_path).unwrap();
    assert_eq!(station.public_key(), s.station.public_key());
    assert_eq!(centre.public_key(), s.centre.public_key());
    let key = open_from_centre(
        &station,
        &s.station_id,
        &centre.public_key(),
        &subject(1),
        &s.wrapped,
    )
    .unwrap();
    assert_eq!(key.bytes(), s.key.bytes());
    std::fs::set_permissions(&station_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        StationSecretKey::load_file(KeyId(5), &station_path),
        Err(SealError::KeyFilePermissions { .. })
    ));
    let printed = format!("{station:?} {centre:?}");
    assert_eq!(
        printed,
        "StationSecretKey { id: 5, .. } CentreSecretKey(..)"
    );
}
