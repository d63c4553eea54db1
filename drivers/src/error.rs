//! Error types of the library. The binaries wrap them in `anyhow`.

use protocol::ProtocolError;

/// A device could not be driven or read. The door controller turns it into a `fault` with this text as
/// the reason, so the message should tell a maintainer where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HwError {
    #[error("device I/O failed: {0}")]
    Io(String),
    #[error("device refused the command: {0}")]
    Refused(String),
}

/// Why a driver process could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("bus certificate")]
    Cert(#[from] protocol::CertError),
    #[error("zenoh {what}")]
    Zenoh {
        what: String,
        #[source]
        source: zenoh::Error,
    },
    /// A subscription only ends when its session is gone; nothing sensible is left to do but stop.
    #[error("zenoh {what} ended")]
    Ended { what: String },
    #[error("no randomness from the operating system for the driver clock's origin")]
    Random(#[source] getrandom::Error),
}

impl DriverError {
    pub(crate) fn zenoh(what: impl Into<String>) -> impl FnOnce(zenoh::Error) -> Self {
        let what = what.into();
        move |source| Self::Zenoh { what, source }
    }
}
