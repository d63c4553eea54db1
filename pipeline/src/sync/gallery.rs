//! The station's in-memory gallery: every enrolled subject's opened template, for the matcher
//! (issue 5). Plaintext in RAM only (never written); zeroized when a subject is removed and on drop.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use domain::SubjectId;
use domain::seal::{TEMPLATE_DIM, Template};
use domain::tickets::{CentreTrip, Ticket, Wallet};
use tokio::sync::watch;
use zeroize::Zeroize;

/// A cheap, clonable handle; readers take [`Gallery::read`] for a consistent view.
#[derive(Clone)]
pub struct Gallery {
    inner: Arc<RwLock<GalleryData>>,
    version: watch::Sender<u64>,
}

/// The templates, in a flat array for the matcher, with the parallel subject ids and wallets.
#[derive(Default)]
pub struct GalleryData {
    version: u64,
    ids: Vec<SubjectId>,
    templates: Vec<Template>,
    wallets: Vec<Wallet>,
    index: HashMap<SubjectId, usize>,
    /// The centre's view of each subject's trip, for the deciders (only subjects it has one for).
    trips: HashMap<SubjectId, CentreTrip>,
}

impl Default for Gallery {
    fn default() -> Self {
        Self::new()
    }
}

impl Gallery {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RwLock::new(GalleryData::default())),
            version: watch::channel(0).0,
        }
    }

    /// A consistent view (blocks writers while held: keep it short).
    pub fn read(&self) -> RwLockReadGuard<'_, GalleryData> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last change sequence reflected in the gallery.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Notified with the new version after every update.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Applies one batch of changes and moves the version to `version`, atomically for readers.
    pub(crate) fn update(&self, version: u64, changes: Vec<GalleryChange>) {
        {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            for c in changes {
                match c {
                    GalleryChange::Upsert(id, t, wallet) => g.upsert(id, &t, wallet),
                    // Only for a subject here: a trip change may outlive its subject's erasure.
                    GalleryChange::Trip(id, Some(trip)) if g.index.contains_key(&id) => {
                        g.trips.insert(id, trip);
                    }
                    GalleryChange::Trip(_, Some(_)) => {}
                    GalleryChange::Trip(id, None) => {
                        g.trips.remove(&id);
                    }
                    GalleryChange::Remove(id) => g.remove(&id),
                }
            }
            g.version = version;
        }
        self.version.send_replace(version);
    }
}

pub(crate) enum GalleryChange {
    Upsert(SubjectId, Box<zeroize::Zeroizing<Template>>, Wallet),
    /// The centre's view of the subject's trip, sent with each upsert.
    Trip(SubjectId, Option<CentreTrip>),
    Remove(SubjectId),
}

impl GalleryData {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every subject with its template (order is arbitrary but stable between updates).
    pub fn iter(&self) -> impl Iterator<Item = (&SubjectId, &[f32; TEMPLATE_DIM])> {
        self.ids.iter().zip(self.templates.iter())
    }

    /// The flat template array (row i belongs to `ids()[i]`), for upload to the matcher.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    pub fn ids(&self) -> &[SubjectId] {
        &self.ids
    }

    pub fn contains(&self, id: &SubjectId) -> bool {
        self.index.contains_key(id)
    }

    pub fn template(&self, id: &SubjectId) -> Option<&Template> {
        self.index.get(id).map(|&i| &self.templates[i])
    }

    pub fn tickets(&self, id: &SubjectId) -> Option<&[Ticket]> {
        self.wallet(id).map(|w| w.tickets.as_slice())
    }

    /// The subject's tickets and whether it has a payment account.
    pub fn wallet(&self, id: &SubjectId) -> Option<&Wallet> {
        self.index.get(id).map(|&i| &self.wallets[i])
    }

    /// The centre's view of the subject's trip, if it has booked a passage of the subject.
    pub fn trip(&self, id: &SubjectId) -> Option<&CentreTrip> {
        self.trips.get(id)
    }

    fn upsert(&mut self, id: SubjectId, t: &Template, wallet: Wallet) {
        match self.index.get(&id) {
            Some(&i) => {
                self.templates[i] = *t;
                self.wallets[i] = wallet;
            }
            None => {
                self.index.insert(id, self.ids.len());
                self.ids.push(id);
                self.templates.push(*t);
                self.wallets.push(wallet);
            }
        }
    }

    fn remove(&mut self, id: &SubjectId) {
        let Some(i) = self.index.remove(id) else {
            return;
        };
        self.ids.swap_remove(i);
        let mut gone = self.templates.swap_remove(i);
        gone.zeroize();
        self.wallets.swap_remove(i);
        self.trips.remove(id);
        if let Some(moved) = self.ids.get(i) {
            self.index.insert(*moved, i);
        }
    }
}

impl Drop for GalleryData {
    fn drop(&mut self) {
        for t in &mut self.templates {
            t.zeroize();
        }
    }
}
