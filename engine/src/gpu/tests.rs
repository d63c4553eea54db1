//! Each kernel against a plain Rust loop on the same random inputs.
//! Tolerance: |gpu − cpu| ≤ 1e-4·max(1, |cpu|): both accumulate in f32 but in different orders (the
//! GEMM sums 16-wide tiles), so the last bits differ; anything larger is a bug, not rounding.

use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

use super::*;

// The element-wise, data-movement and pooling kernels, on the same harness.
#[path = "tests_ops.rs"]
mod ops;

fn rnd(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    k: Kernels,
}

impl Gpu {
    fn new() -> Self {
        let (device, queue) = open_device().expect("wgpu device (lavapipe in CI)");
        let k = Kernels::new(&device);
        Self { device, queue, k }
    }
    /// Both GEMM entry points are checked on every machine, whichever the device would pick.
    fn with(variant: GemmVariant) -> Self {
        let (device, queue) = open_device().expect("wgpu device (lavapipe in CI)");
        let k = Kernels::with_options(&device, crate::gpu::Precision::F32, variant)
            .expect("f32 kernels");
        Self { device, queue, k }
    }
    fn buf(&self, data: &[f32]) -> wgpu::Buffer {
        let data = if data.is_empty() { &[0.0][..] } else { data };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }
    fn out(&self, n: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (n * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }
    fn run(&self, d: &Dispatch, y: &wgpu::Buffer) -> Vec<f32> {
        self.run_all(&[d], y)
    }
    /// Records the dispatches in order into one pass, then reads `y` back.
    fn run_all(&self, ds: &[&Dispatch], y: &wgpu::Buffer) -> Vec<f32> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in ds {
                self.k.record(&mut pass, d);
            }
        }
        self.queue.submit([enc.finish()]);
        let bytes =
            crate::gpu::readback::read(&self.device, &self.queue, y, y.size()).expect("readback");
        bytemuck::pod_collect_to_vec(&bytes)
    }
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(d <= 1e-4 * w.abs().max(1.0), "{what}[{i}]: gpu {g} cpu {w}");
        worst = worst.max(d);
    }
    eprintln!("{what}: worst abs diff {worst:e}");
}

fn act(v: f32, a: Act, slope: f32) -> f32 {
    match a {
        Act::None => v,
        Act::Relu => v.max(0.0),
        Act::Prelu => {
            if v >= 0.0 {
                v
            } else {
                v * slope
            }
        }
    }
}

fn conv_ref(g: &ConvGeom, x: &[f32], w: &[f32], b: &[f32], s: &[f32], a: Act) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let (cin_g, cout_g) = (g.cin / g.groups, g.cout / g.groups);
    let mut y = vec![0f32; (g.n * g.cout * oh * ow) as usize];
    for n in 0..g.n {
        for oc in 0..g.cout {
            let grp = oc / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[oc as usize];
                    for ic in 0..cin_g {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride.0 + ky * g.dil.0) as i64 - g.pads.0 as i64;
                                let ix = (ox * g.stride.1 + kx * g.dil.1) as i64 - g.pads.1 as i64;
                                if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                    continue;
                                }
                                let xi = ((n * g.cin + grp * cin_g + ic) * g.h * g.w) as i64
                                    + iy * g.w as i64
                                    + ix;
                                let wi = ((oc * cin_g + ic) * g.kh + ky) * g.kw + kx;
                                acc += x[xi as usize] * w[wi as usize];
                            }
                        }
                    }
                    y[(((n * g.cout + oc) * oh + oy) * ow + ox) as usize] =
                        act(acc, a, s[oc as usize]);
                }
            }
        }
    }
    y
}

#[test]
fn conv_matches_reference() {
    let gpu = Gpu::new();
    let cases = [
        // SFace stem: 3x3 stride 2, pad 1, 3 -> 16 channels, PReLU, batch 2.
        (
            ConvGeom {
                n: 2,
                cin: 3,
                h: 23,
                w: 19,
                cout: 16,
                kh: 3,
                kw: 3,
                stride: (2, 2),
                pads: (1, 1, 1, 1),
                dil: (1, 1),
                groups: 1,
            },
            Act::Prelu,
        ),
        // Depthwise 3x3.
        (
            ConvGeom {
                n: 3,
                cin: 8,
                h: 14,
                w: 14,
                cout: 8,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                pads: (1, 1, 1, 1),
                dil: (1, 1),
                groups: 8,
            },
            Act::Prelu,
        ),
        // BlazeFace-like 5x5 depthwise, asymmetric padding, stride 2.
        (
            ConvGeom {
                n: 1,
                cin: 6,
                h: 16,
                w: 16,
                cout: 6,
                kh: 5,
                kw: 5,
                stride: (2, 2),
                pads: (1, 1, 2, 2),
                dil: (1, 1),
                groups: 6,
            },
            Act::Relu,
        ),
        // Grouped with dilation, no activation.
        (
            ConvGeom {
                n: 2,
                cin: 4,
                h: 9,
                w: 11,
                cout: 6,
                kh: 3,
                kw: 2,
                stride: (1, 2),
                pads: (2, 0, 2, 1),
                dil: (2, 1),
                groups: 2,
            },
            Act::None,
        ),
    ];
    for (i, (g, a)) in cases.iter().enumerate() {
        let (oh, ow) = g.out_hw();
        let x = rnd((g.n * g.cin * g.h * g.w) as usize, 10 + i as u64);
        let w = rnd(
            (g.cout * g.cin / g.groups * g.kh * g.kw) as usize,
            20 + i as u64,
        );
        let b = rnd(g.cout as usize, 30 + i as u64);
        let s = rnd(g.cout as usize, 40 + i as u64);
        let n_out = (g.n * g.cout * oh * ow) as usize;
        let y = gpu.out(n_out);
        let (bx, bw, bb, bs) = (gpu.buf(&x), gpu.buf(&w), gpu.buf(&b), gpu.buf(&s));
        let d = gpu.k.conv(
            &gpu.device,
            g,
            *a,
            &Operands {
                x: &bx,
                w: &bw,
                bias: &bb,
                slope: &bs,
                y: &y,
            },
        );
        close(
            &gpu.run(&d, &y),
            &conv_ref(g, &x, &w, &b, &s, *a),
            &format!("conv case {i}"),
        );
    }
}

#[test]
fn gemm_as_pointwise_conv_and_fully_connected() {
    for variant in [GemmVariant::Tiled, GemmVariant::Blocked] {
        let gpu = Gpu::with(variant);
        // 1x1 conv: weights [cout x cin] shared by the batch, each image [cin x hw].
        let (n, cin, cout, hw) = (3u32, 37u32, 21u32, 50u32);
        let x = rnd((n * cin * hw) as usize, 1);
        let w = rnd((cout * cin) as usize, 2);
        let b = rnd(cout as usize, 3);
        let s = rnd(cout as usize, 4);
        let g = GemmGeom {
            batch: n,
            m: cout,
            n: hw,
            k: cin,
            a: (0, cin, 1),
            b: (cin * hw, hw, 1),
            c: (cout * hw, hw, 1),
            channel: Channel::Rows,
        };
        let y = gpu.out((n * cout * hw) as usize);
        let (bx, bw, bb, bs) = (gpu.buf(&x), gpu.buf(&w), gpu.buf(&b), gpu.buf(&s));
        let d = gpu.k.gemm(
            &gpu.device,
            &g,
            Act::Prelu,
            &Operands {
                x: &bw,
                w: &bx,
                bias: &bb,
                slope: &bs,
                y: &y,
            },
        );
        let mut want = vec![0f32; (n * cout * hw) as usize];
        for i in 0..n {
            for oc in 0..cout {
                for p in 0..hw {
                    let mut acc = 0f32;
                    for ic in 0..cin {
                        acc += w[(oc * cin + ic) as usize] * x[((i * cin + ic) * hw + p) as usize];
                    }
                    want[((i * cout + oc) * hw + p) as usize] =
                        act(acc + b[oc as usize], Act::Prelu, s[oc as usize]);
                }
            }
        }
        close(&gpu.run(&d, &y), &want, "pointwise");

        // Fully connected: features [batch x k] times weights [out x k] transposed, bias per column.
        let (batch, k, out) = (5u32, 300u32, 19u32);
        let f = rnd((batch * k) as usize, 5);
        let wt = rnd((out * k) as usize, 6);
        let bias = rnd(out as usize, 7);
        let g = GemmGeom {
            batch: 1,
            m: batch,
            n: out,
            k,
            a: (0, k, 1),
            b: (0, 1, k),
            c: (0, out, 1),
            channel: Channel::Columns,
        };
        let y = gpu.out((batch * out) as usize);
        let (bf, bwt, bb) = (gpu.buf(&f), gpu.buf(&wt), gpu.buf(&bias));
        let d = gpu.k.gemm(
            &gpu.device,
            &g,
            Act::None,
            &Operands {
                x: &bf,
                w: &bwt,
                bias: &bb,
                slope: &bb,
                y: &y,
            },
        );
        let mut want = vec![0f32; (batch * out) as usize];
        for r in 0..batch {
            for o in 0..out {
                let acc: f32 = (0..k)
                    .map(|i| f[(r * k + i) as usize] * wt[(o * k + i) as usize])
                    .sum();
                want[(r * out + o) as usize] = acc + bias[o as usize];
            }
        }
        close(&gpu.run(&d, &y), &want, "fully connected");
    }
}

/// Split-K against an f64 loop (tolerance 1e-4·max(1, |y|) + 1e-7·Σ|a·b|: a 50176-term f32 dot
/// product rounds by ~1e-4 of its terms' magnitude whatever the order, the plain kernel included): SFace's fully connected shape (K = 50176, 4 rows, 128 outputs) and
/// an odd one (K not a multiple of 16, ragged last slice, PReLU per row), plus the plain GEMM on
/// the same SFace operands for the before/after timing it prints.
#[test]
fn gemm_split_k_matches_reference() {
    for variant in [GemmVariant::Tiled, GemmVariant::Blocked] {
        let gpu = Gpu::with(variant);
        for (case, (rows, k, out, a)) in [
            (4u32, 50176u32, 128u32, Act::None),
            (3, 5000, 7, Act::Prelu),
        ]
        .into_iter()
        .enumerate()
        {
            let f = rnd((rows * k) as usize, 110 + case as u64);
            let wt = rnd((out * k) as usize, 120 + case as u64);
            let bias = rnd(rows.max(out) as usize, 130 + case as u64);
            let slope = rnd(rows.max(out) as usize, 140 + case as u64);
            // Case 0: features × weightsᵀ, bias per column. Case 1: bias/slope per row.
            let channel = if case == 0 {
                Channel::Columns
            } else {
                Channel::Rows
            };
            let g = GemmGeom {
                batch: 1,
                m: rows,
                n: out,
                k,
                a: (0, k, 1),
                b: (0, 1, k),
                c: (0, out, 1),
                channel,
            };
            let splits = Kernels::split_k_for(&g);
            assert!(splits > 1, "case {case}: expected a split, got {splits}");
            let mut want = vec![0f32; (rows * out) as usize];
            // Σ|a·b| per output: the scale of f32 rounding in a long dot product.
            let mut mag = vec![0f32; (rows * out) as usize];
            for r in 0..rows {
                for o in 0..out {
                    let acc: f64 = (0..k)
                        .map(|i| {
                            f64::from(f[(r * k + i) as usize]) * f64::from(wt[(o * k + i) as usize])
                        })
                        .sum();
                    mag[(r * out + o) as usize] = (0..k)
                        .map(|i| (f[(r * k + i) as usize] * wt[(o * k + i) as usize]).abs())
                        .sum();
                    let ch = if case == 0 { o } else { r } as usize;
                    want[(r * out + o) as usize] = act(acc as f32 + bias[ch], a, slope[ch]);
                }
            }
            let y = gpu.out(want.len());
            let partial = gpu.out((splits * rows * out) as usize);
            let (bf, bwt, bb, bs) = (gpu.buf(&f), gpu.buf(&wt), gpu.buf(&bias), gpu.buf(&slope));
            let ops = Operands {
                x: &bf,
                w: &bwt,
                bias: &bb,
                slope: &bs,
                y: &y,
            };
            let [first, reduce] = gpu
                .k
                .gemm_split_k(&gpu.device, &g, a, splits, &ops, &partial);
            let plain = gpu.k.gemm(&gpu.device, &g, a, &ops);
            // Best of three alternating runs each: lavapipe timings are noisy on a shared machine.
            let (mut t_plain, mut t_split) = (std::time::Duration::MAX, std::time::Duration::MAX);
            let (mut got_plain, mut got) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                let t0 = std::time::Instant::now();
                got_plain = gpu.run(&plain, &y);
                t_plain = t_plain.min(t0.elapsed());
                let t0 = std::time::Instant::now();
                got = gpu.run_all(&[&first, &reduce], &y);
                t_split = t_split.min(t0.elapsed());
            }
            eprintln!(
                "gemm {rows}x{out}, k {k}: plain {t_plain:?}, split-K ({splits} slices) {t_split:?}"
            );
            for (what, got) in [("plain", &got_plain), ("split-K", &got)] {
                let mut worst = 0f32;
                for (i, ((g, w), m)) in got.iter().zip(&want).zip(&mag).enumerate() {
                    let d = (g - w).abs();
                    assert!(
                        d <= 1e-4 * w.abs().max(1.0) + 1e-7 * m,
                        "{what} case {case}[{i}]: gpu {g} f64 {w}"
                    );
                    worst = worst.max(d);
                }
                eprintln!("{what} gemm case {case}: worst abs diff {worst:e} vs f64");
            }
        }
    }
}
