//! The face chain on the engine's CPU reference: detect (BlazeFace back 256, falling back to front
//! 128) → cut the aligned 112×112 chip (4-point similarity onto the ArcFace template) → SFace on a
//! batch of chips → L2-normalise. The CPU reference equals onnxruntime, and every GPU and fast-CPU
//! kernel is checked against it, so a template made here is comparable with the station's live
//! embeddings.
//!
//! There used to be two copies of this chain (enrolment's and calibration's) that had drifted; the
//! variants kept, and why:
//! - **Chip cut from the face's footprint, sampled in whole-image coordinates.** Calibration warped
//!   the whole padded photo; enrolment packed only the region around the face (a 40 MP photo needs
//!   no second full-size copy, and fewer pixels to zeroize) but shifted the similarity into the
//!   region, which moved every sample by rounding. The chain packs only the footprint and samples
//!   exactly where the whole-image warp samples (`align::warp_chip_from_region`): enrolment's memory,
//!   and chips bit-identical to calibration's and to the reference of the station's GPU warp, which
//!   also samples the whole frame.
//! - **Batch embedding.** One SFace run over every chip given (calibration's), one chip being a batch
//!   of one (enrolment's): the same results per chip, fewer runs for several alignments of a photo.
//! - **Every embedding checked.** An SFace output that is not 128 finite values with a non-zero norm
//!   is an error ([`embedding`], the station's check too), never a NaN template or probe that would
//!   quietly never match (calibration had no check).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::align::{self, CHIP, Similarity};
use super::blazeface::{self, Detection, Spec};
use super::models::{BACK, FRONT, SFACE};
use super::prepare;
use super::refine;
use crate::{Graph, Tensor, cpu};

/// Length of an SFace embedding.
pub const EMBEDDING_DIM: usize = 128;
/// An L2-normalised SFace embedding.
pub type Embedding = [f32; EMBEDDING_DIM];

/// An RGB8 image the chain reads: `w`×`h`, rows top-down, 3 bytes a pixel.
#[derive(Debug, Clone, Copy)]
pub struct Rgb<'a> {
    pub rgb: &'a [u8],
    pub w: usize,
    pub h: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("loading model {path} (run scripts/setup, or set GATE_MODELS)")]
    Load {
        path: PathBuf,
        #[source]
        source: crate::Error,
    },
    #[error("running {model}")]
    Run {
        model: &'static str,
        #[source]
        source: crate::Error,
    },
    #[error("decoding BlazeFace output")]
    Decode(#[from] blazeface::DecodeError),
    #[error("the image is empty or its pixels are fewer than its size says")]
    BadImage,
    #[error("degenerate face: its landmarks do not fix an alignment")]
    Degenerate,
    #[error("SFace gave no output")]
    NoOutput,
    #[error("a PAD network did not give three logits per face")]
    PadOutput,
    #[error("loading PAD network {path} (committed in assets/pad; set GATE_PAD or [pad] models)")]
    PadLoad {
        path: PathBuf,
        #[source]
        source: crate::Error,
    },
    #[error("SFace output is not {EMBEDDING_DIM} finite values with a non-zero norm per chip")]
    BadEmbedding,
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

    /// Cuts the chip that `to_chip` (image → chip) describes. Only the face's footprint is packed;
    /// the samples are those of `align::warp_chip` on the whole image (outside reads as black).
    pub fn cut(img: Rgb<'_>, to_chip: &Similarity) -> Result<Chip, FaceError> {
        let [x0, y0, x1, y1] =
            align::chip_footprint(to_chip, img.w, img.h).ok_or(FaceError::Degenerate)?;
        let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
        let mut region = Zeroizing::new(Vec::with_capacity(cw * ch));
        for y in y0..y0 + ch {
            let row = img
                .rgb
                .get((y * img.w + x0) * 3..(y * img.w + x0 + cw) * 3)
                .ok_or(FaceError::BadImage)?;
            region.extend(row.chunks_exact(3).map(prepare::pack_pixel));
        }
        align::warp_chip_from_region(&region, cw, ch, [x0, y0], to_chip)
            .map(|v| Chip(Zeroizing::new(v)))
            .ok_or(FaceError::Degenerate)
    }

    /// The chip mirrored left to right (every channel plane's rows reversed).
    pub fn mirrored(&self) -> Chip {
        let mut out = Zeroizing::new(self.0.to_vec());
        for row in out.chunks_exact_mut(CHIP) {
            row.reverse();
        }
        Chip(out)
    }

    /// The chip of a BlazeFace detection (its keypoints fitted onto the template).
    pub fn of_face(img: Rgb<'_>, face: &Detection) -> Result<Chip, FaceError> {
        let to_chip = align::from_blazeface(&face.keypoints).ok_or(FaceError::Degenerate)?;
        Chip::cut(img, &to_chip)
    }
}

/// An SFace output → the embedding: L2-normalised, `None` unless it is [`EMBEDDING_DIM`] finite
/// values with a non-zero norm. Enrolment, calibration and the station's backends all accept an
/// embedding through here.
pub fn embedding(raw: &[f32]) -> Option<Embedding> {
    if raw.len() != EMBEDDING_DIM || !raw.iter().all(|x| x.is_finite()) {
        return None;
    }
    // Finite values: the norm is finite and ≥ 0, so only a zero vector is left to refuse.
    if prepare::l2_norm(raw) == 0.0 {
        return None;
    }
    let mut out = [0f32; EMBEDDING_DIM];
    prepare::l2_normalise_into(raw, &mut out);
    Some(out)
}

/// The flip-averaged embedding from a chip's embedding and its mirror's: their sum, normalised
/// ([`embedding`]'s checks).
pub fn flip_average(plain: &Embedding, mirrored: &Embedding) -> Option<Embedding> {
    let mut sum = [0f32; EMBEDDING_DIM];
    for ((s, a), b) in sum.iter_mut().zip(plain).zip(mirrored) {
        *s = a + b;
    }
    embedding(&sum)
}

/// Several embeddings of one face made one: their sum weighted by `w` (≥ 0), normalised
/// ([`embedding`]'s checks). The station's `mean` fusion of a track's best frames and `gate-calibrate
/// eval --fuse` use it; enrolment keeps its own equal-weight mean (`enrolment::check::mean_template`)
/// because it wipes its buffers. `None` when a part is not [`EMBEDDING_DIM`] long, a weight is
/// negative or NaN, or nothing is left (no parts, zero weights).
pub fn weighted_mean<'a>(parts: impl IntoIterator<Item = (f32, &'a [f32])>) -> Option<Embedding> {
    let mut sum = [0f32; EMBEDDING_DIM];
    for (w, e) in parts {
        // A NaN weight is refused with the negative ones.
        if e.len() != EMBEDDING_DIM || w.is_nan() || w < 0.0 {
            return None;
        }
        for (s, v) in sum.iter_mut().zip(e) {
            *s += w * v;
        }
    }
    embedding(&sum)
}

/// A face and which detector found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    pub detection: Detection,
    /// `back-256` or `front-128`.
    pub detector: &'static str,
    /// Faces the detector found in the image, this one included (more than one: a photo with
    /// other people in it, where [`subject`] chose).
    pub faces: usize,
}

/// The subject of a labelled photo among the faces found in a `w`×`h` image: of the faces at
/// least half as large (by box area) as the largest, the one whose centre is nearest the image's.
///
/// Why not the most confident face: about one held-out photo in eleven shows several people, and
/// there the most confident face is often a bystander's; taking the face nearest the centre
/// halved the chain's EER on those sets. Why not simply the nearest: a small face in the
/// background can sit at the centre behind the subject, who is photographed large. The gate has
/// its own rule for this (the lane zone); this is the one for photos.
pub fn subject(faces: &[Detection], w: usize, h: usize) -> Option<&Detection> {
    let area = |d: &Detection| d.size[0].max(0.0) * d.size[1].max(0.0);
    let largest = faces.iter().map(area).fold(0.0f32, f32::max);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let off = |d: &Detection| (d.center[0] - cx).powi(2) + (d.center[1] - cy).powi(2);
    faces
        .iter()
        .filter(|d| area(d) > 0.0 && area(d) >= 0.5 * largest && off(d).is_finite())
        .min_by(|a, b| off(a).total_cmp(&off(b)))
}

/// The three models of the chain, loaded for the CPU reference.
pub struct FaceChain {
    back: Graph,
    front: Graph,
    sface: Graph,
    /// Detections below this score (0–1) are ignored.
    pub min_score: f32,
}

impl FaceChain {
    /// Loads the models from `models` (usually [`super::models_dir`]).
    pub fn load(models: &Path) -> Result<Self, FaceError> {
        let l = |f: &str| {
            let path = models.join(f);
            crate::load(&path).map_err(|source| FaceError::Load { path, source })
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
        img: Rgb<'_>,
    ) -> Result<Vec<Detection>, FaceError> {
        let (input, lb) = prepare::detector_input(img.rgb, img.w, img.h, spec.input)
            .ok_or(FaceError::BadImage)?;
        let input = Tensor::new(vec![1, spec.input, spec.input, 3], input)
            .map_err(|source| FaceError::Run { model, source })?;
        let out = cpu::run(g, &[input]).map_err(|source| FaceError::Run { model, source })?;
        let outs: Vec<Vec<f32>> = out.into_iter().map(|t| t.data).collect();
        Ok(blazeface::frame_detections(
            spec,
            &outs,
            0,
            self.min_score,
            &lb,
        )?)
    }

    /// Every face the back-256 model finds on the whole image, most confident first.
    pub fn detect_back(&self, img: Rgb<'_>) -> Result<Vec<Detection>, FaceError> {
        self.run_detector(&self.back, &blazeface::BACK_256, "BlazeFace back", img)
    }

    /// Every face the front-128 model finds on the whole image, most confident first.
    pub fn detect_front(&self, img: Rgb<'_>) -> Result<Vec<Detection>, FaceError> {
        self.run_detector(&self.front, &blazeface::FRONT_128, "BlazeFace front", img)
    }

    fn detect_named(&self, img: Rgb<'_>) -> Result<(Vec<Detection>, &'static str), FaceError> {
        let found = self.detect_back(img)?;
        if !found.is_empty() {
            return Ok((found, "back-256"));
        }
        Ok((self.detect_front(img)?, "front-128"))
    }

    /// Every face in the image, most confident first: the back-256 model, and the front-128 model
    /// when that finds nothing (large, close-up faces).
    pub fn detect(&self, img: Rgb<'_>) -> Result<Vec<Detection>, FaceError> {
        Ok(self.detect_named(img)?.0)
    }

    /// The subject's face among those of [`Self::detect`] (see [`subject`]), with the detector
    /// that found it and how many faces there were.
    pub fn subject_face(&self, img: Rgb<'_>) -> Result<Option<Found>, FaceError> {
        let (found, detector) = self.detect_named(img)?;
        Ok(subject(&found, img.w, img.h).map(|d| Found {
            detection: *d,
            detector,
            faces: found.len(),
        }))
    }

    /// `face` with its box and keypoints refined by the short-range (front-128) model on the
    /// window [`refine::window`] gives (issue 19's sharper alignment), as the station's
    /// recogniser refines: the window letterboxed into the model's input like a lane's detection
    /// window. A face too small to refine, or one the window does not confirm
    /// ([`refine::pick`]), is returned as it was.
    pub fn refine(&self, img: Rgb<'_>, face: &Detection) -> Result<Detection, FaceError> {
        let Some([x0, y0, x1, y1]) = refine::window(face, img.w, img.h) else {
            return Ok(*face);
        };
        let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
        let mut rgb = Zeroizing::new(Vec::with_capacity((x1 - x0) * (y1 - y0) * 3));
        for y in y0..y1 {
            let row = img
                .rgb
                .get((y * img.w + x0) * 3..(y * img.w + x1) * 3)
                .ok_or(FaceError::BadImage)?;
            rgb.extend_from_slice(row);
        }
        let window = Rgb {
            rgb: &rgb,
            w: x1 - x0,
            h: y1 - y0,
        };
        let mut found = self.run_detector(
            &self.front,
            &blazeface::FRONT_128,
            "BlazeFace front",
            window,
        )?;
        refine::shift(&mut found, x0 as f32, y0 as f32);
        Ok(refine::pick(face, &found))
    }

    /// The embeddings of `chips`, in one SFace run (a batch of `chips.len()`).
    pub fn embed(&self, chips: &[Chip]) -> Result<Vec<Zeroizing<Embedding>>, FaceError> {
        let model = "SFace";
        let n = chips.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(n * 3 * CHIP * CHIP);
        for c in chips {
            batch.extend_from_slice(&c.0);
        }
        let input = Tensor::new(vec![n, 3, CHIP, CHIP], batch)
            .map_err(|source| FaceError::Run { model, source })?;
        let out =
            cpu::run(&self.sface, &[input]).map_err(|source| FaceError::Run { model, source })?;
        let raw = out.into_iter().next().ok_or(FaceError::NoOutput)?;
        if raw.data.len() != n * EMBEDDING_DIM {
            return Err(FaceError::BadEmbedding);
        }
        raw.data
            .chunks_exact(EMBEDDING_DIM)
            .map(|e| {
                embedding(e)
                    .map(Zeroizing::new)
                    .ok_or(FaceError::BadEmbedding)
            })
            .collect()
    }

    /// Flip-averaged embeddings (issue 19): each chip and its mirror in one SFace run, the two
    /// outputs summed and L2-normalised. Twice the SFace work of [`FaceChain::embed`].
    pub fn embed_flip_averaged(
        &self,
        chips: &[Chip],
    ) -> Result<Vec<Zeroizing<Embedding>>, FaceError> {
        let both: Vec<Chip> = chips
            .iter()
            .flat_map(|c| [Chip(c.0.clone()), c.mirrored()])
            .collect();
        let e = self.embed(&both)?;
        e.chunks_exact(2)
            .map(|p| {
                flip_average(&p[0], &p[1])
                    .map(Zeroizing::new)
                    .ok_or(FaceError::BadEmbedding)
            })
            .collect()
    }

    /// The embedding of one chip (a batch of one).
    pub fn embed_one(&self, chip: &Chip) -> Result<Zeroizing<Embedding>, FaceError> {
        self.embed(std::slice::from_ref(chip))?
            .pop()
            .ok_or(FaceError::NoOutput)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(center: [f32; 2], side: f32, score: f32) -> Detection {
        Detection {
            score,
            center,
            size: [side, side],
            keypoints: [[0.0; 2]; 6],
        }
    }

    /// A mirrored chip is each row reversed, plane by plane; mirroring twice gives the chip back.
    #[test]
    fn mirror_reverses_rows_and_is_its_own_inverse() {
        let v: Vec<f32> = (0..3 * CHIP * CHIP).map(|i| i as f32).collect();
        let c = Chip(Zeroizing::new(v));
        let m = c.mirrored();
        for ch in 0..3 {
            for y in [0, 57, CHIP - 1] {
                for x in [0, 3, CHIP - 1] {
                    let at = |x: usize| ch * CHIP * CHIP + y * CHIP + x;
                    assert_eq!(m.0[at(x)], c.0[at(CHIP - 1 - x)]);
                }
            }
        }
        assert_eq!(*m.mirrored().0, *c.0);
    }

    /// The rule of [`subject`]: nearest the centre among faces at least half the largest's area;
    /// confidence plays no part; nothing, or only broken boxes, gives none.
    #[test]
    fn subject_is_the_large_face_nearest_the_centre() {
        let edge = face([40.0, 240.0], 100.0, 0.99);
        let middle = face([330.0, 250.0], 90.0, 0.6);
        let small_centre = face([320.0, 240.0], 60.0, 0.9);
        let faces = [edge, small_centre, middle];
        assert_eq!(subject(&faces, 640, 480), Some(&middle));
        assert_eq!(subject(&[edge], 640, 480), Some(&edge));
        assert_eq!(subject(&[], 640, 480), None);
        let broken = face([320.0, 240.0], f32::NAN, 0.9);
        assert_eq!(subject(&[broken], 640, 480), None);
        assert_eq!(subject(&[broken, edge], 640, 480), Some(&edge));
    }

    /// Weights scale each part before the sum is normalised; a part of the wrong length, a
    /// negative or NaN weight, or nothing left, gives none.
    #[test]
    fn weighted_mean_normalises_the_weighted_sum() {
        let axis = |i: usize| {
            let mut v = [0f32; EMBEDDING_DIM];
            v[i] = 1.0;
            v
        };
        let (a, b) = (axis(0), axis(1));
        let m = weighted_mean([(3.0, &a[..]), (4.0, &b[..])]).expect("mean");
        assert!((m[0] - 0.6).abs() < 1e-6 && (m[1] - 0.8).abs() < 1e-6);
        assert_eq!(weighted_mean([(1.0, &a[..])]), Some(a));
        assert_eq!(weighted_mean([(1.0, &a[..4])]), None);
        assert_eq!(weighted_mean([(-1.0, &a[..])]), None);
        assert_eq!(weighted_mean([(f32::NAN, &a[..])]), None);
        assert_eq!(weighted_mean([(0.0, &a[..])]), None);
        assert_eq!(weighted_mean(std::iter::empty()), None);
    }
}
