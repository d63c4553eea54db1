//! Test harness for the template distribution: a centre (real enrolment store, keys, the library's
//! zenoh service) and stations (real station store, `Syncer`, zenoh session) on loopback TCP.
#![allow(dead_code)]
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fares;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::changes::{CentreSigningKey, CentreVerifyingKey};
use domain::seal::{self, CentreSecretKey, KeyId, MasterKey, StationSecretKey};
use domain::tickets::Ticket;
use domain::{StationId, SubjectId};
use enrolment::distribution::{Centre, CentreService};
use enrolment::store::{Consent, EnrolRow, Store as CentreStore, SubjectRecord};
use pipeline::store::Store;
use pipeline::sync::{StationKeys, SyncHandle, Syncer};
use rand::Rng;

pub fn free_port() -> u16 {
    pipeline::demo::free_port().expect("free port")
}

pub fn zenoh_config(listen: &[String], connect: &[String]) -> zenoh::Config {
    // The sync logic is tested on plain links; TLS and access control have their own tests.
    protocol::zenoh_config(&protocol::ZenohEndpoints::insecure(
        listen.to_vec(),
        connect.to_vec(),
    ))
    .unwrap()
}

pub fn random_template(rng: &mut impl Rng) -> seal::Template {
    let mut t = [0f32; 128];
    for v in &mut t {
        *v = rng.random_range(-1.0..1.0);
    }
    let n = t.iter().map(|v| v * v).sum::<f32>().sqrt();
    t.map(|v| v / n)
}

pub struct TestCentre {
    pub dir: PathBuf,
    pub store: Arc<CentreStore>,
    pub master: Arc<MasterKey>,
    pub centre: Arc<Centre>,
    pub verifying: CentreVerifyingKey,
    pub x25519_public: seal::CentrePublicKey,
    pub endpoint: String,
    pub station_secrets: HashMap<String, [u8; 32]>,
    pub service: Option<CentreService>,
    pub session: Option<zenoh::Session>,
}

impl TestCentre {
    /// A centre with its store in `dir` and the given stations registered (their secret keys are
    /// generated here and handed to the stations by the test).
    pub fn new(dir: &Path, stations: &[&str]) -> Self {
        let store = Arc::new(CentreStore::open(&dir.join("centre.redb")).unwrap());
        let master = Arc::new(MasterKey::generate(KeyId(1)).unwrap());
        let x25519 = CentreSecretKey::generate().unwrap();
        let x25519_public = x25519.public_key();
        let signing = CentreSigningKey::generate().unwrap();
        let verifying = signing.verifying_key();
        let mut reg = HashMap::new();
        let mut secrets = HashMap::new();
        for s in stations {
            let mut b = [0u8; 32];
            rand::rng().fill(&mut b);
            let sk = StationSecretKey::from_bytes(KeyId(1), b);
            reg.insert(StationId::new(*s).unwrap(), sk.public_key());
            secrets.insert(s.to_string(), b);
        }
        let centre = Arc::new(Centre {
            store: store.clone(),
            master: master.clone(),
            x25519,
            signing,
            stations: reg,
        });
        Self {
            dir: dir.to_path_buf(),
            store,
            master,
            centre,
            verifying,
            x25519_public,
            endpoint: format!("tcp/127.0.0.1:{}", free_port()),
            station_secrets: secrets,
            service: None,
            session: None,
        }
    }

    pub async fn start(&mut self) {
        let session = zenoh::open(zenoh_config(std::slice::from_ref(&self.endpoint), &[]))
            .await
            .unwrap();
        self.service = Some(
            CentreService::start(self.centre.clone(), &session)
                .await
                .unwrap(),
        );
        self.session = Some(session);
    }

    pub fn changed(&self) {
        if let Some(s) = &self.service {
            s.changed();
        }
    }

    /// Enrols `n` subjects with random templates in one transaction; returns their ids.
    pub fn enrol(&self, n: usize) -> Vec<SubjectId> {
        let mut rng = rand::rng();
        let record = SubjectRecord::enrolled_now(Consent::now("2026-01"), 1, 1);
        let mut ids = Vec::new();
        let mut blobs = Vec::new();
        for _ in 0..n {
            let id = SubjectId::random().unwrap();
            let t = random_template(&mut rng);
            blobs.push(seal::seal_new_subject(&self.master, &id, 1, &t).unwrap());
            ids.push(id);
        }
        let rows: Vec<EnrolRow<'_>> = ids
            .iter()
            .zip(&blobs)
            .map(|(id, (w, s))| EnrolRow {
                subject: *id,
                record: &record,
                wrapped: w,
                sealed: s,
            })
            .collect();
        self.store.enrol_many(&rows, "test").unwrap();
        self.changed();
        ids
    }

    pub fn erase(&self, id: &SubjectId) {
        self.store.erase(id, "test").unwrap().unwrap();
        self.changed();
    }

    /// subject → (opened template, tickets), from the centre's store.
    pub fn expected(&self) -> BTreeMap<SubjectId, (seal::Template, Vec<Ticket>)> {
        let mut out = BTreeMap::new();
        for (id, w, s) in self.store.sealed_all().unwrap() {
            let t = seal::open_subject(&self.master, &id, 1, &w, &s).unwrap();
            let tickets = self.store.tickets(&id).unwrap().unwrap();
            out.insert(id, (*t, tickets));
        }
        out
    }

    pub fn station_keys(&self, station: &str) -> StationKeys {
        StationKeys {
            station: StationId::new(station).unwrap(),
            secret: StationSecretKey::from_bytes(KeyId(1), self.station_secrets[station]),
            centre_x25519: self.x25519_public,
            centre_ed25519: self.verifying,
        }
    }
}

pub struct TestStation {
    pub path: PathBuf,
    pub handle: SyncHandle,
    pub session: zenoh::Session,
}

impl TestStation {
    /// Opens the station store at `path` and starts following the centre at `endpoint`.
    pub async fn start(
        centre: &TestCentre,
        station: &str,
        path: &Path,
        batch: usize,
    ) -> TestStation {
        let store = Arc::new(Store::open(path).unwrap());
        let syncer = Arc::new(Syncer::load(centre.station_keys(station), store).unwrap());
        let session = zenoh::open(zenoh_config(&[], std::slice::from_ref(&centre.endpoint)))
            .await
            .unwrap();
        let handle = pipeline::sync::spawn(
            syncer,
            session.clone(),
            batch,
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        TestStation {
            path: path.to_path_buf(),
            handle,
            session,
        }
    }

    pub fn syncer(&self) -> &Arc<Syncer> {
        &self.handle.syncer
    }

    /// Stops the sync and closes the session (the store file is released once the last `Arc` goes).
    pub async fn stop(self) {
        let syncer = self.handle.syncer.clone();
        self.handle.stop().await;
        self.session.close().await.unwrap();
        // A blocking apply may still hold the syncer for a moment.
        let t0 = Instant::now();
        while Arc::strong_count(&syncer) > 1 && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// subject → (template, tickets) as the station's gallery holds them.
    pub fn gallery(&self) -> BTreeMap<SubjectId, (seal::Template, Vec<Ticket>)> {
        let g = self.syncer().gallery().read();
        g.iter()
            .map(|(id, t)| (*id, (*t, g.tickets(id).unwrap().to_vec())))
            .collect()
    }

    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Self) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        let mut rx = self.syncer().gallery().subscribe();
        while !f(self) {
            assert!(
                t0.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
        }
        t0.elapsed()
    }
}

/// Whether `needle` occurs anywhere in the file.
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let hay = std::fs::read(path).unwrap();
    hay.windows(needle.len()).any(|w| w == needle)
}
