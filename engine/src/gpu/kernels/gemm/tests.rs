//! Both GEMM entry points, plain and split-K, against plain Rust loops on the same random inputs,
//! with the shared tolerance (`kernels::testing`) unless a test states its own.

use super::super::testing::*;
use super::*;

/// A fully connected layer: `rows` feature vectors [rows x k] times weights [out x k] transposed.
fn fully_connected(rows: u32, k: u32, out: u32, channel: Channel) -> GemmGeom {
    GemmGeom {
        batch: 1,
        m: rows,
        n: out,
        k,
        a: (0, k, 1),
        b: (0, 1, k),
        c: (0, out, 1),
        channel,
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
        let g = fully_connected(batch, k, out, Channel::Columns);
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
            let g = fully_connected(rows, k, out, channel);
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
