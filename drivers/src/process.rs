//! Process plumbing shared by the two binaries: their `main`, logging set-up and the stop signal.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use clap::Parser;
use tracing::warn;
use tracing_subscriber::EnvFilter;

use crate::DriverError;

/// The stop signal a driver runs until: SIGTERM or ctrl-c ([`terminated`]).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The body of both binaries: parse the flags (clap prints usage and exits on bad ones), log to
/// stderr, run the driver until SIGTERM or ctrl-c.
pub async fn main<S, F>(name: &'static str, run: fn(S, Shutdown) -> F) -> anyhow::Result<()>
where
    S: Parser,
    F: Future<Output = Result<(), DriverError>>,
{
    let settings = S::parse();
    init_tracing();
    run(settings, Box::pin(terminated())).await.context(name)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second initialisation (tests, embedding) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGTERM (how service managers stop us) or ctrl-c.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    r = tokio::signal::ctrl_c() => ctrl_c_result(r),
                }
                return;
            }
            Err(e) => warn!(error = %e, "cannot listen for SIGTERM; only ctrl-c stops the driver"),
        }
    }
    ctrl_c_result(tokio::signal::ctrl_c().await);
}

fn ctrl_c_result(r: std::io::Result<()>) {
    if let Err(e) = r {
        // Without a signal handler there is no clean way to be stopped; returning means stopping now
        // rather than running unstoppable.
        warn!(error = %e, "cannot listen for ctrl-c");
    }
}
