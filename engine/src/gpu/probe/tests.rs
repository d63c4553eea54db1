//! `probe.wgsl` against its CPU references on the same inputs: `gallery::normalise` for the unit
//! probes and `face::quality::measure` for the chip measures.
//!
//! Tolerances: unit probes |gpu − cpu| ≤ 2e-6 per component (f32 sums against the reference's
//! f64; a unit vector's components are ≤ 1), and the same validity; luma within 1e-3 (of 0–255)
//! and sharpness within 1e-4 relative + 1e-3 (sums of 4352 f32 terms in a tree against f64 in
//! order). Whole-model checks of the `Embedder` are in `tests/gpu_models.rs`.

use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

use super::*;
use crate::face::Chip;
use crate::face::blazeface::Detection;
use crate::face::quality;
use crate::gpu::gallery::normalise;

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    k: ProbeKernels,
}

impl Gpu {
    fn new() -> Self {
        let (device, queue) = crate::gpu::open_device().expect("wgpu device (lavapipe in CI)");
        let k = ProbeKernels::new(&device).expect("pipelines");
        Self { device, queue, k }
    }

    fn upload(&self, data: &[f32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    /// Runs both kernels: the unit probes and the per-face results.
    fn run(&self, raw: &[f32], chips: &[f32], faces: usize) -> (Vec<f32>, Vec<ChipProbe>) {
        let (raw, chips) = (self.upload(raw), self.upload(chips));
        let d = self
            .k
            .prepare(&self.device, &raw, &chips, faces)
            .expect("binds");
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.k
            .record(&mut enc.begin_compute_pass(&Default::default()), &d);
        self.queue.submit([enc.finish()]);
        let (results, n) = d.results();
        let bytes = readback::read_all(
            &self.device,
            &self.queue,
            &[(d.unit(), (faces * DIM * 4) as u64), (results, n)],
        )
        .expect("readback");
        (
            bytemuck::pod_collect_to_vec(&bytes[0]),
            decode(&bytemuck::pod_collect_to_vec(&bytes[1])),
        )
    }
}

fn no_face() -> Detection {
    Detection {
        score: 1.0,
        center: [0.0; 2],
        size: [1.0; 2],
        keypoints: [[0.0; 2]; 6],
    }
}

#[test]
fn unit_probes_equal_the_reference() {
    let g = Gpu::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut raw = Vec::new();
    let random = |rng: &mut rand::rngs::StdRng, scale: f32| -> Vec<f32> {
        (0..DIM)
            .map(|_| rng.random_range(-1.0..1.0) * scale)
            .collect()
    };
    // Ordinary embeddings, magnitudes that overflow or underflow a plain f32 sum of squares,
    // one non-zero value, and the probes that must be refused: zeros, a NaN, an infinity.
    for scale in [1.0, 7.5, 1e-3, 1e30, 1e-30, 3e38] {
        raw.extend(random(&mut rng, scale));
    }
    let mut one = vec![0.0; DIM];
    one[77] = -4.0;
    raw.extend(one);
    raw.extend(vec![0.0; DIM]);
    let mut nan = random(&mut rng, 1.0);
    nan[3] = f32::NAN;
    raw.extend(nan);
    let mut inf = random(&mut rng, 1.0);
    inf[127] = f32::NEG_INFINITY;
    raw.extend(inf);
    let faces = raw.len() / DIM;
    // The quality kernel runs too; its chips here are zeros.
    let (unit, probes) = g.run(&raw, &vec![0.0; faces * CHIP_LEN], faces);
    let mut worst = 0f32;
    for (f, probe) in probes.iter().enumerate() {
        let want = normalise(&raw[f * DIM..(f + 1) * DIM]);
        assert_eq!(probe.valid, want.is_some(), "face {f}");
        let got = &unit[f * DIM..(f + 1) * DIM];
        match want {
            Some(w) => {
                for (a, b) in got.iter().zip(w) {
                    worst = worst.max((a - b).abs());
                }
            }
            None => assert!(
                got.iter().all(|&v| v == 0.0),
                "face {f}: refused, not zeroed"
            ),
        }
    }
    eprintln!("unit probes: max |gpu − cpu| {worst:.2e}");
    assert!(worst <= 2e-6, "{worst}");
}

#[test]
fn chip_measures_equal_the_reference() {
    let g = Gpu::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut chips = Vec::new();
    // Noise (very sharp), a smooth ramp (sharpness near 0), a dark and a saturated chip.
    chips.extend((0..CHIP_LEN).map(|_| rng.random_range(0.0..255.0f32)));
    chips.extend((0..CHIP_LEN).map(|i| ((i % 112) as f32 * 2.0 + (i / 112 % 112) as f32) % 256.0));
    chips.extend((0..CHIP_LEN).map(|_| rng.random_range(0.0..6.0f32)));
    chips.extend((0..CHIP_LEN).map(|i| if i % 7 == 0 { 255.0 } else { 250.0 }));
    let faces = chips.len() / CHIP_LEN;
    let raw: Vec<f32> = (0..faces * DIM).map(|i| i as f32 + 1.0).collect();
    let (_, probes) = g.run(&raw, &chips, faces);
    for (f, probe) in probes.iter().enumerate() {
        let chip = Chip(zeroize::Zeroizing::new(
            chips[f * CHIP_LEN..(f + 1) * CHIP_LEN].to_vec(),
        ));
        let want = quality::measure(&no_face(), &chip);
        eprintln!(
            "chip {f}: luma {} vs {}, sharpness {} vs {}",
            probe.luma, want.luma_mean, probe.sharpness, want.sharpness
        );
        assert!(probe.valid);
        assert!((probe.luma - want.luma_mean).abs() <= 1e-3, "chip {f}");
        let tol = 1e-4 * want.sharpness.abs() + 1e-3;
        assert!((probe.sharpness - want.sharpness).abs() <= tol, "chip {f}");
    }
}

#[test]
fn bad_bindings_are_errors() {
    let g = Gpu::new();
    let small = g.upload(&[0.0; 16]);
    let chips = g.upload(&vec![0.0; CHIP_LEN]);
    let e =
        g.k.prepare(&g.device, &small, &chips, 1)
            .err()
            .expect("short");
    assert!(e.to_string().contains("embeddings"), "{e}");
    let raw = g.upload(&[0.0; DIM]);
    let e =
        g.k.prepare(&g.device, &raw, &chips, 2)
            .err()
            .expect("short");
    assert!(e.to_string().contains("embeddings"), "{e}");
    let e = g.k.prepare(&g.device, &raw, &chips, 0).err().expect("none");
    assert!(e.to_string().contains("0 faces"), "{e}");
}
