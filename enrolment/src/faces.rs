//! The face chain of enrolment: detect (BlazeFace back 256, falling back to front 128) → align (4-point
//! similarity onto the ArcFace template, `engine::face::align`) → 112×112 chip → SFace → L2-normalise.
//!
//! It is the chain of the station and of `gate-calibrate` (same models, same alignment), so a template
//! made here is comparable with the station's live embeddings. It runs on the engine's CPU reference,
//! which equals onnxruntime and which every GPU kernel is checked against.

use std::path::{Path, PathBuf};

use engine::face::align::{self, CHIP, Similarity};
use engine::face::blazeface::{self, Detection, Spec};
use engine::face::prepare;
use engine::{Graph, Tensor, cpu};
use zeroize::Zeroizing;

use crate::photo::RgbPhoto;
use domain::seal::{TEMPLATE_DIM, Template};

pub const SFACE: &str = "face_recognition_sface_2021dec_int8bq.onnx";
pub const FRONT: &str = "face_detection_front_128x128_barracuda.onnx";
pub const BACK: &str = "face_detection_back_256x256_barracuda.onnx";

/// Where the models are: `$GATE_MODELS`, else `<workspace>/models` next to this crate.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("GATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("loading model {path} (run scripts/setup, or set GATE_MODELS): {source}")]
    Load {
        path: PathBuf,
        source: engine::Error,
    },
    #[error("running {model}: {source}")]
    Run {
        model: &'static str,
        source: engine::Error,
    },
    #[error("decoding BlazeFace output: {0}")]
    Decode(#[from] blazeface::DecodeError),
    #[error("{0}")]
    Internal(&'static str),
}

/// A 112×112 aligned face chip, planar RGB f32 0–255 (SFace's input). Zeroized on drop.
pub struct Chip(pub Zeroizing<Vec<f32>>);

impl Chip {
    /// BT.601 luma of pixel (x, y).
    pub fn luma(&self, x: usize, y: usize) -> f32 {
        let at = y * CHIP + x;
        let p = &self.0;
        0.299 * p[at] + 0.587 * p[CHIP * CHIP + at] + 0.114 * p[2 * CHIP * CHIP + at]
    }

    /// RGB of pixel (x, y).
    pub fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        let at = y * CHIP + x;
        let p = &self.0;
        [p[at], p[CHIP * CHIP + at], p[2 * CHIP * CHIP + at]]
    }
}

pub struct FacePipeline {
    back: Graph,
    front: Graph,
    sface: Graph,
    /// Detections below this score (0–1) are ignored.
    pub min_score: f32,
}

impl FacePipeline {
    pub fn load(models: &Path) -> Result<Self, FaceError> {
        let l = |f: &str| {
            let path = models.join(f);
            engine::load(&path).map_err(|source| FaceError::Load { path, source })
        };
        Ok(Self {
            back: l(BACK)?,
            front: l(FRONT)?,
            sface: l(SFACE)?,
            min_score: 0.5,
        })
    }

    fn run_detector(
        &self,
        g: &Graph,
        spec: &Spec,
        model: &'static str,
        photo: &RgbPhoto,
    ) -> Result<Vec<Detection>, FaceError> {
        let (input, lb) = prepare::detector_input(&photo.rgb, photo.w, photo.h, spec.input)
            .ok_or(FaceError::Internal("empty image"))?;
        let input = Tensor::new(vec![1, spec.input, spec.input, 3], input)
            .map_err(|source| FaceError::Run { model, source })?;
        let out = cpu::run(g, &[input]).map_err(|source| FaceError::Run { model, source })?;
        let outs: Vec<Vec<f32>> = out.into_iter().map(|t| t.data).collect();
        let dets = blazeface::decode(spec, &outs, 0, self.min_score)?;
        let mut faces: Vec<Detection> = blazeface::weighted_nms(dets, 0.3)
            .iter()
            .map(|d| lb.to_frame(d))
            .collect();
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(faces)
    }

    /// Every face in the photo, most confident first: the back-256 model on the whole photo, and the
    /// front-128 model when that finds nothing (large, close-up faces).
    pub fn detect(&self, photo: &RgbPhoto) -> Result<Vec<Detection>, FaceError> {
        let found = self.run_detector(&self.back, &blazeface::BACK_256, "BlazeFace back", photo)?;
        if !found.is_empty() {
            return Ok(found);
        }
        self.run_detector(&self.front, &blazeface::FRONT_128, "BlazeFace front", photo)
    }

    /// The aligned chip of a detection. Only the region around the face is packed, so a 40 MP photo
    /// does not need a second full-size copy.
    pub fn chip(&self, photo: &RgbPhoto, face: &Detection) -> Result<Chip, FaceError> {
        let to_chip =
            align::from_blazeface(&face.keypoints).ok_or(FaceError::Internal("degenerate face"))?;
        // The frame region the chip samples: the chip's corners mapped back, plus a pixel of margin.
        let inv = to_chip
            .inverse()
            .ok_or(FaceError::Internal("degenerate face"))?;
        let c = CHIP as f32;
        let corners = [[0.0, 0.0], [c, 0.0], [0.0, c], [c, c]].map(|p| inv.apply(p));
        let clamp = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi);
        let x0 = clamp(
            corners.iter().map(|p| p[0]).fold(f32::MAX, f32::min) - 2.0,
            photo.w,
        );
        let y0 = clamp(
            corners.iter().map(|p| p[1]).fold(f32::MAX, f32::min) - 2.0,
            photo.h,
        );
        let x1 = clamp(
            corners.iter().map(|p| p[0]).fold(f32::MIN, f32::max) + 3.0,
            photo.w,
        );
        let y1 = clamp(
            corners.iter().map(|p| p[1]).fold(f32::MIN, f32::max) + 3.0,
            photo.h,
        );
        let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
        if cw == 0 || ch == 0 {
            return Err(FaceError::Internal("face outside the photo"));
        }
        let mut region = Zeroizing::new(Vec::with_capacity(cw * ch));
        for y in y0..y1 {
            let row = &photo.rgb[(y * photo.w + x0) * 3..(y * photo.w + x1) * 3];
            region.extend(
                row.chunks_exact(3)
                    .map(|p| p[0] as u32 | (p[1] as u32) << 8 | (p[2] as u32) << 16 | 0xff00_0000),
            );
        }
        // Frame → region is a translation by (−x0, −y0); compose it into the similarity.
        let shifted = Similarity {
            a: to_chip.a,
            b: to_chip.b,
            t: [
                to_chip.t[0] + to_chip.a * x0 as f32 - to_chip.b * y0 as f32,
                to_chip.t[1] + to_chip.b * x0 as f32 + to_chip.a * y0 as f32,
            ],
        };
        align::warp_chip(&region, cw, ch, &shifted)
            .map(|v| Chip(Zeroizing::new(v)))
            .ok_or(FaceError::Internal("warp failed"))
    }

    /// The L2-normalised SFace embedding of a chip.
    pub fn embed(&self, chip: &Chip) -> Result<Zeroizing<Template>, FaceError> {
        let model = "SFace";
        let input = Tensor::new(vec![1, 3, CHIP, CHIP], chip.0.to_vec())
            .map_err(|source| FaceError::Run { model, source })?;
        let out =
            cpu::run(&self.sface, &[input]).map_err(|source| FaceError::Run { model, source })?;
        let raw = out
            .into_iter()
            .next()
            .ok_or(FaceError::Internal("SFace gave no output"))?;
        let v = Zeroizing::new(prepare::l2_normalise(&raw.data));
        let mut t = Zeroizing::new([0f32; TEMPLATE_DIM]);
        if v.len() != TEMPLATE_DIM || v.iter().any(|x| !x.is_finite()) {
            return Err(FaceError::Internal("SFace output is not 128 finite values"));
        }
        t.copy_from_slice(&v);
        Ok(t)
    }
}

/// The template of several embeddings: their mean, L2-normalised.
pub fn mean_template(embeddings: &[Zeroizing<Template>]) -> Zeroizing<Template> {
    let mut sum = Zeroizing::new([0f32; TEMPLATE_DIM]);
    for e in embeddings {
        for (s, v) in sum.iter_mut().zip(e.iter()) {
            *s += v;
        }
    }
    let n = Zeroizing::new(prepare::l2_normalise(sum.as_ref()));
    let mut out = Zeroizing::new([0f32; TEMPLATE_DIM]);
    out.copy_from_slice(&n);
    out
}

pub use prepare::cosine;
