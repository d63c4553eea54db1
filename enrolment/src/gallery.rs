//! The centre's in-memory gallery: every enrolled subject's opened template, for the 1:N "already
//! enrolled" check. Plaintext in RAM while the service runs (`docs/privacy.md`, "Not protected");
//! zeroized on removal and on drop. A linear scan: 128 multiply-adds per subject, ~10 ms for 100 000.

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::store::{Store, StoreError};
use domain::ids::SubjectId;
use domain::seal::{self, MasterKey, SealError, Template};
use engine::face::prepare::cosine;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("subject {subject}: {source} (is this the store's master key?)")]
    Open {
        subject: SubjectId,
        source: SealError,
    },
}

#[derive(Default)]
pub struct Gallery {
    templates: HashMap<SubjectId, Zeroizing<Template>>,
}

impl Gallery {
    /// Opens every subject's template with the master key.
    pub fn load(store: &Store, master: &MasterKey, version: u32) -> Result<Self, GalleryError> {
        let mut templates = HashMap::new();
        for (subject, wrapped, sealed) in store.sealed_all()? {
            let t = seal::open_subject(master, &subject, version, &wrapped, &sealed)
                .map_err(|source| GalleryError::Open { subject, source })?;
            templates.insert(subject, t);
        }
        Ok(Self { templates })
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    pub fn insert(&mut self, subject: SubjectId, template: Zeroizing<Template>) {
        self.templates.insert(subject, template);
    }

    pub fn remove(&mut self, subject: &SubjectId) {
        self.templates.remove(subject);
    }

    /// The most similar enrolled subject and its cosine.
    pub fn best(&self, probe: &Template) -> Option<(SubjectId, f32)> {
        self.templates
            .iter()
            .map(|(id, t)| (*id, cosine(probe, t.as_ref())))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}
