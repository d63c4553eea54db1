//! The recogniser's two backends on the same normalised frames: the GPU path (WGSL letterbox,
//! detector, alignment warp, SFace) against the CPU reference path.
//!
//! Tolerances: detections within 1.5 px (boxes and keypoints; the GPU detector differs from the
//! reference by ≤ 7.5e-4 of its outputs, docs/engine.md), embeddings' cosine ≥ 0.999 (the chips
//! are cut from slightly different keypoints), and the same best subject with similarities
//! within 2e-3.

use std::path::Path;

use super::*;
use crate::normalise::GpuConfig;
use crate::normalise::{FrameLayout, LightingKernel, NormaliseParams, normalise_batch};

/// An I420 (full range) frame of `w`×`h` with the photo scaled to fit, on mid grey.
fn frame_of_photo(path: &Path, w: u32, h: u32) -> Option<(FrameLayout, Vec<u8>)> {
    let bytes = std::fs::read(path).ok()?;
    let img = enrolment::photo::decode(&bytes, Default::default()).ok()?;
    let mut l = FrameLayout::i420(w, h);
    l.limited_range = false;
    let mut f = vec![128u8; l.size()];
    let s = (w as f32 / img.w as f32).min(h as f32 / img.h as f32);
    let (ox, oy) = (
        (w as f32 - img.w as f32 * s) / 2.0,
        (h as f32 - img.h as f32 * s) / 2.0,
    );
    let rgb_at = |x: u32, y: u32| -> [f32; 3] {
        let sx = ((x as f32 + 0.5 - ox) / s) as i64;
        let sy = ((y as f32 + 0.5 - oy) / s) as i64;
        if sx < 0 || sy < 0 || sx >= img.w as i64 || sy >= img.h as i64 {
            return [128.0; 3];
        }
        let i = (sy as usize * img.w + sx as usize) * 3;
        [
            img.rgb[i] as f32,
            img.rgb[i + 1] as f32,
            img.rgb[i + 2] as f32,
        ]
    };
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = rgb_at(x, y);
            f[(l.y_off + y * l.y_stride + x) as usize] = (0.299 * r + 0.587 * g + 0.114 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            let [r, g, b] = rgb_at(2 * x, 2 * y);
            let u = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
            let v = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
            f[(l.u_off + y * l.u_stride + x) as usize] = u.round().clamp(0.0, 255.0) as u8;
            f[(l.v_off + y * l.v_stride + x) as usize] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Some((l, f))
}

#[test]
fn gpu_and_cpu_backends_agree_on_real_faces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let photos = root.join("testdata/face_recognition");
    let models = default_models();
    if !models_present(&models) || !photos.join("obama.jpg").is_file() {
        eprintln!("skipped: run scripts/setup for models/ and testdata/ (CI does)");
        return;
    }
    let gpu = Gpu::open(&GpuConfig::default()).expect("adapter");
    let kernel = LightingKernel::new(&gpu);
    let params = NormaliseParams::default();
    // Two lanes of different sizes: the frames are gathered into one buffer at different offsets.
    let inputs = [
        frame_of_photo(&photos.join("obama.jpg"), 320, 240).expect("obama"),
        frame_of_photo(&photos.join("biden.jpg"), 256, 256).expect("biden"),
    ];
    let lanes: Vec<LaneNormaliser> = inputs
        .iter()
        .map(|(l, _)| LaneNormaliser::new(&gpu, &kernel, *l, &params).expect("lane"))
        .collect();
    let work: Vec<(&LaneNormaliser, &[u8])> = lanes
        .iter()
        .zip(&inputs)
        .map(|(n, (_, f))| (n, f.as_slice()))
        .collect();
    normalise_batch(&gpu, &kernel, &work).expect("normalise");
    let refs: Vec<FrameRef<'_>> = lanes
        .iter()
        .zip(&inputs)
        .map(|(n, (l, _))| FrameRef {
            pixels: Pixels::Gpu(n),
            width: l.width,
            height: l.height,
        })
        .collect();

    // The gallery: both people enrolled from the same photos by the enrolment chain (its own
    // framing and detector, so similarities are high but not 1).
    let pipe = engine::face::FaceChain::load(&models).expect("models");
    let gallery = crate::sync::Gallery::new();
    let mut ids = Vec::new();
    let mut changes = Vec::new();
    for name in ["obama.jpg", "biden.jpg"] {
        let bytes = std::fs::read(photos.join(name)).expect("photo");
        let img = enrolment::photo::decode(&bytes, Default::default()).expect("decode");
        let face = pipe.detect(img.view()).expect("detect")[0];
        let t = pipe
            .embed_one(&engine::face::Chip::of_face(img.view(), &face).expect("chip"))
            .expect("embed");
        let id = domain::SubjectId::random().expect("id");
        ids.push(id);
        changes.push(crate::sync::gallery::GalleryChange::Upsert(
            id,
            Box::new(t),
            Default::default(),
        ));
    }
    gallery.update(1, changes);

    let mut results = Vec::new();
    for backend in [Backend::Cpu, Backend::Gpu] {
        let cfg = RecogniseConfig {
            backend,
            detector: Detector::Front,
            ..Default::default()
        };
        let pad = engine::face::pad::assets_dir();
        let mut r = Recogniser::new(&gpu, &cfg, 2, Some(&pad)).expect("recogniser");
        assert_eq!(
            r.backend_name(),
            if backend == Backend::Gpu {
                "gpu"
            } else {
                "cpu"
            }
        );
        // One subject: Obama's face from this very frame, enrolled through the CPU chain's result.
        assert!(r.mirror.refresh(&gallery, None).expect("refresh"));
        assert!(
            !r.mirror.refresh(&gallery, None).expect("refresh"),
            "unchanged gallery uploads nothing"
        );
        let (faces, times) = r.tick(&gpu, &refs, &[]).expect("tick");
        assert_eq!(times.faces, 2, "{faces:?}");
        // Every embedded face is scored by the PAD pair, on either backend.
        assert_eq!(times.scored, 2, "{faces:?}");
        results.push((faces, r));
    }
    let (cpu, gpu_r) = (&results[0].0, &results[1].0);
    for (lane, (a, b)) in cpu.iter().zip(gpu_r).enumerate() {
        assert_eq!(a.faces.len(), 1, "lane {lane}");
        assert_eq!(b.faces.len(), 1, "lane {lane}");
        let (fa, fb) = (&a.faces[0], &b.faces[0]);
        for (p, q) in fa.detection.keypoints.iter().zip(&fb.detection.keypoints) {
            assert!(
                (p[0] - q[0]).abs() < 1.5 && (p[1] - q[1]).abs() < 1.5,
                "lane {lane}: {p:?} vs {q:?}"
            );
        }
        let (qa, qb) = (fa.quality.expect("embedded"), fb.quality.expect("embedded"));
        assert!((qa.eye_px - qb.eye_px).abs() < 1.5);
        assert!((qa.luma - qb.luma).abs() < 2.0, "{qa:?} vs {qb:?}");
        // Measured on the CPU's chip and, by `probe.wgsl`, on the GPU's: the chips differ by the
        // sub-pixel shift of their keypoints, which moves the Laplacian's variance a little.
        eprintln!(
            "lane {lane}: sharpness cpu {} gpu {}",
            qa.sharpness, qb.sharpness
        );
        assert!(
            (qa.sharpness - qb.sharpness).abs() <= 0.01 * qa.sharpness,
            "{qa:?} vs {qb:?}"
        );
        assert!((qa.yaw - qb.yaw).abs() < 0.05, "{qa:?} vs {qb:?}");
        // Each lane's walker is found, by both backends, with nearly the same similarity.
        let numbers = &results[0].1.mirror.numbers();
        let (ba, bb) = (fa.best.expect("match"), fb.best.expect("match"));
        assert_eq!(numbers.get(ba.subject.0), Some(ids[lane]), "lane {lane}");
        assert_eq!(ba.subject, bb.subject);
        assert!(ba.similarity > 0.6, "{ba:?}");
        assert!(
            (ba.similarity - bb.similarity).abs() < 2e-3,
            "{ba:?} vs {bb:?}"
        );
        // The same normalised pixels on both backends; the boxes differ by the keypoints' shift.
        let (la, lb) = (fa.live.expect("scored"), fb.live.expect("scored"));
        eprintln!("lane {lane}: live cpu {la} gpu {lb}");
        assert!(
            (0.0..=1.0).contains(&la) && (la - lb).abs() < 0.05,
            "{la} vs {lb}"
        );
        let (sa, sb) = (fa.second.expect("runner-up"), fb.second.expect("runner-up"));
        assert!(sa.similarity < 0.3 && (sa.similarity - sb.similarity).abs() < 2e-3);
    }

    // The CPU tick measures a face that fails its lane's gates but does not embed it; a lane
    // whose gates it passes is embedded as before.
    let cpu_faces = results[0].0.clone();
    let cpu_r = &mut results[0].1;
    let never = QualityGates {
        min_sharpness: f32::INFINITY,
        ..Default::default()
    };
    let lenient = QualityGates {
        min_eye_px: 0.0,
        min_sharpness: 0.0,
        max_abs_yaw: 10.0,
        luma: (0.0, 255.0),
    };
    let (faces, times) = cpu_r
        .tick(
            &gpu,
            &refs,
            &[
                LaneScope {
                    gates: Some(never),
                    ..Default::default()
                },
                LaneScope {
                    gates: Some(lenient),
                    ..Default::default()
                },
            ],
        )
        .expect("tick");
    assert_eq!(times.embedded, 1);
    let (gated, passed) = (&faces[0].faces[0], &faces[1].faces[0]);
    assert_eq!(
        gated.quality, cpu_faces[0].faces[0].quality,
        "measured all the same"
    );
    assert!(gated.best.is_none() && gated.second.is_none());
    assert_eq!(passed.best, cpu_faces[1].faces[0].best);
    // Not scored, yet cut for the two-camera cue, from the same pixels as when it was scored.
    assert_eq!(times.scored, 1);
    assert!(gated.live.is_none());
    assert!(gated.patch.is_some() && gated.patch == cpu_faces[0].faces[0].patch);
    assert!(passed.live.is_some() && passed.patch.is_some());

    // Zones (CPU backend): lane 0's zone is its face's box, so the detector sees only that box and
    // a margin, a window at a larger scale than the whole frame, and finds the same face; lane 1's
    // zone lies beside its face, whose centre is outside, so the face is dropped.
    let whole = &cpu_faces[0].faces[0];
    let scopes = [
        LaneScope {
            zone: Some(whole.bbox),
            ..Default::default()
        },
        LaneScope {
            zone: Some(BBox([0.0, 0.0, 20.0, 20.0])),
            ..Default::default()
        },
    ];
    assert_ne!(
        detection_window(scopes[0].zone.as_ref(), 320, 240),
        [0, 0, 320, 240]
    );
    let (faces, _) = cpu_r.tick(&gpu, &refs, &scopes).expect("tick");
    assert!(faces[1].faces.is_empty(), "{:?}", faces[1]);
    assert_eq!(faces[0].faces.len(), 1);
    let zoned = &faces[0].faces[0];
    // The detector sees the face at another scale, so its keypoints move by a few pixels (here
    // up to ~4 of an eye distance of ~21): within a quarter of the eye distance.
    let tol = 0.25 * whole.detection.eye_distance();
    for (p, q) in whole
        .detection
        .keypoints
        .iter()
        .zip(&zoned.detection.keypoints)
    {
        eprintln!("keypoint whole frame {p:?}, zone window {q:?}");
        assert!((p[0] - q[0]).abs() < tol && (p[1] - q[1]).abs() < tol);
    }
    let (a, b) = (whole.best.expect("match"), zoned.best.expect("match"));
    eprintln!("whole frame {a:?}, zone window {b:?}");
    assert_eq!(a.subject, b.subject);
    // The window shows the face larger: here its match is closer (0.915 against 0.862).
    assert!(b.similarity >= a.similarity - 0.02, "{a:?} vs {b:?}");

    // The GPU backend letterboxes the same windows (`resample.wgsl`) and finds the same faces.
    let gpu_r = &mut results[1].1;
    let (on_gpu, _) = gpu_r.tick(&gpu, &refs, &scopes).expect("tick");
    assert!(on_gpu[1].faces.is_empty(), "{:?}", on_gpu[1]);
    assert_eq!(on_gpu[0].faces.len(), 1);
    let g = &on_gpu[0].faces[0];
    for (p, q) in zoned.detection.keypoints.iter().zip(&g.detection.keypoints) {
        assert!(
            (p[0] - q[0]).abs() < 1.5 && (p[1] - q[1]).abs() < 1.5,
            "{p:?} vs {q:?}"
        );
    }
    let gb = g.best.expect("match");
    assert_eq!(gb.subject, b.subject);
    assert!(
        (gb.similarity - b.similarity).abs() < 2e-3,
        "{gb:?} vs {b:?}"
    );
}

#[test]
fn the_detection_window_is_the_zone_and_a_margin_inside_the_frame() {
    let z = |b: [f32; 4]| Some(BBox(b));
    assert_eq!(detection_window(None, 640, 480), [0, 0, 640, 480]);
    // An eighth of 640 = 80 pixels around the zone.
    assert_eq!(
        detection_window(z([200.0, 100.0, 400.0, 300.0]).as_ref(), 640, 480),
        [120, 20, 480, 380]
    );
    assert_eq!(
        detection_window(z([96.0, 0.0, 544.0, 480.0]).as_ref(), 640, 480),
        [16, 0, 624, 480]
    );
    // Clipped to the frame; degenerate or non-finite zones fall back to the whole frame.
    assert_eq!(
        detection_window(z([-50.0, -50.0, 900.0, 900.0]).as_ref(), 640, 480),
        [0, 0, 640, 480]
    );
    assert_eq!(
        detection_window(z([400.0, 0.0, 200.0, 480.0]).as_ref(), 640, 480),
        [0, 0, 640, 480]
    );
    assert_eq!(
        detection_window(z([f32::NAN, 0.0, 10.0, 10.0]).as_ref(), 640, 480)[2],
        90
    );
}
