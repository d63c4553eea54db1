//! recognise: one tick's normalised frames of every lane → faces with their quality and the matcher's
//! top two. Detection runs batched across lanes, every face of every lane is aligned and embedded in
//! one batch, and all probes are matched against the GPU gallery in one dispatch.
//!
//! Two backends run the same models with the same alignment and decoding:
//! - `gpu`: our WGSL kernels on the station's device; the letterbox and the alignment warp read the
//!   normalised frames where the lighting stage left them (nothing but detections and embeddings
//!   come back to the CPU);
//! - `cpu`: the engine's fast CPU executor on frames read back from the GPU (held to the engine's
//!   reference by its tests). On a software Vulkan (lavapipe) it is far faster than the same WGSL
//!   (docs/benchmarks.md), so `auto` picks it only when the adapter is a CPU.
//!
//! Matching always runs on the GPU gallery (`engine::gpu::gallery`), mirrored from the station's
//! synced gallery (`mirror`).

mod cpu;
mod face;
#[cfg(any(test, feature = "fault-injection"))]
pub mod faults;
mod gpu;
pub mod mirror;
mod pad;
pub mod patch;
pub mod priority;
pub mod tick;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::face::blazeface::{self, Detection, Spec};
use engine::face::{Chip, Embedding, quality};
use engine::gpu::gallery::Match;
use serde::Deserialize;

use crate::normalise::{Gpu, LaneNormaliser};
pub use face::{BBox, Candidate, Quality, QualityGates, Subject};
pub use mirror::{GalleryMirror, SubjectNumbers};

#[derive(Debug, thiserror::Error)]
pub enum RecogniseError {
    #[error("loading model {path} (run scripts/setup, or set [recognise] models)")]
    Model {
        path: PathBuf,
        #[source]
        source: engine::Error,
    },
    #[error("presentation-attack detection from {path}")]
    Pad {
        path: PathBuf,
        // Boxed: every tick returns this error type, and a load error is rare and large.
        #[source]
        source: Box<engine::face::FaceError>,
    },
    #[error("detect: decoding the detector's output")]
    Decode(#[from] blazeface::DecodeError),
    #[error("{stage}: {detail}")]
    Stage { stage: &'static str, detail: String },
    #[error("GPU: {0}")]
    Gpu(String),
}

pub(crate) fn stage_err(stage: &'static str) -> impl Fn(String) -> RecogniseError {
    move |detail| RecogniseError::Stage { stage, detail }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// `gpu` on a real GPU, `cpu` when the adapter is itself a CPU (lavapipe).
    #[default]
    Auto,
    Gpu,
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// BlazeFace front 128×128: cheap; finds faces from about a fifth of the frame's long side.
    Front,
    /// BlazeFace back 256×256: finds faces half that size, at ~4× the cost.
    #[default]
    Back,
}

/// `[recognise]` in the station file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecogniseConfig {
    pub enabled: bool,
    pub backend: Backend,
    pub detector: Detector,
    /// Folder with the ONNX files; default `$GATE_MODELS` or the workspace's `models/`.
    pub models: Option<PathBuf>,
    /// Detections below this score (0–1) are ignored.
    pub min_score: f32,
    /// Faces smaller than this (eye distance, frame pixels) are tracked but not embedded: they
    /// cannot pass the quality gates, so embedding them only costs time.
    pub min_eye_px: f32,
    /// At most this many faces are embedded per tick (largest first); the rest wait for a later frame.
    pub max_faces: usize,
    /// Narrow matching to subjects holding a ticket valid today (FPIR ≈ N·FMR falls with N). A
    /// subject outside the candidates is then reported as unknown, not with their ticket's reason.
    pub narrow_to_ticket_holders: bool,
    /// Gallery storage: f16 halves the bytes each scan reads.
    pub gallery_f16: bool,
    /// CPU backend: threads the detector and SFace may use (0: one per core).
    pub cpu_threads: usize,
    /// Live lanes (`[capture] mode = "realtime"`): a frame that has waited this long with no result
    /// coming back means a stalled recogniser, and the doors go to their safe position until it
    /// reports again. Must exceed the longest normal tick (p99 in the paced benchmark).
    pub stall_ms: u64,
}

impl Default for RecogniseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: Backend::Auto,
            detector: Detector::Back,
            models: None,
            min_score: 0.6,
            min_eye_px: 16.0,
            max_faces: 16,
            narrow_to_ticket_holders: false,
            gallery_f16: false,
            cpu_threads: 0,
            stall_ms: 350,
        }
    }
}

impl RecogniseConfig {
    pub fn models_dir(&self) -> PathBuf {
        self.models.clone().unwrap_or_else(engine::face::models_dir)
    }

    fn spec(&self) -> (&'static Spec, &'static str) {
        match self.detector {
            Detector::Front => (&blazeface::FRONT_128, engine::face::FRONT),
            Detector::Back => (&blazeface::BACK_256, engine::face::BACK),
        }
    }
}

/// One face of one lane's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    pub detection: Detection,
    pub bbox: BBox,
    /// Measured on the aligned chip; `None` when the face was not embedded (too small, or over the
    /// tick's budget).
    pub quality: Option<Quality>,
    pub best: Option<Candidate>,
    pub second: Option<Candidate>,
    /// The unit embedding that was matched (128 values), for the deciders' per-track fusion.
    pub embedding: Option<Arc<[f32]>>,
    /// The PAD pair's live probability (0–1), for an embedded face when the station runs PAD.
    pub live: Option<f32>,
    /// The face box as a small grey patch, cut where `live` was measured: the two-camera
    /// parallax cue's input (`decide::parallax`).
    pub patch: Option<Arc<patch::Patch>>,
    /// A walker already decided: the box overlaps one the deciders settled. Tracked, not embedded
    /// again, and no reason to keep its lane at full rate (`priority`).
    pub decided: bool,
}

/// What one lane's frame produced.
#[derive(Debug, Clone, Default)]
pub struct LaneFaces {
    pub faces: Vec<Face>,
    /// Mean luma (0–1) of the camera's own pixels inside the largest face's box, before
    /// normalisation: what the lighting loop drives towards its target when someone is there.
    pub face_luma: Option<f32>,
}

/// Wall time of one tick's stages (the whole batch; every lane of the tick shares them).
#[derive(Debug, Clone, Copy, Default)]
pub struct TickTimes {
    pub detect: Duration,
    /// Cutting, embedding and (GPU backend, one submission) matching.
    pub embed: Duration,
    /// Matching on its own (CPU backend; zero on the GPU backend, where `embed` includes it).
    pub matching: Duration,
    pub faces: usize,
    pub embedded: usize,
    /// Presentation-attack detection of the embedded faces (zero without PAD).
    pub pad: Duration,
    /// Faces PAD scored.
    pub scored: usize,
}

/// Where one lane's normalised frame is.
#[derive(Clone, Copy)]
pub enum Pixels<'a> {
    /// In the lane normaliser's output buffer on the station's device.
    Gpu(&'a LaneNormaliser),
    /// Normalised on the CPU (`normalise::cpu`): packed RGBA, row by row.
    Cpu(&'a [u32]),
}

/// One lane's normalised frame.
pub struct FrameRef<'a> {
    pub pixels: Pixels<'a>,
    pub width: u32,
    pub height: u32,
}

/// What the recogniser is told of one lane besides its frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneScope {
    /// Boxes of walkers already decided: their faces are detected and tracked, not embedded again.
    pub settled: Vec<BBox>,
    /// The gates the lane's deciders apply (the CPU backend does not embed a face failing them).
    pub gates: Option<QualityGates>,
    /// The lane zone, frame pixels. A face whose centre lies outside is not this lane's walker:
    /// it is dropped, so it can neither open this lane's door nor count here. The detector looks
    /// only at the zone and a margin around it ([`detection_window`]).
    pub zone: Option<BBox>,
}

/// The part of a `w`×`h` frame the detector looks at for `zone`: the zone widened by an eighth of
/// the frame's longer side on every side (a face whose centre is just inside still lies whole in
/// the window), whole pixels, inside the frame. The whole frame without a zone.
pub fn detection_window(zone: Option<&BBox>, w: u32, h: u32) -> [u32; 4] {
    let Some(BBox([x0, y0, x1, y1])) = zone else {
        return [0, 0, w, h];
    };
    let m = w.max(h) as f32 / 8.0;
    let clamp = |v: f32, hi: u32| (v.max(0.0).min(hi as f32)) as u32;
    let win = [
        clamp((x0 - m).floor(), w),
        clamp((y0 - m).floor(), h),
        clamp((x1 + m).ceil(), w),
        clamp((y1 + m).ceil(), h),
    ];
    // A zone too thin to hold a face (or not finite) leaves the window at the whole frame.
    if win[2] < win[0] + 16 || win[3] < win[1] + 16 {
        return [0, 0, w, h];
    }
    win
}

enum Engine {
    Cpu(Box<cpu::CpuBackend>),
    Gpu(Box<gpu::GpuBackend>),
}

/// The detect → align → embed → match stage of the station.
pub struct Recogniser {
    cfg: RecogniseConfig,
    engine: Engine,
    spec: &'static Spec,
    pub mirror: GalleryMirror,
    /// The presentation-attack pair, when any lane runs PAD.
    pad: Option<engine::face::pad::PadPair>,
}

/// A face cut for embedding: which frame of the tick and where.
pub(crate) struct Cut {
    pub frame: usize,
    pub detection: Detection,
}

impl Recogniser {
    /// `pad`: the folder of the presentation-attack networks, when any lane runs PAD.
    pub fn new(
        gpu: &Gpu,
        cfg: &RecogniseConfig,
        lanes: usize,
        pad: Option<&Path>,
    ) -> Result<Self, RecogniseError> {
        let models = cfg.models_dir();
        let (spec, det_file) = cfg.spec();
        let load = |f: &str| {
            let path = models.join(f);
            engine::load(&path).map_err(|source| RecogniseError::Model { path, source })
        };
        let detector = load(det_file)?;
        let sface = load(engine::face::SFACE)?;
        let use_gpu = match cfg.backend {
            Backend::Gpu => true,
            Backend::Cpu => false,
            Backend::Auto => gpu.info.device_type != wgpu::DeviceType::Cpu,
        };
        let engine = if use_gpu {
            Engine::Gpu(Box::new(gpu::GpuBackend::new(
                gpu,
                &detector,
                &sface,
                lanes.max(1),
                cfg.max_faces.clamp(1, 64),
            )?))
        } else {
            let threads = match cfg.cpu_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            };
            Engine::Cpu(Box::new(cpu::CpuBackend::new(detector, sface, threads)?))
        };
        // The pair is small (two 80×80 networks): one thread keeps it off the detector's cores.
        let pad = pad
            .map(|dir| {
                engine::face::pad::PadPair::load(dir, 1).map_err(|source| RecogniseError::Pad {
                    path: dir.to_owned(),
                    source: Box::new(source),
                })
            })
            .transpose()?;
        tracing::info!(backend = if use_gpu { "gpu" } else { "cpu" }, detector = ?cfg.detector,
            adapter = %gpu.info.name, pad = pad.is_some(), "recogniser ready");
        Ok(Self {
            cfg: cfg.clone(),
            engine,
            spec,
            mirror: GalleryMirror::new(gpu, cfg.gallery_f16)?,
            pad,
        })
    }

    /// `Some(threads)` when frames should be normalised on the CPU for this recogniser, over the
    /// cores its inference may take (`cpu_threads`): its CPU backend reads every frame back
    /// anyway, and a device it chose because it is a CPU runs the lighting kernel slower than the
    /// CPU code does (docs/benchmarks.md). `None` for the GPU backend, which needs them on the device.
    pub fn cpu_frames(&self) -> Option<usize> {
        match &self.engine {
            Engine::Cpu(b) => Some(b.threads()),
            Engine::Gpu(_) => None,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.engine {
            Engine::Cpu(_) => "cpu",
            Engine::Gpu(_) => "gpu",
        }
    }

    /// Runs one tick over the given frames (one per lane, any order) and what is known of each
    /// frame's lane (`lanes[frame]`, missing: nothing); results in the same order. Faces
    /// overlapping a settled box (walkers already decided) are detected and tracked but not
    /// embedded again; faces outside the lane zone are dropped. On the CPU backend a face whose
    /// chip fails the lane's gates is measured but not embedded: its embedding could never count
    /// as evidence, and SFace is the tick's dearest step. (On a GPU the chips are cut, embedded,
    /// measured and matched in one submission, so every cut face is embedded and the deciders
    /// apply the gates.)
    pub fn tick(
        &mut self,
        gpu: &Gpu,
        frames: &[FrameRef<'_>],
        lanes: &[LaneScope],
    ) -> Result<(Vec<LaneFaces>, TickTimes), RecogniseError> {
        let mut times = TickTimes::default();
        if frames.is_empty() {
            return Ok((Vec::new(), times));
        }
        let t = Instant::now();
        let scope = |i: usize| lanes.get(i);
        let windows: Vec<[u32; 4]> = (frames.iter().enumerate())
            .map(|(i, f)| {
                let zone = scope(i).and_then(|l| l.zone.as_ref());
                detection_window(zone, f.width, f.height)
            })
            .collect();
        let mut dets = match &mut self.engine {
            Engine::Cpu(b) => b.detect(gpu, self.spec, frames, &windows, self.cfg.min_score)?,
            Engine::Gpu(b) => b.detect(gpu, self.spec, frames, &windows, self.cfg.min_score)?,
        };
        times.detect = t.elapsed();
        for (i, d) in dets.iter_mut().enumerate() {
            if let Some(zone) = scope(i).and_then(|l| l.zone.as_ref()) {
                d.retain(|det| bbox_of(det).centre_in(zone));
            }
        }
        let mut out: Vec<LaneFaces> = (dets.iter().enumerate())
            .map(|(i, d)| LaneFaces {
                faces: d
                    .iter()
                    .map(|det| {
                        let bbox = bbox_of(det);
                        Face {
                            detection: *det,
                            decided: scope(i)
                                .is_some_and(|l| l.settled.iter().any(|b| b.iou(&bbox) >= 0.4)),
                            bbox,
                            quality: None,
                            best: None,
                            second: None,
                            embedding: None,
                            live: None,
                            patch: None,
                        }
                    })
                    .collect(),
                face_luma: None,
            })
            .collect();
        times.faces = out.iter().map(|l| l.faces.len()).sum();

        // The largest faces first: they are the nearest walkers, whose decision is due soonest.
        let mut cuts: Vec<(f32, usize, usize)> = Vec::new();
        for (fi, lane) in out.iter().enumerate() {
            for (k, f) in lane.faces.iter().enumerate() {
                let eye = f.detection.eye_distance();
                if eye >= self.cfg.min_eye_px && !f.decided {
                    cuts.push((eye, fi, k));
                }
            }
        }
        cuts.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        cuts.truncate(self.cfg.max_faces);
        if cuts.is_empty() {
            return Ok((out, times));
        }
        let list: Vec<Cut> = cuts
            .iter()
            .map(|&(_, fi, k)| Cut {
                frame: fi,
                detection: out[fi].faces[k].detection,
            })
            .collect();
        let t = Instant::now();
        // Per cut face: what was measured of it, and its match when it was embedded.
        let mut measured: Vec<(usize, Quality)> = Vec::new();
        let mut matched: Vec<(usize, Match, Arc<[f32]>)> = Vec::new();
        let mut live: Vec<pad::Scored> = Vec::new();
        // Faces the CPU backend measured and did not embed (they fail the lane's gates): no
        // score, but a patch, so the two-camera cue still sees a face one camera sees poorly
        // (a backlit lane's lower camera, docs/pad.md). The GPU backend embeds and scores every
        // cut face.
        let mut unscored: Vec<usize> = Vec::new();
        match &mut self.engine {
            Engine::Cpu(b) => {
                // Measured before embedding: every chip, embedded or not.
                let mut wanted = Vec::new();
                for (i, chip) in b.chips(frames, &list)? {
                    let m = quality::measure(&list[i].detection, &chip);
                    let q = Quality {
                        eye_px: m.eye_distance_px,
                        sharpness: m.sharpness,
                        yaw: m.yaw_ratio,
                        luma: m.luma_mean,
                    };
                    let gate = scope(list[i].frame).and_then(|l| l.gates);
                    if gate.is_none_or(|g| g.fails(&q).is_none()) {
                        wanted.push((i, chip));
                    } else {
                        unscored.push(i);
                    }
                    measured.push((i, q));
                }
                let embedded = b.embed(wanted)?;
                times.embed = t.elapsed();
                times.embedded = embedded.len();
                let t = Instant::now();
                let mut probes = Vec::with_capacity(embedded.len() * 128);
                for (_, _, e) in &embedded {
                    probes.extend_from_slice(e);
                }
                let matches = self.mirror.match_probes(&probes)?;
                matched = (embedded.iter().zip(matches))
                    .map(|((i, _, e), m)| (*i, m, Arc::from(&e[..])))
                    .collect();
                times.matching = t.elapsed();
            }
            Engine::Gpu(b) => {
                // One submission embeds, measures and matches; `matching` stays zero.
                for (i, probe, m) in b.embed_and_match(gpu, &list, self.mirror.gallery())? {
                    if !probe.valid {
                        continue; // a non-finite embedding: as if never embedded
                    }
                    let pose = quality::pose(&list[i].detection);
                    measured.push((i, quality_of(pose, probe.sharpness, probe.luma)));
                    matched.push((i, m, Arc::from(probe.unit)));
                }
                times.embed = t.elapsed();
                times.embedded = matched.len();
            }
        }
        // Every embedded face (on either backend, exactly those matched) is scored for PAD; the
        // CPU backend lends the frames it read back, the GPU backend's are read back for it.
        if let Some(pair) = &self.pad {
            let t = Instant::now();
            let which: Vec<usize> = matched.iter().map(|(i, _, _)| *i).collect();
            let held = |f: usize| match &self.engine {
                Engine::Cpu(b) => b.read_back(f),
                Engine::Gpu(_) => None,
            };
            live = pad::score(pair, gpu, frames, &list, &which, &unscored, &held)?;
            times.pad = t.elapsed();
        }
        times.scored = live.iter().filter(|(_, l, _)| l.is_some()).count();
        for (i, l, patch) in live {
            if let Some(&(_, fi, k)) = cuts.get(i) {
                out[fi].faces[k].live = l;
                out[fi].faces[k].patch = patch.map(Arc::new);
            }
        }
        let cand = |c: engine::gpu::gallery::Candidate| Candidate {
            subject: Subject(c.subject),
            similarity: c.similarity,
        };
        for (i, q) in measured {
            if let Some(&(_, fi, k)) = cuts.get(i) {
                out[fi].faces[k].quality = Some(q);
            }
        }
        for (i, m, e) in matched {
            let Some(&(_, fi, k)) = cuts.get(i) else {
                continue;
            };
            if let Match::Found { best, second } = m {
                let face = &mut out[fi].faces[k];
                face.best = Some(cand(best));
                face.second = second.map(cand);
                face.embedding = Some(e);
            }
        }
        Ok((out, times))
    }
}

/// The station's four measures of a face: pose from its keypoints, sharpness and luma from its chip.
fn quality_of(pose: quality::Pose, sharpness: f32, luma: f32) -> Quality {
    Quality {
        eye_px: pose.eye_distance_px,
        sharpness,
        yaw: pose.yaw_ratio,
        luma,
    }
}

fn bbox_of(d: &Detection) -> BBox {
    BBox(d.corners())
}

/// Decodes one batch item's raw detector outputs into frame-pixel detections: the engine's
/// post-processing, the same for both backends and for enrolment's chain.
pub(crate) fn decode(
    spec: &Spec,
    outputs: &[Vec<f32>],
    item: usize,
    min_score: f32,
    letterbox: &blazeface::Letterbox,
) -> Result<Vec<Detection>, RecogniseError> {
    Ok(blazeface::frame_detections(
        spec, outputs, item, min_score, letterbox,
    )?)
}

/// Moves detections found in a detection window whose top-left is frame pixel `(x0, y0)` into
/// frame pixels (both backends detect in windows, `detection_window`).
pub(crate) fn to_frame(found: &mut [Detection], x0: u32, y0: u32) {
    let (dx, dy) = (x0 as f32, y0 as f32);
    for d in found {
        d.center = [d.center[0] + dx, d.center[1] + dy];
        for k in &mut d.keypoints {
            *k = [k[0] + dx, k[1] + dy];
        }
    }
}

/// The faces the CPU backend embedded: index into the cut list, the chip, the normalised embedding.
pub(crate) type Embedded = Vec<(usize, Chip, Embedding)>;

pub fn default_models() -> PathBuf {
    engine::face::models_dir()
}

/// Whether the model files the recogniser needs are present (tests skip with a reason otherwise).
pub fn models_present(dir: &Path) -> bool {
    engine::face::models_present(dir)
}

#[cfg(test)]
mod tests;
