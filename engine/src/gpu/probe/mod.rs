//! The embed-and-match half of the station's GPU tick, in one submission with one readback:
//! alignment chips cut from the frames ([`Resampler`]) → SFace ([`GpuModel`]) → `probe.wgsl`
//! (beside this file: each embedding made a unit probe, each chip's luma and sharpness measured) →
//! the gallery's matching kernel reading the probes where they are ([`Gallery::prepare_resident`]).
//! What comes back per face is 544 bytes: the top two, the probe's validity, the two measures and
//! the unit probe itself (512 bytes, which the deciders fuse over a track's frames,
//! `pipeline::decide::fusion`). The chip (150 KB) never leaves the GPU.
//!
//! [`ProbeKernels`] is the kernel pair on its own (tested against the CPU references in
//! `tests.rs`); [`Embedder`] is the whole sequence, used by the station (`pipeline::recognise`) and
//! by `benches/tick.rs`, so the benchmark times what the station runs.

use wgpu::util::DeviceExt;

use super::gallery::{self, Gallery, Match};
use super::resample::{self, CHIP_LEN, Resampler, Source, Target, Work};
use super::{GpuModel, GpuRunError, Kernels, readback, shader};
use crate::graph::Graph;

const PROBE: &str = include_str!("probe.wgsl");
const DIM: usize = gallery::DIM;
/// Bytes per face in `results` (one vec4<u32>).
const RESULT_BYTES: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cutting the chips")]
    Resample(#[from] resample::ResampleError),
    #[error("SFace on the GPU")]
    Model(#[from] GpuRunError),
    #[error("matching")]
    Gallery(#[from] gallery::GalleryError),
    #[error("reading the tick's results back")]
    Readback(#[from] readback::ReadbackError),
    #[error("{0}")]
    Invalid(String),
    #[error("GPU: {0}")]
    Gpu(String),
}

type R<T> = Result<T, ProbeError>;

/// What the GPU measured of one embedded face: whether its embedding was usable (128 finite
/// values, not all zero) and, on its chip, `face::quality::measure`'s `sharpness` and `luma_mean`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChipProbe {
    pub valid: bool,
    pub sharpness: f32,
    pub luma: f32,
    /// The unit probe that was matched (128 values; empty from [`decode`] alone, zeros when not
    /// valid).
    pub unit: Vec<f32>,
}

/// The `unit` and `quality` pipelines of one device.
pub struct ProbeKernels {
    layout: wgpu::BindGroupLayout,
    unit: wgpu::ComputePipeline,
    quality: wgpu::ComputePipeline,
}

/// One bound pair of dispatches for `faces` faces.
pub struct ProbeDispatch {
    group: wgpu::BindGroup,
    faces: u32,
    unit: wgpu::Buffer,
    results: wgpu::Buffer,
}

impl ProbeDispatch {
    /// The unit probes, 128 f32 per face (zeros for an invalid one): what matching reads.
    pub fn unit(&self) -> &wgpu::Buffer {
        &self.unit
    }

    /// The per-face results and their size in bytes; decode them with [`decode`].
    pub fn results(&self) -> (&wgpu::Buffer, u64) {
        (&self.results, self.faces as u64 * RESULT_BYTES)
    }
}

impl ProbeKernels {
    pub fn new(device: &wgpu::Device) -> R<Self> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        use wgpu::BufferBindingType::{Storage, Uniform};
        let read = Storage { read_only: true };
        let rw = Storage { read_only: false };
        let layout = shader::buffer_layout(
            device,
            "probe.wgsl",
            &[(0, Uniform), (1, read), (2, read), (3, rw), (4, rw)],
        );
        let [unit, quality] =
            shader::compute_pipelines(device, "probe.wgsl", PROBE, &layout, ["unit", "quality"]);
        gpu_ok(scope)?;
        Ok(Self {
            layout,
            unit,
            quality,
        })
    }

    /// Binds both kernels for `faces` faces: `raw` holds their SFace outputs (128 f32 each, from
    /// its start), `chips` their chips (planar RGB f32 0–255, `CHIP_LEN` each, SFace's input).
    pub fn prepare(
        &self,
        device: &wgpu::Device,
        raw: &wgpu::Buffer,
        chips: &wgpu::Buffer,
        faces: usize,
    ) -> R<ProbeDispatch> {
        let max = device.limits().max_compute_workgroups_per_dimension as usize;
        if faces == 0 || faces > max.min(resample::MAX_FACES) {
            return Err(ProbeError::Invalid(format!(
                "{faces} faces in one dispatch: 1..={}",
                max.min(resample::MAX_FACES)
            )));
        }
        let raw_r = bound(raw, "embeddings", (faces * DIM * 4) as u64)?;
        let chips_r = bound(chips, "chips", (faces * CHIP_LEN * 4) as u64)?;
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
        let unit = buffer(
            "unit probes",
            (faces * DIM * 4) as u64,
            U::STORAGE | U::COPY_SRC,
        );
        let results = buffer(
            "probe results",
            faces as u64 * RESULT_BYTES,
            U::STORAGE | U::COPY_SRC,
        );
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("probe parameters"),
            contents: bytemuck::cast_slice(&[faces as u32, 0, 0, 0]),
            usage: U::UNIFORM,
        });
        let resources = [
            params.as_entire_binding(),
            raw_r,
            chips_r,
            unit.as_entire_binding(),
            results.as_entire_binding(),
        ];
        let entries: Vec<_> = (resources.into_iter().enumerate())
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("probe"),
            layout: &self.layout,
            entries: &entries,
        });
        gpu_ok(scope)?;
        Ok(ProbeDispatch {
            group,
            faces: faces as u32,
            unit,
            results,
        })
    }

    /// Records both kernels into the caller's pass (after SFace's dispatches).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, d: &ProbeDispatch) {
        pass.set_bind_group(0, &d.group, &[]);
        pass.set_pipeline(&self.unit);
        pass.dispatch_workgroups(d.faces, 1, 1);
        pass.set_pipeline(&self.quality);
        pass.dispatch_workgroups(d.faces, 1, 1);
    }
}

/// One [`ChipProbe`] per 4 words of a dispatch's results.
pub fn decode(words: &[u32]) -> Vec<ChipProbe> {
    words
        .chunks_exact(4)
        .map(|w| ChipProbe {
            valid: w[0] == 1,
            sharpness: f32::from_bits(w[1]),
            luma: f32::from_bits(w[2]),
            unit: Vec::new(),
        })
        .collect()
}

/// SFace on the GPU with the probe kernels after it: [`Embedder::run`] is the tick's embed and
/// match stage.
pub struct Embedder {
    sface: GpuModel,
    kernels: ProbeKernels,
}

impl Embedder {
    /// Plans SFace for `batch` faces per submission.
    pub fn new(device: &wgpu::Device, kernels: &Kernels, sface: &Graph, batch: usize) -> R<Self> {
        let sface = GpuModel::new(device, kernels, sface, batch)?;
        if sface.output(0).is_none_or(|(_, n)| n < batch * DIM) {
            return Err(ProbeError::Invalid(format!(
                "the embedding model's first output is not {DIM} values per face"
            )));
        }
        Ok(Self {
            sface,
            kernels: ProbeKernels::new(device)?,
        })
    }

    /// Faces per submission.
    pub fn batch(&self) -> usize {
        self.sface.batch()
    }

    /// Cuts `faces` from `src`'s frames, embeds them, makes the probes, measures the chips and
    /// matches the probes against `gallery`: one submission and one readback per
    /// [`Embedder::batch`] faces. One result per face, in order.
    #[allow(clippy::too_many_arguments)] // the device, its kernels and the tick's three inputs
    pub fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &Kernels,
        resampler: &Resampler,
        src: Source<'_>,
        faces: &[resample::Face],
        gallery: &Gallery,
    ) -> R<Vec<(ChipProbe, Match)>> {
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.batch().max(1)) {
            out.extend(self.run_batch(device, queue, kernels, resampler, src, chunk, gallery)?);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &Kernels,
        resampler: &Resampler,
        src: Source<'_>,
        faces: &[resample::Face],
        gallery: &Gallery,
    ) -> R<Vec<(ChipProbe, Match)>> {
        let n = faces.len();
        let input = self.sface.input_buffer();
        let cut = resampler.prepare(
            device,
            src,
            Work::Chips(faces),
            Target {
                buffer: input,
                offset: 0,
            },
        )?;
        let Some((raw, _)) = self.sface.output(0) else {
            return Err(ProbeError::Invalid("SFace has no output".into()));
        };
        let probes = self.kernels.prepare(device, raw, input, n)?;
        let matching = gallery.prepare_resident(probes.unit(), n)?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("embed and match"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("embed and match"),
                timestamp_writes: None,
            });
            resampler.record(&mut pass, &cut);
            self.sface.record(kernels, &mut pass);
            self.kernels.record(&mut pass, &probes);
            gallery.record(&mut pass, &matching);
        }
        let top2 = gallery.top2(&matching);
        let mut sources = vec![probes.results(), (probes.unit(), (n * DIM * 4) as u64)];
        if let Some(t) = top2 {
            sources.push((t, n as u64 * 16));
        }
        let (stage, ranges) = readback::record_gather(device, &mut enc, &sources);
        queue.submit([enc.finish()]);
        gpu_ok(scope)?;
        let bytes = readback::map_all(device, &[&stage])?;
        let bytes = bytes.first().map(Vec::as_slice).unwrap_or_default();
        let words = |i: usize| -> Vec<u32> {
            ranges
                .get(i)
                .and_then(|r| bytes.get(r.clone()))
                .map(bytemuck::pod_collect_to_vec)
                .unwrap_or_default()
        };
        let mut measured = decode(&words(0));
        let units = words(1);
        if measured.len() != n || units.len() != n * DIM {
            return Err(ProbeError::Gpu(format!(
                "{} probe results and {} probe values for {n} faces",
                measured.len(),
                units.len()
            )));
        }
        for (p, u) in measured.iter_mut().zip(units.chunks_exact(DIM)) {
            p.unit = u.iter().map(|&w| f32::from_bits(w)).collect();
        }
        let valid: Vec<bool> = measured.iter().map(|p| p.valid).collect();
        let matches = gallery.decode(&matching, &words(2), &valid)?;
        Ok(measured.into_iter().zip(matches).collect())
    }
}

/// The first `bytes` of `b`, if it is a storage buffer that large.
fn bound<'a>(b: &'a wgpu::Buffer, what: &str, bytes: u64) -> R<wgpu::BindingResource<'a>> {
    if b.size() < bytes || !b.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(ProbeError::Invalid(format!(
            "{what}: a STORAGE buffer of {bytes} bytes is needed, got {}",
            b.size()
        )));
    }
    Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b,
        offset: 0,
        size: std::num::NonZeroU64::new(bytes),
    }))
}

fn gpu_ok(scope: wgpu::ErrorScopeGuard) -> R<()> {
    match shader::scope_error(scope) {
        None => Ok(()),
        Some(e) => Err(ProbeError::Gpu(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
