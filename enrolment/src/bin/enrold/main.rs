//! `enrold`: the central enrolment service (docs/enrolment.md).
//!
//! ```text
//! enrold serve --config enrold.toml
//! enrold config example > enrold.toml
//! enrold keys init --out /etc/enrold/master.key
//! enrold keys rotate --config enrold.toml --new-key /etc/enrold/master-2.key
//! ```

// Fail with an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account;
mod api;
mod app;
mod auth;
mod distribute;
mod enrol;
mod error;
mod telemetry;
mod watchdog;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use domain::seal::{self, KeyId, MasterKey};
use engine::face::FaceChain;
use enrolment::gallery::Gallery;
use enrolment::store::Store;

use enrolment::config::{Config, KeysConfig};

#[derive(Parser)]
#[command(
    name = "enrold",
    about = "Central enrolment service of the walk-through face gate"
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
    /// Run the HTTP API.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /openapi.json` serves), e.g. to
    /// generate a client without a running service.
    Openapi,
    /// Master key management (run with the service stopped: the store is locked while it runs).
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print an annotated example configuration.
    Example {
        /// Put the store, keys, tokens and certificates under this folder instead of /etc/enrold
        /// and /var/lib/enrold (a test box, or a centre kept in one folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a configuration file.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Write a new random master key file (mode 0600; refuses to overwrite).
    Init {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap every data key under a new master key, written to --new-key (or read from it when it
    /// exists, to resume an interrupted rotation). Then point keys.master_key_file at the new file
    /// and destroy the old one.
    Rotate {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        new_key: PathBuf,
    },
    /// Write the centre's distribution keys (Ed25519 signing, X25519 wrap authentication) into DIR as
    /// centre-sign.key and centre-x25519.key (0600) and print their public halves for the stations.
    CentreInit {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    protocol::logging::init("info", cli.log_format);
    if let Err(e) = real_main(cli) {
        eprintln!("enrold: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve { config } => serve(Config::load(&config)?),
        Cmd::Openapi => {
            println!("{}", api::document().to_pretty_json()?);
            Ok(())
        }
        Cmd::Config {
            cmd: ConfigCmd::Example { dir },
        } => {
            print!("{}", enrolment::config::example(dir.as_deref())?);
            Ok(())
        }
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => {
            let cfg = Config::load(&file)?;
            // What `serve` needs besides the file itself, so "ok" means it will start.
            load_master(&cfg.keys, 1).context("the master key")?;
            auth::Tokens::load(&cfg.auth).context("the API tokens")?;
            if let Some(t) = &cfg.tls {
                for (what, p) in [("cert", &t.cert), ("key", &t.key)] {
                    if !p.is_file() {
                        bail!("[tls] {what}: {} not found", p.display());
                    }
                }
            }
            let models = cfg.models_dir();
            if !engine::face::models_present(&models) {
                bail!(
                    "models: the face models are missing from {} (run scripts/setup)",
                    models.display()
                );
            }
            println!(
                "{}: ok (master key, tokens, TLS files and models found)",
                file.display()
            );
            Ok(())
        }
        Cmd::Keys {
            cmd: KeysCmd::Init { out },
        } => {
            seal::write_key_file(&out, &MasterKey::generate(KeyId(1))?)?;
            println!("wrote {} (mode 0600)", out.display());
            Ok(())
        }
        Cmd::Keys {
            cmd: KeysCmd::Rotate { config, new_key },
        } => rotate(&Config::load(&config)?, &new_key),
        Cmd::Keys {
            cmd: KeysCmd::CentreInit { dir },
        } => distribute::centre_init(&dir),
    }
}

fn load_master(keys: &KeysConfig, id: u32) -> Result<MasterKey> {
    match (&keys.master_key_file, &keys.master_key_env) {
        (Some(path), _) => Ok(MasterKey::load_file(KeyId(id), path)?),
        (None, Some(var)) => Ok(MasterKey::from_env(KeyId(id), var)?),
        (None, None) => bail!("keys: no master key configured"),
    }
}

fn rotate(cfg: &Config, new_path: &Path) -> Result<()> {
    let store = Store::open(&cfg.store)?;
    let old_id = store.master_key_id()?;
    let old = load_master(&cfg.keys, old_id)?;
    let new_id = old_id.checked_add(1).context("master key id overflow")?;
    let new = if new_path.exists() {
        println!("resuming with the existing key file {}", new_path.display());
        MasterKey::load_file(KeyId(new_id), new_path)?
    } else {
        let k = MasterKey::generate(KeyId(new_id))?;
        seal::write_key_file(new_path, &k)?;
        k
    };
    let keys = store.wrapped_keys()?;
    let rewrapped = seal::rotate_master_key(&old, &new, keys.iter().map(|(s, w)| (*s, w)))?;
    store.rotate_keys(new_id, &rewrapped, "enrold keys rotate")?;
    println!(
        "master key {old_id} → {new_id}: {} data key(s) re-wrapped. Set keys.master_key_file = {:?}, \
         then destroy the old key file.",
        rewrapped.len(),
        new_path
    );
    tracing::info!(
        old_id,
        new_id,
        count = rewrapped.len(),
        "master key rotated"
    );
    Ok(())
}

fn serve(cfg: Config) -> Result<()> {
    // The key and the tokens are checked before the store is created: a misconfigured first start
    // must not leave an empty store behind.
    load_master(&cfg.keys, 1).context("the master key")?;
    let tokens = auth::Tokens::load(&cfg.auth)?;
    let store = Arc::new(Store::open(&cfg.store)?);
    let master = Arc::new(load_master(&cfg.keys, store.master_key_id()?)?);
    let gallery = Gallery::load(&store, &master, cfg.template_version)?;
    let models = cfg.models_dir();
    let faces = FaceChain::load(&models)?;
    tracing::info!(
        store = %cfg.store.display(),
        subjects = gallery.len(),
        models = %models.display(),
        backend = ?cfg.backend,
        master_key_id = master.id().0,
        "enrold starting"
    );
    let workers = cfg.workers;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(workers + 8)
        .build()?;
    let metrics = match &cfg.metrics {
        Some(m) => Some((m.listen, telemetry::install()?)),
        None => None,
    };
    let distribution = match &cfg.distribution {
        Some(d) => Some(rt.block_on(distribute::start(d, store.clone(), master.clone()))?),
        None => None,
    };
    let app = Arc::new(app::App {
        rate: auth::RateLimiter::new(&cfg.rate)?,
        distribution,
        face_slots: tokio::sync::Semaphore::new(workers),
        enrol_lock: tokio::sync::Mutex::new(()),
        cfg,
        store,
        master,
        faces,
        gallery: RwLock::new(gallery),
        tokens,
    });
    rt.block_on(async move {
        let tls = match &app.cfg.tls {
            Some(t) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                    .await
                    .with_context(|| {
                        format!(
                            "[tls]: loading {} and {}",
                            t.cert.display(),
                            t.key.display()
                        )
                    })?,
            ),
            None => {
                tracing::warn!(
                    "plain HTTP (insecure_http = true): photos and tokens cross the network in \
                     clear; configure [tls] outside a bench"
                );
                None
            }
        };
        if let Some((addr, handle)) = metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("[metrics] listen {addr}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = telemetry::serve(listener, handle, app).await {
                    tracing::warn!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        let listener = std::net::TcpListener::bind(&app.cfg.listen)
            .with_context(|| format!("listening on {}", app.cfg.listen))?;
        let addr = listener.local_addr()?;
        // The first stdout line: scripts and tests read the bound port from it.
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("listening on {addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, scheme, "listening");
        supervise::ready(&format!("listening on {addr}"));
        let watchdog = tokio::spawn(watchdog::run(addr, tls.is_some()));
        let router = api::router(app)
            .context("the OpenAPI document")?
            .into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let stop = handle.clone();
        tokio::spawn(async move {
            supervise::terminated().await;
            supervise::stopping();
            // In-flight requests (an enrolment is a few seconds of analysis) may finish.
            stop.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        let served = match tls {
            Some(config) => {
                axum_server::from_tcp_rustls(listener, config)?
                    .handle(handle)
                    .serve(router)
                    .await
            }
            None => {
                axum_server::from_tcp(listener)?
                    .handle(handle)
                    .serve(router)
                    .await
            }
        };
        watchdog.abort();
        served?;
        tracing::info!("stopped");
        Ok(())
    })
}
