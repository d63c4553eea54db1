//! The CPU backend: the engine's plain-Rust reference on normalised frames read back from the GPU.

use engine::face::align;
use engine::face::blazeface::{Detection, Spec};
use engine::face::prepare;
use engine::{Graph, Tensor, cpu};
use enrolment::faces::Chip;
use zeroize::Zeroizing;

use super::{Cut, Embedded, FrameRef, RecogniseError, decode, embedding, stage_err};
use crate::normalise::Gpu;

pub(super) struct CpuBackend {
    detector: Graph,
    sface: Graph,
    /// The tick's frames as read back (packed RGBA), kept for the alignment warp.
    frames: Vec<Zeroizing<Vec<u32>>>,
}

impl CpuBackend {
    pub(super) fn new(detector: Graph, sface: Graph) -> Self {
        Self {
            detector,
            sface,
            frames: Vec::new(),
        }
    }

    pub(super) fn detect(
        &mut self,
        gpu: &Gpu,
        spec: &Spec,
        frames: &[FrameRef<'_>],
        min_score: f32,
    ) -> Result<Vec<Vec<Detection>>, RecogniseError> {
        let err = stage_err("detect");
        self.frames.clear();
        let mut out = Vec::with_capacity(frames.len());
        for f in frames {
            let rgba = Zeroizing::new(f.lane.read_output(gpu).map_err(|e| err(e.to_string()))?);
            let (w, h) = (f.width as usize, f.height as usize);
            let rgb: Zeroizing<Vec<u8>> = Zeroizing::new(
                rgba.iter()
                    .flat_map(|p| [*p as u8, (*p >> 8) as u8, (*p >> 16) as u8])
                    .collect(),
            );
            let (input, lb) = prepare::detector_input(&rgb, w, h, spec.input)
                .ok_or_else(|| err(format!("frame {w}x{h} does not match its buffer")))?;
            let input = Tensor::new(vec![1, spec.input, spec.input, 3], input)
                .map_err(|e| err(e.to_string()))?;
            let outs = cpu::run(&self.detector, &[input]).map_err(|e| err(e.to_string()))?;
            let outs: Vec<Vec<f32>> = outs.into_iter().map(|t| t.data).collect();
            out.push(decode(spec, &outs, 0, min_score, &lb)?);
            self.frames.push(rgba);
        }
        Ok(out)
    }

    pub(super) fn embed(
        &mut self,
        frames: &[FrameRef<'_>],
        cuts: &[Cut],
    ) -> Result<Embedded, RecogniseError> {
        let err = stage_err("embed");
        let mut out = Vec::with_capacity(cuts.len());
        for (i, c) in cuts.iter().enumerate() {
            let (Some(f), Some(rgba)) = (frames.get(c.frame), self.frames.get(c.frame)) else {
                return Err(err(format!("no frame {}", c.frame)));
            };
            let Some(to_chip) = align::from_blazeface(&c.detection.keypoints) else {
                continue; // degenerate keypoints: tracked, never embedded
            };
            let Some(chip) = align::warp_chip(rgba, f.width as usize, f.height as usize, &to_chip)
            else {
                continue;
            };
            let input = Tensor::new(vec![1, 3, align::CHIP, align::CHIP], chip.clone())
                .map_err(|e| err(e.to_string()))?;
            let raw = cpu::run(&self.sface, &[input]).map_err(|e| err(e.to_string()))?;
            let raw = raw
                .into_iter()
                .next()
                .ok_or_else(|| err("SFace gave no output".into()))?;
            if let Some(e) = embedding(&raw.data) {
                out.push((i, Chip(Zeroizing::new(chip)), e));
            }
        }
        Ok(out)
    }
}
