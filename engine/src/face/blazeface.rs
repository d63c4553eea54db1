//! BlazeFace post-processing, MediaPipe style.
//!
//! Both shipped conversions (front 128×128, back 256×256) have two SSD layers: a 16×16 grid with 2
//! anchors per cell and an 8×8 grid with 6, 896 anchors in all, each anchor a unit-size box centred
//! in its cell (MediaPipe's `fixed_anchor_size`). Outputs, in graph order: scores of layer 1 [N,512,1],
//! scores of layer 2 [N,384,1], regressors of layer 1 [N,512,16], regressors of layer 2 [N,384,16].
//! A regressor holds the box centre offset and size and six keypoints (right eye, left eye, nose tip,
//! mouth centre, right ear, left ear — "right" is the person's right, the image's left), all in input
//! pixels relative to the anchor centre. Scores are logits.

/// One detector input size and its SSD layers: (cells per row, anchors per cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub input: usize,
    pub layers: [(usize, usize); 2],
}

pub const FRONT_128: Spec = Spec {
    input: 128,
    layers: [(16, 2), (8, 6)],
};
pub const BACK_256: Spec = Spec {
    input: 256,
    layers: [(16, 2), (8, 6)],
};

impl Spec {
    pub fn anchors(&self) -> usize {
        self.layers.iter().map(|(c, a)| c * c * a).sum()
    }
}

/// A detection in normalised model-input coordinates (0–1, y down), or in frame pixels after
/// [`Letterbox::to_frame`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub score: f32,
    pub center: [f32; 2],
    pub size: [f32; 2],
    pub keypoints: [[f32; 2]; 6],
}

impl Detection {
    /// The box's corners: x0, y0, x1, y1.
    pub fn corners(&self) -> [f32; 4] {
        [
            self.center[0] - self.size[0] / 2.0,
            self.center[1] - self.size[1] / 2.0,
            self.center[0] + self.size[0] / 2.0,
            self.center[1] + self.size[1] / 2.0,
        ]
    }

    pub fn iou(&self, o: &Detection) -> f32 {
        iou(self.corners(), o.corners())
    }

    /// Distance between the eyes, in the detection's units: the size measure the quality gates use.
    pub fn eye_distance(&self) -> f32 {
        let [r, l] = [self.keypoints[0], self.keypoints[1]];
        ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt()
    }
}

/// Intersection over union of two boxes given by their corners (x0, y0, x1, y1); an inverted
/// box has no area, and an empty union gives 0. The one IoU of the workspace: non-maximum
/// suppression here, the station's tracker (`pipeline::decide::BBox`) and calibration's lane
/// tool all call it.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = area([
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("BlazeFace output {what}: expected {want} values for batch item {item}, got {got}")]
pub struct DecodeError {
    pub what: &'static str,
    pub want: usize,
    pub got: usize,
    pub item: usize,
}

fn sigmoid(x: f32) -> f32 {
    // MediaPipe clips the logit to ±100 before the sigmoid.
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

/// Decodes one image of the batch: `outputs` are the graph's four outputs for the whole batch.
pub fn decode(
    spec: &Spec,
    outputs: &[Vec<f32>],
    item: usize,
    min_score: f32,
) -> Result<Vec<Detection>, DecodeError> {
    let mut out = Vec::new();
    let scale = 1.0 / spec.input as f32;
    for (l, &(cells, per_cell)) in spec.layers.iter().enumerate() {
        let n = cells * cells * per_cell;
        let get = |idx: usize, width: usize, what: &'static str| {
            let all = outputs.get(idx).map(|v| v.as_slice()).unwrap_or(&[]);
            all.get(item * n * width..(item + 1) * n * width)
                .ok_or(DecodeError {
                    what,
                    want: n * width,
                    got: all.len().saturating_sub(item * n * width),
                    item,
                })
        };
        let scores = get(l, 1, if l == 0 { "scores 1" } else { "scores 2" })?;
        let regs = get(
            2 + l,
            16,
            if l == 0 {
                "regressors 1"
            } else {
                "regressors 2"
            },
        )?;
        for (a, (&logit, r)) in scores.iter().zip(regs.chunks_exact(16)).enumerate() {
            let score = sigmoid(logit);
            if score < min_score {
                continue;
            }
            let cell = a / per_cell;
            let anchor = [
                ((cell % cells) as f32 + 0.5) / cells as f32,
                ((cell / cells) as f32 + 0.5) / cells as f32,
            ];
            let mut keypoints = [[0f32; 2]; 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = [
                    anchor[0] + r[4 + 2 * k] * scale,
                    anchor[1] + r[5 + 2 * k] * scale,
                ];
            }
            out.push(Detection {
                score,
                center: [anchor[0] + r[0] * scale, anchor[1] + r[1] * scale],
                size: [r[2] * scale, r[3] * scale],
                keypoints,
            });
        }
    }
    Ok(out)
}

/// MediaPipe's weighted non-maximum suppression: take the best remaining detection, average it with
/// every remaining detection overlapping it by at least `iou_threshold`, weighted by score (boxes
/// and keypoints alike), keep the best score. Averaging rather than discarding steadies the landmarks
/// from frame to frame, which the alignment (and so the embedding) depends on.
pub fn weighted_nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = dets.first().copied() {
        let (group, rest): (Vec<Detection>, Vec<Detection>) =
            dets.into_iter().partition(|d| best.iou(d) >= iou_threshold);
        dets = rest;
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut m = Detection {
            score: best.score,
            center: [0.0; 2],
            size: [0.0; 2],
            keypoints: [[0.0; 2]; 6],
        };
        for d in &group {
            let w = d.score / total;
            for i in 0..2 {
                m.center[i] += d.center[i] * w;
                m.size[i] += d.size[i] * w;
                for k in 0..6 {
                    m.keypoints[k][i] += d.keypoints[k][i] * w;
                }
            }
        }
        out.push(m);
    }
    out
}

/// The overlap above which weighted NMS merges two detections.
pub const NMS_IOU: f32 = 0.3;

/// One batch item's detector outputs → the faces of the frame, in frame pixels, most confident
/// first: [`decode`], [`weighted_nms`], [`Letterbox::to_frame`], and detections that are empty or
/// not finite dropped (no face can be tracked or aligned from them). Every detector run of the
/// workspace (the station's two backends and [`crate::face::FaceChain`]) goes through here, so their
/// post-processing cannot drift apart.
pub fn frame_detections(
    spec: &Spec,
    outputs: &[Vec<f32>],
    item: usize,
    min_score: f32,
    letterbox: &Letterbox,
) -> Result<Vec<Detection>, DecodeError> {
    let dets = decode(spec, outputs, item, min_score)?;
    let mut faces: Vec<Detection> = weighted_nms(dets, NMS_IOU)
        .iter()
        .map(|d| letterbox.to_frame(d))
        .filter(|d| d.size[0] > 0.0 && d.size.iter().chain(d.center.iter()).all(|v| v.is_finite()))
        .collect();
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(faces)
}

/// How a frame was fitted into the square model input: scaled by `scale` and centred with padding,
/// keeping the aspect ratio (stretching would distort the face geometry the keypoints describe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad: [f32; 2],
    pub input: usize,
}

impl Letterbox {
    pub fn fit(frame_w: usize, frame_h: usize, input: usize) -> Self {
        let scale = input as f32 / frame_w.max(frame_h).max(1) as f32;
        Self {
            scale,
            pad: [
                (input as f32 - frame_w as f32 * scale) / 2.0,
                (input as f32 - frame_h as f32 * scale) / 2.0,
            ],
            input,
        }
    }

    /// Normalised model-input coordinates → frame pixels.
    pub fn to_frame(&self, d: &Detection) -> Detection {
        let s = self.input as f32;
        let p = |v: [f32; 2]| {
            [
                (v[0] * s - self.pad[0]) / self.scale,
                (v[1] * s - self.pad[1]) / self.scale,
            ]
        };
        Detection {
            score: d.score,
            center: p(d.center),
            size: [d.size[0] * s / self.scale, d.size[1] * s / self.scale],
            keypoints: d.keypoints.map(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, cx: f32, cy: f32, s: f32) -> Detection {
        Detection {
            score,
            center: [cx, cy],
            size: [s, s],
            keypoints: [[cx, cy]; 6],
        }
    }

    #[test]
    fn anchors_and_decoding() {
        assert_eq!(FRONT_128.anchors(), 896);
        // One confident anchor: layer 2, cell (x=3, y=5), its 4th anchor; box offset (+8, −4) px.
        let mut outs = vec![
            vec![-10f32; 512],
            vec![-10f32; 384],
            vec![0f32; 512 * 16],
            vec![0f32; 384 * 16],
        ];
        let a = (5 * 8 + 3) * 6 + 3;
        outs[1][a] = 2.0;
        outs[3][a * 16..a * 16 + 4].copy_from_slice(&[8.0, -4.0, 32.0, 40.0]);
        outs[3][a * 16 + 4] = -16.0; // right eye x
        let d = decode(&FRONT_128, &outs, 0, 0.5).expect("decodes");
        assert_eq!(d.len(), 1);
        let d = d[0];
        assert!((d.score - 0.880797).abs() < 1e-5);
        let (ax, ay) = (3.5 / 8.0, 5.5 / 8.0);
        assert!(
            (d.center[0] - (ax + 8.0 / 128.0)).abs() < 1e-6
                && (d.center[1] - (ay - 4.0 / 128.0)).abs() < 1e-6
        );
        assert!((d.size[0] - 0.25).abs() < 1e-6 && (d.size[1] - 40.0 / 128.0).abs() < 1e-6);
        assert!((d.keypoints[0][0] - (ax - 0.125)).abs() < 1e-6);
    }

    #[test]
    fn short_outputs_are_errors() {
        let outs = vec![
            vec![0f32; 512],
            vec![0f32; 10],
            vec![0f32; 512 * 16],
            vec![0f32; 384 * 16],
        ];
        let e = decode(&FRONT_128, &outs, 0, 0.5).expect_err("short");
        assert_eq!(e.what, "scores 2");
        assert!(decode(&FRONT_128, &outs[..2], 0, 0.5).is_err());
        let ok = vec![
            vec![0f32; 512],
            vec![0f32; 384],
            vec![0f32; 512 * 16],
            vec![0f32; 384 * 16],
        ];
        assert!(
            decode(&FRONT_128, &ok, 1, 0.5).is_err(),
            "batch item 1 of a batch of 1"
        );
    }

    #[test]
    fn weighted_nms_blends_overlaps_and_keeps_separate_faces() {
        let dets = vec![
            det(0.9, 0.50, 0.5, 0.2),
            det(0.6, 0.53, 0.5, 0.2),
            det(0.8, 0.1, 0.1, 0.1),
        ];
        let out = weighted_nms(dets, 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        let want = (0.50 * 0.9 + 0.53 * 0.6) / 1.5;
        assert!(
            (out[0].center[0] - want).abs() < 1e-6,
            "{}",
            out[0].center[0]
        );
        assert_eq!(out[1].center, [0.1, 0.1]);
        assert!(weighted_nms(vec![], 0.3).is_empty());
    }

    #[test]
    fn letterbox_round_trip() {
        let lb = Letterbox::fit(640, 480, 128);
        assert!((lb.scale - 0.2).abs() < 1e-6 && lb.pad == [0.0, 16.0]);
        let d = det(1.0, 0.5, 0.5, 0.25);
        let f = lb.to_frame(&d);
        assert!((f.center[0] - 320.0).abs() < 1e-3 && (f.center[1] - 240.0).abs() < 1e-3);
        assert!((f.size[0] - 160.0).abs() < 1e-3);
    }
}
