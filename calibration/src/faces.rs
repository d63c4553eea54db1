//! One photo → one face embedding: detect (BlazeFace back 256, falling back to front 128), align onto
//! the ArcFace template, embed (SFace), L2-normalise. Runs on the engine's CPU reference, which is
//! equal to onnxruntime; the GPU path is checked against the same reference.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use engine::face::blazeface::{self, Detection, Spec};
use engine::face::{align, prepare};
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

pub struct Face {
    pub detection: Detection,
    pub embedding: Vec<f32>,
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

    fn detect(
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

    /// The most confident face of the photo, or `None` when no detector finds one.
    pub fn face(&self, path: &Path) -> Result<Option<Face>> {
        // Content sniffing, not the extension: the Yale set's files have none (`subject01.happy`).
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .with_context(|| format!("reading {}", path.display()))?
            .decode()
            .with_context(|| format!("decoding {}", path.display()))?
            .to_rgb8();
        let (w0, h0) = (img.width() as usize, img.height() as usize);
        let border = (w0.max(h0) as f32 * self.pad) as usize;
        let (w, h) = (w0 + 2 * border, h0 + 2 * border);
        let mut rgb = vec![0u8; w * h * 3];
        for (y, row) in img.into_raw().chunks_exact(w0 * 3).enumerate() {
            let at = ((y + border) * w + border) * 3;
            rgb[at..at + w0 * 3].copy_from_slice(row);
        }
        let mut found = self.detect(&self.back, &blazeface::BACK_256, &rgb, w, h)?;
        let mut detector = "back-256";
        if found.is_empty() {
            found = self.detect(&self.front, &blazeface::FRONT_128, &rgb, w, h)?;
            detector = "front-128";
        }
        let Some(best) = found.into_iter().max_by(|a, b| a.score.total_cmp(&b.score)) else {
            return Ok(None);
        };
        let Some(s) = align::from_blazeface(&best.keypoints) else {
            return Ok(None);
        };
        let chip = align::warp_chip(&prepare::pack_rgba(&rgb), w, h, &s)
            .ok_or_else(|| anyhow!("warp failed"))?;
        let e = cpu::run(&self.sface, &[Tensor::new(vec![1, 3, 112, 112], chip)?])?;
        Ok(Some(Face {
            detection: best,
            embedding: prepare::l2_normalise(&e[0].data),
            detector,
        }))
    }
}
