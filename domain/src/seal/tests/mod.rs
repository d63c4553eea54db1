//! Seal tests: round trips, refusals, tampering, garbage, rotation and crypto-shredding.

mod keyfile;
mod station;

use std::collections::HashMap;

use super::*;
use crate::ids::SubjectId;

pub(super) const V: u32 = 1;

pub(super) fn subject(n: u8) -> SubjectId {
    SubjectId::from_bytes([n; 16])
}

/// A deterministic, normalised, non-trivial template.
pub(super) fn template(seed: u32) -> Template {
    let mut t = [0f32; TEMPLATE_DIM];
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for v in t.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = (x as f32 / u32::MAX as f32) - 0.5;
    }
    let norm = t.iter().map(|v| v * v).sum::<f32>().sqrt();
    t.iter_mut().for_each(|v| *v /= norm);
    t
}

fn master(id: u32, byte: u8) -> MasterKey {
    MasterKey::from_bytes(KeyId(id), [byte; 32])
}

fn is_auth(r: Result<impl Sized, SealError>) -> bool {
    matches!(r, Err(SealError::Authentication { .. }))
}

#[test]
fn template_round_trip_is_bit_exact() {
    let key = DataKey::generate().unwrap();
    let t = template(1);
    let sealed = seal_template(&key, &subject(1), V, &t).unwrap();
    assert_eq!(sealed.as_bytes().len(), SealedTemplate::LEN);
    assert_eq!(SealedTemplate::LEN, 558);
    assert_eq!(&sealed.as_bytes()[..6], &[1, b'T', 0, 0, 0, 1]);
    assert_eq!(sealed.template_version(), V);
    let opened = open_template(&key, &subject(1), V, &sealed).unwrap();
    assert_eq!(opened.map(f32::to_bits), t.map(f32::to_bits));
    // A random nonce per seal: the same template never gives the same bytes twice.
    assert_ne!(seal_template(&key, &subject(1), V, &t).unwrap(), sealed);
    // And the bytes survive storage.
    let stored = SealedTemplate::from_bytes(sealed.clone().into_bytes()).unwrap();
    assert!(open_template(&key, &subject(1), V, &stored).is_ok());
}

#[test]
fn sealed_bytes_hold_no_plaintext() {
    let key = DataKey::generate().unwrap();
    let t = template(2);
    let plain: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sealed = seal_template(&key, &subject(1), V, &t).unwrap();
    // No 8-byte run of the plaintext appears (what the later raw redb scan checks for whole templates).
    for window in plain.windows(8) {
        assert!(!sealed.as_bytes().windows(8).any(|w| w == window));
    }
}

#[test]
fn wrong_key_subject_or_version_refused() {
    let key = DataKey::generate().unwrap();
    let sealed = seal_template(&key, &subject(1), V, &template(3)).unwrap();
    let other = DataKey::generate().unwrap();
    assert!(is_auth(open_template(&other, &subject(1), V, &sealed)));
    assert!(is_auth(open_template(&key, &subject(2), V, &sealed)));
    assert!(matches!(
        open_template(&key, &subject(1), V + 1, &sealed),
        Err(SealError::TemplateVersion {
            found: 1,
            expected: 2
        })
    ));
    // Relabelling the version in the header (AD) is caught by the tag.
    let mut bytes = sealed.into_bytes();
    bytes[5] = 2;
    let relabelled = SealedTemplate::from_bytes(bytes).unwrap();
    assert!(is_auth(open_template(&key, &subject(1), 2, &relabelled)));
}

#[test]
fn non_finite_templates_refused() {
    let key = DataKey::generate().unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut t = template(4);
        t[17] = bad;
        assert!(matches!(
            seal_template(&key, &subject(1), V, &t),
            Err(SealError::NotFinite { index: 17 })
        ));
    }
}

#[test]
fn every_tampered_byte_is_refused() {
    let key = DataKey::generate().unwrap();
    let m = master(1, 9);
    let sealed = seal_template(&key, &subject(1), V, &template(5)).unwrap();
    let wrapped = wrap_data_key(&m, &subject(1), &key).unwrap();
    for i in 0..SealedTemplate::LEN {
        let mut b = sealed.as_bytes().to_vec();
        b[i] ^= 0x01;
        let r = SealedTemplate::from_bytes(b).and_then(|s| open_template(&key, &subject(1), V, &s));
        assert!(r.is_err(), "byte {i}");
    }
    for i in 0..WrappedDataKey::LEN {
        let mut b = wrapped.as_bytes().to_vec();
        b[i] ^= 0x80;
        let r = WrappedDataKey::from_bytes(b).and_then(|w| unwrap_data_key(&m, &subject(1), &w));
        assert!(r.is_err(), "byte {i}");
    }
}

#[test]
fn truncated_and_garbage_blobs_give_errors() {
    let key = DataKey::generate().unwrap();
    let m = master(1, 9);
    let sealed = seal_template(&key, &subject(1), V, &template(6)).unwrap();
    let wrapped = wrap_data_key(&m, &subject(1), &key).unwrap();
    for n in 0..sealed.as_bytes().len() {
        let r = SealedTemplate::from_bytes(sealed.as_bytes()[..n].to_vec());
        assert!(matches!(r, Err(SealError::Length { .. })), "prefix {n}");
    }
    for n in 0..wrapped.as_bytes().len() {
        assert!(WrappedDataKey::from_bytes(wrapped.as_bytes()[..n].to_vec()).is_err());
    }
    let mut long = sealed.as_bytes().to_vec();
    long.push(0);
    assert!(matches!(
        SealedTemplate::from_bytes(long),
        Err(SealError::Length { len: 559, .. })
    ));

    // Garbage of the right length: the header checks speak first, then the tag.
    let mut garbage = vec![0xA5u8; SealedTemplate::LEN];
    assert!(matches!(
        SealedTemplate::from_bytes(garbage.clone()),
        Err(SealError::Version { found: 0xA5, .. })
    ));
    garbage[0] = FORMAT_VERSION;
    assert!(matches!(
        SealedTemplate::from_bytes(garbage.clone()),
        Err(SealError::Kind { .. })
    ));
    garbage[1] = b'T';
    let s = SealedTemplate::from_bytes(garbage).unwrap();
    let version = s.template_version();
    assert!(is_auth(open_template(&key, &subject(1), version, &s)));
    // A wrapped key is not a template and vice versa.
    assert!(matches!(
        WrappedDataKey::from_bytes(sealed.as_bytes().to_vec()),
        Err(SealError::Length { .. })
    ));
    let mut as_key = wrapped.as_bytes().to_vec();
    as_key[1] = b'T';
    assert!(matches!(
        WrappedDataKey::from_bytes(as_key),
        Err(SealError::Kind { found: b'T', .. })
    ));
    // Pseudo-random garbage of many lengths.
    let mut x = 0x1234_5678u32;
    for len in 0..700 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(SealedTemplate::from_bytes(bytes.clone()).is_err());
        assert!(WrappedDataKey::from_bytes(bytes).is_err());
    }
}

#[test]
fn data_key_wrap_binds_master_key_and_subject() {
    let m = master(7, 1);
    let key = DataKey::generate().unwrap();
    let wrapped = wrap_data_key(&m, &subject(1), &key).unwrap();
    assert_eq!(wrapped.as_bytes().len(), 78);
    assert_eq!(wrapped.key_id(), KeyId(7));
    let back = unwrap_data_key(&m, &subject(1), &wrapped).unwrap();
    assert_eq!(back.bytes(), key.bytes());
    // Same id, other key bytes (a wrong key file): the tag fails.
    assert!(is_auth(unwrap_data_key(
        &master(7, 2),
        &subject(1),
        &wrapped
    )));
    // Other id: refused by id before any decryption.
    assert!(matches!(
        unwrap_data_key(&master(8, 1), &subject(1), &wrapped),
        Err(SealError::KeyId {
            found: KeyId(7),
            expected: KeyId(8),
            ..
        })
    ));
    // A wrapped key moved to another subject's row.
    assert!(is_auth(unwrap_data_key(&m, &subject(2), &wrapped)));
}

#[test]
fn enrol_and_open_in_one_call() {
    let m = master(1, 3);
    let t = template(8);
    let (wrapped, sealed) = seal_new_subject(&m, &subject(4), V, &t).unwrap();
    let opened = open_subject(&m, &subject(4), V, &wrapped, &sealed).unwrap();
    assert_eq!(*opened, t);
    // Swapping two subjects' templates (with their own keys) is caught.
    let (w2, s2) = seal_new_subject(&m, &subject(5), V, &template(9)).unwrap();
    assert!(is_auth(open_subject(&m, &subject(4), V, &wrapped, &s2)));
    assert!(is_auth(open_subject(&m, &subject(4), V, &w2, &sealed)));
}

/// The centre's tables, reduced to what rotation and erasure touch.
struct Centre {
    keys: HashMap<SubjectId, WrappedDataKey>,
    templates: HashMap<SubjectId, SealedTemplate>,
}

fn centre(m: &MasterKey, n: u8) -> Centre {
    let mut c = Centre {
        keys: HashMap::new(),
        templates: HashMap::new(),
    };
    for i in 0..n {
        let (w, s) = seal_new_subject(m, &subject(i), V, &template(u32::from(i))).unwrap();
        c.keys.insert(subject(i), w);
        c.templates.insert(subject(i), s);
    }
    c
}

#[test]
fn rotation_keeps_templates_readable() {
    let old = master(1, 0x11);
    let new = master(2, 0x22);
    let mut c = centre(&old, 20);
    let before = c.templates.clone();
    let rotated = rotate_master_key(&old, &new, c.keys.iter().map(|(s, w)| (*s, w))).unwrap();
    assert_eq!(rotated.len(), 20);
    c.keys = rotated.into_iter().collect();
    assert_eq!(c.templates, before, "rotation never touches templates");
    for (s, w) in &c.keys {
        assert_eq!(w.key_id(), KeyId(2));
        let t = open_subject(&new, s, V, w, &c.templates[s]).unwrap();
        assert_eq!(*t, template(u32::from(s.as_bytes()[0])));
        // The retired key opens nothing any more.
        assert!(matches!(
            unwrap_data_key(&old, s, w),
            Err(SealError::KeyId { .. })
        ));
    }
}

#[test]
fn rotation_resumes_and_refuses_what_it_cannot_do() {
    let old = master(1, 0x11);
    let new = master(2, 0x22);
    let c = centre(&old, 6);
    // Half done (an interrupted rotation): running it again finishes the job.
    let mut mixed: Vec<(SubjectId, WrappedDataKey)> =
        c.keys.iter().map(|(s, w)| (*s, w.clone())).collect();
    for (s, w) in mixed.iter_mut().take(3) {
        *w = rotate_master_key(&old, &new, [(*s, &*w)])
            .unwrap()
            .remove(0)
            .1;
    }
    let done = rotate_master_key(&old, &new, mixed.iter().map(|(s, w)| (*s, w))).unwrap();
    assert!(done.iter().all(|(_, w)| w.key_id() == KeyId(2)));
    assert_eq!(
        &done[..3],
        &mixed[..3],
        "already rotated keys are kept as they are"
    );

    assert!(matches!(
        rotate_master_key(&old, &master(1, 0x33), c.keys.iter().map(|(s, w)| (*s, w))),
        Err(SealError::SameKeyId(KeyId(1)))
    ));
    // A key under a third master key: the whole rotation fails, nothing half-returned.
    let stranger = master(9, 0x99);
    let foreign = wrap_data_key(&stranger, &subject(50), &DataKey::generate().unwrap()).unwrap();
    let mut all: Vec<(SubjectId, &WrappedDataKey)> = c.keys.iter().map(|(s, w)| (*s, w)).collect();
    all.push((subject(50), &foreign));
    assert!(matches!(
        rotate_master_key(&old, &new, all),
        Err(SealError::KeyId {
            found: KeyId(9),
            ..
        })
    ));
    // The wrong old key (right id, wrong bytes) is caught by the tag.
    assert!(is_auth(rotate_master_key(
        &master(1, 0x12),
        &new,
        c.keys.iter().map(|(s, w)| (*s, w))
    )));
}

#[test]
fn crypto_shredding_makes_the_template_unreadable() {
    let m = master(1, 0x44);
    let mut c = centre(&m, 10);
    let victim = subject(3);
    // A copy of the sealed template survives somewhere (a backup, a station that was offline).
    let leaked = c.templates[&victim].clone();

    // Erasure: the wrapped data key row is deleted (and with it the only copy of the data key).
    let shredded = c.keys.remove(&victim).unwrap();
    c.templates.remove(&victim);
    drop(shredded);

    // Nothing the centre still holds opens the leaked copy: not the master key with any remaining
    // wrapped key, under the victim's id or their own.
    for (s, w) in &c.keys {
        let key = unwrap_data_key(&m, s, w).unwrap();
        assert!(is_auth(open_template(&key, &victim, V, &leaked)));
        assert!(is_auth(open_template(&key, s, V, &leaked)));
        assert!(is_auth(unwrap_data_key(&m, &victim, w)));
    }
    // Rotation after erasure does not bring it back either.
    let rotated =
        rotate_master_key(&m, &master(2, 0x55), c.keys.iter().map(|(s, w)| (*s, w))).unwrap();
    assert!(rotated.iter().all(|(s, _)| *s != victim));
    // The other subjects are unaffected.
    for (s, w) in &c.keys {
        assert!(open_subject(&m, s, V, w, &c.templates[s]).is_ok());
    }
}

#[test]
fn keys_are_zeroized_and_never_printed() {
    fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroize_on_drop::<DataKey>();
    zeroize_on_drop::<MasterKey>();
    let mut key = DataKey::from_plaintext(&[0x5a; 32]).unwrap();
    zeroize::Zeroize::zeroize(&mut key);
    assert_eq!(key.bytes(), &[0; 32]);

    let m = master(3, 0xab);
    let printed = format!("{m:?} {:?}", DataKey::from_plaintext(&[0xab; 32]).unwrap());
    assert!(!printed.contains("ab"), "{printed}");
    assert!(!printed.contains("171"), "{printed}");
    assert!(printed.contains("id: 3"), "{printed}");
}
