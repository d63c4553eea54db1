//! The service's shared state: configuration, the store, keys, the face chain, the 1:N gallery, the
//! limits and the distribution. The HTTP handlers (`api`, `enrol`) all take it.

use std::sync::{Arc, RwLock};

use domain::SubjectId;
use domain::seal::{MasterKey, Template};
use engine::face::FaceChain;
use enrolment::gallery::Gallery;
use enrolment::store::Store;
use tokio::sync::{Mutex, Semaphore};
use zeroize::Zeroizing;

use crate::auth::{RateLimiter, Tokens};
use crate::error::ApiError;
use enrolment::config::Config;

pub struct App {
    pub cfg: Config,
    pub store: Arc<Store>,
    pub master: Arc<MasterKey>,
    pub faces: FaceChain,
    pub gallery: RwLock<Gallery>,
    pub tokens: Tokens,
    pub rate: RateLimiter,
    pub face_slots: Semaphore,
    pub enrol_lock: Mutex<()>,
    /// Template distribution to the stations, when configured.
    pub distribution: Option<crate::distribute::Distribution>,
}

impl App {
    pub fn gallery_best(&self, t: &Template) -> Result<Option<(SubjectId, f32)>, ApiError> {
        let g = self
            .gallery
            .read()
            .map_err(|_| ApiError::Internal("gallery lock poisoned".into()))?;
        Ok(g.best(t))
    }

    /// Tells the distribution that a change was committed (it publishes everything not yet published).
    pub fn changed(&self) {
        if let Some(d) = &self.distribution {
            d.service.changed();
        }
    }

    pub fn gallery_insert(&self, id: SubjectId, t: Zeroizing<Template>) -> Result<(), ApiError> {
        self.gallery
            .write()
            .map_err(|_| ApiError::Internal("gallery lock poisoned".into()))?
            .insert(id, t);
        Ok(())
    }
}
