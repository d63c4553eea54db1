//! What every long-running process of the gate (gated, door-driver, light-driver, enrold) tells its
//! service manager, and the stop signal they all obey. The units in `deploy/systemd/` are
//! `Type=notify` with `WatchdogSec=`, so systemd starts what depends on a process only once it said
//! [`ready`], and restarts it when its main loop stops pinging the [`Watchdog`]
//! (`docs/deploy.md`).
//!
//! Not under systemd (`NOTIFY_SOCKET` unset: a terminal, the tests, the demo) every call here does
//! nothing, so the binaries need no flag for it.

pub mod notify_socket;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tracing::{debug, warn};

/// `READY=1` with a one-line `STATUS=` (what `systemctl status` shows). Call it once the process
/// does what it is for, not merely when it runs: systemd starts the units ordered after it then.
pub fn ready(status: &str) {
    send(
        &[NotifyState::Ready, NotifyState::Status(status)],
        "READY=1",
    );
}

/// `STOPPING=1`: the process is shutting down on purpose, so a slow exit is not taken for a hang.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(states: &[NotifyState], what: &str) {
    match sd_notify::notify(states) {
        Ok(()) => debug!("{what} sent to the service manager"),
        // The service manager acts on what it does not hear (a start timeout, a watchdog restart),
        // so a lost notification shows up there; stopping the process here would only make it
        // worse.
        Err(e) => warn!(error = %e, "cannot notify the service manager ({what})"),
    }
}

/// `WATCHDOG=1` at half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises, so one late ping
/// does not cost a restart. Off when systemd set no watchdog for this process (`WATCHDOG_PID`
/// names another process, e.g. gated's for a driver gated spawned itself).
#[derive(Debug, Clone)]
pub struct Watchdog {
    every: Option<Duration>,
    next: Instant,
}

impl Watchdog {
    pub fn from_env() -> Self {
        Self::every(sd_notify::watchdog_enabled().map(|timeout| timeout / 2))
    }

    /// A watchdog pinging every `every` (`None`: never).
    pub fn every(every: Option<Duration>) -> Self {
        Self {
            every,
            next: Instant::now(),
        }
    }

    /// How often it pings; `None` when off.
    pub fn period(&self) -> Option<Duration> {
        self.every
    }

    /// Resolves when the next ping is due; never when the watchdog is off. It borrows nothing, so
    /// a `select!` loop can take it in one branch and [`Watchdog::ping`] in that branch's body.
    pub fn due(&self) -> impl Future<Output = ()> + Send + 'static {
        let (every, next) = (self.every, self.next);
        async move {
            match every {
                Some(_) => tokio::time::sleep_until(next).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Pings now, and sets the next ping one period on.
    pub fn ping(&mut self) {
        let Some(every) = self.every else {
            return;
        };
        if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
            warn!(error = %e, "cannot ping the service manager's watchdog");
        }
        self.next = Instant::now() + every;
    }

    /// Pings if a ping is due.
    pub fn ping_if_due(&mut self) {
        if self.every.is_some() && Instant::now() >= self.next {
            self.ping();
        }
    }
}

/// Resolves on SIGTERM (how systemd stops a service) or ctrl-c.
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
            Err(e) => warn!(error = %e, "cannot listen for SIGTERM; only ctrl-c stops the process"),
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

/// Wraps the stop signal of a loop that polls it on every turn (the drivers' loop does, at least
/// every 10 ms control tick): the first poll says [`ready`] (the loop is running, so everything it
/// declared before it is in place), every poll pings the watchdog when due (the pings stop when the
/// loop stops turning), and the signal's arrival says [`stopping`].
///
/// This lets a loop that takes only a stop future be supervised without changing the loop.
pub fn supervised<F>(shutdown: F, status: &'static str) -> Supervised<F>
where
    F: Future<Output = ()>,
{
    Supervised {
        inner: Box::pin(shutdown),
        status: Some(status),
        watchdog: Watchdog::from_env(),
    }
}

/// See [`supervised`].
pub struct Supervised<F> {
    inner: Pin<Box<F>>,
    /// The `STATUS=` of the ready notification, until it is sent.
    status: Option<&'static str>,
    watchdog: Watchdog,
}

impl<F: Future<Output = ()>> Future for Supervised<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(status) = this.status.take() {
            ready(status);
        }
        this.watchdog.ping_if_due();
        let polled = this.inner.as_mut().poll(cx);
        if polled.is_ready() {
            stopping();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_off_watchdog_is_never_due() {
        let w = Watchdog::every(None);
        let due = tokio::time::timeout(Duration::from_millis(200), w.due()).await;
        assert!(due.is_err());
        assert_eq!(w.period(), None);
    }

    #[tokio::test]
    async fn a_ping_puts_the_next_one_period_on() {
        let every = Duration::from_millis(100);
        let mut w = Watchdog::every(Some(every));
        let t0 = Instant::now();
        w.due().await; // due at once: the first ping goes out at start
        assert!(t0.elapsed() < every);
        w.ping();
        let t1 = Instant::now();
        w.due().await;
        assert!(t1.elapsed() >= every, "{:?}", t1.elapsed());
        w.ping_if_due(); // due: pings, and puts the next one a period on
        assert!(tokio::time::timeout(every / 2, w.due()).await.is_err());
    }
}
