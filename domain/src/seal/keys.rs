//! Master keys, data keys and key files.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{KEY_LEN, SealError, random};

/// Identifies a master key (or a station key) inside wrapped blobs, so a reader can tell which key a
/// blob needs and rotation can tell old wraps from new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A per-subject data key. Deleting its wrapped copy is crypto-shredding: the sealed template is then
/// unreadable by anyone, whatever copies of it remain. Zeroized on drop; not `Clone` so that no stray
/// copies exist.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> Result<Self, SealError> {
        Ok(Self(*random::<KEY_LEN>()?))
    }

    /// Fills the key in place from decrypted bytes, so no unzeroized copy is left on the stack.
    pub(crate) fn from_plaintext(plain: &[u8]) -> Option<Self> {
        let mut key = Self([0; KEY_LEN]);
        (plain.len() == KEY_LEN).then(|| key.0.copy_from_slice(plain))?;
        Some(key)
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The centre's master key: wraps every data key. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    #[zeroize(skip)]
    id: KeyId,
    key: [u8; KEY_LEN],
}

impl MasterKey {
    pub fn from_bytes(id: KeyId, key: [u8; KEY_LEN]) -> Self {
        Self { id, key }
    }

    /// A fresh key from the OS random generator (for `rotate`: write it with [`write_key_file`]).
    pub fn generate(id: KeyId) -> Result<Self, SealError> {
        Ok(Self::from_bytes(id, *random::<KEY_LEN>()?))
    }

    /// Reads a key file (see [`read_key_file`] for what is accepted).
    pub fn load_file(id: KeyId, path: &Path) -> Result<Self, SealError> {
        Ok(Self::from_bytes(id, *read_key_file(path)?))
    }

    /// Reads 64 hex digits from an environment variable. Weaker than a key file (the environment is
    /// readable in `/proc/<pid>/environ` by the same user and root, and is inherited by children); meant
    /// for containers whose secret store injects it.
    pub fn from_env(id: KeyId, var: &str) -> Result<Self, SealError> {
        let value =
            std::env::var_os(var).ok_or_else(|| SealError::KeyEnvMissing { var: var.into() })?;
        let value = Zeroizing::new(value.into_encoded_bytes());
        Self::from_env_value(id, var, &value)
    }

    pub(crate) fn from_env_value(id: KeyId, var: &str, value: &[u8]) -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        let ok = std::str::from_utf8(value).is_ok_and(|s| crate::hex::decode_into(s, key.as_mut()));
        if !ok {
            return Err(SealError::KeyEnvFormat {
                var: var.into(),
                len: value.len(),
            });
        }
        Ok(Self::from_bytes(id, *key))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    pub(crate) fn hex(&self) -> Zeroizing<String> {
        hex_of(&self.key)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey {{ id: {}, .. }}", self.id)
    }
}

pub(crate) fn hex_of(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Zeroizing::new(String::with_capacity(bytes.len() * 2 + 1));
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Reads a 32-byte key from `path`.
///
/// The file must be a regular file with no permission bits for group or others (0600 or 0400), checked
/// on the open handle so it cannot be swapped between check and read; and hold exactly 32 raw bytes, or
/// exactly 64 hex digits with at most one trailing newline. Anything else is refused, because a key that
/// is readable by others or silently truncated is worse than no key.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    let io = |source| SealError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SealError::KeyFileNotRegular {
            path: path.to_path_buf(),
        });
    }
    check_mode(path, &meta)?;

    // A fixed buffer, one byte longer than the longest valid file, so an oversized file is detected
    // without reading it all and no reallocation leaves key bytes behind in freed memory.
    let mut buf = Zeroizing::new([0u8; 66]);
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let content = &buf[..len];
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let hex = content.strip_suffix(b"\n").unwrap_or(content);
    let ok = match content.len() {
        KEY_LEN => {
            key.copy_from_slice(content);
            true
        }
        64 | 65 => std::str::from_utf8(hex).is_ok_and(|s| crate::hex::decode_into(s, key.as_mut())),
        _ => false,
    };
    if !ok {
        return Err(SealError::KeyFileFormat {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(key)
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), SealError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SealError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(path: &Path, _meta: &std::fs::Metadata) -> Result<(), SealError> {
    // Without unix modes the 0600 rule cannot be checked, and an unchecked key file is refused.
    Err(SealError::KeyFilePermissions {
        path: path.to_path_buf(),
        mode: 0,
    })
}

/// Writes `key` as 64 hex digits and a newline to a new file created with mode 0600. Refuses to
/// overwrite: losing a master key loses every template sealed under it.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), SealError> {
    write_secret_file(path, &key.hex())
}

pub(crate) fn write_secret_file(path: &Path, hex: &str) -> Result<(), SealError> {
    let io = |source| SealError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    // A missing folder (e.g. /etc/enrold on a fresh machine) is made, readable by the owner only.
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(|source| SealError::KeyFileIo {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            SealError::KeyFileExists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    })?;
    let mut line = Zeroizing::new(String::with_capacity(hex.len() + 1));
    line.push_str(hex);
    line.push('\n');
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}
