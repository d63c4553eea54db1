use super::*;
use crate::seal::{self, CentreSecretKey, DataKey, KeyId, StationSecretKey};

fn upsert_body(station: &StationId, seq: u64) -> (ChangeBody, StationSecretKey, CentreSecretKey) {
    let subject = SubjectId::from_bytes([7; 16]);
    let key = DataKey::generate().unwrap();
    let sealed = seal::seal_template(&key, &subject, 1, &[0.1; 128]).unwrap();
    let st = StationSecretKey::generate(KeyId(1)).unwrap();
    let centre = CentreSecretKey::generate().unwrap();
    let wrapped =
        seal::wrap_for_station(&centre, station, &st.public_key(), &subject, &key).unwrap();
    let body = ChangeBody {
        v: SYNC_VERSION,
        station: station.clone(),
        seq,
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
    (body, st, centre)
}

#[test]
fn signed_change_round_trips_and_refuses_tampering() {
    let station = StationId::new("umeda-01").unwrap();
    let sk = CentreSigningKey::generate().unwrap();
    let pk = sk.verifying_key();
    let (body, _, _) = upsert_body(&station, 5);
    let signed = SignedChange::sign(&sk, &body).unwrap();
    let wire = signed.encode();
    let back = SignedChange::decode(&wire).unwrap();
    let v = back.verify(&pk, &station).unwrap();
    assert_eq!(v.seq, 5);
    assert_eq!(v.op.subject(), SubjectId::from_bytes([7; 16]));

    // Another station: the signature is fine, the address is not.
    let other = StationId::new("namba").unwrap();
    assert!(matches!(
        back.verify(&pk, &other),
        Err(ChangeError::Station { .. })
    ));
    // Tampered body: seq changed after signing.
    let mut t = back.clone();
    t.body = t.body.replace("\"seq\":5", "\"seq\":6");
    assert!(matches!(
        t.verify(&pk, &station),
        Err(ChangeError::Signature)
    ));
    // Another key.
    let wrong = CentreSigningKey::generate().unwrap().verifying_key();
    assert!(matches!(
        back.verify(&wrong, &station),
        Err(ChangeError::Signature)
    ));
    // Envelope of another version.
    let text = String::from_utf8(wire)
        .unwrap()
        .replacen("\"v\":1", "\"v\":2", 1);
    assert!(matches!(
        SignedChange::decode(text.as_bytes()),
        Err(ChangeError::Version { found: 2 })
    ));
    // Body of another version, correctly signed.
    let mut b2 = body.clone();
    b2.v = 2;
    let s2 = SignedChange::sign(&sk, &b2).unwrap();
    assert!(matches!(
        s2.verify(&pk, &station),
        Err(ChangeError::Version { found: 2 })
    ));
    // Garbage and unknown fields.
    assert!(matches!(
        SignedChange::decode(b"nope"),
        Err(ChangeError::Malformed(_))
    ));
    let extra = br#"{"v":1,"body":"{}","sig":"00","x":1}"#;
    assert!(matches!(
        SignedChange::decode(extra),
        Err(ChangeError::Malformed(_))
    ));
}

#[test]
fn signing_key_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sign.key");
    let k = CentreSigningKey::generate().unwrap();
    k.write_file(&p).unwrap();
    let back = CentreSigningKey::load_file(&p).unwrap();
    assert_eq!(back.verifying_key(), k.verifying_key());
    assert!(k.write_file(&p).is_err(), "never overwrites");
    let hex = k.verifying_key().to_hex();
    assert_eq!(
        CentreVerifyingKey::from_hex(&hex).unwrap(),
        k.verifying_key()
    );
    assert!(CentreVerifyingKey::from_hex("abcd").is_err());
}
