//! Process plumbing shared by the driver binaries: their `main`, logging set-up and the stop signal.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;

use crate::DriverError;
use crate::settings::DriverSettings;

pub use supervise::terminated;

/// The stop signal a driver runs until: SIGTERM or ctrl-c ([`terminated`]).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The body of every driver binary: parse the flags (clap prints usage and exits on bad ones), log to
/// stderr (`protocol::logging`), run the driver until SIGTERM or ctrl-c.
///
/// Under systemd (`Type=notify`) the driver says it is ready once its loop runs, i.e. after every
/// subscription and gated's liveliness watch are declared, and pings the watchdog from that loop:
/// the loop polls its stop signal on every turn, and [`supervise::supervised`] does both there.
pub async fn main<S, F>(name: &'static str, run: fn(S, Shutdown) -> F) -> anyhow::Result<()>
where
    S: DriverSettings,
    F: Future<Output = Result<(), DriverError>>,
{
    let settings = S::parse();
    protocol::logging::init("info", settings.bus().log_format);
    let shutdown = supervise::supervised(terminated(), name);
    run(settings, Box::pin(shutdown)).await.context(name)
}
