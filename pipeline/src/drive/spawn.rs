//! Starting the door and lighting drivers (and, with `card_listen`, the card reader) as child
//! processes (the demo and single-box stations).
//! In a real station they run as their own services; this only saves the operator a step.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};
use tracing::{info, warn};

use super::{DriversConfig, Failsafe, ZenohConfig};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot locate gated itself")]
    OwnPath(#[source] std::io::Error),
    #[error("{name} not found next to {}; build the workspace (cargo build --release --workspace)", exe.display())]
    NotFound { name: &'static str, exe: PathBuf },
    #[error("cannot start {}", bin.display())]
    Start {
        bin: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// The children are killed when this is dropped; [`Drivers::stop`] first lets them fail safe.
pub struct Drivers {
    children: Vec<Child>,
    /// How long they may take to fail safe once gated is gone: the watchdog they were started
    /// with, plus one heartbeat.
    grace: Duration,
}

impl Drivers {
    /// Stops the drivers once gated's session is closed and they have had their grace to notice
    /// and put their lanes in fail-safe (at once on the loss of gated's token, at the latest when
    /// their watchdog runs out). Killed at once, a door driver could go before it did: the door
    /// would keep gated's last command, and on a loaded machine it did (the end-to-end test's door
    /// never reported its fail-safe).
    pub async fn stop(mut self) {
        tokio::time::sleep(self.grace).await;
        for child in &mut self.children {
            if let Err(e) = child.kill().await {
                warn!(pid = child.id().unwrap_or(0), error = %e, "cannot stop a driver");
            }
        }
    }
}

fn binary(name: &'static str) -> Result<PathBuf, SpawnError> {
    let exe = std::env::current_exe().map_err(SpawnError::OwnPath)?;
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
    Err(SpawnError::NotFound { name, exe })
}

/// Starts `door-driver`, `light-driver` and, when `d.card_listen` is set, `card-reader` for the
/// station's lanes, listening where `d` says.
/// They use gated's certificate folder, which on a single box holds every role's certificate.
pub fn spawn(
    d: &DriversConfig,
    bus: &ZenohConfig,
    station: &str,
    lanes: &[String],
) -> Result<Drivers, SpawnError> {
    let lanes: Vec<&str> = lanes.iter().flat_map(|l| ["--lane", l.as_str()]).collect();
    let failsafe = match d.failsafe {
        Failsafe::Open => "open",
        Failsafe::Closed => "closed",
    };
    let mut children = Vec::new();
    let mut drivers = vec![
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
    ];
    if let Some(listen) = &d.card_listen {
        drivers.push(("card-reader", listen, vec![]));
    }
    for (name, listen, extra) in drivers {
        let bin = binary(name)?;
        let child = Command::new(&bin)
            .args(["--station", station, "--listen", listen])
            .args(&lanes)
            .args(&extra)
            .args(bus.driver_security_args())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| SpawnError::Start {
                bin: bin.clone(),
                error,
            })?;
        info!(driver = name, pid = child.id().unwrap_or(0), %listen, "driver started");
        children.push(child);
    }
    Ok(Drivers {
        children,
        grace: Duration::from_millis(d.watchdog_ms.saturating_add(d.heartbeat_ms)),
    })
}
