//! The station's gallery on the GPU and the matching kernel (`match.wgsl`, beside this file).
//!
//! A [`Gallery`] keeps **one row per subject**: the subject's template (the caller passes the
//! mean of the subject's enrolment embeddings, or whatever one template per subject it chooses),
//! L2-normalised on the way in, stored as 128 f32 or, with [`Precision::F16`], 128 f16 (decoded with `unpack2x16float`, so
//! no device feature is needed). Because a
//! subject has exactly one row, the best and second-best rows of a probe are always two different
//! subjects. Rows are updated in place ([`Gallery::upsert`]), removed by swap-remove
//! ([`Gallery::remove`]: the last row moves into the hole, on the GPU), and capacity grows by
//! doubling with a GPU copy; nothing is re-uploaded wholesale. Large galleries live in several
//! buffers ("pages") so no binding exceeds the device's limits.
//!
//! Matching ([`Gallery::prepare`] + [`Gallery::record`], or [`Gallery::run_blocking`]) returns for
//! each probe the best and the second-best subject with their cosine similarities, optionally only
//! among the subjects of a candidate mask ([`Gallery::set_candidates`]): for example the subjects
//! holding a ticket valid at this station.

use std::collections::HashMap;
use std::num::NonZeroU64;

use super::{Precision, shader};
use matching::{F32_LOAD, variant};

const MATCH: &str = include_str!("match.wgsl");

/// Template and probe length.
pub const DIM: usize = 128;
/// Most probes in one dispatch.
pub const MAX_PROBES: usize = 4096;
/// Largest subject index (keeps the candidate bitset at 8 MiB or less).
pub const MAX_SUBJECT: u32 = (1 << 26) - 1;

/// Rows per interleaved block (see match.wgsl) and lanes per scanning group.
const BLOCK: u64 = 32;
/// vec4 per row.
const K4: u64 = DIM as u64 / 4;
const UNIFORM_SLOT: u64 = 256;
const SCAN_WG: u32 = 64;
/// Probes per invocation of each compiled `scan` variant.
const PB: [u32; 4] = [1, 2, 4, 8];

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("template for subject {subject}: {detail}")]
    Template { subject: u32, detail: String },
    #[error("subject index {0} is above the limit {MAX_SUBJECT}")]
    Subject(u32),
    #[error("probes: {0}")]
    Probes(String),
    #[error("gallery is full: {rows} rows is this device's limit")]
    Full { rows: u64 },
    #[error("option {0}")]
    Option(String),
    #[error("the gallery changed since this dispatch was prepared; prepare it again")]
    Stale,
    #[error("GPU: {0}")]
    Gpu(String),
}

type R<T> = Result<T, GalleryError>;

/// How a gallery is stored and scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GalleryOptions {
    pub precision: Precision,
    /// Rows allocated at creation (rounded up to a multiple of 32).
    pub initial_rows: u32,
    /// Rows per page (a multiple of 32); default: as many as the device's binding limit allows.
    /// Tests set it small to exercise several pages.
    pub page_rows: Option<u32>,
    /// Invocations the scan aims at over all pages and probe groups; default 131072 on GPUs (enough
    /// loads in flight to saturate memory), 4096 on CPU adapters.
    pub threads: Option<u32>,
}

impl Default for GalleryOptions {
    fn default() -> Self {
        Self {
            precision: Precision::F32,
            initial_rows: 1024,
            page_rows: None,
            threads: None,
        }
    }
}

/// One candidate: the subject, its gallery row and the cosine similarity (dot product of the
/// normalised probe and template, in [−1, 1]; a cosine distance is `1 − similarity`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub subject: u32,
    pub row: u32,
    pub similarity: f32,
}

/// One probe's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match {
    /// The most similar candidate subject, and the runner-up when there are two candidates.
    Found {
        best: Candidate,
        second: Option<Candidate>,
    },
    /// No candidate: the gallery is empty or the candidate mask leaves no subject in it.
    NoCandidates,
    /// The probe had a non-finite value or zero length; nothing was compared.
    InvalidProbe,
}

impl Match {
    pub fn best(&self) -> Option<Candidate> {
        match self {
            Match::Found { best, .. } => Some(*best),
            _ => None,
        }
    }

    pub fn second(&self) -> Option<Candidate> {
        match self {
            Match::Found { second, .. } => *second,
            _ => None,
        }
    }
}

/// A prepared matching dispatch: its buffers and bind groups. Record it with [`Gallery::record`]
/// (as often as wanted), copy the results with [`Gallery::record_readback`], then read them with
/// [`Gallery::results`].
pub struct MatchDispatch {
    generation: u64,
    /// Per probe: whether it was valid (invalid ones are zeros on the GPU and reported as such).
    valid: Vec<bool>,
    scans: Vec<(usize, wgpu::BindGroup, u32)>,
    reduce: Option<wgpu::BindGroup>,
    out: wgpu::Buffer,
    read: wgpu::Buffer,
    /// Gallery bytes one recording reads (each row once per probe group).
    pub gallery_bytes: u64,
    /// Template rows compared (rows × probes), before the mask.
    pub comparisons: u64,
}

/// Templates resident on the GPU, one row per subject, and the matching pipelines.
pub struct Gallery {
    device: wgpu::Device,
    queue: wgpu::Queue,
    precision: Precision,
    scan_layout: wgpu::BindGroupLayout,
    reduce_layout: wgpu::BindGroupLayout,
    scan: Vec<wgpu::ComputePipeline>,
    reduce: wgpu::ComputePipeline,
    /// Rows per full page (the first page may be smaller until it has grown to this).
    page_rows: u64,
    max_rows: u64,
    pages: Vec<wgpu::Buffer>,
    /// Subject index per row (capacity: `subjects_cap` rows).
    subjects: wgpu::Buffer,
    subjects_cap: u64,
    mask: Option<(wgpu::Buffer, u32)>,
    dummy: wgpu::Buffer,
    /// Row → subject, subject → row.
    rows: Vec<u32>,
    index: HashMap<u32, u32>,
    threads: u32,
    generation: u64,
}

impl Gallery {
    /// Compiles the pipelines and allocates an empty gallery on `device`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, options: GalleryOptions) -> R<Self> {
        let precision = options.precision;
        if precision == Precision::F16 && !MATCH.contains(F32_LOAD) {
            return Err(GalleryError::Gpu(
                "match.wgsl no longer has the gallery binding the f16 variant replaces".into(),
            ));
        }
        let limits = device.limits();
        let row_bytes = row_bytes(precision);
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let device_page = binding / row_bytes / BLOCK * BLOCK;
        let page_rows = match options.page_rows {
            None => device_page,
            Some(p) if p > 0 && (p as u64).is_multiple_of(BLOCK) && p as u64 <= device_page => {
                p as u64
            }
            Some(p) => {
                return Err(GalleryError::Option(format!(
                    "page_rows {p}: a multiple of {BLOCK} in {BLOCK}..={device_page}"
                )));
            }
        };
        if page_rows == 0 {
            return Err(GalleryError::Option(format!(
                "the device's binding limit ({binding} bytes) is below one block of rows"
            )));
        }
        // The subject table is one binding of u32 per row.
        let max_rows = (binding / 4).min(1 << 26);
        let cpu = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let threads = options.threads.unwrap_or(if cpu { 4096 } else { 131_072 });
        if threads == 0 {
            return Err(GalleryError::Option("threads 0".into()));
        }

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        use wgpu::BufferBindingType::{Storage, Uniform};
        let read = Storage { read_only: true };
        let rw = Storage { read_only: false };
        let scan_layout = shader::buffer_layout(
            device,
            "match scan",
            &[
                (0, Uniform),
                (1, read),
                (2, read),
                (3, read),
                (4, read),
                (5, rw),
            ],
        );
        let reduce_layout =
            shader::buffer_layout(device, "match reduce", &[(6, Uniform), (7, read), (8, rw)]);
        let pipeline = |src: &str, layout: &wgpu::BindGroupLayout, entry: &str| {
            let [p] = shader::compute_pipelines(device, "match.wgsl", src, layout, [entry]);
            p
        };
        let scan = (PB.iter())
            .map(|&pb| pipeline(&variant(precision, pb), &scan_layout, "scan"))
            .collect();
        let reduce = pipeline(&variant(Precision::F32, 1), &reduce_layout, "reduce");
        gpu_ok(scope)?;

        let initial = (options.initial_rows.max(1) as u64)
            .div_ceil(BLOCK)
            .saturating_mul(BLOCK)
            .min(page_rows);
        let mut g = Self {
            device: device.clone(),
            queue: queue.clone(),
            precision,
            scan_layout,
            reduce_layout,
            scan,
            reduce,
            page_rows,
            max_rows,
            pages: Vec::new(),
            subjects: storage(device, "gallery subjects", 4),
            subjects_cap: 1,
            mask: None,
            dummy: storage(device, "gallery no mask", 4),
            rows: Vec::new(),
            index: HashMap::new(),
            threads,
            generation: 0,
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        g.pages
            .push(storage(device, "gallery page", initial * row_bytes));
        g.grow_subjects(initial)?;
        gpu_ok(scope)?;
        Ok(g)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Rows (= subjects) in the gallery.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows allocated on the GPU.
    pub fn capacity(&self) -> u64 {
        self.pages.iter().map(|p| p.size()).sum::<u64>() / row_bytes(self.precision)
    }

    /// Bytes of template storage in use (what one probe group's scan reads).
    pub fn bytes(&self) -> u64 {
        self.rows.len() as u64 * row_bytes(self.precision)
    }

    /// Pages (buffers) the gallery spans.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    pub fn row_of(&self, subject: u32) -> Option<u32> {
        self.index.get(&subject).copied()
    }

    pub fn subject_at(&self, row: u32) -> Option<u32> {
        self.rows.get(row as usize).copied()
    }

    /// Page and row within the page.
    fn locate(&self, row: u64) -> (usize, u64) {
        ((row / self.page_rows) as usize, row % self.page_rows)
    }

    /// Byte offset of vec4 `k` of page row `r`.
    fn offset(&self, r: u64, k: u64) -> u64 {
        ((r / BLOCK) * BLOCK * K4 + k * BLOCK + r % BLOCK) * vec4_bytes(self.precision)
    }
}

fn row_bytes(p: Precision) -> u64 {
    DIM as u64 * p.element_bytes()
}

fn vec4_bytes(p: Precision) -> u64 {
    4 * p.element_bytes()
}

/// The unit vector along `v`, if `v` has 128 finite values and non-zero length.
pub fn normalise(v: &[f32]) -> Option<[f32; DIM]> {
    if v.len() != DIM || !v.iter().all(|x| x.is_finite()) {
        return None;
    }
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return None;
    }
    let mut out = [0f32; DIM];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = (x as f64 / norm) as f32;
    }
    Some(out)
}

fn storage(device: &wgpu::Device, label: &str, size: u64) -> wgpu::Buffer {
    use wgpu::BufferUsages as U;
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(4),
        usage: U::STORAGE | U::COPY_DST | U::COPY_SRC,
        mapped_at_creation: false,
    })
}

fn binding(buffer: &wgpu::Buffer, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: NonZeroU64::new(size.min(buffer.size())),
    })
}

fn gpu_ok(scope: wgpu::ErrorScopeGuard) -> R<()> {
    match shader::scope_error(scope) {
        None => Ok(()),
        Some(e) => Err(GalleryError::Gpu(e.to_string())),
    }
}

mod matching;
mod rows;
#[cfg(test)]
mod tests;
