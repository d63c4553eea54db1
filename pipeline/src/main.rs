//! gated: the station gate daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pipeline::config::StationConfig;
use protocol::DoorAction;

#[derive(Parser)]
#[command(
    name = "gated",
    version,
    about = "Walk-through face gate: station daemon"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log as `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(long, global = true, default_value = "text")]
    log_format: protocol::logging::LogFormat,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the station described by a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Stop after this many seconds (default: until SIGTERM or ctrl-c, or until recorded footage
        /// ends).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Run the demo station on recorded footage (default: testdata/footage/default, made by
    /// scripts/setup): walkers enrolled at an in-process centre, drivers started for you, and a table
    /// of decisions against the footage's ground truth at the end (✓/✗ per walker). The footage plays
    /// in real time, as live cameras would deliver it. Exits non-zero when any walker's decision
    /// differs from the ground truth.
    Demo {
        /// A footage folder (truth.json + one MP4 per lane) from `gate-calibrate footage`.
        #[arg(long)]
        footage: Option<std::path::PathBuf>,
        /// Benchmark mode: process every frame, as fast as the station can, instead of playing the
        /// footage at its own speed (newest frame only).
        #[arg(long)]
        every_frame: bool,
        /// Serve the live lane view (and /metrics, /healthz, /readyz) on this address while the
        /// footage plays, e.g. 127.0.0.1:9464; otherwise on a free loopback port.
        #[arg(long)]
        view: Option<std::net::SocketAddr>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Station keys for the template distribution.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// The station's bus certificates: a CA, one certificate per role (mutual TLS and access
    /// control on every zenoh link; docs/protocol.md, "Bus security").
    Certs {
        #[command(subcommand)]
        cmd: CertsCmd,
    },
    /// Journal entries (door commands, lane events, lighting, decisions), newest last: asked of the
    /// running gated, or read from the store file when gated is stopped.
    Journal {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        lane: Option<String>,
        /// door_command, lane_event, lighting, station or decision.
        #[arg(long)]
        kind: Option<String>,
        /// Decisions with this outcome (open, closed, tailgating, not_decided, attack).
        #[arg(long)]
        outcome: Option<String>,
        /// Entries whose detail contains this text.
        #[arg(long)]
        contains: Option<String>,
        /// Only the last N minutes.
        #[arg(long)]
        minutes: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Operator commands to a running gated.
    Ctl {
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of a table (status) or a line (door).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        cmd: CtlCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and validate a station file; errors name the file, line and key.
    Check { file: PathBuf },
    /// Print the annotated example station file.
    Example {
        /// Put certificates, keys and the store under this folder instead of /etc/gate and
        /// /var/lib/gate (a test box, or a station kept in one folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// One lane per recording of this footage folder (truth.json + an MP4 per lane, e.g.
        /// testdata/footage/default) instead of the example's camera and RTSP stream.
        #[arg(long)]
        footage: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Write a new X25519 station secret key (mode 0600, never overwrites) and print the public key
    /// to register at the centre.
    Init {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        key_id: u32,
    },
}

#[derive(Subcommand)]
enum CertsCmd {
    /// Make the station's CA in DIR (ca.pem, and ca.key mode 0600); never overwrites one. With
    /// --all, also issue every role's certificate (a single-box station).
    Init {
        #[arg(long)]
        station: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        all: bool,
    },
    /// Issue (or re-issue) ROLE's certificate and key in DIR, signed by DIR's CA: gated,
    /// door-driver, light-driver, enrold, operator or sim.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = protocol::certs::ROLE_DAYS)]
        days: u32,
        /// A DNS name or IP address HTTPS clients reach this node by (repeatable): enrold's API.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Re-issue every role certificate in DIR with new keys (rotation); restart the processes to
    /// load them.
    Rotate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = protocol::certs::ROLE_DAYS)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Lane states, frame counters, doors and lights.
    Status,
    /// Open (one passage), close, hold open/closed, or release a lane's door.
    Door { lane: String, action: DoorCmd },
}

#[derive(Clone, Copy, ValueEnum)]
enum DoorCmd {
    Open,
    Close,
    HoldOpen,
    HoldClosed,
    Release,
}

fn certs(cmd: CertsCmd) -> Result<()> {
    use protocol::{CertDir, Role};
    match cmd {
        CertsCmd::Init { station, out, all } => {
            let dir = CertDir::new(&out);
            dir.init(&station)?;
            println!("wrote {} and ca.key (mode 0600)", dir.ca().display());
            if all {
                for r in Role::ALL {
                    dir.issue(r, protocol::certs::ROLE_DAYS)?;
                }
                println!("issued every role's certificate in {}", out.display());
            }
        }
        CertsCmd::Issue {
            dir,
            role,
            days,
            hosts,
        } => {
            let role: Role = role.parse()?;
            let d = CertDir::new(&dir);
            d.issue_for(role, days, &hosts)?;
            println!(
                "wrote {} and {} (mode 0600), valid {days} days",
                d.cert(role).display(),
                d.key(role).display()
            );
        }
        CertsCmd::Rotate { dir, days } => {
            let renewed = CertDir::new(&dir).rotate(days)?;
            let names: Vec<&str> = renewed.iter().map(|r| r.name()).collect();
            println!(
                "renewed {} (valid {days} days); restart them to load the new keys",
                names.join(", ")
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `ctl` and `journal` are one-shot clients whose printed answer (or error naming the lane) says
    // whether they got through; the transport's own errors about the peers it meets on the way
    // (gossip links another client already holds) only alarm the operator. RUST_LOG shows them.
    let filter = match cli.cmd {
        Cmd::Ctl { .. } | Cmd::Journal { .. } => "info,zenoh=off",
        _ => "info,zenoh=error",
    };
    protocol::logging::init(filter, cli.log_format);
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gated: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.cmd {
        Cmd::Run { config, seconds } => {
            let cfg = StationConfig::load(&config)?;
            let report = rt.block_on(pipeline::station::run(
                cfg,
                pipeline::station::RunOptions {
                    duration: seconds.map(Duration::from_secs),
                },
            ))?;
            print!("{}", pipeline::station::format_report(&report));
            if report.gpu_lost {
                // A non-zero exit, so the supervisor (systemd `Restart=always`) starts gated again
                // on a fresh device.
                anyhow::bail!(
                    "the GPU device was lost; the doors were sent to their safe position"
                );
            }
        }
        Cmd::Demo {
            footage,
            every_frame,
            view,
        } => {
            let run = rt.block_on(pipeline::demo::run(footage, !every_frame, view))?;
            print!("{}", pipeline::station::format_report(&run.report));
            print!("{}", pipeline::demo::format_decisions(&run));
            let card = run.score();
            let wrong = card.wrong().count();
            if wrong > 0 {
                anyhow::bail!(
                    "demo: {wrong} of {} walkers decided differently from the footage's ground truth (✗ in the table above)",
                    card.walkers.len()
                );
            }
        }
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => {
            let cfg = StationConfig::load(&file)?;
            println!(
                "{}: ok (station {}, {} lanes)",
                file.display(),
                cfg.station_id(),
                cfg.lanes.len()
            );
        }
        Cmd::Config {
            cmd: ConfigCmd::Example { dir, footage },
        } => print!(
            "{}",
            pipeline::demo::example::station_example(dir.as_deref(), footage.as_deref())
                .context("config example")?
        ),
        Cmd::Keys {
            cmd: KeysCmd::Init { out, key_id },
        } => {
            let k = domain::seal::StationSecretKey::generate(domain::seal::KeyId(key_id))?;
            k.write_file(&out)?;
            println!("wrote {} (mode 0600)", out.display());
            println!(
                "public_key = \"{}\"   # key_id = {key_id}; register it in the centre's [[distribution.station]]",
                domain::changes::public_to_hex(&k.public_key().key)
            );
        }
        Cmd::Certs { cmd } => certs(cmd)?,
        Cmd::Journal {
            config,
            lane,
            kind,
            outcome,
            contains,
            minutes,
            limit,
            json,
        } => {
            let cfg = StationConfig::load(&config)?;
            if outcome.is_some() && contains.is_some() {
                anyhow::bail!("give --outcome or --contains, not both");
            }
            let q = protocol::JournalQuery {
                lane,
                kind: if outcome.is_some() {
                    Some("decision".into())
                } else {
                    kind
                },
                since_unix_ms: minutes
                    .map(|m| protocol::unix_ms().saturating_sub(m.saturating_mul(60_000))),
                contains: outcome.map(|o| format!("\"outcome\":{o:?}")).or(contains),
                limit,
            };
            // A running gated holds the file locked: then it answers the query itself.
            let lines = match pipeline::store::query_journal_file(&cfg.store.path, &q) {
                Ok(lines) => lines,
                Err(file_err) => rt
                    .block_on(pipeline::ctl::journal(
                        cfg.station_id(),
                        &cfg.operator_endpoints()?,
                        q,
                        Duration::from_secs(3),
                    ))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the journal: the file: {file_err}; the running gated: {e}"
                        )
                    })?,
            };
            if json {
                for l in &lines {
                    println!("{}", serde_json::to_string(l).context("printing")?);
                }
            } else {
                print!("{}", pipeline::ctl::format_journal(&lines));
            }
        }
        Cmd::Ctl { config, json, cmd } => {
            let cfg = StationConfig::load(&config)?;
            let (station, endpoints) = (cfg.station_id(), &cfg.operator_endpoints()?);
            let wait = Duration::from_secs(5);
            match cmd {
                CtlCmd::Status => {
                    let reply =
                        rt.block_on(pipeline::ctl::request(station, endpoints, None, wait))?;
                    if !reply.ok {
                        anyhow::bail!("gated refused: {}", reply.message);
                    }
                    let h = reply.health.context("gated sent no status")?;
                    if json {
                        let text = serde_json::to_string_pretty(&h).context("printing status")?;
                        println!("{text}");
                    } else {
                        print!("{}", pipeline::ctl::format_status(&h));
                    }
                }
                CtlCmd::Door { lane, action } => {
                    let action = match action {
                        DoorCmd::Open => DoorAction::Open,
                        DoorCmd::Close => DoorAction::Close,
                        DoorCmd::HoldOpen => DoorAction::HoldOpen,
                        DoorCmd::HoldClosed => DoorAction::HoldClosed,
                        DoorCmd::Release => DoorAction::Release,
                    };
                    let (reply, state) =
                        rt.block_on(pipeline::ctl::door(station, endpoints, &lane, action, wait))?;
                    if json {
                        let text =
                            serde_json::to_string_pretty(&state).context("printing state")?;
                        println!("{text}");
                    } else {
                        println!(
                            "{}; acknowledged by the door driver: flap {:?}, mode {:?}{}",
                            reply.message,
                            state.flap,
                            state.mode,
                            if state.reason.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", state.reason)
                            }
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
