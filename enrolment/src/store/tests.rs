//! The centre's erasure, checked on the raw file: after `erase` returns, no byte of the subject's
//! sealed template or wrapped data key is left anywhere in the store file. (Written before the centre
//! moved from `compact` to the shared purge; both passed it, see `domain::store` for why the purge.)

use super::*;
use domain::seal::{self, DataKey, KeyId, MasterKey};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A centre store with `n` enrolled subjects; each subject's id, sealed template and key wrap.
#[allow(clippy::type_complexity)]
fn enrolled(path: &Path, n: u16) -> (Store, Vec<(SubjectId, Vec<u8>, Vec<u8>)>) {
    let store = Store::open(path).unwrap();
    let master = MasterKey::generate(KeyId(1)).unwrap();
    let rec = SubjectRecord::enrolled_now(Consent::now("p1"), 1, 1);
    let mut blobs = Vec::new();
    for i in 0..n {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&i.to_be_bytes());
        let id = SubjectId::from_bytes(b);
        let key = DataKey::generate().unwrap();
        let sealed = seal::seal_template(&key, &id, 1, &[f32::from(i) * 0.01; 128]).unwrap();
        let wrapped = seal::wrap_data_key(&master, &id, &key).unwrap();
        let row = EnrolRow {
            subject: id,
            record: &rec,
            wrapped: &wrapped,
            sealed: &sealed,
        };
        store.enrol(&row, "test").unwrap();
        blobs.push((id, sealed.into_bytes(), wrapped.into_bytes()));
    }
    (store, blobs)
}

#[test]
fn erase_leaves_no_sealed_template_or_key_wrap_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("centre.redb");
    let (store, blobs) = enrolled(&path, 40);
    let (victim, sealed, wrapped) = blobs[7].clone();
    let raw = std::fs::read(&path).unwrap();
    assert!(contains(&raw, &sealed) && contains(&raw, &wrapped));
    assert!(store.erase(&victim, "test").unwrap().is_some());
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !contains(&raw, &sealed),
        "sealed template bytes left in the centre file after erase"
    );
    assert!(
        !contains(&raw, &wrapped),
        "wrapped data key bytes left in the centre file after erase"
    );
    // The others are intact and the file still opens.
    drop(store);
    let store = Store::open(&path).unwrap();
    assert!(store.subject_state(&victim).unwrap().is_none());
    assert_eq!(store.sealed_all().unwrap().len(), 39);
}

/// Many erasures in a larger file, each scanned right after it: none leaves its template or wrap.
#[test]
fn every_erase_in_a_larger_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("centre.redb");
    let (store, blobs) = enrolled(&path, 300);
    let mut left = Vec::new();
    for k in (3..300).step_by(37) {
        let (victim, sealed, wrapped) = &blobs[k];
        store.erase(victim, "test").unwrap();
        let raw = std::fs::read(&path).unwrap();
        if contains(&raw, sealed) || contains(&raw, wrapped) {
            left.push(k);
        }
    }
    assert_eq!(left, Vec::<usize>::new(), "erases that left bytes");
    assert_eq!(store.sealed_all().unwrap().len(), 300 - 9);
}
