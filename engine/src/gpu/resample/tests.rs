//! The resampling kernels against their CPU references (`face::align::warp_chip`,
//! `face::prepare::detector_input`) on random frames, and hostile descriptors.
//!
//! Tolerance: chips |gpu − cpu| ≤ 1e-3 on 0–255 values, letterbox ≤ 1e-5 on [−1, 1]. Sample
//! positions are bit-identical to the CPU's (the host precomputes every product and quotient, see
//! resample.wgsl), so only the bilinear blend could round differently (an FMA on some GPUs).
//! Measured on lavapipe: max |Δ| exactly 0 for both (docs/engine.md, "Resampling kernels").

use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

use super::*;
use crate::face::align::warp_chip;
use crate::face::prepare::{detector_input, pack_rgba};

const CHIP_TOL: f32 = 1e-3;
const LETTERBOX_TOL: f32 = 1e-5;

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    r: Resampler,
}

impl Gpu {
    fn new() -> Self {
        let (device, queue) = crate::gpu::open_device().expect("wgpu device (lavapipe in CI)");
        let r = Resampler::new(&device).expect("pipelines");
        Self { device, queue, r }
    }

    fn storage(&self, data: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let d = wgpu::util::BufferInitDescriptor {
            label: None,
            contents: data,
            usage,
        };
        self.device.create_buffer_init(&d)
    }

    /// Records `ds` into one pass and reads all of `out` back.
    fn run(&self, ds: &[&ResampleDispatch], out: &wgpu::Buffer) -> Vec<f32> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in ds {
                self.r.record(&mut pass, d);
            }
        }
        self.queue.submit([enc.finish()]);
        let bytes = crate::gpu::readback::read(&self.device, &self.queue, out, out.size())
            .expect("readback");
        bytemuck::pod_collect_to_vec(&bytes)
    }
}

fn sim(a: f32, b: f32, tx: f32, ty: f32) -> Similarity {
    Similarity { a, b, t: [tx, ty] }
}

fn frame(offset: u32, width: u32, height: u32) -> Frame {
    Frame {
        offset,
        width,
        height,
    }
}

/// Random RGB frames of the given sizes, packed one after another (after `lead` junk pixels) into
/// one pixel buffer; with their table and RGB bytes.
fn frames(sizes: &[(u32, u32)], lead: u32, seed: u64) -> (Vec<u32>, Vec<Frame>, Vec<Vec<u8>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pixels: Vec<u32> = (0..lead).map(|_| rng.random()).collect();
    let (mut table, mut rgbs) = (Vec::new(), Vec::new());
    for &(w, h) in sizes {
        let rgb: Vec<u8> = (0..w * h * 3).map(|_| rng.random()).collect();
        table.push(frame(pixels.len() as u32, w, h));
        pixels.extend(pack_rgba(&rgb));
        rgbs.push(rgb);
    }
    (pixels, table, rgbs)
}

fn max_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let d = got.iter().zip(want).map(|(g, w)| (g - w).abs());
    d.fold(0.0, f32::max)
}

/// Frame → chip transforms: random centre (also near or past the edges), rotation and scale.
fn random_faces(table: &[Frame], n: usize, seed: u64) -> Vec<(u32, Similarity)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pi = std::f32::consts::PI;
    (0..n)
        .map(|i| {
            let f = (i % table.len()) as u32;
            let (w, h) = (
                table[f as usize].width as f32,
                table[f as usize].height as f32,
            );
            let c = [
                rng.random_range(-0.2 * w..1.2 * w),
                rng.random_range(-0.2 * h..1.2 * h),
            ];
            let (angle, scale) = (rng.random_range(-pi..pi), rng.random_range(0.25f32..4.0));
            let (a, b) = (scale * angle.cos(), scale * angle.sin());
            // Chip pixel (55.5, 55.5) lands on `c`.
            let t = [55.5 - (a * c[0] - b * c[1]), 55.5 - (b * c[0] + a * c[1])];
            (f, sim(a, b, t[0], t[1]))
        })
        .collect()
}

fn cpu_chip(pixels: &[u32], f: Frame, to_chip: &Similarity) -> Vec<f32> {
    let rgba = &pixels[f.offset as usize..];
    warp_chip(rgba, f.width as usize, f.height as usize, to_chip).expect("cpu warp")
}

fn descs(faces: &[(u32, Similarity)]) -> Vec<Face> {
    let d = faces.iter().map(|(f, s)| Face::from_to_chip(*f, s));
    d.collect::<Result<_, _>>().expect("invertible")
}

#[test]
fn chips_match_warp_chip_across_frames() {
    let g = Gpu::new();
    let (pixels, table, _) = frames(&[(97, 61), (640, 360), (33, 200)], 5, 1);
    let mut faces = random_faces(&table, 12, 2);
    // Upright, scale 1, fully inside the 640×360 frame.
    faces.push((1, sim(1.0, 0.0, -264.0, -124.0)));
    let t = std::time::Instant::now();
    let work = Work::Chips(&descs(&faces));
    let (got, _) =
        g.r.run_blocking(&g.device, &g.queue, &pixels, &table, work)
            .expect("run");
    eprintln!("{} chips from 3 frames: {:?}", faces.len(), t.elapsed());
    let (mut worst, mut black) = (0f32, 0);
    for (i, (f, to_chip)) in faces.iter().enumerate() {
        let want = cpu_chip(&pixels, table[*f as usize], to_chip);
        black += want.iter().filter(|v| **v == 0.0).count();
        let d = max_diff(&got[i * CHIP_LEN..(i + 1) * CHIP_LEN], &want);
        assert!(d <= CHIP_TOL, "face {i}: max |Δ| {d}");
        worst = worst.max(d);
    }
    assert!(black > 10_000, "some faces must reach past the frame edges");
    eprintln!("chips: max |gpu − cpu| {worst:e} (0–255 scale)");
}

#[test]
fn letterbox_matches_detector_input() {
    let g = Gpu::new();
    let sizes = [(97, 61), (61, 97), (640, 360), (128, 128)];
    let (pixels, table, rgbs) = frames(&sizes, 3, 3);
    let mut worst = 0f32;
    for input in [128u32, 256] {
        // Frames in another order, one twice.
        let jobs = [2u32, 0, 1, 3, 0];
        let t = std::time::Instant::now();
        let work = Work::Letterbox {
            jobs: &jobs,
            input,
            windows: &[],
        };
        let (got, boxes) =
            g.r.run_blocking(&g.device, &g.queue, &pixels, &table, work)
                .expect("run");
        eprintln!(
            "letterbox {input}, {} frames: {:?}",
            jobs.len(),
            t.elapsed()
        );
        let per = (input * input * 3) as usize;
        assert_eq!(got.len(), jobs.len() * per);
        for (j, &f) in jobs.iter().enumerate() {
            let (w, h) = sizes[f as usize];
            let cpu = detector_input(&rgbs[f as usize], w as usize, h as usize, input as usize);
            let (want, lb) = cpu.expect("cpu");
            assert_eq!(boxes[j], lb);
            let d = max_diff(&got[j * per..(j + 1) * per], &want);
            assert!(d <= LETTERBOX_TOL, "input {input} job {j}: max |Δ| {d}");
            worst = worst.max(d);
        }
    }
    eprintln!("letterbox: max |gpu − cpu| {worst:e} ([−1, 1] scale)");
}

/// A window of a frame is letterboxed as the CPU reference letterboxes the cropped pixels; a
/// window outside its frame, or one too many, is refused before any GPU work.
#[test]
fn letterbox_windows_match_detector_input_on_the_crop() {
    let g = Gpu::new();
    let sizes = [(97, 61), (640, 360)];
    let (pixels, table, rgbs) = frames(&sizes, 3, 5);
    let jobs = [1u32, 0, 1];
    let windows = [[100, 20, 420, 350], [0, 0, 97, 61], [639, 0, 640, 360]];
    let input = 128u32;
    let work = Work::Letterbox {
        jobs: &jobs,
        input,
        windows: &windows,
    };
    let (got, boxes) =
        g.r.run_blocking(&g.device, &g.queue, &pixels, &table, work)
            .expect("run");
    let per = (input * input * 3) as usize;
    for (j, (&f, &[x0, y0, x1, y1])) in jobs.iter().zip(&windows).enumerate() {
        let (w, _) = sizes[f as usize];
        let (cw, ch) = ((x1 - x0) as usize, (y1 - y0) as usize);
        let crop: Vec<u8> = (y0 as usize..y1 as usize)
            .flat_map(|y| {
                let row = (y * w as usize + x0 as usize) * 3;
                rgbs[f as usize][row..row + cw * 3].to_vec()
            })
            .collect();
        let (want, lb) = detector_input(&crop, cw, ch, input as usize).expect("cpu");
        assert_eq!(boxes[j], lb);
        let d = max_diff(&got[j * per..(j + 1) * per], &want);
        assert!(d <= LETTERBOX_TOL, "window job {j}: max |Δ| {d}");
    }
    for (windows, why) in [
        (vec![[0, 0, 641, 360]; 3], "not inside"),
        (vec![[10, 10, 10, 20]; 3], "not inside"),
        (vec![[0, 0, 10, 10]; 2], "2 windows for 3 jobs"),
    ] {
        let work = Work::Letterbox {
            jobs: &jobs,
            input,
            windows: &windows,
        };
        let e = g.r.run_blocking(&g.device, &g.queue, &pixels, &table, work);
        let e = e.expect_err("refused").to_string();
        assert!(e.contains(why), "{e}");
    }
}

/// Both kernels recorded into the caller's own pass, writing at unaligned offsets of one larger
/// buffer whose other contents must survive; frames at unaligned offsets of their buffer.
#[test]
fn records_into_a_callers_pass_at_offsets() {
    let g = Gpu::new();
    let (pixels, table, rgbs) = frames(&[(50, 40), (41, 77)], 77, 4);
    let (chip_at, input) = (1001usize, 128u32);
    let box_at = chip_at + 2 * CHIP_LEN + 13;
    let box_end = box_at + (input * input * 3) as usize;
    let storage = wgpu::BufferUsages::STORAGE;
    let pix = g.storage(bytemuck::cast_slice(&pixels), storage);
    let sentinel = vec![7.0f32; box_end + 50];
    let out = g.storage(
        bytemuck::cast_slice(&sentinel),
        storage | wgpu::BufferUsages::COPY_SRC,
    );
    let src = Source {
        pixels: &pix,
        frames: &table,
    };
    let to_chip = random_faces(&table, 2, 5);
    let faces = descs(&to_chip);
    let at = |offset: usize| Target {
        buffer: &out,
        offset: offset as u64,
    };
    let chips =
        g.r.prepare(&g.device, src, Work::Chips(&faces), at(chip_at));
    let work = Work::Letterbox {
        jobs: &[1],
        input,
        windows: &[],
    };
    let boxes =
        g.r.prepare(&g.device, src, work, at(box_at))
            .expect("letterbox");
    let got = g.run(&[&chips.expect("chips"), &boxes], &out);
    assert_eq!(boxes.letterboxes, [Letterbox::fit(41, 77, input as usize)]);
    assert!(got[..chip_at].iter().all(|v| *v == 7.0));
    assert!(
        got[chip_at + 2 * CHIP_LEN..box_at]
            .iter()
            .all(|v| *v == 7.0)
    );
    assert!(got[box_end..].iter().all(|v| *v == 7.0));
    for (i, (f, s)) in to_chip.iter().enumerate() {
        let want = cpu_chip(&pixels, table[*f as usize], s);
        let at = chip_at + i * CHIP_LEN;
        assert!(max_diff(&got[at..at + CHIP_LEN], &want) <= CHIP_TOL);
    }
    let (want, _) = detector_input(&rgbs[1], 41, 77, input as usize).expect("cpu");
    assert!(max_diff(&got[box_at..box_end], &want) <= LETTERBOX_TOL);
}

#[test]
fn hostile_descriptors_are_refused() {
    let g = Gpu::new();
    let (pixels, table, _) = frames(&[(20, 10)], 0, 6);
    let ok = Face {
        frame: 0,
        to_frame: sim(1.0, 0.0, 0.0, 0.0),
    };
    let with = |to_frame| Face { to_frame, ..ok };
    let run = |frames: &[Frame], work: Work<'_>| {
        g.r.run_blocking(&g.device, &g.queue, &pixels, frames, work)
    };
    let chips = |frames: &[Frame], faces: &[Face]| run(frames, Work::Chips(faces));
    let lb = |frames: &[Frame], jobs: &[u32], input| {
        run(
            frames,
            Work::Letterbox {
                jobs,
                input,
                windows: &[],
            },
        )
    };
    let refused = [
        chips(&table, &[Face { frame: 1, ..ok }]),
        chips(&[frame(0, 0, 10)], &[ok]),
        chips(&[frame(0, 20, 11)], &[ok]),
        chips(&[frame(u32::MAX, 1, 1)], &[ok]),
        chips(&[frame(0, 1 << 20, 1)], &[ok]),
        chips(&table, &[with(sim(0.0, 0.0, 1.0, 1.0))]),
        chips(&table, &[with(sim(f32::NAN, 0.0, 0.0, 0.0))]),
        chips(&table, &[with(sim(1.0, 0.0, f32::INFINITY, 0.0))]),
        chips(&table, &[with(sim(1e38, 0.0, 0.0, 0.0))]),
        chips(&table, &vec![ok; MAX_FACES + 1]),
        chips(&vec![table[0]; MAX_FRAMES + 1], &[ok]),
        lb(&table, &[3], 128),
        lb(&table, &[0], 0),
        lb(&table, &[0], u32::MAX),
        lb(&[frame(0, 20, 0)], &[0], 128),
        lb(&table, &vec![0; MAX_LETTERBOX + 1], 128),
    ];
    for r in refused {
        eprintln!("refused: {}", r.expect_err("must be refused"));
    }
    let singular = Face::from_to_chip(0, &sim(0.0, 0.0, 3.0, 4.0));
    eprintln!("refused: {}", singular.expect_err("singular"));
    // Nothing to do is not an error.
    assert!(chips(&table, &[]).expect("empty").0.is_empty());
}

/// Buffers given to `prepare`: too small, an offset past the end, no STORAGE usage, the frames
/// buffer as output, frames past the pixels.
#[test]
fn bad_buffers_are_refused() {
    let g = Gpu::new();
    let dev = &g.device;
    let storage = wgpu::BufferUsages::STORAGE;
    let chip_bytes = vec![0u8; CHIP_LEN * 4];
    let pix = g.storage(&[0; 400], storage);
    let out = g.storage(&chip_bytes, storage);
    let small = g.storage(&chip_bytes[4..], storage);
    let uniform = g.storage(&chip_bytes, wgpu::BufferUsages::UNIFORM);
    let table = [frame(0, 10, 10)];
    let faces = [Face {
        frame: 0,
        to_frame: sim(1.0, 0.0, 0.0, 0.0),
    }];
    let src = Source {
        pixels: &pix,
        frames: &table,
    };
    let at = |buffer, offset| Target { buffer, offset };
    let prep = |src, out| g.r.prepare(dev, src, Work::Chips(&faces), out);
    assert!(prep(src, at(&out, 0)).is_ok());
    let big = [frame(0, 1000, 10)];
    for r in [
        prep(src, at(&out, 1)),
        prep(src, at(&out, u64::MAX / 2)),
        prep(src, at(&small, 0)),
        prep(src, at(&uniform, 0)),
        prep(src, at(&pix, 0)),
        prep(
            Source {
                pixels: &pix,
                frames: &big,
            },
            at(&out, 0),
        ),
    ] {
        eprintln!("refused: {}", r.err().expect("must be refused"));
    }
}

/// Descriptor words that skip the host's checks (bad frame index, a frame larger than its binding,
/// NaN coordinates): the shader itself must write black / −1 and read nothing out of bounds.
#[test]
fn shader_contains_unchecked_descriptors() {
    let g = Gpu::new();
    let pix = g.storage(
        bytemuck::cast_slice(&[u32::MAX; 100]),
        wgpu::BufferUsages::STORAGE,
    );
    let table = [frame(0, 10, 10); 3];
    let src = Source {
        pixels: &pix,
        frames: &table,
    };
    // Frame 0 claims 1000×1000 pixels, frame 1 10×11 (one row past the binding), frame 2 is fine.
    let words = [[0, 1000, 1000, 0], [0, 10, 11, 0], [0, 10, 10, 0]].concat();
    let chip = |frame: u32, tx: f32| {
        let ramp = (0..CHIP).map(|k| (k as f32).to_bits()).chain([0; CHIP]);
        [frame, tx.to_bits(), 0, 0].into_iter().chain(ramp)
    };
    let mut chips = words.clone();
    for (f, tx) in [(0, 0.0), (1, 0.0), (7, 0.0), (2, f32::NAN), (2, 0.0)] {
        chips.extend(chip(f, tx));
    }
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let out = g.storage(&vec![0; 5 * CHIP_LEN * 4], usage);
    let target = Target {
        buffer: &out,
        offset: 0,
    };
    let faces = [Face {
        frame: 0,
        to_frame: sim(1.0, 0.0, 0.0, 0.0),
    }; 5];
    let d = g.r.bind(&g.device, src, Work::Chips(&faces), chips, target);
    let got = g.run(&[&d.expect("bind")], &out);
    assert!(got[..4 * CHIP_LEN].iter().all(|v| *v == 0.0));
    assert_eq!(got[4 * CHIP_LEN], 255.0, "the good face must sample white");
    let input = 4u32;
    let mut boxes = words;
    for (f, x) in [(0, 1.0), (1, 1.0), (9, 1.0), (2, f32::NAN), (2, 1.0)] {
        boxes.extend([f, 0, 0, 0]);
        boxes.extend([x.to_bits(); 8]);
    }
    let jobs = [0; 5];
    let work = Work::Letterbox {
        jobs: &jobs,
        input,
        windows: &[],
    };
    let d = g.r.bind(&g.device, src, work, boxes, target).expect("bind");
    let got = g.run(&[&d], &out);
    let per = (input * input * 3) as usize;
    assert!(got[..4 * per].iter().all(|v| *v == -1.0));
    assert!(
        got[4 * per..5 * per].iter().all(|v| *v == 1.0),
        "the good job must sample white"
    );
}
