//! One photo → faces and embeddings: detect (BlazeFace back 256, falling back to front 128), align onto
//! the ArcFace template, embed (SFace), L2-normalise. Runs on the engine's CPU reference, which is
//! equal to onnxruntime; the GPU path is checked against the same reference.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use engine::face::align::{self, Similarity};
use engine::face::blazeface::{self, Detection, Spec};
use engine::face::prepare;
use engine::{Graph, Tensor, cpu};

pub struct FacePipeline {
    back: Graph,
    front: Graph,
    sface: Graph,
    /// Border added around each photo, as a fraction of its larger side: tightly cropped face sets
    /// (AT&T, Yale) show faces far larger than any gate camera, and the detectors need context.
    pub pad: f32,
    pub min_score: f32,
}

/// A decoded photo with its black border: RGB8, `w`×`h`, the original at (`border`, `border`).
pub struct Photo {
    pub rgb: Vec<u8>,
    pub w: usize,
    pub h: usize,
    pub border: usize,
}

impl Photo {
    /// Pads an RGB8 image (`w0`×`h0`) by `border` black pixels on every side.
    pub fn padded(raw: &[u8], w0: usize, h0: usize, border: usize) -> Photo {
        let (w, h) = (w0 + 2 * border, h0 + 2 * border);
        let mut rgb = vec![0u8; w * h * 3];
        if w0 > 0 {
            for (y, row) in raw.chunks_exact(w0 * 3).take(h0).enumerate() {
                let at = ((y + border) * w + border) * 3;
                rgb[at..at + w0 * 3].copy_from_slice(row);
            }
        }
        Photo { rgb, w, h, border }
    }
}

pub struct Found {
    pub detection: Detection,
    /// Which detector found it.
    pub detector: &'static str,
}

impl FacePipeline {
    pub fn load(models: &Path, pad: f32) -> Result<Self> {
        let l = |f: &str| {
            engine::load(&models.join(f))
                .with_context(|| format!("loading {f} (run scripts/setup)"))
        };
        Ok(Self {
            back: l("face_detection_back_256x256_barracuda.onnx")?,
            front: l("face_detection_front_128x128_barracuda.onnx")?,
            sface: l("face_recognition_sface_2021dec_int8bq.onnx")?,
            pad,
            min_score: 0.5,
        })
    }

    fn run_detector(
        &self,
        g: &Graph,
        spec: &Spec,
        rgb: &[u8],
        w: usize,
        h: usize,
    ) -> Result<Vec<Detection>> {
        let (input, lb) =
            prepare::detector_input(rgb, w, h, spec.input).ok_or_else(|| anyhow!("empty image"))?;
        let out = cpu::run(
            g,
            &[Tensor::new(vec![1, spec.input, spec.input, 3], input)?],
        )?;
        let outs: Vec<Vec<f32>> = out.into_iter().map(|t| t.data).collect();
        Ok(
            blazeface::weighted_nms(blazeface::decode(spec, &outs, 0, self.min_score)?, 0.3)
                .iter()
                .map(|d| lb.to_frame(d))
                .collect(),
        )
    }

    /// Every face of a frame by the back-256 model (whole frame in).
    pub fn detect_back(&self, rgb: &[u8], w: usize, h: usize) -> Result<Vec<Detection>> {
        self.run_detector(&self.back, &blazeface::BACK_256, rgb, w, h)
    }

    /// Every face of a frame by the front-128 model (whole frame in).
    pub fn detect_front(&self, rgb: &[u8], w: usize, h: usize) -> Result<Vec<Detection>> {
        self.run_detector(&self.front, &blazeface::FRONT_128, rgb, w, h)
    }

    /// Decodes a photo and adds the border (`pad` of its larger side).
    pub fn load_photo(&self, path: &Path) -> Result<Photo> {
        // Content sniffing, not the extension: the Yale set's files have none (`subject01.happy`).
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .with_context(|| format!("reading {}", path.display()))?
            .decode()
            .with_context(|| format!("decoding {}", path.display()))?
            .to_rgb8();
        let (w0, h0) = (img.width() as usize, img.height() as usize);
        let border = (w0.max(h0) as f32 * self.pad) as usize;
        Ok(Photo::padded(img.as_raw(), w0, h0, border))
    }

    /// The most confident face of the photo (back 256, else front 128), or `None`.
    pub fn best_face(&self, photo: &Photo) -> Result<Option<Found>> {
        let mut found = self.detect_back(&photo.rgb, photo.w, photo.h)?;
        let mut detector = "back-256";
        if found.is_empty() {
            found = self.detect_front(&photo.rgb, photo.w, photo.h)?;
            detector = "front-128";
        }
        Ok(found
            .into_iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .map(|detection| Found {
                detection,
                detector,
            }))
    }

    /// The 112×112 chip for a frame → chip similarity (planar RGB f32, 0–255).
    pub fn chip(&self, photo: &Photo, to_chip: &Similarity) -> Result<Vec<f32>> {
        align::warp_chip(&prepare::pack_rgba(&photo.rgb), photo.w, photo.h, to_chip)
            .ok_or_else(|| anyhow!("warp failed (degenerate alignment)"))
    }

    /// SFace embeddings (L2-normalised) of `n` chips laid one after another.
    pub fn embed(&self, chips: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let e = cpu::run(
            &self.sface,
            &[Tensor::new(
                vec![n, 3, align::CHIP, align::CHIP],
                chips.to_vec(),
            )?],
        )?;
        let out = e
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("SFace gave no output"))?;
        let dim = out.data.len() / n.max(1);
        Ok(out
            .data
            .chunks_exact(dim.max(1))
            .map(prepare::l2_normalise)
            .collect())
    }
}
