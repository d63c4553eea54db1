//! Sharper keypoints for large faces (issue 19): the back-256 model finds faces in a whole frame
//! scaled to 256, so a face 150 pixels wide is seen at 60; the short-range (front-128) model, run
//! again on a window around the face, sees it at about half its window. The window is letterboxed
//! into the model's input exactly as a lane's detection window is, so the CPU chain
//! (`FaceChain::refine`) and the station's recogniser (both backends, batched per tick) sample the
//! same pixels and pick the same face.

use super::blazeface::Detection;

/// Faces at least this wide (box side, image pixels) are refined: their window then holds at least
/// as many pixels as the front-128 model reads, so it sees detail the back-256 model did not.
/// Smaller faces keep back-256's keypoints.
pub const MIN_SIDE: f32 = 64.0;

/// The window around a face, in face-box sides: the short-range model was trained on selfies,
/// where the face fills about half the picture.
pub const WINDOW: f32 = 2.0;

/// The window (x0, y0, x1, y1, whole pixels inside the `w`×`h` image) in which to refine `face`:
/// a square of [`WINDOW`] box sides on the face's centre, clipped to the image. `None` for a face
/// narrower than [`MIN_SIDE`], a box that is not finite, or a clipped window under 16 pixels a side.
pub fn window(face: &Detection, w: usize, h: usize) -> Option<[u32; 4]> {
    let side = face.size[0].max(face.size[1]);
    // Written so that NaN is refused.
    if !(side >= MIN_SIDE && side.is_finite()) {
        return None;
    }
    let half = side * WINDOW / 2.0;
    let [cx, cy] = face.center;
    let clamp = |v: f32, hi: usize| v.max(0.0).min(hi as f32) as u32;
    let win = [
        clamp((cx - half).floor(), w),
        clamp((cy - half).floor(), h),
        clamp((cx + half).ceil(), w),
        clamp((cy + half).ceil(), h),
    ];
    if !(cx.is_finite() && cy.is_finite()) || win[2] < win[0] + 16 || win[3] < win[1] + 16 {
        return None;
    }
    Some(win)
}

/// Moves detections found in a window whose top-left is image pixel `(x0, y0)` into the image.
pub fn shift(found: &mut [Detection], x0: f32, y0: f32) {
    for d in found {
        d.center = [d.center[0] + x0, d.center[1] + y0];
        for k in &mut d.keypoints {
            *k = [k[0] + x0, k[1] + y0];
        }
    }
}

/// `face` refined by what the short-range model found in its window (`found`, in image pixels):
/// the find nearest the face's centre among those about as large (within 1.5× either way) and
/// within a third of a side of it, with its box and keypoints and the original score (the
/// detection threshold was applied to that). `face` itself when nothing confirms it: the
/// refinement may only sharpen a face, never move it to a neighbour's.
pub fn pick(face: &Detection, found: &[Detection]) -> Detection {
    let side = face.size[0].max(face.size[1]);
    let off = |d: &Detection| (d.center[0] - face.center[0]).hypot(d.center[1] - face.center[1]);
    let same = |d: &&Detection| {
        let s = d.size[0].max(d.size[1]);
        s > side / 1.5 && s < side * 1.5 && off(d) < side / 3.0
    };
    match found
        .iter()
        .filter(same)
        .min_by(|a, b| off(a).total_cmp(&off(b)))
    {
        Some(d) => Detection {
            score: face.score,
            ..*d
        },
        None => *face,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(center: [f32; 2], side: f32) -> Detection {
        Detection {
            score: 0.9,
            center,
            size: [side, side],
            keypoints: [center; 6],
        }
    }

    #[test]
    fn only_large_faces_get_a_window_clipped_to_the_image() {
        assert_eq!(window(&face([320.0, 240.0], 40.0), 640, 480), None);
        assert_eq!(
            window(&face([320.0, 240.0], 100.0), 640, 480),
            Some([220, 140, 420, 340])
        );
        assert_eq!(
            window(&face([30.0, 240.0], 100.0), 640, 480),
            Some([0, 140, 130, 340])
        );
        assert_eq!(window(&face([f32::NAN, 240.0], 100.0), 640, 480), None);
        assert_eq!(window(&face([320.0, 240.0], f32::NAN), 640, 480), None);
        assert_eq!(window(&face([-500.0, 240.0], 100.0), 640, 480), None);
    }

    #[test]
    fn a_find_replaces_the_face_only_where_it_confirms_it() {
        let f = face([320.0, 240.0], 100.0);
        let mut near = face([326.0, 236.0], 110.0);
        near.score = 0.6;
        near.keypoints[0] = [300.0, 220.0];
        let neighbour = face([390.0, 240.0], 100.0);
        let tiny = face([320.0, 240.0], 30.0);
        let got = pick(&f, &[neighbour, tiny, near]);
        assert_eq!(got.center, near.center);
        assert_eq!(got.keypoints[0], [300.0, 220.0]);
        assert_eq!(got.score, 0.9);
        assert_eq!(pick(&f, &[neighbour, tiny]), f);
        assert_eq!(pick(&f, &[]), f);
        let mut moved = [near];
        shift(&mut moved, 10.0, 20.0);
        assert_eq!(moved[0].center, [336.0, 256.0]);
        assert_eq!(moved[0].keypoints[0], [310.0, 240.0]);
    }
}
