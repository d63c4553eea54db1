//! The CPU benchmarks' one timing rule (benches/cpu_engine.rs, benches/normalise.rs).

use std::time::Instant;

use anyhow::Result;

/// Median milliseconds of `f` over at least `iters` runs and at least two seconds, after one
/// warm-up run.
pub fn median_ms(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < iters || (start.elapsed().as_secs_f64() < 2.0 && t.len() < 10 * iters) {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}
