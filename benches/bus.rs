//! What bus security costs a door command (issue 15): the round trip of a door-command-sized message
//! from a "gated" session to a "driver" session and of its state back, on loopback, over
//! - plain TCP (`insecure`, the floor: the same zenoh, no TLS, no access control),
//! - mutual TLS without access control,
//! - mutual TLS with the station's access control (what stations run),
//!
//! all measured in the same run, interleaved round by round so that machine noise hits each alike.
//! Also the time from opening a session to the first round trip (TLS handshake included).
//!
//! `cargo bench -p gate-benches --bench bus [-- --rounds N]`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use protocol::{BusSecurity, CertDir, Keys, Role, ZenohEndpoints, zenoh_config};
use zenoh::Session;

fn port() -> Result<u16> {
    Ok(pipeline::demo::free_port()?)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    TlsOnly,
    TlsAcl,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain TCP (insecure, floor)",
            Mode::TlsOnly => "mutual TLS, no access control",
            Mode::TlsAcl => "mutual TLS + access control (station)",
        }
    }
}

fn config(
    mode: Mode,
    certs: &CertDir,
    role: Role,
    listen: bool,
    ep: &str,
) -> Result<zenoh::Config> {
    let eps = vec![ep.to_owned()];
    let (listen, connect) = if listen { (eps, vec![]) } else { (vec![], eps) };
    let security = match mode {
        Mode::Plain => BusSecurity::Insecure,
        _ => BusSecurity::Tls(certs.tls(role)?),
    };
    let mut c = zenoh_config(&ZenohEndpoints {
        listen,
        connect,
        security,
    })?;
    if mode == Mode::TlsOnly {
        c.insert_json5("access_control/enabled", "false")
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(c)
}

/// A driver that answers every door command with a state of the same size, and the gated that
/// times the round trips.
struct Pair {
    gated: Session,
    driver: Session,
    states: zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    _echo: zenoh::pubsub::Subscriber<()>,
    connect: Duration,
}

const CMD: &str = r#"{"v":2,"epoch":"5f0c2a9e8d7b6a5f4e3d2c1b0a998877","seq":123456,"deadline_ms":987654321,"action":"heartbeat"}"#;

async fn pair(mode: Mode, certs: &CertDir, keys: &Keys) -> Result<Pair> {
    let ep = match mode {
        Mode::Plain => format!("tcp/127.0.0.1:{}", port()?),
        _ => format!("tls/127.0.0.1:{}", port()?),
    };
    let driver = zenoh::open(config(mode, certs, Role::DoorDriver, true, &ep)?)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let (cmd, state) = (keys.door_cmd("L1"), keys.door_state("L1"));
    let replier = driver.clone();
    let state_key = state.clone();
    let echo = driver
        .declare_subscriber(cmd.clone())
        .callback(move |s| {
            let bytes = s.payload().to_bytes().to_vec();
            let replier = replier.clone();
            let key = state_key.clone();
            tokio::spawn(async move {
                let _ = replier.put(key, bytes).await;
            });
        })
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let t = Instant::now();
    let gated = zenoh::open(config(mode, certs, Role::Gated, false, &ep)?)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let states = gated
        .declare_subscriber(state)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    // Until the link is up and the subscriptions are known, puts go nowhere: retry.
    loop {
        gated.put(&cmd, CMD).await.map_err(|e| anyhow!("{e}"))?;
        if tokio::time::timeout(Duration::from_millis(20), states.recv_async())
            .await
            .is_ok()
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(anyhow!("{}: no round trip within 10 s", mode.name()));
        }
    }
    let connect = t.elapsed();
    // Drain late echoes of the retries.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while states.try_recv().ok().flatten().is_some() {}
    Ok(Pair {
        gated,
        driver,
        states,
        _echo: echo,
        connect,
    })
}

async fn round_trip(p: &Pair, key: &str) -> Result<f64> {
    let t = Instant::now();
    p.gated.put(key, CMD).await.map_err(|e| anyhow!("{e}"))?;
    tokio::time::timeout(Duration::from_secs(2), p.states.recv_async())
        .await
        .context("no echo within 2 s")?
        .map_err(|e| anyhow!("{e}"))?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).context("--rounds needs a value")?.parse()?,
        None => 2000,
    };
    let dir = tempfile::tempdir()?;
    let certs = CertDir::new(dir.path().join("certs"));
    certs.ensure_all("bench")?;
    let keys = Keys::new("bench")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let modes = [Mode::Plain, Mode::TlsOnly, Mode::TlsAcl];
        let mut pairs = Vec::new();
        for m in modes {
            pairs.push(pair(m, &certs, &keys).await?);
        }
        let cmd = keys.door_cmd("L1");
        let mut ms = vec![Vec::with_capacity(rounds); modes.len()];
        for _ in 0..rounds {
            for (i, p) in pairs.iter().enumerate() {
                ms[i].push(round_trip(p, &cmd).await?);
            }
        }
        let (floor50, floor99) = percentiles(ms[0].clone());
        println!(
            "door command → state round trip on loopback, {rounds} rounds per mode, interleaved"
        );
        println!(
            "{:<40} {:>9} {:>9} {:>9} {:>12}",
            "", "p50 ms", "p99 ms", "p50/floor", "connect ms"
        );
        for (i, m) in modes.iter().enumerate() {
            let (p50, p99) = percentiles(ms[i].clone());
            println!(
                "{:<40} {p50:>9.3} {p99:>9.3} {:>9.2} {:>12.1}",
                m.name(),
                p50 / floor50,
                pairs[i].connect.as_secs_f64() * 1e3
            );
        }
        println!("(floor p99 {floor99:.3} ms)");
        for p in pairs {
            p.gated.close().await.map_err(|e| anyhow!("{e}"))?;
            p.driver.close().await.map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    })
}
