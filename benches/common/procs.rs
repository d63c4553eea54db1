//! The built binaries the process-level benchmarks start (`failsafe`, `faults`).

use std::path::PathBuf;
use std::process::Child;

use anyhow::{Result, anyhow};

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/release/NAME`, beside the bench's own `deps/` folder.
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} not built: cargo build --release --workspace"))
}
