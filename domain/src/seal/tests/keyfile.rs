//! Key files and the environment variable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

fn file(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

const RAW: [u8; 32] = [0x3c; 32];

fn hex() -> String {
    "3c".repeat(32)
}

/// Both forms of the same key material are the same key: one wraps, the other unwraps.
#[test]
fn raw_and_hex_files_load_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let raw = file(dir.path(), "raw", &RAW, 0o600);
    let hex_plain = file(dir.path(), "hex", hex().as_bytes(), 0o600);
    let hex_nl = file(
        dir.path(),
        "hex_nl",
        format!("{}\n", hex().to_uppercase()).as_bytes(),
        0o400,
    );
    let key = DataKey::generate().unwrap();
    let wrapped = wrap_data_key(
        &MasterKey::load_file(KeyId(1), &raw).unwrap(),
        &subject(1),
        &key,
    )
    .unwrap();
    for path in [&raw, &hex_plain, &hex_nl] {
        let m = MasterKey::load_file(KeyId(1), path).unwrap();
        assert_eq!(
            unwrap_data_key(&m, &subject(1), &wrapped).unwrap().bytes(),
            key.bytes()
        );
        assert_eq!(*read_key_file(path).unwrap(), RAW);
    }
}

#[test]
fn group_or_world_access_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o700 | 0o004, 0o610] {
        let path = file(dir.path(), &format!("k{mode:o}"), &RAW, mode);
        let err = MasterKey::load_file(KeyId(1), &path).unwrap_err();
        match &err {
            SealError::KeyFilePermissions { path: p, mode: m } => {
                assert_eq!(p, &path);
                assert_eq!(*m, mode);
            }
            other => panic!("{mode:o}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("chmod 600") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
}

#[test]
fn wrong_sizes_and_contents_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nonhex = "zz".repeat(32);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("31 bytes", vec![1; 31]),
        ("33 bytes", vec![1; 33]),
        ("raw with newline", [RAW.as_slice(), b"\n"].concat()),
        ("63 hex", hex().as_bytes()[..63].to_vec()),
        ("65 hex", format!("{}3", hex()).into_bytes()),
        (
            "hex with two newlines",
            format!("{}\n\n", hex()).into_bytes(),
        ),
        ("hex with CRLF", format!("{}\r\n", hex()).into_bytes()),
        ("64 non-hex", nonhex.into_bytes()),
        ("huge", vec![b'a'; 10_000]),
    ];
    for (name, content) in cases {
        let path = file(dir.path(), &name.replace(' ', "_"), &content, 0o600);
        match read_key_file(&path) {
            Err(SealError::KeyFileFormat { path: p, len }) => {
                assert_eq!(p, path, "{name}");
                assert_eq!(len, content.len().min(66), "{name}");
            }
            other => panic!("{name}: {:?}", other.map(|_| "a key")),
        }
    }
}

#[test]
fn missing_file_and_directory_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        read_key_file(&missing),
        Err(SealError::KeyFileIo { .. })
    ));
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        read_key_file(&sub),
        Err(SealError::KeyFileNotRegular { .. })
    ));
}

#[test]
fn written_key_files_are_0600_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master-2.key");
    let new = MasterKey::generate(KeyId(2)).unwrap();
    write_key_file(&path, &new).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&path).unwrap().len(), 65);
    let loaded = MasterKey::load_file(KeyId(2), &path).unwrap();
    assert_eq!(loaded.bytes(), new.bytes());
    let other = MasterKey::generate(KeyId(3)).unwrap();
    assert!(matches!(
        write_key_file(&path, &other),
        Err(SealError::KeyFileExists { .. })
    ));
    assert_eq!(
        MasterKey::load_file(KeyId(2), &path).unwrap().bytes(),
        new.bytes()
    );
}

#[test]
fn environment_variable() {
    // Only reads the environment: setting variables is unsafe with other test threads running.
    let missing = MasterKey::from_env(KeyId(1), "ENROLMENT_TEST_SURELY_UNSET_MASTER_KEY");
    assert!(matches!(missing, Err(SealError::KeyEnvMissing { .. })));

    let m = MasterKey::from_env_value(KeyId(4), "GATE_MASTER_KEY", hex().as_bytes()).unwrap();
    assert_eq!((m.id(), m.bytes()), (KeyId(4), &RAW));
    for bad in [
        &b""[..],
        b"3c",
        &[0xff; 64],
        format!("{}\n", hex()).as_bytes(),
    ] {
        let err = MasterKey::from_env_value(KeyId(4), "GATE_MASTER_KEY", bad).unwrap_err();
        assert!(matches!(err, SealError::KeyEnvFormat { .. }), "{err:?}");
        assert!(
            !err.to_string().contains("3c3c"),
            "the value is never echoed: {err}"
        );
    }
}
