//! The GPU backend: our WGSL kernels on the station's device. The lanes' normalised frames are
//! gathered into one buffer (a GPU-side copy) and the letterbox writes straight into the
//! detector's input. Two submissions per tick, each with one readback:
//! - detection: the detector's raw outputs come back, since the tracker on the CPU decides which
//!   faces are worth embedding (not a decided walker, not too small, the largest first);
//! - embed and match (`engine::gpu::probe::Embedder`): chips → SFace → unit probes and chip
//!   measures → the gallery's matching kernel, and only 32 bytes per face come back (the top two,
//!   the probe's validity, sharpness and luma). Neither embedding nor chip leaves the GPU.

use engine::Graph;
use engine::face::align;
use engine::face::blazeface::{Detection, Letterbox, Spec};
use engine::gpu::executor::GpuModel;
use engine::gpu::gallery::{Gallery, Match};
use engine::gpu::kernels::Kernels;
use engine::gpu::probe::{ChipProbe, Embedder};
use engine::gpu::resample::{self, Frame, Resampler, Source, Target, Work};

use super::{Cut, FrameRef, Pixels, RecogniseError, decode, stage_err, to_frame};
use crate::normalise::Gpu;

pub(super) struct GpuBackend {
    kernels: Kernels,
    detector: GpuModel,
    embedder: Embedder,
    resampler: Resampler,
    /// Every lane's frame of the tick, packed RGBA, one after the other.
    frames: Option<wgpu::Buffer>,
    table: Vec<Frame>,
}

impl GpuBackend {
    pub(super) fn new(
        gpu: &Gpu,
        detector: &Graph,
        sface: &Graph,
        lanes: usize,
        max_faces: usize,
    ) -> Result<Self, RecogniseError> {
        let d = &gpu.device;
        let kernels = Kernels::new(d);
        let plan = |what: &'static str, g: &Graph, batch: usize| {
            GpuModel::new(d, &kernels, g, batch).map_err(|e| stage_err(what)(e.to_string()))
        };
        let detector = plan("detector on the GPU", detector, lanes)?;
        let embedder = Embedder::new(d, &kernels, sface, max_faces)
            .map_err(|e| stage_err("SFace on the GPU")(e.to_string()))?;
        let resampler = Resampler::new(d).map_err(|e| stage_err("resampler")(e.to_string()))?;
        Ok(Self {
            kernels,
            detector,
            embedder,
            resampler,
            frames: None,
            table: Vec::new(),
        })
    }

    /// Gathers the frames into one buffer so one dispatch can sample every lane.
    fn gather(&mut self, gpu: &Gpu, frames: &[FrameRef<'_>]) -> Result<(), RecogniseError> {
        self.table.clear();
        let mut offset = 0u64;
        for f in frames {
            let px = f.width as u64 * f.height as u64;
            self.table.push(Frame {
                offset: u32::try_from(offset)
                    .map_err(|_| RecogniseError::Gpu("frames too large".into()))?,
                width: f.width,
                height: f.height,
            });
            offset += px;
        }
        let bytes = (offset * 4).max(4);
        if self.frames.as_ref().is_none_or(|b| b.size() < bytes) {
            self.frames = Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tick frames"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let Some(dst) = &self.frames else {
            return Err(RecogniseError::Gpu("no frames buffer".into()));
        };
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (f, t) in frames.iter().zip(&self.table) {
            let len = t.width as u64 * t.height as u64 * 4;
            let Pixels::Gpu(lane) = f.pixels else {
                return Err(RecogniseError::Gpu(
                    "the GPU backend needs frames normalised on the GPU".into(),
                ));
            };
            if lane.output.size() < len {
                return Err(RecogniseError::Gpu(
                    "normalised frame smaller than its size".into(),
                ));
            }
            enc.copy_buffer_to_buffer(&lane.output, 0, dst, t.offset as u64 * 4, len);
        }
        gpu.queue.submit([enc.finish()]);
        Ok(())
    }

    pub(super) fn detect(
        &mut self,
        gpu: &Gpu,
        spec: &Spec,
        frames: &[FrameRef<'_>],
        windows: &[[u32; 4]],
        min_score: f32,
    ) -> Result<Vec<Vec<Detection>>, RecogniseError> {
        self.gather(gpu, frames)?;
        let Some(pixels) = &self.frames else {
            return Err(RecogniseError::Gpu("no frames buffer".into()));
        };
        let mut out = Vec::with_capacity(frames.len());
        let jobs: Vec<u32> = (0..frames.len() as u32).collect();
        let batch = self.detector.batch();
        for (c, chunk) in jobs.chunks(batch).enumerate() {
            let wins = windows
                .get(c * batch..c * batch + chunk.len())
                .unwrap_or(&[]);
            let work = Work::Letterbox {
                jobs: chunk,
                input: spec.input as u32,
                windows: wins,
            };
            let (outs, letterboxes) =
                self.resample_and_run(gpu, pixels, &self.detector, work, "detect")?;
            for (item, lb) in letterboxes.iter().enumerate() {
                let mut found = decode(spec, &outs, item, min_score, lb)?;
                if let Some(&[x0, y0, ..]) = wins.get(item) {
                    to_frame(&mut found, x0, y0);
                }
                out.push(found);
            }
        }
        Ok(out)
    }

    /// Resamples `work` from the tick's frames straight into `model`'s input and runs the model in
    /// the same pass: its outputs and, for letterbox work, how each frame was fitted.
    fn resample_and_run(
        &self,
        gpu: &Gpu,
        pixels: &wgpu::Buffer,
        model: &GpuModel,
        work: Work<'_>,
        stage: &'static str,
    ) -> Result<(Vec<Vec<f32>>, Vec<Letterbox>), RecogniseError> {
        let err = stage_err(stage);
        let d = self
            .resampler
            .prepare(
                &gpu.device,
                Source {
                    pixels,
                    frames: &self.table,
                },
                work,
                Target {
                    buffer: model.input_buffer(),
                    offset: 0,
                },
            )
            .map_err(|e| err(e.to_string()))?;
        let outs = model
            .run_with(&gpu.device, &gpu.queue, &self.kernels, &mut |pass| {
                self.resampler.record(pass, &d)
            })
            .map_err(|e| err(e.to_string()))?;
        Ok((outs, d.letterboxes))
    }

    /// Embeds every cut face and matches it against `gallery`, in one submission per SFace batch:
    /// for each face that could be aligned, its index in `cuts`, what the GPU measured of its chip
    /// and its match.
    pub(super) fn embed_and_match(
        &mut self,
        gpu: &Gpu,
        cuts: &[Cut],
        gallery: &Gallery,
    ) -> Result<Vec<(usize, ChipProbe, Match)>, RecogniseError> {
        let Some(pixels) = &self.frames else {
            return Err(RecogniseError::Gpu("embed before detect".into()));
        };
        let mut faces = Vec::with_capacity(cuts.len());
        let mut index = Vec::with_capacity(cuts.len());
        for (i, c) in cuts.iter().enumerate() {
            let Some(to_chip) = align::from_blazeface(&c.detection.keypoints) else {
                continue; // degenerate keypoints: tracked, never embedded
            };
            if let Ok(f) = resample::Face::from_to_chip(c.frame as u32, &to_chip) {
                faces.push(f);
                index.push(i);
            }
        }
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let src = Source {
            pixels,
            frames: &self.table,
        };
        let results = self
            .embedder
            .run(
                &gpu.device,
                &gpu.queue,
                &self.kernels,
                &self.resampler,
                src,
                &faces,
                gallery,
            )
            .map_err(|e| stage_err("embed and match")(e.to_string()))?;
        Ok(index
            .into_iter()
            .zip(results)
            .map(|(i, (probe, m))| (i, probe, m))
            .collect())
    }
}
