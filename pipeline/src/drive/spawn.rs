//! Starting the door and lighting drivers as child processes (the demo and single-box stations).
//! In a real station they run as their own services; this only saves the operator a step.

use std::path::PathBuf;

use tokio::process::{Child, Command};
use tracing::info;

use crate::config::{Failsafe, StationConfig};
use crate::station::StationError;

/// The children are killed when this is dropped.
pub struct Drivers {
    _children: Vec<Child>,
}

fn binary(name: &str) -> Result<PathBuf, StationError> {
    let exe = std::env::current_exe()
        .map_err(|e| StationError::Io(format!("cannot locate gated itself: {e}")))?;
    // Test binaries live one level deeper (target/debug/deps) than the binaries they sit beside.
    let dirs = exe
        .parent()
        .into_iter()
        .chain(exe.parent().and_then(|p| p.parent()));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(StationError::Io(format!(
        "{name} not found next to {}; build the workspace (cargo build --release --workspace)",
        exe.display()
    )))
}

pub fn spawn(cfg: &StationConfig) -> Result<Drivers, StationError> {
    let d = &cfg.drivers;
    let station = cfg.station_id();
    let lanes: Vec<String> = cfg
        .lanes
        .iter()
        .flat_map(|l| ["--lane".to_owned(), l.id.get_ref().clone()])
        .collect();
    let failsafe = match d.failsafe {
        Failsafe::Open => "open",
        Failsafe::Closed => "closed",
    };
    let mut children = Vec::new();
    for (name, listen, extra) in [
        (
            "door-driver",
            &d.door_listen,
            vec![
                "--failsafe".to_owned(),
                failsafe.to_owned(),
                "--watchdog-ms".to_owned(),
                d.watchdog_ms.to_string(),
            ],
        ),
        ("light-driver", &d.light_listen, vec![]),
    ] {
        let bin = binary(name)?;
        let child = Command::new(&bin)
            .args(["--station", station, "--listen", listen])
            .args(&lanes)
            .args(&extra)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| StationError::Io(format!("cannot start {}: {e}", bin.display())))?;
        info!(driver = name, pid = child.id().unwrap_or(0), %listen, "driver started");
        children.push(child);
    }
    Ok(Drivers {
        _children: children,
    })
}
