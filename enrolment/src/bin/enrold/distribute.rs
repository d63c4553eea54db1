//! Starts the template distribution (`enrolment::distribution`) on its own zenoh session.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use domain::StationId;
use domain::changes::{CentreSigningKey, public_from_hex, public_to_hex};
use domain::seal::{CentreSecretKey, KeyId, MasterKey, StationPublicKey};
use enrolment::distribution::{Centre, CentreService};
use enrolment::store::Store;

use enrolment::config::DistributionConfig;

/// The running distribution and its zenoh session (kept open while enrold runs).
pub struct Distribution {
    pub service: CentreService,
    _session: zenoh::Session,
}

pub async fn start(
    cfg: &DistributionConfig,
    store: Arc<Store>,
    master: Arc<MasterKey>,
) -> Result<Distribution> {
    let mut stations = HashMap::new();
    for s in &cfg.stations {
        let id = StationId::new(s.id.clone())?;
        let key = public_from_hex(&s.public_key)?;
        stations.insert(
            id,
            StationPublicKey {
                id: KeyId(s.key_id),
                key,
            },
        );
    }
    let signing = CentreSigningKey::load_file(&cfg.signing_key_file)?;
    let x25519 = CentreSecretKey::load_file(&cfg.x25519_key_file)?;
    tracing::info!(
        stations = stations.len(),
        signing_public = %signing.verifying_key().to_hex(),
        x25519_public = %public_to_hex(&x25519.public_key().0),
        "distribution keys loaded"
    );
    // The same session settings as at the stations (docs/protocol.md).
    let security =
        protocol::BusSecurity::choose(cfg.certs.as_deref(), cfg.insecure, protocol::Role::Enrold)
            .context("[distribution] certificates")?;
    let session = zenoh::open(protocol::zenoh_config(&protocol::ZenohEndpoints {
        listen: cfg.listen.clone(),
        connect: cfg.connect.clone(),
        security,
    })?)
    .await
    .map_err(anyhow::Error::msg)
    .context("opening the zenoh session")?;
    let centre = Arc::new(Centre {
        store,
        master,
        x25519,
        signing,
        stations,
    });
    let service = CentreService::start(centre, &session).await?;
    Ok(Distribution {
        service,
        _session: session,
    })
}

/// `enrold keys centre-init --dir DIR`: the signing and X25519 key files, public halves printed.
pub fn centre_init(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let sign_path = dir.join("centre-sign.key");
    let x_path = dir.join("centre-x25519.key");
    let signing = CentreSigningKey::generate()?;
    signing.write_file(&sign_path)?;
    let x = CentreSecretKey::generate()?;
    x.write_file(&x_path)?;
    println!(
        "wrote {} and {} (mode 0600)",
        sign_path.display(),
        x_path.display()
    );
    println!("# for every station's [sync] section:");
    println!("centre_ed25519 = \"{}\"", signing.verifying_key().to_hex());
    println!("centre_x25519 = \"{}\"", public_to_hex(&x.public_key().0));
    Ok(())
}
