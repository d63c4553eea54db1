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
use enrolment::distribution::{Centre, CentreService};
use engine::face::{Chip, FaceChain, FaceError};
use enrolment::photo::{self, DecodeLimits};
use enrolment::store::{Consent, EnrolRow, Store, SubjectRecord};

use crate::station::StationError;
use crate::sync::SyncConfig;

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
    pub sync: SyncConfig,
    pub subjects: HashMap<String, SubjectId>,
    _service: CentreService,
    session: zenoh::Session,
}

fn io(what: &str) -> impl Fn(String) -> StationError + '_ {
    move |e| StationError::Io(format!("demo centre: {what}: {e}"))
}

impl DemoCentre {
    pub async fn start(
        dir: &Path,
        station: &str,
        models: &Path,
        people: &[Enrolee],
    ) -> Result<Self, StationError> {
        std::fs::create_dir_all(dir).map_err(|e| io("folder")(e.to_string()))?;
        let store = Arc::new(
            Store::open(&dir.join("centre.redb")).map_err(|e| io("store")(e.to_string()))?,
        );
        let master = Arc::new(MasterKey::generate(KeyId(1)).map_err(|e| io("key")(e.to_string()))?);
        let x25519 = CentreSecretKey::generate().map_err(|e| io("key")(e.to_string()))?;
        let x_public = x25519.public_key();
        let signing = CentreSigningKey::generate().map_err(|e| io("key")(e.to_string()))?;
        let verifying = signing.verifying_key();
        let station_id = StationId::new(station).map_err(|e| io("station")(e.to_string()))?;
        let station_key =
            StationSecretKey::generate(KeyId(1)).map_err(|e| io("key")(e.to_string()))?;
        let key_file = dir.join("station.key");
        station_key
            .write_file(&key_file)
            .map_err(|e| io("station key")(e.to_string()))?;

        // `{:#}`: the model file and the engine's reason, not only the first line.
        let pipe = FaceChain::load(models)
            .map_err(|e| io("models")(format!("{:#}", anyhow::Error::new(e))))?;
        let mut subjects = HashMap::new();
        let today = Local::now().date_naive();
        for p in people {
            let template = enrol_face(&pipe, p)?;
            let id = SubjectId::random().map_err(|e| io("id")(e.to_string()))?;
            let (wrapped, sealed) = seal::seal_new_subject(&master, &id, 1, &template)
                .map_err(|e| io("seal")(e.to_string()))?;
            let record = SubjectRecord {
                consent: Consent {
                    time: Utc::now(),
                    policy_version: "demo".into(),
                },
                enrolled_at: Utc::now(),
                template_version: 1,
                photos: 1,
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
                .map_err(|e| io("enrol")(e.to_string()))?;
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
                .map_err(|e| io("ticket")(e.to_string()))?;
            subjects.insert(p.identity.clone(), id);
        }

        let endpoint = format!("tcp/127.0.0.1:{}", super::free_port()?);
        let session = zenoh::open(
            protocol::zenoh_config(&protocol::ZenohEndpoints {
                listen: vec![endpoint.clone()],
                connect: vec![],
            })
            .map_err(|e| io("zenoh config")(e.to_string()))?,
        )
        .await
        .map_err(|e| io("zenoh")(e.to_string()))?;
        let centre = Arc::new(Centre {
            store,
            master,
            x25519,
            signing,
            stations: HashMap::from([(station_id, station_key.public_key())]),
        });
        let service = CentreService::start(centre, &session)
            .await
            .map_err(|e| io("service")(e.to_string()))?;
        Ok(Self {
            sync: SyncConfig {
                station_key_file: key_file,
                station_key_id: 1,
                centre_ed25519: verifying.to_hex(),
                centre_x25519: public_to_hex(&x_public.0),
                connect: vec![endpoint],
                batch: 500,
                poll_s: 30,
                query_timeout_ms: 10_000,
            },
            subjects,
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
fn enrol_face(pipe: &FaceChain, p: &Enrolee) -> Result<seal::Template, StationError> {
    let err = |m: String| {
        StationError::Io(format!(
            "demo enrolment of {} ({}): {m}",
            p.identity,
            p.photo.display()
        ))
    };
    // `{:#}`: the whole chain of causes (what failed, then the engine's reason).
    let face_err = |e: FaceError| err(format!("{:#}", anyhow::Error::new(e)));
    let bytes = std::fs::read(&p.photo).map_err(|e| err(e.to_string()))?;
    let img = photo::decode(&bytes, DecodeLimits::default()).map_err(|e| err(e.to_string()))?;
    let faces = pipe.detect(img.view()).map_err(&face_err)?;
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
    .ok_or_else(|| err("no face found".into()))?;
    let chip = Chip::of_face(img.view(), face).map_err(&face_err)?;
    let t = pipe.embed_one(&chip).map_err(&face_err)?;
    Ok(*t)
}
