//! systemd's watchdog for `enrold serve` (`WatchdogSec=` in `deploy/systemd/enrold.service`).
//!
//! The ping goes out only after enrold answered its own `GET /healthz` through its listening
//! socket: a wedged accept loop, router or gallery lock then stops the pings and systemd restarts
//! the service, where a bare timer would keep vouching for a process that serves nobody.

use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::warn;

/// Probes and pings every half `WATCHDOG_USEC` until aborted; returns at once without a watchdog.
pub async fn run(listening: SocketAddr) {
    let mut watchdog = supervise::Watchdog::from_env();
    let Some(period) = watchdog.period() else {
        return;
    };
    let target = reachable(listening);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(period, probe(target)).await {
            Ok(Ok(())) => watchdog.ping(),
            Ok(Err(e)) => {
                warn!(error = %format!("{e:#}"), "own /healthz failed: watchdog not pinged")
            }
            Err(_) => warn!(?period, "own /healthz did not answer: watchdog not pinged"),
        }
    }
}

/// A wildcard listen address is reached on the loopback of its family.
fn reachable(listening: SocketAddr) -> SocketAddr {
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listening.port())
}

async fn probe(addr: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .context("send the request")?;
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .await
        .context("read the status line")?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("answered {:?}", status.trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:8440".parse().unwrap();
        let v6: SocketAddr = "[::]:8440".parse().unwrap();
        let named: SocketAddr = "10.0.0.5:8440".parse().unwrap();
        assert_eq!(reachable(v4), "127.0.0.1:8440".parse().unwrap());
        assert_eq!(reachable(v6), "[::1]:8440".parse().unwrap());
        assert_eq!(reachable(named), named);
    }
}
