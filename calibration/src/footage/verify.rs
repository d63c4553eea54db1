//! `--verify`: runs the station's CPU detectors on the rendered frames and counts, by face size, how
//! many ground-truth faces each finds. For checking a preset or a renderer change, not for
//! generation (it is slow).

use anyhow::Result;

use engine::face::{FaceChain, Rgb};

/// Face-size buckets (box height, pixels at 480 lines): ≥120, 60–120, <60.
const EDGES: [f32; 2] = [120.0, 60.0];
const NAMES: [&str; 3] = ["≥120px", "60–120px", "<60px"];

#[derive(Default, Clone, Copy)]
pub struct Tally {
    /// Per bucket: faces, found by back-256, found by front-128.
    counts: [[u32; 3]; 3],
}

/// Found: a detection whose centre lies in the box and whose size is within a factor 2 of it.
fn found(dets: &[engine::face::blazeface::Detection], b: &[f32; 4]) -> bool {
    dets.iter().any(|d| {
        let inside = d.center[0] >= b[0]
            && d.center[0] <= b[0] + b[2]
            && d.center[1] >= b[1]
            && d.center[1] <= b[1] + b[3];
        let ratio = d.size[1] / b[3].max(1.0);
        inside && (0.5..=2.0).contains(&ratio)
    })
}

impl Tally {
    /// Checks one frame; `boxes` are the ground-truth faces in it (x, y, w, h).
    pub fn frame(
        &mut self,
        pipe: &FaceChain,
        rgb: &[u8],
        w: usize,
        h: usize,
        boxes: &[[f32; 4]],
    ) -> Result<()> {
        if boxes.is_empty() {
            return Ok(());
        }
        let img = Rgb { rgb, w, h };
        let back = pipe.detect_back(img)?;
        let front = pipe.detect_front(img)?;
        let k = 480.0 / h as f32;
        for b in boxes {
            let side = b[3] * k;
            let bucket = EDGES.iter().position(|&e| side >= e).unwrap_or(2);
            let c = &mut self.counts[bucket];
            c[0] += 1;
            c[1] += found(&back, b) as u32;
            c[2] += found(&front, b) as u32;
        }
        Ok(())
    }

    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .zip(NAMES)
            .filter(|(c, _)| c[0] > 0)
            .map(|(c, n)| format!("{n}: back {}/{} front {}/{}", c[1], c[0], c[2], c[0]))
            .collect();
        parts.join(", ")
    }
}
