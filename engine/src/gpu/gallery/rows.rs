//! Changing the gallery's rows: upserts (checked, normalised, appended block by block), removal by
//! swap-remove on the GPU, growth by page, and reading the stored templates back for checks.

use std::collections::HashMap;

use super::{
    BLOCK, DIM, Gallery, GalleryError, K4, MAX_SUBJECT, R, gpu_ok, normalise, row_bytes, storage,
    vec4_bytes,
};
use crate::gpu::{Precision, readback};

impl Gallery {
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

    pub(super) fn grow_subjects(&mut self, rows: u64) -> R<()> {
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
