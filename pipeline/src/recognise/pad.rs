//! Presentation-attack scores of the tick's embedded faces: the PAD pair (`engine::face::pad`) on
//! crops of the normalised frames, all faces of all lanes in one batch per network.
//!
//! Both backends score on the CPU's fast executor. The CPU backend already holds every frame's
//! pixels; the GPU backend reads back only the frames that have a face to score, once per tick.
//! (Running the pair as WGSL inside the tick's submission is possible, `engine/tests/pad.rs` holds
//! the GPU executor to PyTorch, but it needs a crop resampler of its own; until then a GPU station
//! pays one frame readback per lane with a face.)

use engine::face::pad::{self, FaceBox, PadPair, Pixels as PadPixels};
use zeroize::Zeroizing;

use super::patch::Patch;
use super::{Cut, FrameRef, Pixels, RecogniseError, stage_err};
use crate::normalise::Gpu;

/// A normalised frame as packed RGBA (red in the low byte), for the PAD crops.
struct Rgba<'a> {
    px: &'a [u32],
    w: usize,
    h: usize,
}

impl PadPixels for Rgba<'_> {
    fn size(&self) -> (usize, usize) {
        if self
            .w
            .checked_mul(self.h)
            .is_some_and(|n| self.px.len() >= n)
        {
            (self.w, self.h)
        } else {
            (0, 0)
        }
    }

    fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        engine::face::prepare::unpack_pixel(self.px[y * self.w + x])
    }
}

/// One scored face: its index into `cuts`, its live probability and its grey patch.
pub(super) type Scored = (usize, Option<f32>, Option<Patch>);

/// Live probabilities of the faces `which` (indices into `cuts`), as `(index, score, patch)`
/// (the face's grey patch for the parallax cue, cut from the same pixels), then the faces
/// `patch_only` with their patch and no score. `held` gives a frame's pixels where the backend
/// already has them on the CPU; the others are read back from the device.
pub(super) fn score<'h>(
    pair: &PadPair,
    gpu: &Gpu,
    frames: &[FrameRef<'_>],
    cuts: &[Cut],
    which: &[usize],
    patch_only: &[usize],
    held: &dyn Fn(usize) -> Option<&'h [u32]>,
) -> Result<Vec<Scored>, RecogniseError> {
    let err = stage_err("pad");
    if which.is_empty() && patch_only.is_empty() {
        return Ok(Vec::new());
    }
    // The frames needed, and those of them only on the device, read back in one submission.
    let mut needed: Vec<usize> = (which.iter().chain(patch_only))
        .filter_map(|&i| cuts.get(i))
        .map(|c| c.frame)
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let mut on_device = Vec::new();
    for &f in &needed {
        let Some(fr) = frames.get(f) else {
            return Err(err(format!("no frame {f}")));
        };
        if let (None, Pixels::Gpu(lane)) = (held(f), fr.pixels) {
            on_device.push((f, lane));
        }
    }
    let lanes: Vec<_> = on_device.iter().map(|(_, l)| *l).collect();
    // Faces are biometric data: the copies are wiped when the tick is done with them.
    let read: Vec<Zeroizing<Vec<u32>>> = if lanes.is_empty() {
        Vec::new()
    } else {
        crate::normalise::read_outputs(gpu, &lanes)
            .map_err(|e| err(e.to_string()))?
            .into_iter()
            .map(Zeroizing::new)
            .collect()
    };
    // Per tick frame, where its pixels are now.
    let mut pixels: Vec<Option<&[u32]>> = vec![None; frames.len()];
    for &f in &needed {
        pixels[f] = held(f).or(match frames[f].pixels {
            Pixels::Cpu(p) => Some(p),
            Pixels::Gpu(_) => on_device
                .iter()
                .position(|(g, _)| *g == f)
                .and_then(|k| read.get(k))
                .map(|v| v.as_slice()),
        });
    }
    let image = |i: usize| -> Result<Option<(usize, Rgba<'_>, FaceBox)>, RecogniseError> {
        let Some(c) = cuts.get(i) else {
            return Ok(None);
        };
        let (Some(Some(px)), Some(f)) = (pixels.get(c.frame), frames.get(c.frame)) else {
            return Err(err(format!("no pixels for frame {}", c.frame)));
        };
        let img = Rgba {
            px,
            w: f.width as usize,
            h: f.height as usize,
        };
        Ok(Some((i, img, pad::face_box(&c.detection))))
    };
    // The faces to score first, then those only cut.
    let mut images = Vec::with_capacity(which.len() + patch_only.len());
    for &i in which {
        images.extend(image(i)?);
    }
    let scored = images.len();
    for &i in patch_only {
        images.extend(image(i)?);
    }
    let faces: Vec<(&dyn PadPixels, FaceBox)> = images[..scored]
        .iter()
        .map(|(_, img, b)| (img as &dyn PadPixels, *b))
        .collect();
    let live = if faces.is_empty() {
        Vec::new()
    } else {
        pair.live(&faces).map_err(|e| err(e.to_string()))?
    };
    Ok(images
        .iter()
        .zip(live.into_iter().chain(std::iter::repeat(None)))
        .map(|((i, img, b), l)| (*i, l, Patch::cut(img, *b)))
        .collect())
}
