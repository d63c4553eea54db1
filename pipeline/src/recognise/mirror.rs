//! The GPU gallery, kept equal to the station's synced gallery (`crate::sync::Gallery`): only
//! templates that changed are uploaded, erased subjects are removed (their rows overwritten), and
//! subjects get small stable numbers the matcher and the deciders use instead of the 16-byte id.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;
use domain::SubjectId;
use domain::tickets::{Ticket, TicketKind};
use engine::gpu::gallery::{Gallery, GalleryOptions, Match};
use engine::gpu::kernels::Precision;

use super::RecogniseError;
use crate::normalise::Gpu;

/// Subject number → pseudonymous id, shared with the station loop. Numbers are never reused.
#[derive(Clone, Default)]
pub struct SubjectNumbers(Arc<RwLock<Vec<SubjectId>>>);

impl SubjectNumbers {
    pub fn get(&self, n: u32) -> Option<SubjectId> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(n as usize)
            .copied()
    }

    fn push(&self, id: SubjectId) -> u32 {
        let mut v = self.0.write().unwrap_or_else(|e| e.into_inner());
        v.push(id);
        (v.len() - 1) as u32
    }
}

pub struct GalleryMirror {
    gallery: Gallery,
    numbers: SubjectNumbers,
    /// Subject → (number, hash of the template last uploaded).
    known: HashMap<SubjectId, (u32, u64)>,
    version: Option<u64>,
    narrowed_on: Option<NaiveDate>,
}

impl GalleryMirror {
    pub fn new(gpu: &Gpu, f16: bool) -> Result<Self, RecogniseError> {
        let precision = if f16 && gpu.device.features().contains(wgpu::Features::SHADER_F16) {
            Precision::F16
        } else {
            Precision::F32
        };
        let gallery = Gallery::new(
            &gpu.device,
            &gpu.queue,
            GalleryOptions {
                precision,
                ..Default::default()
            },
        )
        .map_err(|e| RecogniseError::Gpu(format!("gallery: {e}")))?;
        Ok(Self {
            gallery,
            numbers: SubjectNumbers::default(),
            known: HashMap::new(),
            version: None,
            narrowed_on: None,
        })
    }

    pub fn numbers(&self) -> SubjectNumbers {
        self.numbers.clone()
    }

    pub fn len(&self) -> usize {
        self.gallery.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gallery.is_empty()
    }

    /// Brings the GPU gallery up to `src`'s version (no-op when it is already there). With
    /// `narrow_on`, only subjects holding a ticket valid on that day are candidates.
    pub fn refresh(
        &mut self,
        src: &crate::sync::Gallery,
        narrow_on: Option<NaiveDate>,
    ) -> Result<bool, RecogniseError> {
        let err =
            |e: engine::gpu::gallery::GalleryError| RecogniseError::Gpu(format!("gallery: {e}"));
        let g = src.read();
        if self.version == Some(g.version()) && self.narrowed_on == narrow_on {
            return Ok(false);
        }
        let mut seen = HashMap::with_capacity(g.len());
        let (mut subjects, mut flat) = (Vec::new(), Vec::new());
        for (id, t) in g.iter() {
            let h = hash(t);
            let n = match self.known.get(id) {
                Some(&(n, old)) if old == h => n,
                Some(&(n, _)) => {
                    subjects.push(n);
                    flat.extend_from_slice(t);
                    n
                }
                None => {
                    let n = self.numbers.push(*id);
                    subjects.push(n);
                    flat.extend_from_slice(t);
                    n
                }
            };
            seen.insert(*id, (n, h));
        }
        if !subjects.is_empty() {
            self.gallery.upsert_many(&subjects, &flat).map_err(err)?;
        }
        for (id, (n, _)) in &self.known {
            if !seen.contains_key(id) {
                self.gallery.remove(*n).map_err(err)?;
            }
        }
        self.known = seen;
        let candidates: Option<Vec<u32>> = narrow_on.map(|day| {
            g.iter()
                .filter(|(id, _)| {
                    g.tickets(id)
                        .is_some_and(|t| t.iter().any(|t| valid_on(t, day)))
                })
                .filter_map(|(id, _)| self.known.get(id).map(|&(n, _)| n))
                .collect()
        });
        self.gallery
            .set_candidates(candidates.as_deref())
            .map_err(err)?;
        self.version = Some(g.version());
        self.narrowed_on = narrow_on;
        tracing::info!(
            subjects = self.gallery.len(),
            uploaded = subjects.len(),
            candidates = candidates.as_ref().map(|c| c.len()),
            "GPU gallery refreshed"
        );
        Ok(true)
    }

    /// The GPU gallery, for a stage that matches probes already on the device (the GPU backend).
    pub(crate) fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    /// Best and second best subject of every probe (128 floats each), in one dispatch.
    pub fn match_probes(&self, probes: &[f32]) -> Result<Vec<Match>, RecogniseError> {
        if probes.is_empty() {
            return Ok(Vec::new());
        }
        if self.gallery.is_empty() {
            return Ok(vec![Match::NoCandidates; probes.len() / 128]);
        }
        self.gallery
            .run_blocking(probes)
            .map_err(|e| RecogniseError::Gpu(format!("matching: {e}")))
    }
}

fn hash(t: &[f32]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in t {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

/// Whether a ticket could let its holder through on `day` (dates only; the gate rules judge the rest).
fn valid_on(t: &Ticket, day: NaiveDate) -> bool {
    match &t.kind {
        TicketKind::SingleRide { valid_on, used, .. } => *valid_on == day && !used,
        TicketKind::DayPass { date, .. } => *date == day,
        TicketKind::CommuterPass { from, to, .. } => *from <= day && day <= *to,
    }
}
