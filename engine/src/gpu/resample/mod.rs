//! Host side of `resample.wgsl` (beside this file): the GPU versions of [`crate::face::align::warp_chip`]
//! (112×112 SFace chips, many faces in one dispatch) and [`crate::face::prepare::detector_input`]
//! (letterboxed BlazeFace inputs, several frames in one dispatch), sampling packed RGBA8 frames
//! that already live on the GPU (the lighting-normalised frames).
//!
//! A [`Resampler`] holds the two pipelines, compiled once per device. [`Resampler::prepare`]
//! validates every descriptor against the caller's buffers, uploads the small descriptor table and
//! returns a bound [`ResampleDispatch`]; [`Resampler::record`] records it into the caller's compute
//! pass (for example just before a model's own dispatches, writing straight into its input buffer).
//! [`Resampler::run_blocking`] uploads, runs and reads back, for tests and tools.

use super::{readback, shader};
use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use crate::face::align::{CHIP, Similarity};
use crate::face::blazeface::Letterbox;

const RESAMPLE: &str = include_str!("resample.wgsl");

/// Faces per chips dispatch (SFace batches are far smaller).
pub const MAX_FACES: usize = 256;
/// Frames in one frame table.
pub const MAX_FRAMES: usize = 64;
/// Detector inputs per letterbox dispatch.
pub const MAX_LETTERBOX: usize = 64;
/// Largest frame side: keeps every pixel coordinate exact in f32.
pub const MAX_SIDE: u32 = 16_384;
/// Largest letterbox side (BlazeFace uses 128 and 256).
pub const MAX_INPUT: u32 = 1024;
/// f32 values per chip (planar RGB).
pub const CHIP_LEN: usize = 3 * CHIP * CHIP;

const WORKGROUP: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("{what}: {count} in one dispatch, the limit is {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// A frame, face or letterbox job (`what` and its index) that cannot be sampled.
    #[error("{what} {index}: {detail}")]
    Descriptor {
        what: &'static str,
        index: usize,
        detail: String,
    },
    #[error("frame → chip transform {0:?} is not invertible")]
    NotInvertible(Similarity),
    #[error("letterbox side {0} is outside 1..={MAX_INPUT}")]
    Input(u32),
    #[error("{what} buffer: {detail}")]
    Buffer { what: &'static str, detail: String },
    #[error("GPU: {0}")]
    Gpu(String),
}

type R<T> = Result<T, ResampleError>;

/// One frame inside the frames buffer: first pixel (in u32 pixels from the buffer's start) and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub offset: u32,
    pub width: u32,
    pub height: u32,
}

/// One face to cut: its frame (index into the frame table) and the chip → frame similarity
/// (`to_frame.apply([u, v])` is the frame pixel sampled for chip pixel `(u, v)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub frame: u32,
    pub to_frame: Similarity,
}

impl Face {
    /// From the frame → chip transform the alignment fits, inverted exactly as `warp_chip` does.
    pub fn from_to_chip(frame: u32, to_chip: &Similarity) -> R<Self> {
        let to_frame = to_chip.inverse();
        let to_frame = to_frame.ok_or(ResampleError::NotInvertible(*to_chip))?;
        Ok(Self { frame, to_frame })
    }
}

/// What one dispatch produces.
#[derive(Debug, Clone, Copy)]
pub enum Work<'a> {
    /// One 112×112 chip per face, planar RGB f32 0–255 (SFace's NCHW input); face i at
    /// `i·CHIP_LEN`. Bilinear; outside the frame is black (as `warp_chip`).
    Chips(&'a [Face]),
    /// One letterboxed `input`×`input` NHWC tensor in [−1, 1] per frame index in `jobs`,
    /// batch-major; each frame keeps its aspect (`Letterbox::fit`), bars −1 (as `detector_input`).
    /// With `windows` (one `[x0, y0, x1, y1]` per job, or empty for whole frames) only that
    /// rectangle of the frame is letterboxed, as `detector_input` on the cropped pixels: the
    /// letterboxes then map detections to window pixels (add `x0, y0` for frame pixels).
    Letterbox {
        jobs: &'a [u32],
        input: u32,
        windows: &'a [[u32; 4]],
    },
}

impl Work<'_> {
    /// Jobs, output floats per job and descriptor words per job, after checking the counts.
    fn shape(&self) -> R<(usize, usize, usize)> {
        match *self {
            Work::Chips(faces) => {
                cap("faces", faces.len(), MAX_FACES)?;
                Ok((faces.len(), CHIP_LEN, 4 + 2 * CHIP))
            }
            Work::Letterbox {
                jobs,
                input,
                windows,
            } => {
                cap("letterbox jobs", jobs.len(), MAX_LETTERBOX)?;
                if !windows.is_empty() && windows.len() != jobs.len() {
                    return Err(desc_err(
                        "letterbox windows",
                        windows.len(),
                        format!("{} windows for {} jobs", windows.len(), jobs.len()),
                    ));
                }
                if input == 0 || input > MAX_INPUT {
                    return Err(ResampleError::Input(input));
                }
                let n = input as usize;
                Ok((jobs.len(), n * n * 3, 4 + 2 * n))
            }
        }
    }
}

/// The frames a dispatch samples: the caller's storage buffer of packed pixels and its frame table.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub pixels: &'a wgpu::Buffer,
    pub frames: &'a [Frame],
}

/// Where a dispatch writes: a storage buffer of f32 and the first element to write (any offset).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
}

/// A bound dispatch, ready to record (nothing to record when it has no faces or jobs).
pub struct ResampleDispatch {
    bound: Option<(wgpu::ComputePipeline, wgpu::BindGroup, [u32; 2])>,
    /// Each letterbox job's scale and padding, to map detections back to frame pixels.
    pub letterboxes: Vec<Letterbox>,
    /// Floats it writes.
    pub len: usize,
}

/// The resampling pipelines of one device.
pub struct Resampler {
    layout: wgpu::BindGroupLayout,
    chips: wgpu::ComputePipeline,
    letterbox: wgpu::ComputePipeline,
}

impl Resampler {
    pub fn new(device: &wgpu::Device) -> R<Self> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        // 0: parameters, 1: frames, 2: descriptors, 3: output.
        use wgpu::BufferBindingType::{Storage, Uniform};
        let read = Storage { read_only: true };
        let layout = shader::buffer_layout(
            device,
            "resample.wgsl",
            &[
                (0, Uniform),
                (1, read),
                (2, read),
                (3, Storage { read_only: false }),
            ],
        );
        let [chips, letterbox] = shader::compute_pipelines(
            device,
            "resample.wgsl",
            RESAMPLE,
            &layout,
            ["chips", "letterbox"],
        );
        gpu_ok(scope)?;
        Ok(Self {
            layout,
            chips,
            letterbox,
        })
    }

    /// Checks `work` against the frames and output buffers and binds it; `work`'s output starts at
    /// `out.offset`. Frames and output are bound as the smallest aligned ranges that cover them, so
    /// offsets need no alignment and large buffers stay under the binding limit.
    pub fn prepare(
        &self,
        device: &wgpu::Device,
        src: Source,
        work: Work,
        out: Target,
    ) -> R<ResampleDispatch> {
        work.shape()?;
        let (words, letterboxes) = encode(src.frames, src.pixels.size() / 4, work)?;
        let d = self.bind(device, src, work, words, out)?;
        Ok(ResampleDispatch { letterboxes, ..d })
    }

    /// Binds descriptor words as given: only the frame offsets are rebased, the rest is not checked
    /// (the shader's own checks keep bad words inside the bindings; tests feed it some).
    fn bind(
        &self,
        device: &wgpu::Device,
        src: Source,
        work: Work,
        mut words: Vec<u32>,
        out: Target,
    ) -> R<ResampleDispatch> {
        let (count, per, job_words) = work.shape()?;
        let len = count * per;
        let mut d = ResampleDispatch {
            bound: None,
            letterboxes: Vec::new(),
            len,
        };
        if count == 0 {
            return Ok(d);
        }
        let limits = device.limits();
        let start = out.offset.checked_mul(4);
        let end = start.and_then(|s| s.checked_add(len as u64 * 4));
        let (Some(start), Some(end)) = (start, end) else {
            let detail = format!("offset {} overflows", out.offset);
            return Err(buffer_err("output", detail));
        };
        let (ob, skip) = range(&limits, out.buffer, "output", start, end)?;
        let first = src.frames.iter().map(|f| f.offset).min();
        let end = src.frames.iter().map(end_of).max();
        let (first, end) = (
            first.unwrap_or(0) as u64 * 4,
            end.unwrap_or(1).saturating_mul(4),
        );
        let (pb, _) = range(&limits, src.pixels, "frames", first, end)?;
        if src.pixels == out.buffer {
            return Err(buffer_err("output", "is also the frames buffer".into()));
        }
        // Frame offsets relative to the bound range.
        for (w, frame) in words.iter_mut().step_by(4).zip(src.frames) {
            *w = frame.offset - (pb.offset / 4) as u32;
        }
        // Every value below is bounded by the caps checked above.
        let (pipeline, input) = match work {
            Work::Chips(_) => (&self.chips, 0),
            Work::Letterbox { input, .. } => (&self.letterbox, input),
        };
        let n_frames = src.frames.len().min(MAX_FRAMES) as u32;
        let at = 4 * n_frames;
        let params = [count as u32, n_frames, (skip / 4) as u32, input];
        let params = [params, [at, job_words as u32, 0, 0]];
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let init = |contents: &[u8], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("resample descriptors"),
                contents,
                usage,
            })
        };
        let uniform = init(bytemuck::cast_slice(&params), wgpu::BufferUsages::UNIFORM);
        let desc = init(bytemuck::cast_slice(&words), wgpu::BufferUsages::STORAGE);
        let resources = [
            uniform.as_entire_binding(),
            wgpu::BindingResource::Buffer(pb),
            desc.as_entire_binding(),
            wgpu::BindingResource::Buffer(ob),
        ];
        let entries: Vec<_> = (resources.into_iter().enumerate())
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("resample"),
            layout: &self.layout,
            entries: &entries,
        });
        gpu_ok(scope)?;
        // One invocation per output pixel (3 channels).
        let x = ((per / 3) as u32).div_ceil(WORKGROUP);
        d.bound = Some((pipeline.clone(), group, [x, count as u32]));
        Ok(d)
    }

    /// Records the dispatch into the caller's pass (later dispatches in the pass see its output).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, d: &ResampleDispatch) {
        if let Some((pipeline, group, [x, y])) = &d.bound {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }

    /// Uploads `pixels`, runs `work` and reads its output back (with the letterboxes, if any).
    pub fn run_blocking(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        pixels: &[u32],
        frames: &[Frame],
        work: Work,
    ) -> R<(Vec<f32>, Vec<Letterbox>)> {
        let (count, per, _) = work.shape()?;
        // Checked against the slice first: the buffer below is padded to at least one pixel.
        frame_table(frames, pixels.len() as u64)?;
        let bytes = (count * per).max(1) as u64 * 4;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pix = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("resample frames"),
            contents: bytemuck::cast_slice(if pixels.is_empty() { &[0] } else { pixels }),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let buffer = |label, usage| {
            let mapped_at_creation = false;
            let label = Some(label);
            device.create_buffer(&wgpu::BufferDescriptor {
                label,
                size: bytes,
                usage,
                mapped_at_creation,
            })
        };
        use wgpu::BufferUsages as U;
        let out = buffer("resample output", U::STORAGE | U::COPY_SRC);
        let read = buffer("resample readback", U::MAP_READ | U::COPY_DST);
        let src = Source {
            pixels: &pix,
            frames,
        };
        let d = self.prepare(
            device,
            src,
            work,
            Target {
                buffer: &out,
                offset: 0,
            },
        )?;
        let mut enc = device.create_command_encoder(&Default::default());
        self.record(&mut enc.begin_compute_pass(&Default::default()), &d);
        enc.copy_buffer_to_buffer(&out, 0, &read, 0, bytes);
        queue.submit([enc.finish()]);
        gpu_ok(scope)?;
        let bytes = readback::map_all(device, &[&read])
            .map_err(|e| ResampleError::Gpu(format!("readback: {e}")))?;
        let v: Vec<f32> = bytes
            .first()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .unwrap_or_default();
        let v = v.get(..d.len).map(<[f32]>::to_vec).ok_or_else(|| {
            ResampleError::Gpu("readback: shorter than the resampled data".into())
        })?;
        Ok((v, d.letterboxes))
    }
}

fn cap(what: &'static str, count: usize, max: usize) -> R<()> {
    if count > max {
        return Err(ResampleError::TooMany { what, count, max });
    }
    Ok(())
}

fn buffer_err(what: &'static str, detail: String) -> ResampleError {
    ResampleError::Buffer { what, detail }
}

fn desc_err(what: &'static str, index: usize, detail: String) -> ResampleError {
    ResampleError::Descriptor {
        what,
        index,
        detail,
    }
}

fn end_of(f: &Frame) -> u64 {
    f.offset as u64 + f.width as u64 * f.height as u64
}

/// The frame table's words (offset, width, height, 0 per frame) after checking every frame lies
/// inside a buffer of `pixels` pixels.
fn frame_table(frames: &[Frame], pixels: u64) -> R<Vec<u32>> {
    cap("frames", frames.len(), MAX_FRAMES)?;
    let mut words = Vec::with_capacity(frames.len() * 4);
    for (index, f) in frames.iter().enumerate() {
        let bad = |detail| desc_err("frame", index, detail);
        let (w, h) = (f.width, f.height);
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(bad(format!(
                "size {w}×{h} is outside 1..={MAX_SIDE} per side"
            )));
        }
        if end_of(f) > pixels {
            let (o, e) = (f.offset, end_of(f));
            return Err(bad(format!(
                "pixels {o}..{e} run past the {pixels} in the buffer"
            )));
        }
        words.extend([f.offset, w, h, 0]);
    }
    Ok(words)
}

/// The descriptor words (frame table, then one record per job, as resample.wgsl describes) and the
/// letterboxes, after checking every descriptor against a frames buffer of `pixels` pixels. The
/// per-column and per-row terms are computed here exactly as the CPU references compute them.
fn encode(frames: &[Frame], pixels: u64, work: Work) -> R<(Vec<u32>, Vec<Letterbox>)> {
    let mut words = frame_table(frames, pixels)?;
    let mut boxes = Vec::new();
    let n = frames.len();
    let missing = |what, i, f| desc_err(what, i, format!("frame {f} is not among the {n} frames"));
    match work {
        Work::Chips(faces) => {
            for (i, f) in faces.iter().enumerate() {
                if f.frame as usize >= n {
                    return Err(missing("face", i, f.frame));
                }
                let s = f.to_frame;
                // The products `Similarity::apply` forms: a·k and b·k for k in 0..112.
                let a: [f32; CHIP] = std::array::from_fn(|k| s.a * k as f32);
                let b: [f32; CHIP] = std::array::from_fn(|k| s.b * k as f32);
                if !(s.t.iter().chain(&a).chain(&b)).all(|v| v.is_finite())
                    || s.a * s.a + s.b * s.b <= f32::EPSILON
                {
                    let why = format!("chip → frame {s:?} is not a finite invertible similarity");
                    return Err(desc_err("face", i, why));
                }
                words.extend([f.frame, s.t[0].to_bits(), s.t[1].to_bits(), 0]);
                words.extend(a.iter().chain(&b).map(|v| v.to_bits()));
            }
        }
        Work::Letterbox {
            jobs,
            input,
            windows,
        } => {
            for (i, &frame) in jobs.iter().enumerate() {
                let f = frames.get(frame as usize);
                let f = f.ok_or_else(|| missing("letterbox job", i, frame))?;
                // Word 3 packs the window's size (0: the whole frame, the shader's default).
                let (x0, y0, w, h, size) = match windows.get(i) {
                    None => (0, 0, f.width, f.height, 0),
                    Some(&[x0, y0, x1, y1]) => {
                        if x0 >= x1
                            || y0 >= y1
                            || x1 > f.width
                            || y1 > f.height
                            || x1 - x0 > 0xffff
                            || y1 - y0 > 0xffff
                        {
                            let why = format!(
                                "window {:?} is not inside the {}×{} frame",
                                [x0, y0, x1, y1],
                                f.width,
                                f.height
                            );
                            return Err(desc_err("letterbox job", i, why));
                        }
                        (x0, y0, x1 - x0, y1 - y0, (x1 - x0) | ((y1 - y0) << 16))
                    }
                };
                let lb = Letterbox::fit(w as usize, h as usize, input as usize);
                words.extend([frame, x0, y0, size]);
                // `detector_input`'s source coordinates of the output columns, then rows.
                for pad in lb.pad {
                    let at = |o: u32| (o as f32 + 0.5 - pad) / lb.scale - 0.5;
                    words.extend((0..input).map(|o| at(o).to_bits()));
                }
                boxes.push(lb);
            }
        }
    }
    Ok((words, boxes))
}

/// The aligned binding that covers bytes `start..end` of `buffer`, and where `start` lies in it.
fn range<'a>(
    limits: &wgpu::Limits,
    buffer: &'a wgpu::Buffer,
    what: &'static str,
    start: u64,
    end: u64,
) -> R<(wgpu::BufferBinding<'a>, u64)> {
    let bad = |detail| buffer_err(what, detail);
    if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(bad("lacks STORAGE usage".into()));
    }
    if end > buffer.size() {
        return Err(bad(format!(
            "needs bytes {start}..{end} of {}",
            buffer.size()
        )));
    }
    let align = (limits.min_storage_buffer_offset_alignment as u64).max(4);
    let offset = start / align * align;
    let max = limits.max_storage_buffer_binding_size;
    let size = NonZeroU64::new(end - offset).filter(|s| s.get() <= max);
    let Some(size) = size else {
        let n = end - offset;
        return Err(bad(format!(
            "a range of {n} bytes is outside the binding limit 1..={max}"
        )));
    };
    let binding = wgpu::BufferBinding {
        buffer,
        offset,
        size: Some(size),
    };
    Ok((binding, start - offset))
}

fn gpu_ok(scope: wgpu::ErrorScopeGuard) -> R<()> {
    match shader::scope_error(scope) {
        None => Ok(()),
        Some(e) => Err(ResampleError::Gpu(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
