//! The GPU backend: our WGSL kernels on the station's device. The lanes' normalised frames are
//! gathered into one buffer (a GPU-side copy), the letterbox and the alignment warp write straight
//! into the models' input buffers, and only detections, embeddings and the chips' pixels for the
//! quality measures come back.

use engine::Graph;
use engine::face::align::{self, CHIP};
use engine::face::blazeface::{Detection, Letterbox, Spec};
use engine::face::{Chip, embedding};
use engine::gpu::executor::GpuModel;
use engine::gpu::kernels::Kernels;
use engine::gpu::resample::{self, CHIP_LEN, Frame, Resampler, Source, Target, Work};
use zeroize::Zeroizing;

use super::{Cut, Embedded, FrameRef, Pixels, RecogniseError, decode, stage_err};
use crate::normalise::Gpu;

pub(super) struct GpuBackend {
    kernels: Kernels,
    detector: GpuModel,
    sface: GpuModel,
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
        let sface = plan("SFace on the GPU", sface, max_faces)?;
        let resampler = Resampler::new(d).map_err(|e| stage_err("resampler")(e.to_string()))?;
        Ok(Self {
            kernels,
            detector,
            sface,
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
        min_score: f32,
    ) -> Result<Vec<Vec<Detection>>, RecogniseError> {
        self.gather(gpu, frames)?;
        let Some(pixels) = &self.frames else {
            return Err(RecogniseError::Gpu("no frames buffer".into()));
        };
        let mut out = Vec::with_capacity(frames.len());
        let jobs: Vec<u32> = (0..frames.len() as u32).collect();
        for chunk in jobs.chunks(self.detector.batch()) {
            let work = Work::Letterbox {
                jobs: chunk,
                input: spec.input as u32,
            };
            let (outs, letterboxes) =
                self.resample_and_run(gpu, pixels, &self.detector, work, "detect")?;
            for (item, lb) in letterboxes.iter().enumerate() {
                out.push(decode(spec, &outs, item, min_score, lb)?);
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

    pub(super) fn embed(&mut self, gpu: &Gpu, cuts: &[Cut]) -> Result<Embedded, RecogniseError> {
        let err = stage_err("embed");
        let Some(pixels) = &self.frames else {
            return Err(RecogniseError::Gpu("embed before detect".into()));
        };
        let mut faces = Vec::with_capacity(cuts.len());
        for (i, c) in cuts.iter().enumerate() {
            let Some(to_chip) = align::from_blazeface(&c.detection.keypoints) else {
                continue; // degenerate keypoints: tracked, never embedded
            };
            if let Ok(f) = resample::Face::from_to_chip(c.frame as u32, &to_chip) {
                faces.push((i, f));
            }
        }
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.sface.batch()) {
            let list: Vec<resample::Face> = chunk.iter().map(|(_, f)| *f).collect();
            let (outs, _) =
                self.resample_and_run(gpu, pixels, &self.sface, Work::Chips(&list), "embed")?;
            let raw = outs
                .first()
                .ok_or_else(|| err("SFace gave no output".into()))?;
            let chips = read_f32(gpu, self.sface.input_buffer(), list.len() * CHIP_LEN)?;
            for (j, &(i, _)) in chunk.iter().enumerate() {
                let (Some(e), Some(px)) = (
                    raw.get(j * 128..(j + 1) * 128).and_then(embedding),
                    chips.get(j * CHIP_LEN..(j + 1) * CHIP_LEN),
                ) else {
                    continue;
                };
                debug_assert_eq!(px.len(), 3 * CHIP * CHIP);
                out.push((i, Chip(Zeroizing::new(px.to_vec())), e));
            }
        }
        Ok(out)
    }
}

/// Copies the first `len` floats of `buf` back (the chips, for the quality measures).
fn read_f32(
    gpu: &Gpu,
    buf: &wgpu::Buffer,
    len: usize,
) -> Result<Zeroizing<Vec<f32>>, RecogniseError> {
    if len == 0 {
        return Ok(Zeroizing::new(Vec::new()));
    }
    let bytes = Zeroizing::new(
        engine::gpu::readback::read(&gpu.device, &gpu.queue, buf, (len * 4) as u64)
            .map_err(|e| RecogniseError::Gpu(format!("reading chips: {e}")))?,
    );
    let v: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    Ok(Zeroizing::new(v))
}
