//! The station's embed-and-match stage in one submission (`gpu::probe::Embedder`) against the path
//! it replaced and against the CPU reference, on real photographs (lavapipe in CI).
//!
//! - Against the replaced GPU path (chips cut on the GPU, SFace read back, normalised on the CPU,
//!   uploaded again and matched with `Gallery::run_blocking`): the same best and second subject and
//!   similarities within 1e-5 (the only difference is where the probe is normalised, f32 on the
//!   GPU against f64 on the CPU).
//! - Against the CPU reference (`warp_chip`, the reference SFace, `quality::measure`): the same
//!   best subject, similarity within 2e-3 (SFace on the WGSL kernels differs from the reference by
//!   ≤ 1e-3 per normalised component, tests/gpu_models.rs), luma within 1e-3 and sharpness within
//!   1e-4 relative (the chips are bit-identical, tests in `gpu::resample`).
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::face::{Chip, FaceChain, Rgb, align, prepare, quality};
use engine::gpu::gallery::{Gallery, GalleryOptions, Match};
use engine::gpu::probe::Embedder;
use engine::gpu::resample::{self, Frame, Resampler, Source, Target, Work};
use engine::gpu::{GpuModel, Kernels, open_device};
use wgpu::util::DeviceExt;

struct Photo {
    frame: Vec<u32>,
    w: usize,
    h: usize,
    to_chip: align::Similarity,
    detection: engine::face::blazeface::Detection,
}

fn photo(chain: &FaceChain, name: &str) -> Photo {
    let img = image::open(testdata("face_recognition", name))
        .expect("decodes")
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();
    let detection = chain
        .subject_face(Rgb { rgb: &rgb, w, h })
        .expect("detects")
        .expect("a face")
        .detection;
    let to_chip = align::from_blazeface(&detection.keypoints).expect("alignable");
    Photo {
        frame: prepare::pack_rgba(&rgb),
        w,
        h,
        to_chip,
        detection,
    }
}

#[test]
fn embed_and_match_in_one_submission_equals_the_paths_it_replaces() {
    let chain = FaceChain::load(&engine::face::models_dir()).expect("models (scripts/setup)");
    let photos: Vec<Photo> = ["obama.jpg", "biden.jpg", "obama2.jpg"]
        .iter()
        .map(|n| photo(&chain, n))
        .collect();
    let (device, queue) = open_device().expect("wgpu device (lavapipe in CI)");
    let kernels = Kernels::new(&device);
    let sface = engine::load(&model_path(SFACE)).expect("SFace");

    // The CPU reference: chips, embeddings, measures.
    let chips: Vec<Chip> = photos
        .iter()
        .map(|p| {
            let px = align::warp_chip(&p.frame, p.w, p.h, &p.to_chip).expect("chip");
            Chip(zeroize::Zeroizing::new(px))
        })
        .collect();
    let reference = chain.embed(&chips).expect("reference SFace");

    // A gallery: the first two people's reference templates at subjects 10 and 20, among noise.
    let mut gallery = Gallery::new(&device, &queue, GalleryOptions::default()).expect("gallery");
    let noise = noise(40 * 128, 3);
    for (i, row) in noise.chunks(128).enumerate() {
        gallery.upsert(100 + i as u32, row).expect("noise row");
    }
    gallery.upsert(10, &reference[0][..]).expect("obama");
    gallery.upsert(20, &reference[1][..]).expect("biden");

    // The frames, one after another in one buffer, as the station gathers them.
    let mut pixels = Vec::new();
    let mut table = Vec::new();
    let mut faces = Vec::new();
    for (i, p) in photos.iter().enumerate() {
        table.push(Frame {
            offset: pixels.len() as u32,
            width: p.w as u32,
            height: p.h as u32,
        });
        pixels.extend_from_slice(&p.frame);
        faces.push(resample::Face::from_to_chip(i as u32, &p.to_chip).expect("invertible"));
    }
    let pixels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&pixels),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let src = Source {
        pixels: &pixels,
        frames: &table,
    };
    let resampler = Resampler::new(&device).expect("resampler");

    // Batch 2 with 3 faces: two submissions, the second one partly filled.
    let embedder = Embedder::new(&device, &kernels, &sface, 2).expect("embedder");
    let fused = embedder
        .run(&device, &queue, &kernels, &resampler, src, &faces, &gallery)
        .expect("embed and match");
    assert_eq!(fused.len(), 3);

    // The replaced path: the same GPU chips and SFace, read back, normalised and matched.
    let model = GpuModel::new(&device, &kernels, &sface, 3).expect("SFace");
    let cut = resampler
        .prepare(
            &device,
            src,
            Work::Chips(&faces),
            Target {
                buffer: model.input_buffer(),
                offset: 0,
            },
        )
        .expect("chips");
    let outs = model
        .run_with(&device, &queue, &kernels, &mut |pass| {
            resampler.record(pass, &cut)
        })
        .expect("SFace");
    let old = gallery.run_blocking(&outs[0]).expect("match");

    // Face i's own person: template row (of `reference`) and gallery subject.
    let person = [(0, 10), (1, 20), (0, 10)];
    for (i, ((probe, m), o)) in fused.iter().zip(&old).enumerate() {
        assert!(probe.valid, "face {i}");
        let (
            Match::Found { best, second },
            Match::Found {
                best: ob,
                second: os,
            },
        ) = (m, o)
        else {
            panic!("face {i}: {m:?} vs {o:?}");
        };
        eprintln!("face {i}: fused {best:?} / {second:?}, replaced {ob:?} / {os:?}; {probe:?}");
        assert_eq!(best.subject, ob.subject, "face {i}");
        assert!((best.similarity - ob.similarity).abs() <= 1e-5, "face {i}");
        // The unit probe read back is the one matched: unit length, and its product with the
        // matched template is the similarity the kernel reported.
        let norm: f32 = probe.unit.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() <= 1e-5, "face {i}: |probe| {norm}");
        let (t, _) = person[i];
        let own: f32 = probe
            .unit
            .iter()
            .zip(&reference[t][..])
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (own - best.similarity).abs() <= 1e-4,
            "face {i}: {own} vs {}",
            best.similarity
        );
        let (second, os) = (second.expect("runner-up"), os.expect("runner-up"));
        assert_eq!(second.subject, os.subject, "face {i}");
        assert!(
            (second.similarity - os.similarity).abs() <= 1e-5,
            "face {i}"
        );

        // And the CPU reference.
        let (t, subject) = person[i];
        let r: f32 = reference[i]
            .iter()
            .zip(&reference[t][..])
            .map(|(a, b)| a * b)
            .sum();
        assert_eq!(best.subject, subject, "face {i}");
        assert!(
            (best.similarity - r).abs() <= 2e-3,
            "face {i}: {} vs {r}",
            best.similarity
        );
        let m = quality::measure(&photos[i].detection, &chips[i]);
        assert!((probe.luma - m.luma_mean).abs() <= 1e-3, "face {i}");
        assert!(
            (probe.sharpness - m.sharpness).abs() <= 1e-4 * m.sharpness + 1e-3,
            "face {i}: {} vs {}",
            probe.sharpness,
            m.sharpness
        );
    }
}

#[test]
fn an_empty_gallery_matches_nothing_and_still_measures() {
    let chain = FaceChain::load(&engine::face::models_dir()).expect("models (scripts/setup)");
    let p = photo(&chain, "biden.jpg");
    let (device, queue) = open_device().expect("wgpu device");
    let kernels = Kernels::new(&device);
    let sface = engine::load(&model_path(SFACE)).expect("SFace");
    let gallery = Gallery::new(&device, &queue, GalleryOptions::default()).expect("gallery");
    let pixels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&p.frame),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let table = [Frame {
        offset: 0,
        width: p.w as u32,
        height: p.h as u32,
    }];
    let src = Source {
        pixels: &pixels,
        frames: &table,
    };
    let resampler = Resampler::new(&device).expect("resampler");
    let embedder = Embedder::new(&device, &kernels, &sface, 1).expect("embedder");
    let face = resample::Face::from_to_chip(0, &p.to_chip).expect("invertible");
    let out = embedder
        .run(
            &device,
            &queue,
            &kernels,
            &resampler,
            src,
            &[face],
            &gallery,
        )
        .expect("runs");
    assert_eq!(out.len(), 1);
    assert!(out[0].0.valid && out[0].0.luma > 0.0 && out[0].0.sharpness > 0.0);
    assert_eq!(out[0].1, Match::NoCandidates);
}
