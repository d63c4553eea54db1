//! The CPU backend: the engine's fast CPU executor (`engine::fast`) on normalised frames read back
//! from the GPU. All lanes' frames go through the detector in one batch, all chips through SFace in
//! one batch.

use engine::face::align;
use engine::face::blazeface::{Detection, Spec};
use engine::face::{Chip, embedding, prepare};
use engine::fast::FastModel;
use engine::{Graph, Tensor};
use zeroize::Zeroizing;

use super::{Cut, Embedded, FrameRef, Pixels, RecogniseError, decode, stage_err, to_frame};
use crate::normalise::Gpu;

pub(super) struct CpuBackend {
    detector: FastModel,
    sface: FastModel,
    /// Per frame of the tick, the pixels read back from the device (packed RGBA), kept for the
    /// alignment warp; `None` for frames normalised on the CPU, whose pixels the tick already holds.
    frames: Vec<Option<Zeroizing<Vec<u32>>>>,
    /// Cores inference may take; frames normalised on the CPU are split over as many.
    threads: usize,
}

/// A frame's pixels: the tick's own for a CPU-normalised frame, else what was read back.
fn pixels<'a>(f: &FrameRef<'a>, read_back: Option<&'a Zeroizing<Vec<u32>>>) -> Option<&'a [u32]> {
    match f.pixels {
        Pixels::Cpu(px) => Some(px),
        Pixels::Gpu(_) => read_back.map(|v| v.as_slice()),
    }
}

impl CpuBackend {
    /// `threads`: how many cores inference may take (both models share the count; they never
    /// run at the same time).
    pub(super) fn new(
        detector: Graph,
        sface: Graph,
        threads: usize,
    ) -> Result<Self, RecogniseError> {
        let compile = |g: Graph| {
            FastModel::new(g, threads).map_err(|e| RecogniseError::Stage {
                stage: "load",
                detail: e.to_string(),
            })
        };
        Ok(Self {
            detector: compile(detector)?,
            sface: compile(sface)?,
            frames: Vec::new(),
            threads,
        })
    }

    pub(super) fn threads(&self) -> usize {
        self.threads
    }

    /// The pixels of tick frame `f` as read back by [`Self::detect`] (`None` for a frame the tick
    /// normalised on the CPU: its `FrameRef` holds them).
    pub(super) fn read_back(&self, f: usize) -> Option<&[u32]> {
        self.frames.get(f)?.as_ref().map(|v| v.as_slice())
    }

    pub(super) fn detect(
        &mut self,
        gpu: &Gpu,
        spec: &Spec,
        frames: &[FrameRef<'_>],
        windows: &[[u32; 4]],
        min_score: f32,
    ) -> Result<Vec<Vec<Detection>>, RecogniseError> {
        let err = stage_err("detect");
        self.frames.clear();
        let side = spec.input;
        let per = side * side * 3;
        let mut batch = Vec::with_capacity(frames.len() * per);
        let mut boxes = Vec::with_capacity(frames.len());
        // Frames still on the device come back in one submission with one wait.
        let on_gpu: Vec<_> = frames
            .iter()
            .filter_map(|f| match f.pixels {
                Pixels::Gpu(lane) => Some(lane),
                Pixels::Cpu(_) => None,
            })
            .collect();
        let mut read = if on_gpu.is_empty() {
            Vec::new()
        } else {
            crate::normalise::read_outputs(gpu, &on_gpu).map_err(|e| err(e.to_string()))?
        }
        .into_iter();
        let mut origins = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let read_back = match f.pixels {
                Pixels::Cpu(_) => None,
                Pixels::Gpu(_) => {
                    Some(Zeroizing::new(read.next().ok_or_else(|| {
                        err("a frame missing from the readback".into())
                    })?))
                }
            };
            let rgba = pixels(f, read_back.as_ref())
                .ok_or_else(|| err("a frame missing from the readback".into()))?;
            // Only the detection window goes to the detector (`super::detection_window`).
            let (w, h) = (f.width as usize, f.height as usize);
            let [x0, y0, x1, y1] = windows
                .get(i)
                .map_or([0, 0, w, h], |b| b.map(|v| v as usize));
            let bad = || err(format!("frame {w}x{h} does not match its buffer"));
            if x1 > w || y1 > h || x0 >= x1 || y0 >= y1 || rgba.len() < w * h {
                return Err(bad());
            }
            let mut rgb: Zeroizing<Vec<u8>> =
                Zeroizing::new(Vec::with_capacity((x1 - x0) * (y1 - y0) * 3));
            for y in y0..y1 {
                let row = &rgba[y * w + x0..y * w + x1];
                rgb.extend(row.iter().flat_map(|p| prepare::unpack_pixel(*p)));
            }
            let (input, lb) =
                prepare::detector_input(&rgb, x1 - x0, y1 - y0, side).ok_or_else(bad)?;
            batch.extend_from_slice(&input);
            boxes.push(lb);
            origins.push([x0 as u32, y0 as u32]);
            self.frames.push(read_back);
        }
        let input = Tensor::new(vec![frames.len(), side, side, 3], batch)
            .map_err(|e| err(e.to_string()))?;
        let outs = self
            .detector
            .run(&[input])
            .map_err(|e| err(e.to_string()))?;
        let outs: Vec<Vec<f32>> = outs.into_iter().map(|t| t.data).collect();
        boxes
            .iter()
            .zip(origins)
            .enumerate()
            .map(|(i, (lb, [ox, oy]))| {
                let mut found = decode(spec, &outs, i, min_score, lb)?;
                to_frame(&mut found, ox, oy);
                Ok(found)
            })
            .collect()
    }

    /// The aligned chips of `cuts` (index into `cuts`, CHW floats); faces with degenerate
    /// keypoints or outside their frame are left out (tracked, never embedded).
    pub(super) fn chips(
        &self,
        frames: &[FrameRef<'_>],
        cuts: &[Cut],
    ) -> Result<Vec<(usize, Chip)>, RecogniseError> {
        let err = stage_err("embed");
        let mut chips = Vec::with_capacity(cuts.len());
        for (i, c) in cuts.iter().enumerate() {
            let Some(f) = frames.get(c.frame) else {
                return Err(err(format!("no frame {}", c.frame)));
            };
            let Some(rgba) = self.frames.get(c.frame).and_then(|b| pixels(f, b.as_ref())) else {
                return Err(err(format!("no pixels for frame {}", c.frame)));
            };
            let Some(to_chip) = align::from_blazeface(&c.detection.keypoints) else {
                continue;
            };
            if let Some(chip) =
                align::warp_chip(rgba, f.width as usize, f.height as usize, &to_chip)
            {
                chips.push((i, Chip(Zeroizing::new(chip))));
            }
        }
        Ok(chips)
    }

    /// SFace over `chips` in one batch.
    pub(super) fn embed(&mut self, chips: Vec<(usize, Chip)>) -> Result<Embedded, RecogniseError> {
        let err = stage_err("embed");
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let per = 3 * align::CHIP * align::CHIP;
        let mut batch = Vec::with_capacity(chips.len() * per);
        for (_, chip) in &chips {
            batch.extend_from_slice(&chip.0);
        }
        let input = Tensor::new(vec![chips.len(), 3, align::CHIP, align::CHIP], batch)
            .map_err(|e| err(e.to_string()))?;
        let raw = self.sface.run(&[input]).map_err(|e| err(e.to_string()))?;
        let raw = raw
            .into_iter()
            .next()
            .ok_or_else(|| err("SFace gave no output".into()))?;
        let dim = raw.data.len() / chips.len();
        Ok(chips
            .into_iter()
            .enumerate()
            .filter_map(|(b, (i, chip))| {
                embedding(&raw.data[b * dim..][..dim]).map(|e| (i, chip, e))
            })
            .collect())
    }
}
