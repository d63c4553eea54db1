//! How fast the doors reach their fail-safe position when gated dies (issue 15, "Faults, measured"):
//! the built `gated` and `door-driver` processes on a TLS bus with access control, as deployed; an
//! observer holding the operator's certificate watches the door's state. Each run starts gated,
//! waits until the door obeys it (normal mode, gated's epoch), kills gated with SIGKILL and times
//! kill → the first state in `failsafe_closed`. With `--freeze` gated is stopped (SIGSTOP) instead:
//! a hung process whose sockets stay open, so only the driver's watchdog (`--watchdog-ms`) can
//! notice, and that is the bound.
//!
//! `cargo build --release --workspace && cargo bench -p gate-benches --bench failsafe [-- --runs N]
//! [--freeze] [--watchdog-ms N]` (default 1000, the drivers' default; gated's heartbeat then every
//! 30 % of it).
//! (the bench runs the binaries built beside it in `target/release`).

#[path = "common/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use procs::{Killed, binary};
use protocol::{BusSecurity, CertDir, DoorMode, DoorState, Keys, Role, ZenohEndpoints, decode};

const STATION: &str = "faults";

fn port() -> Result<u16> {
    Ok(pipeline::demo::free_port()?)
}

fn station_file(
    dir: &Path,
    certs: &CertDir,
    (gated, door): (u16, u16),
    watchdog_ms: u64,
) -> Result<PathBuf> {
    let path = dir.join("station.toml");
    std::fs::write(
        &path,
        format!(
            "[station]\nid = \"{STATION}\"\n[[lane]]\nid = \"L1\"\nrole = \"entry\"\n\
             source = \"test:pattern=snow\"\nwidth = 64\nheight = 48\nfps = 5\n\
             [zenoh]\nlisten = [\"tls/127.0.0.1:{gated}\"]\nconnect = [\"tls/127.0.0.1:{door}\"]\n\
             certs = {:?}\n[drivers]\nwatchdog_ms = {watchdog_ms}\nheartbeat_ms = {}\n\
             [store]\npath = {:?}\n[metrics]\nenabled = false\n",
            certs.path().display().to_string(),
            watchdog_ms * 3 / 10,
            dir.join("station.redb").display().to_string(),
        ),
    )?;
    Ok(path)
}

/// The next door state that satisfies `want`, with its arrival time.
async fn state_until(
    sub: &zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    within: Duration,
    want: impl Fn(&DoorState) -> bool,
) -> Result<(DoorState, Instant)> {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let s = tokio::time::timeout(left, sub.recv_async())
            .await
            .context("no such door state in time")?
            .map_err(|e| anyhow!("{e}"))?;
        let at = Instant::now();
        let st: DoorState = decode(&s.payload().to_bytes())?;
        if want(&st) {
            return Ok((st, at));
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).context("--runs needs a value")?.parse()?,
        None => 20,
    };
    let freeze = args.iter().any(|a| a == "--freeze");
    let watchdog_ms: u64 = match args.iter().position(|a| a == "--watchdog-ms") {
        Some(i) => args
            .get(i + 1)
            .context("--watchdog-ms needs a value")?
            .parse()?,
        None => 1000,
    };
    let (gated_bin, door_bin) = (binary("gated")?, binary("door-driver")?);
    let dir = tempfile::tempdir()?;
    let certs = CertDir::new(dir.path().join("certs"));
    certs.ensure_all(STATION)?;
    let (gated_port, door_port) = (port()?, port()?);
    let config = station_file(dir.path(), &certs, (gated_port, door_port), watchdog_ms)?;
    let _door = Killed(
        Command::new(&door_bin)
            .args(["--station", STATION, "--lane", "L1", "--failsafe", "closed"])
            .args(["--watchdog-ms", &watchdog_ms.to_string()])
            .arg("--listen")
            .arg(format!("tls/127.0.0.1:{door_port}"))
            .arg("--certs")
            .arg(certs.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let keys = Keys::new(STATION)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ms = rt.block_on(async {
        let observer = zenoh::open(protocol::zenoh_config(&ZenohEndpoints {
            listen: vec![],
            connect: vec![format!("tls/127.0.0.1:{door_port}")],
            security: BusSecurity::Tls(certs.tls(Role::Operator)?),
        })?)
        .await
        .map_err(|e| anyhow!("{e}"))?;
        let states = observer
            .declare_subscriber(keys.door_state("L1"))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut ms = Vec::new();
        for run in 0..runs {
            let mut gated = Killed(
                Command::new(&gated_bin)
                    .args(["run", "--config"])
                    .arg(&config)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
            // gated in control: a normal state naming an epoch (its own; the last one is gone).
            state_until(&states, Duration::from_secs(30), |s| {
                s.mode == DoorMode::Normal && s.epoch.is_some()
            })
            .await
            .with_context(|| format!("run {run}: gated never took the door"))?;
            // Let a few heartbeats pass, as in service.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let t0 = Instant::now();
            if freeze {
                let pid = gated.0.id().to_string();
                if !Command::new("kill")
                    .args(["-STOP", &pid])
                    .status()?
                    .success()
                {
                    bail!("kill -STOP {pid} failed");
                }
            } else {
                gated.0.kill()?;
            }
            let (_, at) = state_until(&states, Duration::from_secs(10), |s| {
                s.mode == DoorMode::FailsafeClosed
            })
            .await
            .with_context(|| format!("run {run}: no fail-safe within 10 s"))?;
            ms.push(at.duration_since(t0).as_secs_f64() * 1e3);
            // A stopped process still dies of SIGKILL (the guard's drop).
            drop(gated);
        }
        observer.close().await.map_err(|e| anyhow!("{e}"))?;
        Ok::<_, anyhow::Error>(ms)
    })?;
    if ms.is_empty() {
        bail!("no runs");
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "gated {} → door state failsafe_closed, {} runs, TLS + access control, loopback",
        if freeze { "SIGSTOP (hung)" } else { "SIGKILL" },
        ms.len()
    );
    println!(
        "min {:.0} ms  p50 {:.0} ms  p90 {:.0} ms  max {:.0} ms   (goal ≤ 500 ms; the driver's watchdog, the bound without link loss: {watchdog_ms} ms)",
        sorted[0],
        at(0.5),
        at(0.9),
        sorted[sorted.len() - 1]
    );
    println!(
        "every run, ms: {}",
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
