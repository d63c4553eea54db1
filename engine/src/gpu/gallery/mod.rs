//! The station's gallery on the GPU and the matching kernel (`shaders/match.wgsl`).
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

use super::readback;
use std::collections::HashMap;
use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use super::Precision;

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
        let layout = |label, kinds: &[(u32, wgpu::BufferBindingType)]| {
            let entries: Vec<_> = (kinds.iter())
                .map(|&(binding, ty)| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            })
        };
        let rw = Storage { read_only: false };
        let scan_layout = layout(
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
        let reduce_layout = layout("match reduce", &[(6, Uniform), (7, read), (8, rw)]);
        let pipeline = |src: &str, layout: &wgpu::BindGroupLayout, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("match.wgsl"),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("match.wgsl"),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
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

    /// Adds `subject`'s template, or replaces it; returns its row. The template must be 128 finite
    /// values of non-zero length; it is stored L2-normalised.
    pub fn upsert(&mut self, subject: u32, template: &[f32]) -> R<u32> {
        self.upsert_many(&[subject], template)?;
        self.row_of(subject)
            .ok_or_else(|| GalleryError::Gpu("row lost after upsert".into()))
    }

    /// [`Gallery::upsert`] for many subjects: `templates` holds `subjects.len()` rows of 128. All are
    /// checked before anything changes; a subject listed twice keeps its last template. New subjects
    /// are appended in one write per block of 32 rows.
    pub fn upsert_many(&mut self, subjects: &[u32], templates: &[f32]) -> R<()> {
        if templates.len() != subjects.len() * DIM {
            return Err(GalleryError::Template {
                subject: subjects.first().copied().unwrap_or(0),
                detail: format!(
                    "{} values for {} subjects (expected {} per subject)",
                    templates.len(),
                    subjects.len(),
                    DIM
                ),
            });
        }
        let mut rows = Vec::with_capacity(subjects.len());
        for (&subject, t) in subjects.iter().zip(templates.chunks_exact(DIM)) {
            if subject > MAX_SUBJECT {
                return Err(GalleryError::Subject(subject));
            }
            let unit = normalise(t).ok_or_else(|| GalleryError::Template {
                subject,
                detail: "not 128 finite values of non-zero length".into(),
            })?;
            rows.push(self.encode(&unit));
        }
        let mut fresh: Vec<u32> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &s in subjects {
            if !self.index.contains_key(&s) && seen.insert(s) {
                fresh.push(s);
            }
        }
        let first = self.rows.len() as u64;
        self.reserve(fresh.len() as u64)?;
        self.generation += 1;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        // Appended rows: their subject ids in one write, their templates block by block (a
        // subject's first occurrence; later occurrences are written over it below, in order).
        let mut data = Vec::with_capacity(fresh.len());
        let mut first_at = HashMap::new();
        for (i, &s) in subjects.iter().enumerate() {
            first_at.entry(s).or_insert(i);
        }
        for (k, &s) in fresh.iter().enumerate() {
            let row = (first + k as u64) as u32;
            self.index.insert(s, row);
            self.rows.push(s);
            data.push(&rows[first_at[&s]][..]);
        }
        if !fresh.is_empty() {
            let ids: &[u8] = bytemuck::cast_slice(&fresh);
            self.queue.write_buffer(&self.subjects, first * 4, ids);
            self.write_rows(first, &data);
        }
        for (i, &s) in subjects.iter().enumerate() {
            let row = self.index[&s] as u64;
            if row < first || first_at[&s] != i {
                self.write_rows(row, &[&rows[i][..]]);
            }
        }
        gpu_ok(scope)
    }

    /// Removes `subject` (false if it was not there): the last row moves into its place with a GPU
    /// copy, and that subject's row index changes accordingly.
    pub fn remove(&mut self, subject: u32) -> R<bool> {
        let Some(row) = self.index.remove(&subject) else {
            return Ok(false);
        };
        self.generation += 1;
        let last = self.rows.len() as u64 - 1;
        let moved = self.rows.pop().unwrap_or(subject);
        if row as u64 == last {
            return Ok(true);
        }
        self.rows[row as usize] = moved;
        self.index.insert(moved, row);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue
            .write_buffer(&self.subjects, row as u64 * 4, bytemuck::bytes_of(&moved));
        // Through a scratch row: source and destination may be the same buffer.
        let v4 = vec4_bytes(self.precision);
        let scratch = storage(&self.device, "gallery scratch", K4 * v4);
        let mut enc = self.device.create_command_encoder(&Default::default());
        let (sp, sr) = self.locate(last);
        let (dp, dr) = self.locate(row as u64);
        for k in 0..K4 {
            let from = self.offset(sr, k);
            enc.copy_buffer_to_buffer(&self.pages[sp], from, &scratch, k * v4, v4);
        }
        for k in 0..K4 {
            let to = self.offset(dr, k);
            enc.copy_buffer_to_buffer(&scratch, k * v4, &self.pages[dp], to, v4);
        }
        self.queue.submit([enc.finish()]);
        gpu_ok(scope)?;
        Ok(true)
    }

    /// Makes room for `additional` more rows: the first page doubles (GPU copy) until it is a
    /// full page, then whole pages are added.
    pub fn reserve(&mut self, additional: u64) -> R<()> {
        let need = self.rows.len() as u64 + additional;
        if need > self.max_rows {
            return Err(GalleryError::Full {
                rows: self.max_rows,
            });
        }
        let rb = row_bytes(self.precision);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let inner = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        while self.capacity() < need {
            let cap = self.capacity();
            if self.pages.len() == 1 && cap < self.page_rows {
                let grown = (cap * 2).min(self.page_rows);
                let new = storage(&self.device, "gallery page", grown * rb);
                let mut enc = self.device.create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(&self.pages[0], 0, &new, 0, cap * rb);
                self.queue.submit([enc.finish()]);
                self.pages[0] = new;
            } else {
                let page = storage(&self.device, "gallery page", self.page_rows * rb);
                self.pages.push(page);
            }
        }
        let cap = self.capacity();
        self.grow_subjects(cap)?;
        gpu_ok(inner)?;
        gpu_ok(scope)
    }

    /// Narrows matching to `subjects` (for example those holding a ticket valid at this station),
    /// or with `None` lets every subject in the gallery match. Subjects not in the gallery may be
    /// listed; they change nothing.
    pub fn set_candidates(&mut self, subjects: Option<&[u32]>) -> R<()> {
        let Some(subjects) = subjects else {
            self.mask = None;
            return Ok(());
        };
        if let Some(&s) = subjects.iter().find(|&&s| s > MAX_SUBJECT) {
            return Err(GalleryError::Subject(s));
        }
        let top = subjects.iter().max().copied().unwrap_or(0);
        let mut words = vec![0u32; top as usize / 32 + 1];
        for &s in subjects {
            words[s as usize / 32] |= 1 << (s % 32);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buf = (self.device).create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("gallery candidates"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::STORAGE,
        });
        gpu_ok(scope)?;
        self.mask = Some((buf, words.len() as u32));
        Ok(())
    }

    /// Whether a candidate mask is set.
    pub fn narrowed(&self) -> bool {
        self.mask.is_some()
    }

    /// Checks and uploads `probes` (P rows of 128 f32; each is L2-normalised here, a non-finite or
    /// zero one becomes [`Match::InvalidProbe`]) and binds one matching dispatch for them.
    pub fn prepare(&self, probes: &[f32]) -> R<MatchDispatch> {
        if probes.is_empty() || !probes.len().is_multiple_of(DIM) {
            return Err(GalleryError::Probes(format!(
                "{} values: expected a positive multiple of {DIM}",
                probes.len()
            )));
        }
        let p = probes.len() / DIM;
        if p > MAX_PROBES {
            return Err(GalleryError::Probes(format!(
                "{p} probes in one dispatch, the limit is {MAX_PROBES}"
            )));
        }
        let mut unit = Vec::with_capacity(probes.len());
        let mut valid = Vec::with_capacity(p);
        for probe in probes.chunks_exact(DIM) {
            let u = normalise(probe);
            valid.push(u.is_some());
            unit.extend_from_slice(&u.unwrap_or([0.0; DIM]));
        }
        let device = &self.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        use wgpu::BufferUsages as U;
        let buffer = |label, size, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let out = buffer("match top-2", p as u64 * 16, U::STORAGE | U::COPY_SRC);
        let read = buffer("match readback", p as u64 * 16, U::MAP_READ | U::COPY_DST);
        let mut d = MatchDispatch {
            generation: self.generation,
            valid,
            scans: Vec::new(),
            reduce: None,
            out,
            read,
            gallery_bytes: 0,
            comparisons: 0,
        };
        let n = self.rows.len() as u64;
        if n == 0 {
            gpu_ok(scope)?;
            return Ok(d);
        }

        // Probes per invocation: the smallest variant covering P, at most 8.
        let vi = PB
            .iter()
            .position(|&pb| pb as usize >= p)
            .unwrap_or(PB.len() - 1);
        let pb = PB[vi] as u64;
        let pg = (p as u64).div_ceil(pb);
        // Groups of 32 lanes, shared among the pages in proportion to their blocks.
        let total_blocks = n.div_ceil(BLOCK);
        let target = (self.threads as u64 / (BLOCK * pg)).max(1);
        let mut plan = Vec::new(); // (page, rows, row_base, groups, thread_base)
        let mut columns = 0u64;
        for (i, _) in self.pages.iter().enumerate() {
            let base = i as u64 * self.page_rows;
            if base >= n {
                break;
            }
            let rows = (n - base).min(self.page_rows);
            let blocks = rows.div_ceil(BLOCK);
            let groups = (blocks * target).div_ceil(total_blocks).clamp(1, blocks);
            plan.push((i, rows, base, groups, columns));
            columns += groups * BLOCK;
        }
        let part_bytes = columns * p as u64 * 16;
        let max = device.limits().max_storage_buffer_binding_size;
        if part_bytes > max {
            return Err(GalleryError::Probes(format!(
                "{p} probes need {part_bytes} bytes of partial results, over the binding limit \
                 {max}; use fewer probes per dispatch"
            )));
        }
        let partial = buffer("match partial top-2", part_bytes, U::STORAGE);
        let (mask, mask_on, mask_words) = match &self.mask {
            Some((b, w)) => (b, 1, *w),
            None => (&self.dummy, 0, 1),
        };
        let mut words = Vec::new();
        for &(_, rows, base, groups, thread_base) in &plan {
            let slot = [
                rows as u32,
                base as u32,
                groups as u32,
                thread_base as u32,
                columns as u32,
                p as u32,
                pg as u32,
                mask_on,
                mask_words,
                0,
                0,
                0,
            ];
            words.extend_from_slice(&slot);
            words.resize(words.len() + (UNIFORM_SLOT as usize / 4 - slot.len()), 0);
        }
        words.extend_from_slice(&[columns as u32, p as u32, 0, 0]);
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("match parameters"),
            contents: bytemuck::cast_slice(&words),
            usage: U::UNIFORM,
        });
        let probes = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("match probes"),
            contents: bytemuck::cast_slice(&unit),
            usage: U::STORAGE,
        });
        let slot = |i: u64, size| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset: i * UNIFORM_SLOT,
                size: NonZeroU64::new(size),
            })
        };
        let group = |layout, entries: Vec<(u32, wgpu::BindingResource)>| {
            let entries: Vec<_> = (entries.into_iter())
                .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("match"),
                layout,
                entries: &entries,
            })
        };
        let rb = row_bytes(self.precision);
        for (k, &(page, rows, _, groups, _)) in plan.iter().enumerate() {
            // The page bound up to its last used block.
            let size = rows.div_ceil(BLOCK) * BLOCK * rb;
            let bg = group(
                &self.scan_layout,
                vec![
                    (0, slot(k as u64, 48)),
                    (1, binding(&self.pages[page], size)),
                    (2, self.subjects.as_entire_binding()),
                    (3, mask.as_entire_binding()),
                    (4, probes.as_entire_binding()),
                    (5, partial.as_entire_binding()),
                ],
            );
            let workgroups = (groups * BLOCK).div_ceil(SCAN_WG as u64) * pg;
            let max_x = device.limits().max_compute_workgroups_per_dimension as u64;
            if workgroups > max_x {
                return Err(GalleryError::Option(format!(
                    "{workgroups} workgroups in one dispatch (limit {max_x}); lower `threads`"
                )));
            }
            d.scans.push((vi, bg, workgroups as u32));
        }
        d.reduce = Some(group(
            &self.reduce_layout,
            vec![
                (6, slot(plan.len() as u64, 16)),
                (7, partial.as_entire_binding()),
                (8, d.out.as_entire_binding()),
            ],
        ));
        d.gallery_bytes = n * rb * pg;
        d.comparisons = n * p as u64;
        gpu_ok(scope)?;
        Ok(d)
    }

    /// Records the dispatch's two passes into the caller's compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, d: &MatchDispatch) {
        for (vi, bg, workgroups) in &d.scans {
            pass.set_pipeline(&self.scan[*vi]);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*workgroups, 1, 1);
        }
        if let Some(bg) = &d.reduce {
            pass.set_pipeline(&self.reduce);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(d.valid.len() as u32, 1, 1);
        }
    }

    /// Copies the dispatch's results to its readback buffer (after [`Gallery::record`]).
    pub fn record_readback(&self, encoder: &mut wgpu::CommandEncoder, d: &MatchDispatch) {
        if d.reduce.is_some() {
            encoder.copy_buffer_to_buffer(&d.out, 0, &d.read, 0, d.out.size());
        }
    }

    /// Waits for the readback and decodes one [`Match`] per probe.
    pub fn results(&self, d: &MatchDispatch) -> R<Vec<Match>> {
        if d.generation != self.generation {
            return Err(GalleryError::Stale);
        }
        if d.reduce.is_none() {
            let none = |&v: &bool| {
                if v {
                    Match::NoCandidates
                } else {
                    Match::InvalidProbe
                }
            };
            return Ok(d.valid.iter().map(none).collect());
        }
        let gpu = |e: readback::ReadbackError| GalleryError::Gpu(format!("readback: {e}"));
        let bytes = readback::map_all(&self.device, &[&d.read]).map_err(gpu)?;
        let words: Vec<u32> = bytes
            .first()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .unwrap_or_default();

        let candidate = |row: u32, bits: u32| {
            let subject = self.rows.get(row as usize).copied()?;
            let similarity = f32::from_bits(bits);
            Some(Candidate {
                subject,
                row,
                similarity,
            })
        };
        let results = (words.chunks_exact(4).zip(&d.valid))
            .map(|(t, &valid)| {
                if !valid {
                    return Match::InvalidProbe;
                }
                match candidate(t[0], t[2]) {
                    None => Match::NoCandidates,
                    Some(best) => Match::Found {
                        best,
                        second: candidate(t[1], t[3]),
                    },
                }
            })
            .collect();
        Ok(results)
    }

    /// Prepares, runs and reads back one dispatch for `probes` (P × 128 f32).
    pub fn run_blocking(&self, probes: &[f32]) -> R<Vec<Match>> {
        let d = self.prepare(probes)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.record(&mut enc.begin_compute_pass(&Default::default()), &d);
        self.record_readback(&mut enc, &d);
        self.queue.submit([enc.finish()]);
        gpu_ok(scope)?;
        self.results(&d)
    }

    /// The stored templates read back from the GPU, row by row (widened to f32), for checks.
    pub fn read_templates(&self) -> R<Vec<f32>> {
        let n = self.rows.len() as u64;
        let rb = row_bytes(self.precision);
        let mut bytes = Vec::new();
        for (i, page) in self.pages.iter().enumerate() {
            let base = i as u64 * self.page_rows;
            if base >= n {
                break;
            }
            let size = (n - base).min(self.page_rows).div_ceil(BLOCK) * BLOCK * rb;
            bytes.push(self.read_buffer(page, size)?);
        }
        let v4 = vec4_bytes(self.precision) as usize;
        let mut out = Vec::with_capacity(n as usize * DIM);
        for row in 0..n {
            let (page, r) = self.locate(row);
            for k in 0..K4 {
                let at = self.offset(r, k) as usize;
                let raw = &bytes[page][at..at + v4];
                match self.precision {
                    Precision::F32 => {
                        out.extend(
                            raw.chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                        );
                    }
                    Precision::F16 => out.extend(
                        (raw.chunks_exact(2))
                            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
                    ),
                }
            }
        }
        Ok(out)
    }

    fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> R<Vec<u8>> {
        readback::read(&self.device, &self.queue, buffer, size)
            .map_err(|e| GalleryError::Gpu(format!("readback: {e}")))
    }

    /// The storage bytes of one normalised row, in row order (k = 0..127).
    fn encode(&self, unit: &[f32; DIM]) -> Vec<u8> {
        match self.precision {
            Precision::F32 => bytemuck::cast_slice(unit).to_vec(),
            Precision::F16 => unit
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    /// Page and row within the page.
    fn locate(&self, row: u64) -> (usize, u64) {
        ((row / self.page_rows) as usize, row % self.page_rows)
    }

    /// Byte offset of vec4 `k` of page row `r`.
    fn offset(&self, r: u64, k: u64) -> u64 {
        ((r / BLOCK) * BLOCK * K4 + k * BLOCK + r % BLOCK) * vec4_bytes(self.precision)
    }

    /// Writes `rows` (encoded, row order) to gallery rows `first..`: whole blocks in one write each,
    /// partial blocks vec4 by vec4.
    fn write_rows(&self, first: u64, rows: &[&[u8]]) {
        let v4 = vec4_bytes(self.precision) as usize;
        let mut i = 0usize;
        while i < rows.len() {
            let row = first + i as u64;
            let (page, r) = self.locate(row);
            let left = rows.len() - i;
            let room = (self.page_rows - r) as usize;
            if r.is_multiple_of(BLOCK) && left >= BLOCK as usize && room >= BLOCK as usize {
                // A whole block: interleave on the host, one write.
                let mut block = vec![0u8; BLOCK as usize * K4 as usize * v4];
                for lane in 0..BLOCK as usize {
                    let src = rows[i + lane];
                    for k in 0..K4 as usize {
                        let at = (k * BLOCK as usize + lane) * v4;
                        block[at..at + v4].copy_from_slice(&src[k * v4..(k + 1) * v4]);
                    }
                }
                let at = self.offset(r, 0);
                self.queue.write_buffer(&self.pages[page], at, &block);
                i += BLOCK as usize;
            } else {
                for k in 0..K4 {
                    let src = &rows[i][k as usize * v4..(k as usize + 1) * v4];
                    self.queue
                        .write_buffer(&self.pages[page], self.offset(r, k), src);
                }
                i += 1;
            }
        }
    }

    fn grow_subjects(&mut self, rows: u64) -> R<()> {
        if rows <= self.subjects_cap {
            return Ok(());
        }
        let cap = rows.next_power_of_two().min(self.max_rows).max(rows);
        let new = storage(&self.device, "gallery subjects", cap * 4);
        let mut enc = self.device.create_command_encoder(&Default::default());
        let used = self.rows.len() as u64 * 4;
        if used > 0 {
            enc.copy_buffer_to_buffer(&self.subjects, 0, &new, 0, used);
        }
        self.queue.submit([enc.finish()]);
        self.subjects = new;
        self.subjects_cap = cap;
        Ok(())
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

/// The gallery binding and its loader in match.wgsl, and their f16 replacement: the same vec4 as
/// two u32 of packed f16 pairs (little-endian: element 0 in the low half, as `unpack2x16float`
/// reads it).
const F32_LOAD: &str = "@group(0) @binding(1) var<storage, read> gallery: array<vec4<f32>>;
fn load(i: u32) -> vec4<f32> { return gallery[i]; }";
const F16_LOAD: &str = "@group(0) @binding(1) var<storage, read> gallery: array<vec2<u32>>;
fn load(i: u32) -> vec4<f32> {
    let w = gallery[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}";

/// `match.wgsl` with `PB` probes per invocation and `precision` storage.
fn variant(precision: Precision, pb: u32) -> String {
    let src = MATCH.replacen("const PB: u32 = 8u;", &format!("const PB: u32 = {pb}u;"), 1);
    match precision {
        Precision::F32 => src,
        Precision::F16 => src.replacen(F32_LOAD, F16_LOAD, 1),
    }
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
    match pollster::block_on(scope.pop()) {
        None => Ok(()),
        Some(e) => Err(GalleryError::Gpu(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
