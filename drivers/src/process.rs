//! Process plumbing shared by the two binaries: their `main`, logging set-up and the stop signal.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use tracing::warn;

use crate::DriverError;
use crate::settings::DriverSettings;

/// The stop signal a driver runs until: SIGTERM or ctrl-c ([`terminated`]).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The body of both binaries: parse the flags (clap prints usage and exits on bad ones), log to
/// stderr (`protocol::logging`), run the driver until SIGTERM or ctrl-c.
pub async fn main<S, F>(name: &'static str, run: fn(S, Shutdown) -> F) -> anyhow::Result<()>
where
    S: DriverSettings,
    F: Future<Output = Result<(), DriverError>>,
{
    let settings = S::parse();
    protocol::logging::init("info", settings.bus().log_format);
    run(settings, Box::pin(terminated())).await.context(name)
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
