//! Matching probes against the gallery: the candidate mask, binding a dispatch (scan per page,
//! then one reduce to the top-2 per probe), recording it, and decoding the results.

use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use super::{
    BLOCK, Candidate, DIM, Gallery, GalleryError, MATCH, MAX_PROBES, MAX_SUBJECT, Match,
    MatchDispatch, PB, R, SCAN_WG, UNIFORM_SLOT, binding, gpu_ok, normalise, row_bytes,
};
use crate::gpu::{Precision, readback};

impl Gallery {
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
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let probes = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("match probes"),
                contents: bytemuck::cast_slice(&unit),
                usage: wgpu::BufferUsages::STORAGE,
            });
        gpu_ok(scope)?;
        self.bind(&probes, valid)
    }

    /// Binds one matching dispatch for `count` probes that already live on the GPU: `probes` holds
    /// them as unit vectors (128 f32 each, from its start), an invalid one as zeros (the caller
    /// knows which, and says so to [`Gallery::decode`]). This is how the station matches SFace's
    /// output without reading it back (`gpu::probe`).
    pub fn prepare_resident(&self, probes: &wgpu::Buffer, count: usize) -> R<MatchDispatch> {
        if count == 0 || count > MAX_PROBES {
            return Err(GalleryError::Probes(format!(
                "{count} probes in one dispatch: 1..={MAX_PROBES}"
            )));
        }
        if probes.size() < (count * DIM * 4) as u64
            || !probes.usage().contains(wgpu::BufferUsages::STORAGE)
        {
            return Err(GalleryError::Probes(format!(
                "a STORAGE buffer of {count}×{DIM} f32 is needed, got {} bytes",
                probes.size()
            )));
        }
        self.bind(probes, vec![true; count])
    }

    fn bind(&self, probes: &wgpu::Buffer, valid: Vec<bool>) -> R<MatchDispatch> {
        let p = valid.len();
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
                    (4, binding(probes, p as u64 * DIM as u64 * 4)),
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
        let words: Vec<u32> = match d.reduce {
            None => Vec::new(),
            Some(_) => {
                let gpu = |e: readback::ReadbackError| GalleryError::Gpu(format!("readback: {e}"));
                let bytes = readback::map_all(&self.device, &[&d.read]).map_err(gpu)?;
                bytes
                    .first()
                    .map(|b| bytemuck::pod_collect_to_vec(b))
                    .unwrap_or_default()
            }
        };
        self.decode(d, &words, &d.valid)
    }

    /// The buffer of a recorded dispatch's results, for a caller that reads them back together with
    /// its own (`None` when nothing was recorded: the gallery was empty). Its bytes go to
    /// [`Gallery::decode`].
    pub fn top2<'a>(&self, d: &'a MatchDispatch) -> Option<&'a wgpu::Buffer> {
        d.reduce.as_ref().map(|_| &d.out)
    }

    /// One [`Match`] per probe from the words of [`Gallery::top2`] (4 per probe; ignored when the
    /// dispatch recorded nothing), `valid` saying which probes were real.
    pub fn decode(&self, d: &MatchDispatch, words: &[u32], valid: &[bool]) -> R<Vec<Match>> {
        if d.generation != self.generation {
            return Err(GalleryError::Stale);
        }
        if valid.len() != d.valid.len() {
            return Err(GalleryError::Probes(format!(
                "{} validity flags for {} probes",
                valid.len(),
                d.valid.len()
            )));
        }
        if d.reduce.is_none() {
            let none = |&v: &bool| {
                if v {
                    Match::NoCandidates
                } else {
                    Match::InvalidProbe
                }
            };
            return Ok(valid.iter().map(none).collect());
        }
        if words.len() < 4 * valid.len() {
            return Err(GalleryError::Gpu(format!(
                "{} result words for {} probes",
                words.len(),
                valid.len()
            )));
        }
        let candidate = |row: u32, bits: u32| {
            let subject = self.rows.get(row as usize).copied()?;
            let similarity = f32::from_bits(bits);
            Some(Candidate {
                subject,
                row,
                similarity,
            })
        };
        let results = (words.chunks_exact(4).zip(valid))
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
}

/// The gallery binding and its loader in match.wgsl, and their f16 replacement: the same vec4 as
/// two u32 of packed f16 pairs (little-endian: element 0 in the low half, as `unpack2x16float`
/// reads it).
pub(super) const F32_LOAD: &str =
    "@group(0) @binding(1) var<storage, read> gallery: array<vec4<f32>>;
fn load(i: u32) -> vec4<f32> { return gallery[i]; }";
const F16_LOAD: &str = "@group(0) @binding(1) var<storage, read> gallery: array<vec2<u32>>;
fn load(i: u32) -> vec4<f32> {
    let w = gallery[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}";

/// `match.wgsl` with `PB` probes per invocation and `precision` storage.
pub(super) fn variant(precision: Precision, pb: u32) -> String {
    let src = MATCH.replacen("const PB: u32 = 8u;", &format!("const PB: u32 = {pb}u;"), 1);
    match precision {
        Precision::F32 => src,
        Precision::F16 => src.replacen(F32_LOAD, F16_LOAD, 1),
    }
}
