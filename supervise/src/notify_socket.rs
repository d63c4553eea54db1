//! A stand-in for systemd's notification socket, for the binaries' tests: start a binary with
//! `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) pointing here and read what it says, as systemd would.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds `notify.sock` in `dir` (a fresh temporary folder: the path must not exist).
    pub fn bind(dir: &Path) -> io::Result<Self> {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path)?;
        Ok(Self { socket, path })
    }

    /// The value for the child's `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next message (its `KEY=value` lines), or `None` when nothing came within `within`.
    pub fn recv(&self, within: Duration) -> io::Result<Option<String>> {
        self.socket.set_read_timeout(Some(within))?;
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads messages until one has the line `line` (e.g. `READY=1`); returns every message read,
    /// that one last, or an error naming what came instead when `within` runs out.
    pub fn wait_for(&self, line: &str, within: Duration) -> io::Result<Vec<String>> {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(msg) = self.recv(left.max(Duration::from_millis(1)))? else {
                break;
            };
            let found = msg.lines().any(|l| l == line);
            seen.push(msg);
            if found {
                return Ok(seen);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no {line} within {within:?}; got {seen:?}"),
        ))
    }
}
