//! Random unit templates and probes for the GPU benchmarks (benches/matching.rs, benches/tick.rs):
//! the matcher's time depends on the row count, not on the values.

use engine::gpu::gallery::DIM;

/// Deterministic pseudo-random unit rows (xorshift; no extra dependency).
pub fn unit_rows(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        v.extend(row.iter().map(|v| v / norm));
    }
    v
}
