//! The demo's enrolment centre, in process but otherwise real: a centre redb store, a master key,
//! faces enrolled through the enrolment face chain, tickets linked, and the centre's signed zenoh
//! distribution service on a loopback port, which the station follows with its own keys exactly as
//! it would follow the real `enrold`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration as Days, Local, Utc};
use domain::changes::{CentreSigningKey, public_to_hex};
use domain::seal::{self, CentreSecretKey, KeyId, MasterKey, StationSecretKey};
use domain::tickets::{Coverage, TicketKind};
use domain::{StationId, SubjectId};
use engine::face::{Chip, FaceChain};
use enrolment::distribution::{Centre, CentreService};
use enrolment::photo::{self, DecodeLimits};
use enrolment::store::{Consent, EnrolRow, Store, SubjectRecord};

use crate::sync::SyncConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the demo centre could not be set up. The sources are boxed: the centre's parts (store,
/// keys, face chain, distribution service) each have their own error type, and the demo only
/// reports them.
#[derive(Debug, thiserror::Error)]
pub enum CentreError {
    #[error("demo centre: {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("demo enrolment of {identity} ({})", photo.display())]
    Enrol {
        identity: String,
        photo: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("demo enrolment of {identity} ({}): no face found", photo.display())]
    NoFace { identity: String, photo: PathBuf },
}

/// A passenger to enrol: the photo, optionally which face in it (a box hint, frame pixels
/// x, y, w, h), and whether their pass is valid today or expired.
#[derive(Debug, Clone)]
pub struct Enrolee {
    pub identity: String,
    pub photo: PathBuf,
    pub face: Option<[f32; 4]>,
    pub expired: bool,
}

pub struct DemoCentre {
    /// Each registered station's `[sync]`, by station id.
    pub syncs: HashMap<String, SyncConfig>,
    pub subjects: HashMap<String, SubjectId>,
    /// The centre's store: tests link other tickets and read the fare ledger through it.
    pub store: Arc<Store>,
    _service: CentreService,
    session: zenoh::Session,
}

fn setup<E: Into<BoxError>>(what: &'static str) -> impl FnOnce(E) -> CentreError {
    move |e| CentreError::Setup {
        what,
        source: e.into(),
    }
}

impl DemoCentre {
    /// A centre for `stations` (each given a key under `dir`) with `people` enrolled.
    pub async fn start(
        dir: &Path,
        stations: &[&str],
        models: &Path,
        people: &[Enrolee],
        certs: &protocol::CertDir,
    ) -> Result<Self, CentreError> {
        std::fs::create_dir_all(dir).map_err(setup("folder"))?;
        let store = Arc::new(Store::open(&dir.join("centre.redb")).map_err(setup("store"))?);
        let master = Arc::new(MasterKey::generate(KeyId(1)).map_err(setup("key"))?);
        let x25519 = CentreSecretKey::generate().map_err(setup("key"))?;
        let x_public = x25519.public_key();
        let signing = CentreSigningKey::generate().map_err(setup("key"))?;
        let verifying = signing.verifying_key();
        let mut registered = HashMap::new();
        let mut key_files = Vec::new();
        for station in stations {
            let id = StationId::new(*station).map_err(setup("station"))?;
            let key = StationSecretKey::generate(KeyId(1)).map_err(setup("key"))?;
            let file = dir.join(format!("{station}.key"));
            key.write_file(&file).map_err(setup("station key"))?;
            registered.insert(id, key.public_key());
            key_files.push((station.to_string(), file));
        }

        let pipe = FaceChain::load(models).map_err(setup("models"))?;
        let mut subjects = HashMap::new();
        let today = Local::now().date_naive();
        for p in people {
            let template = enrol_face(&pipe, p)?;
            let id = SubjectId::random().map_err(setup("id"))?;
            let (wrapped, sealed) =
                seal::seal_new_subject(&master, &id, 1, &template).map_err(setup("seal"))?;
            let record = SubjectRecord {
                consent: Consent {
                    time: Utc::now(),
                    policy_version: "demo".into(),
                },
                enrolled_at: Utc::now(),
                template_version: 1,
                photos: 1,
                account: None,
            };
            store
                .enrol(
                    &EnrolRow {
                        subject: id,
                        record: &record,
                        wrapped: &wrapped,
                        sealed: &sealed,
                    },
                    "demo",
                )
                .map_err(setup("enrol"))?;
            // A week past its end, so it is expired on any service day (which starts at 04:00
            // and so is still yesterday in the small hours).
            let (from, to) = if p.expired {
                (today - Days::days(60), today - Days::days(7))
            } else {
                (today - Days::days(30), today + Days::days(30))
            };
            store
                .link_ticket(
                    &id,
                    &TicketKind::CommuterPass {
                        from,
                        to,
                        coverage: Coverage::Network,
                    },
                    "demo",
                )
                .map_err(setup("ticket"))?;
            subjects.insert(p.identity.clone(), id);
        }

        let endpoint = format!(
            "tls/127.0.0.1:{}",
            super::free_port().map_err(setup("free port"))?
        );
        let session = zenoh::open(
            protocol::zenoh_config(&protocol::ZenohEndpoints {
                listen: vec![endpoint.clone()],
                connect: vec![],
                security: protocol::BusSecurity::Tls(
                    certs
                        .tls(protocol::Role::Enrold)
                        .map_err(setup("certificates"))?,
                ),
            })
            .map_err(setup("zenoh config"))?,
        )
        .await
        .map_err(setup("zenoh"))?;
        let centre = Arc::new(Centre {
            store: store.clone(),
            master,
            x25519,
            signing,
            stations: registered,
        });
        let service = CentreService::start(centre, &session)
            .await
            .map_err(setup("service"))?;
        let syncs = key_files
            .into_iter()
            .map(|(station, station_key_file)| {
                let sync = SyncConfig {
                    station_key_file,
                    station_key_id: 1,
                    centre_ed25519: verifying.to_hex(),
                    centre_x25519: public_to_hex(&x_public.0),
                    connect: vec![endpoint.clone()],
                    batch: 500,
                    poll_s: 30,
                    query_timeout_ms: 10_000,
                    drain_ms: 3_000,
                };
                (station, sync)
            })
            .collect();
        Ok(Self {
            syncs,
            subjects,
            store,
            _service: service,
            session,
        })
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// The template of one enrolee: their face in the photo (the detection nearest the hint, else the
/// most confident), aligned and embedded by the enrolment chain.
fn enrol_face(pipe: &FaceChain, p: &Enrolee) -> Result<seal::Template, CentreError> {
    let err = |e: BoxError| CentreError::Enrol {
        identity: p.identity.clone(),
        photo: p.photo.clone(),
        source: e,
    };
    let bytes = std::fs::read(&p.photo).map_err(|e| err(e.into()))?;
    let img = photo::decode(&bytes, DecodeLimits::default()).map_err(|e| err(e.into()))?;
    let faces = pipe.detect(img.view()).map_err(|e| err(e.into()))?;
    let face = match p.face {
        Some([x, y, w, h]) => {
            let (cx, cy) = (x + w / 2.0, y + h / 2.0);
            faces.iter().min_by(|a, b| {
                let d = |f: &engine::face::blazeface::Detection| {
                    (f.center[0] - cx).powi(2) + (f.center[1] - cy).powi(2)
                };
                d(a).total_cmp(&d(b))
            })
        }
        None => faces.first(),
    }
    .ok_or_else(|| CentreError::NoFace {
        identity: p.identity.clone(),
        photo: p.photo.clone(),
    })?;
    let chip = Chip::of_face(img.view(), face).map_err(|e| err(e.into()))?;
    let t = pipe.embed_one(&chip).map_err(|e| err(e.into()))?;
    Ok(*t)
}
