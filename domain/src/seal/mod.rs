//! Sealed face templates and the key hierarchy (`docs/privacy.md`).
//!
//! ```text
//! master key (32 B, key file 0600 or env, id u32)            station secret key (X25519, on the station)
//!   └─ wraps ─► data key (32 B, random, one per subject)  ◄─ wrapped for a station by the centre key ─┘
//!                 └─ seals ─► template (128 × f32)
//! ```
//!
//! All AEAD is XChaCha20-Poly1305 with a random 24-byte nonce (random nonces are safe at this size).
//! Every blob starts with a 6-byte header that is also authenticated as associated data (AD):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | format version, `1` |
//! | 1 | kind: `b'T'` sealed template, `b'K'` wrapped data key, `b'S'` station-wrapped data key |
//! | 2..6 | id, u32 big-endian: template version (`T`), master key id (`K`), station key id (`S`) |
//!
//! then, per kind (all lengths fixed):
//!
//! | kind | after the header | total |
//! |---|---|---|
//! | `T` | nonce 24 · ciphertext 512 (128 × f32 little-endian) · tag 16 | 558 |
//! | `K` | nonce 24 · ciphertext 32 (the data key) · tag 16 | 78 |
//! | `S` | ephemeral X25519 public key 32 · nonce 24 · ciphertext 32 · tag 16 | 110 |
//!
//! AD = every byte before the nonce ‖ subject id (16 bytes) ‖ station id (UTF-8, `S` only). The subject
//! id is not stored in the blob (it is the row key) but binds it: a blob moved to another subject's row
//! does not open.

pub(crate) mod keys;
mod station;
mod template;
#[cfg(test)]
mod tests;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::aead::Payload;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub use keys::{DataKey, KeyId, MasterKey, read_key_file, write_key_file};
pub use station::{
    CentrePublicKey, CentreSecretKey, StationPublicKey, StationSecretKey, StationWrappedKey,
    UplinkKey, open_from_centre, wrap_for_station,
};
pub use template::{
    SealedTemplate, TEMPLATE_DIM, Template, WrappedDataKey, open_subject, open_template,
    rotate_master_key, seal_new_subject, seal_template, unwrap_data_key, wrap_data_key,
};

/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 6;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    // The OS error is the source (printed once by the caller's chain), not repeated here.
    #[error("key file {path}")]
    KeyFileIo {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path}: not a regular file")]
    KeyFileNotRegular { path: std::path::PathBuf },
    #[error("key file {path}: mode {mode:04o} gives group or others access; `chmod 600` it")]
    KeyFilePermissions { path: std::path::PathBuf, mode: u32 },
    #[error(
        "key file {path}: {len} bytes; a key file holds exactly 32 raw bytes or 64 hex digits \
         (one trailing newline allowed)"
    )]
    KeyFileFormat {
        path: std::path::PathBuf,
        len: usize,
    },
    #[error("key file {path} already exists; refusing to overwrite a key")]
    KeyFileExists { path: std::path::PathBuf },
    #[error("environment variable {var} is not set")]
    KeyEnvMissing { var: String },
    // The value itself is never echoed: it is (almost) a key.
    #[error("environment variable {var} must hold 64 hex digits ({len} characters given)")]
    KeyEnvFormat { var: String, len: usize },
    #[error("the OS random generator failed: {0}")]
    Random(getrandom::Error),
    #[error("{what}: {len} bytes, expected {expected}")]
    Length {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what}: format version {found}, this build reads version {FORMAT_VERSION}")]
    Version { what: &'static str, found: u8 },
    #[error("{what}: kind byte {found:#04x}, expected {expected:#04x}")]
    Kind {
        what: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("{what}: made under key id {found}, this key is id {expected}")]
    KeyId {
        what: &'static str,
        found: KeyId,
        expected: KeyId,
    },
    #[error("sealed template: template version {found}, expected {expected}")]
    TemplateVersion { found: u32, expected: u32 },
    /// Deliberately one error for wrong key, wrong subject/station/AD and tampering: an AEAD cannot tell
    /// them apart, and saying more would help an attacker probe.
    #[error("{what}: authentication failed (wrong key, subject or station, or tampered bytes)")]
    Authentication { what: &'static str },
    #[error("template value {index} is not finite")]
    NotFinite { index: usize },
    #[error("key rotation: the new master key has the same id {0} as the old one")]
    SameKeyId(KeyId),
    #[error("station wrap: key exchange with a low-order public key; refused")]
    WeakKey,
    #[error("{what}: encryption failed")]
    Encrypt { what: &'static str },
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, SealError> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut()).map_err(SealError::Random)?;
    Ok(b)
}

fn header(kind: u8, id: u32) -> [u8; HEADER_LEN] {
    let id = id.to_be_bytes();
    [FORMAT_VERSION, kind, id[0], id[1], id[2], id[3]]
}

/// Checks length, version and kind; returns the header id. Runs before any crypto so that garbage and
/// truncated input gets a precise error and never reaches an index that could panic.
fn check_blob(
    what: &'static str,
    bytes: &[u8],
    kind: u8,
    expected_len: usize,
) -> Result<u32, SealError> {
    if bytes.len() != expected_len {
        return Err(SealError::Length {
            what,
            len: bytes.len(),
            expected: expected_len,
        });
    }
    let (&[version, found, a, b, c, d], _) =
        bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(SealError::Length {
                what,
                len: bytes.len(),
                expected: expected_len,
            })?;
    if version != FORMAT_VERSION {
        return Err(SealError::Version {
            what,
            found: version,
        });
    }
    if found != kind {
        return Err(SealError::Kind {
            what,
            found,
            expected: kind,
        });
    }
    Ok(u32::from_be_bytes([a, b, c, d]))
}

/// AEAD-encrypts `plaintext`, appending nonce ‖ ciphertext ‖ tag to `out` (which holds the AD prefix).
fn seal_into(
    what: &'static str,
    key: &[u8; KEY_LEN],
    out: &mut Vec<u8>,
    ad_suffix: &[u8],
    plaintext: &[u8],
) -> Result<(), SealError> {
    let nonce = random::<NONCE_LEN>()?;
    let mut ad = out.clone();
    ad.extend_from_slice(ad_suffix);
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| SealError::Encrypt { what })?;
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&ct);
    Ok(())
}

/// Opens `blob[prefix..]` = nonce ‖ ciphertext ‖ tag, with AD = `blob[..prefix]` ‖ `ad_suffix`.
fn open_at(
    what: &'static str,
    key: &[u8; KEY_LEN],
    blob: &[u8],
    prefix: usize,
    ad_suffix: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let auth = || SealError::Authentication { what };
    let (ad_prefix, rest) = blob.split_at_checked(prefix).ok_or_else(auth)?;
    let (nonce, ct) = rest.split_first_chunk::<NONCE_LEN>().ok_or_else(auth)?;
    let mut ad = ad_prefix.to_vec();
    ad.extend_from_slice(ad_suffix);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(&XNonce::from(*nonce), Payload { msg: ct, aad: &ad })
        .map(Zeroizing::new)
        .map_err(|_| auth())
}
