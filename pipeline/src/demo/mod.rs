//! `gated demo`: the station on an embedded configuration — four generated lanes (normal, dark,
//! bright, noisy), drivers started as child processes, operator commands sent through `gated ctl`'s
//! path — for a bounded time, then a per-lane table.

use std::net::TcpListener;
use std::time::Duration;

use protocol::DoorAction;
use tracing::{info, warn};

use crate::config::StationConfig;
use crate::station::{RunOptions, RunReport, StationError};

pub const DEMO_CONFIG: &str = include_str!("../../docs/demo-station.toml");

fn free_port() -> Result<u16, StationError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| StationError::Io(format!("no free loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| StationError::Io(e.to_string()))
}

/// The demo config with fresh loopback ports and a store in a temporary folder, so a demo never
/// collides with a station (or another demo) running on the same machine.
pub fn demo_config(store_dir: &std::path::Path) -> Result<StationConfig, StationError> {
    let mut cfg = StationConfig::parse(DEMO_CONFIG, "docs/demo-station.toml")
        .map_err(|e| StationError::Io(e.to_string()))?;
    cfg.zenoh.listen = vec![format!("tcp/127.0.0.1:{}", free_port()?)];
    cfg.drivers.door_listen = format!("tcp/127.0.0.1:{}", free_port()?);
    cfg.drivers.light_listen = format!("tcp/127.0.0.1:{}", free_port()?);
    cfg.metrics.listen = format!("127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(|e| StationError::Io(format!("{e}")))?;
    cfg.store.path = store_dir.join("demo.redb");
    Ok(cfg)
}

pub async fn run(seconds: u64) -> Result<RunReport, StationError> {
    let dir = std::env::temp_dir().join(format!("gate-demo-{}", std::process::id()));
    let cfg = demo_config(&dir)?;
    println!(
        "demo: {} lanes for {seconds} s; metrics at http://{}/metrics",
        cfg.lanes.len(),
        cfg.metrics.listen
    );
    let station = cfg.station_id().to_owned();
    let endpoints = cfg.zenoh.listen.clone();
    // The operator's part of the demo: a grant on L1 and a held-open exit lane, sent the way
    // `gated ctl` sends them.
    let script = tokio::spawn(async move {
        for (wait_s, lane, action) in [(3, "L1", DoorAction::Open), (2, "L4", DoorAction::HoldOpen)]
        {
            tokio::time::sleep(Duration::from_secs(wait_s)).await;
            match crate::ctl::request(
                &station,
                &endpoints,
                Some((lane.into(), action)),
                Duration::from_secs(3),
            )
            .await
            {
                Ok(r) => info!(ok = r.ok, msg = %r.message, "demo operator command"),
                Err(e) => warn!(error = %e, "demo operator command failed"),
            }
        }
    });
    let report = crate::station::run(
        cfg,
        RunOptions {
            duration: Some(Duration::from_secs(seconds)),
        },
    )
    .await;
    script.abort();
    let _ = std::fs::remove_dir_all(&dir);
    report
}
