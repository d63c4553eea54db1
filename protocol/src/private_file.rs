//! Reading a secret from a file that only its owner can read (enrold's API tokens, gated's lane-view
//! operator token): the mode is checked on the open handle, so the file checked is the file read.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Larger than any token file; a bigger one is a mistake, not a secret.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: mode {mode:04o} gives group or others access; `chmod 600` it", path.display())]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{}: larger than 1 MiB", path.display())]
    TooLarge { path: PathBuf },
}

/// The file's text, when group and others have no access to it.
pub fn read(path: &Path) -> Result<String, PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(PrivateFileError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > MAX_BYTES {
        return Err(PrivateFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(io)?;
    Ok(s)
}
