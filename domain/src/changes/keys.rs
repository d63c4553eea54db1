//! The centre's Ed25519 signing key (a 0600 key file next to the master key) and its public half,
//! pinned on every station.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::ChangeError;
use crate::seal::keys::{hex_of, write_secret_file};
use crate::seal::read_key_file;

/// Signs every change the centre distributes. Zeroized on drop (by ed25519-dalek); never printed.
pub struct CentreSigningKey(SigningKey);

impl CentreSigningKey {
    pub fn generate() -> Result<Self, ChangeError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(ChangeError::Random)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Same key file rules as the master key: 0600, 32 raw bytes or 64 hex digits (the seed).
    pub fn load_file(path: &Path) -> Result<Self, ChangeError> {
        let seed = read_key_file(path).map_err(ChangeError::KeyFile)?;
        Ok(Self::from_bytes(&seed))
    }

    /// Writes the seed to a new 0600 file; refuses to overwrite.
    pub fn write_file(&self, path: &Path) -> Result<(), ChangeError> {
        write_secret_file(path, &hex_of(self.0.as_bytes())).map_err(ChangeError::KeyFile)
    }

    pub fn verifying_key(&self) -> CentreVerifyingKey {
        CentreVerifyingKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for CentreSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CentreSigningKey(..)")
    }
}

/// The centre's Ed25519 public key as configured on a station (64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CentreVerifyingKey(VerifyingKey);

impl CentreVerifyingKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ChangeError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| ChangeError::PublicKey("not a valid Ed25519 public key".into()))
    }

    pub fn from_hex(s: &str) -> Result<Self, ChangeError> {
        Self::from_bytes(&public_from_hex(s)?)
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(self.0.as_bytes())
    }

    pub(crate) fn key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Debug for CentreVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CentreVerifyingKey({})", self.to_hex())
    }
}

/// A 32-byte public key (X25519 or Ed25519) written as 64 hex digits, as in the config files.
pub fn public_from_hex(s: &str) -> Result<[u8; 32], ChangeError> {
    let mut out = [0u8; 32];
    if crate::hex::decode_into(s.trim(), &mut out) {
        Ok(out)
    } else {
        Err(ChangeError::PublicKey(format!(
            "a public key is 64 hex digits, got {} characters",
            s.trim().len()
        )))
    }
}

/// Hex of a public key (for printing at provisioning).
pub fn public_to_hex(key: &[u8; 32]) -> String {
    crate::hex::encode(key)
}
