//! Verification error rates from genuine (same person) and impostor (different people) similarity
//! scores. Higher score = more alike (cosine).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eer {
    /// Equal error rate: where the false-match and false-non-match rates cross.
    pub rate: f64,
    pub threshold: f32,
}

/// The highest threshold at which at most the share `bpcer` of the bona fide scores fall below it.
pub fn threshold_for_bpcer(bona_fide: &[f32], bpcer: f64) -> Option<f32> {
    if bona_fide.is_empty() {
        return None;
    }
    let mut s = bona_fide.to_vec();
    s.sort_by(f32::total_cmp);
    // Refusing fewer than `allowed` scores: the threshold is the lowest score kept.
    let allowed = (bpcer * s.len() as f64).floor() as usize;
    s.get(allowed).copied()
}

/// False-match rate at threshold `t`: impostor scores ≥ t.
pub fn fmr(impostor: &[f32], t: f32) -> f64 {
    impostor.iter().filter(|&&s| s >= t).count() as f64 / impostor.len().max(1) as f64
}

/// False-non-match rate at threshold `t`: genuine scores < t.
pub fn fnmr(genuine: &[f32], t: f32) -> f64 {
    genuine.iter().filter(|&&s| s < t).count() as f64 / genuine.len().max(1) as f64
}

/// Sweeps every observed score as a threshold and returns the crossing (the mean of FMR and FNMR at
/// the threshold where they are closest). `None` without both kinds of score.
pub fn eer(genuine: &[f32], impostor: &[f32]) -> Option<Eer> {
    if genuine.is_empty() || impostor.is_empty() {
        return None;
    }
    let mut g = genuine.to_vec();
    let mut i = impostor.to_vec();
    g.sort_by(f32::total_cmp);
    i.sort_by(f32::total_cmp);
    let mut ts: Vec<f32> = g.iter().chain(&i).copied().collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    ts.push(f32::INFINITY);
    let mut best: Option<(f64, Eer)> = None;
    for t in ts {
        // Counts by binary search on the sorted scores.
        let fm = (i.len() - i.partition_point(|&s| s < t)) as f64 / i.len() as f64;
        let fnm = g.partition_point(|&s| s < t) as f64 / g.len() as f64;
        let gap = (fm - fnm).abs();
        if best.as_ref().is_none_or(|(b, _)| gap < *b) {
            best = Some((
                gap,
                Eer {
                    rate: (fm + fnm) / 2.0,
                    threshold: t,
                },
            ));
        }
    }
    best.map(|(_, e)| e)
}

/// The lowest threshold whose false-match rate is at most `target`, and the FNMR there.
/// `None` when there are too few impostor scores to measure `target` (fewer than 1/target).
pub fn fnmr_at_fmr(genuine: &[f32], impostor: &[f32], target: f64) -> Option<(f32, f64)> {
    if impostor.is_empty() || (impostor.len() as f64) < 1.0 / target {
        return None;
    }
    let mut i = impostor.to_vec();
    i.sort_by(|a, b| b.total_cmp(a));
    // Allow floor(target·n) impostors at or above the threshold: the threshold sits just above the
    // next one.
    let allowed = (target * i.len() as f64).floor() as usize;
    let t = i
        .get(allowed)
        .map(|s| s.next_up())
        .unwrap_or(f32::NEG_INFINITY);
    Some((t, fnmr(genuine, t)))
}

/// Refuses NaN scores (a broken embedding would otherwise sort silently to one end); `what` names
/// them in the error.
pub fn reject_nan(scores: &[f32], what: &str) -> anyhow::Result<()> {
    if let Some(k) = scores.iter().position(|s| s.is_nan()) {
        anyhow::bail!(
            "{what}: score {k} of {} is NaN (an embedding with NaN?)",
            scores.len()
        );
    }
    Ok(())
}

/// One threshold's error rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    pub threshold: f32,
    pub fmr: f64,
    pub fnmr: f64,
}

/// Every distinct operating point, threshold ascending (FMR falls, FNMR rises): each observed score
/// as a threshold, then +∞ (nothing accepted). The DET curve is (FMR, FNMR), the ROC (FMR, 1 − FNMR).
pub fn curve(genuine: &[f32], impostor: &[f32]) -> anyhow::Result<Vec<OperatingPoint>> {
    reject_nan(genuine, "genuine scores")?;
    reject_nan(impostor, "impostor scores")?;
    if genuine.is_empty() || impostor.is_empty() {
        anyhow::bail!(
            "a curve needs genuine and impostor scores (have {} genuine, {} impostor)",
            genuine.len(),
            impostor.len()
        );
    }
    let mut g = genuine.to_vec();
    let mut i = impostor.to_vec();
    g.sort_by(f32::total_cmp);
    i.sort_by(f32::total_cmp);
    let mut ts: Vec<f32> = g.iter().chain(&i).copied().collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    ts.push(f32::INFINITY);
    Ok(ts
        .into_iter()
        .map(|t| OperatingPoint {
            threshold: t,
            fmr: (i.len() - i.partition_point(|&s| s < t)) as f64 / i.len() as f64,
            fnmr: g.partition_point(|&s| s < t) as f64 / g.len() as f64,
        })
        .collect())
}

/// One scored pair of a pairs file: `fold` from its position in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub score: f32,
    pub same: bool,
    pub fold: usize,
}

/// Fold of the pair at `index` of `total` when the file is cut into `k` equal runs, as LFW's
/// pairs.txt is (its sets follow each other).
pub fn fold_of(index: usize, total: usize, k: usize) -> usize {
    (index * k / total.max(1)).min(k.saturating_sub(1))
}

#[derive(Debug, Clone, PartialEq)]
pub struct FoldAccuracy {
    /// Held-out accuracy of each fold, and the threshold chosen on the others.
    pub folds: Vec<(f64, f32)>,
    pub mean: f64,
    /// Sample standard deviation (n − 1) over the folds.
    pub std: f64,
}

/// The threshold (accept when score ≥ it) with the best accuracy on `pairs`; on a plateau of equal
/// accuracy its middle, so a separable training set does not put the threshold against one class.
fn best_threshold(pairs: &[&ScoredPair]) -> f32 {
    let mut s: Vec<(f32, bool)> = pairs.iter().map(|p| (p.score, p.same)).collect();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold below everything: every same pair is right. Moving it past a score flips that pair.
    let mut correct: i64 = s.iter().filter(|p| p.1).count() as i64;
    let mut cands: Vec<(f32, i64)> = vec![(s.first().map_or(0.0, |p| p.0) - 1e-3, correct)];
    let mut k = 0;
    while k < s.len() {
        let v = s[k].0;
        while k < s.len() && s[k].0 == v {
            correct += if s[k].1 { -1 } else { 1 };
            k += 1;
        }
        let next = s.get(k).map_or(v + 1e-3, |p| (v + p.0) / 2.0);
        cands.push((next, correct));
    }
    let best = cands.iter().map(|c| c.1).max().unwrap_or(0);
    let first = cands.iter().position(|c| c.1 == best).unwrap_or(0);
    let last = first + cands[first..].iter().take_while(|c| c.1 == best).count() - 1;
    (cands[first].0 + cands[last].0) / 2.0
}

/// LFW's protocol: for each of `k` folds, the threshold that maximises accuracy on the other folds,
/// applied to it; mean and standard deviation of the held-out accuracies.
pub fn k_fold_accuracy(pairs: &[ScoredPair], k: usize) -> anyhow::Result<FoldAccuracy> {
    reject_nan(
        &pairs.iter().map(|p| p.score).collect::<Vec<_>>(),
        "pair scores",
    )?;
    if k < 2 {
        anyhow::bail!("k-fold accuracy needs at least 2 folds, not {k}");
    }
    let mut folds = Vec::with_capacity(k);
    for f in 0..k {
        let (test, train): (Vec<&ScoredPair>, Vec<&ScoredPair>) =
            pairs.iter().partition(|p| p.fold == f);
        if test.is_empty() || train.is_empty() {
            anyhow::bail!(
                "{k}-fold accuracy: fold {} has {} scored pairs and the others {} (need some in each; {} pairs in all)",
                f + 1,
                test.len(),
                train.len(),
                pairs.len()
            );
        }
        let t = best_threshold(&train);
        let right = test.iter().filter(|p| (p.score >= t) == p.same).count();
        folds.push((right as f64 / test.len() as f64, t));
    }
    let mean = folds.iter().map(|f| f.0).sum::<f64>() / k as f64;
    let var = folds.iter().map(|f| (f.0 - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    Ok(FoldAccuracy {
        folds,
        mean,
        std: var.sqrt(),
    })
}

/// The standard normal quantile Φ⁻¹(p) (Acklam's rational approximation, relative error < 1.2e-9,
/// good far into the tails where the extrapolated thresholds live).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if p.is_nan() || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Models of the impostor distribution's upper tail, for false-match rates below what the scores
/// can measure (fewer than 1/FMR impostor scores).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tail {
    pub n: usize,
    /// Exponential tail (peaks over threshold, shape 0): P(S ≥ t) = `exceed` · exp(−(t − `u`)/`beta`)
    /// for t ≥ u, fitted on the top `top` scores. Heavier than a Gaussian tail, so the cautious one.
    pub u: f64,
    pub exceed: f64,
    pub beta: f64,
    pub top: usize,
    /// Gaussian over all scores.
    pub mean: f64,
    pub sd: f64,
}

impl Tail {
    /// Fits both models; the exponential on the top max(50, 1 %) scores.
    pub fn fit(impostor: &[f32]) -> anyhow::Result<Tail> {
        reject_nan(impostor, "impostor scores")?;
        let n = impostor.len();
        if n < 100 {
            anyhow::bail!("a tail fit needs at least 100 impostor scores, have {n}");
        }
        let mut s: Vec<f64> = impostor.iter().map(|&x| x as f64).collect();
        s.sort_by(|a, b| b.total_cmp(a));
        let top = (n / 100).max(50).min(n - 1);
        let u = s[top];
        let beta = s[..top].iter().map(|x| x - u).sum::<f64>() / top as f64;
        let mean = s.iter().sum::<f64>() / n as f64;
        let sd = (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        if !(beta > 0.0 && sd > 0.0) {
            anyhow::bail!("impostor scores have no spread in their upper tail: cannot extrapolate");
        }
        Ok(Tail {
            n,
            u,
            exceed: top as f64 / n as f64,
            beta,
            top,
            mean,
            sd,
        })
    }

    /// Threshold whose modelled FMR is `fmr`, by the exponential tail (`fmr` below `exceed`).
    pub fn exp_threshold(&self, fmr: f64) -> f64 {
        self.u + self.beta * (self.exceed / fmr).ln()
    }

    /// Threshold whose modelled FMR is `fmr`, by the Gaussian.
    pub fn gauss_threshold(&self, fmr: f64) -> f64 {
        self.mean - self.sd * probit(fmr)
    }

    /// Modelled FMR at `t` by the exponential tail (only meaningful for t ≥ u).
    pub fn exp_fmr(&self, t: f64) -> f64 {
        (self.exceed * (-(t - self.u) / self.beta).exp()).min(1.0)
    }
}

#[derive(Default)]
pub(crate) struct Pairs {
    pub(crate) genuine: Vec<f32>,
    pub(crate) impostor: Vec<f32>,
    pub(crate) skipped: usize,
    /// A pairs file's scored pairs with their LFW fold (from the position in the file).
    pub(crate) ordered: Vec<ScoredPair>,
}

pub(crate) fn summary(p: &Pairs) -> serde_json::Value {
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    let e = eer(&p.genuine, &p.impostor);
    let at = |t: f64| fnmr_at_fmr(&p.genuine, &p.impostor, t).map(|x| x.1);
    serde_json::json!({
        "genuine": p.genuine.len(), "impostor": p.impostor.len(),
        "genuine_mean": mean(&p.genuine), "impostor_mean": mean(&p.impostor),
        "genuine_p5": quantile(&p.genuine, 0.05), "impostor_p95": quantile(&p.impostor, 0.95),
        "eer": e.map(|e| e.rate), "eer_threshold": e.map(|e| e.threshold),
        "fnmr_at_fmr_1e-2": at(1e-2), "fnmr_at_fmr_1e-3": at(1e-3), "fnmr_at_fmr_1e-4": at(1e-4),
        "fnmr_at_fmr_1e-5": at(1e-5),
        "fmr_at_0.363": fmr(&p.impostor, 0.363), "fnmr_at_0.363": fnmr(&p.genuine, 0.363),
    })
}

pub(crate) fn quantile(v: &[f32], q: f64) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s.get(((s.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f32::NAN)
}

fn pct(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".into(), |x| format!("{:.2} %", x * 100.0))
}

pub(crate) fn print_row(name: &str, s: &serde_json::Value) {
    println!(
        "  {name:<24} {:>6} / {:<8} gen {:.3} (p5 {:.3})  imp {:.3} (p95 {:.3})  EER {:>8}  FNMR@1e-3 {:>8}  FNMR@1e-4 {:>8}  FNMR@1e-5 {:>8}",
        s["genuine"],
        s["impostor"],
        s["genuine_mean"].as_f64().unwrap_or(f64::NAN),
        s["genuine_p5"].as_f64().unwrap_or(f64::NAN),
        s["impostor_mean"].as_f64().unwrap_or(f64::NAN),
        s["impostor_p95"].as_f64().unwrap_or(f64::NAN),
        pct(&s["eer"]),
        pct(&s["fnmr_at_fmr_1e-3"]),
        pct(&s["fnmr_at_fmr_1e-4"]),
        pct(&s["fnmr_at_fmr_1e-5"]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_have_zero_eer() {
        let e = eer(&[0.8, 0.9, 0.7], &[0.1, 0.2, 0.3]).expect("eer");
        assert_eq!(e.rate, 0.0);
        assert!(e.threshold > 0.3 && e.threshold <= 0.7);
    }

    #[test]
    fn known_overlap_gives_known_eer() {
        // Genuine uniform on 0.40..1.40, impostor uniform on 0..1.00 (steps of 0.001): the rates cross
        // at t = 0.70 where each is 30 %.
        let g: Vec<f32> = (0..1000).map(|k| 0.4 + k as f32 / 1000.0).collect();
        let i: Vec<f32> = (0..1000).map(|k| k as f32 / 1000.0).collect();
        let e = eer(&g, &i).expect("eer");
        assert!((e.rate - 0.30).abs() < 0.002, "{e:?}");
        assert!((e.threshold - 0.70).abs() < 0.002, "{e:?}");
        let (t, fnm) = fnmr_at_fmr(&g, &i, 0.01).expect("enough impostors");
        assert!(
            (fmr(&i, t) - 0.01).abs() < 0.0015,
            "fmr at t={t}: {}",
            fmr(&i, t)
        );
        assert!((fnm - 0.59).abs() < 0.002, "{fnm}");
        assert!(
            fnmr_at_fmr(&g, &i, 1e-4).is_none(),
            "1000 impostors cannot measure 1e-4"
        );
        assert!(eer(&[], &i).is_none());
    }

    /// `n` stratified samples of U(a, b): the k-th at the middle of its 1/n slice.
    fn uniform(a: f32, b: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|k| a + (b - a) * ((k as f32 + 0.5) / n as f32))
            .collect()
    }

    /// `n` stratified samples of N(mean, sd) through the normal quantile.
    fn normal(mean: f64, sd: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|k| (mean + sd * probit((k as f64 + 0.5) / n as f64)) as f32)
            .collect()
    }

    #[test]
    fn uniform_overlap_matches_the_analytic_rates() {
        // Genuine U(0.4, 1.0), impostor U(0.0, 0.6): FMR(t) = (0.6 − t)/0.6, FNMR(t) = (t − 0.4)/0.6,
        // equal at t = 0.5 where both are 1/6; FMR = f at t = 0.6 − 0.6 f, FNMR there (0.2 − 0.6 f)/0.6.
        let g = uniform(0.4, 1.0, 200_000);
        let i = uniform(0.0, 0.6, 200_000);
        let e = eer(&g, &i).expect("eer");
        assert!((e.rate - 1.0 / 6.0).abs() < 1e-4, "{e:?}");
        assert!((e.threshold - 0.5).abs() < 1e-4, "{e:?}");
        for f in [1e-3, 1e-4, 1e-5] {
            let (t, fnm) = fnmr_at_fmr(&g, &i, f).expect("200 000 impostors");
            let want_t = 0.6 - 0.6 * f;
            let want = (0.2 - 0.6 * f) / 0.6;
            assert!((t as f64 - want_t).abs() < 1e-5, "t {t} vs {want_t} at {f}");
            assert!((fnm - want).abs() < 1e-4, "fnmr {fnm} vs {want} at {f}");
        }
        let c = curve(&g, &i).expect("curve");
        assert_eq!(c.first().map(|p| (p.fmr, p.fnmr)), Some((1.0, 0.0)));
        assert_eq!(c.last().map(|p| (p.fmr, p.fnmr)), Some((0.0, 1.0)));
        assert!(
            c.windows(2)
                .all(|w| w[1].fmr <= w[0].fmr && w[1].fnmr >= w[0].fnmr)
        );
        let mid = c.iter().find(|p| p.threshold >= 0.5).expect("t 0.5");
        assert!((mid.fmr - 1.0 / 6.0).abs() < 1e-4 && (mid.fnmr - 1.0 / 6.0).abs() < 1e-4);
    }

    #[test]
    fn gaussian_overlap_matches_the_analytic_rates() {
        // Genuine N(0.7, 0.1), impostor N(0.1, 0.1): EER at t = 0.4, Φ(−3) = 0.001350; FNMR at FMR f is
        // Φ((0.1 + 0.1 Φ⁻¹(1 − f) − 0.7)/0.1): 0.001808, 0.011275, 0.041361 for 1e-3, 1e-4, 1e-5.
        // A million samples: at FMR 1e-5 the threshold is the 11th highest of them, within 0.001 of
        // the analytic quantile (with 200 000 it would be the 3rd, 0.005 off).
        let g = normal(0.7, 0.1, 1_000_000);
        let i = normal(0.1, 0.1, 1_000_000);
        let e = eer(&g, &i).expect("eer");
        assert!((e.rate - 0.001_349_9).abs() < 2e-5, "{e:?}");
        assert!((e.threshold - 0.4).abs() < 1e-3, "{e:?}");
        for (f, want) in [
            (1e-3, 0.001_808_5),
            (1e-4, 0.011_274_7),
            (1e-5, 0.041_360_7),
        ] {
            let (t, fnm) = fnmr_at_fmr(&g, &i, f).expect("a million impostors");
            let want_t = 0.1 - 0.1 * probit(f);
            assert!((t as f64 - want_t).abs() < 2e-3, "t {t} vs {want_t} at {f}");
            assert!(
                (fnm - want).abs() < want * 0.05,
                "fnmr {fnm} vs {want} at {f}"
            );
        }
        // The Gaussian fit recovers the known tail; the exponential one is the more cautious.
        let tail = Tail::fit(&i).expect("fit");
        let want = 0.1 + 0.1 * 5.199_337_6;
        assert!((tail.gauss_threshold(1e-7) - want).abs() < 2e-3, "{tail:?}");
        assert!(tail.exp_threshold(1e-7) >= tail.gauss_threshold(1e-7));
        assert!((tail.exp_fmr(tail.exp_threshold(1e-7)) - 1e-7).abs() < 1e-12);
    }

    #[test]
    fn probit_matches_tables() {
        assert!(probit(0.5).abs() < 1e-9);
        assert!((probit(0.975) - 1.959_963_985).abs() < 1e-7);
        assert!((probit(1e-7) + 5.199_337_582).abs() < 1e-6);
        assert!((probit(1.0 - 1e-3) - 3.090_232_306).abs() < 1e-6);
        assert_eq!(probit(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn ten_fold_on_separable_pairs_is_perfect() {
        let n = 600;
        let pairs: Vec<ScoredPair> = (0..n)
            .map(|k| {
                let same = k % 2 == 0;
                let jitter = (k % 37) as f32 / 100.0;
                ScoredPair {
                    score: if same { 0.6 + jitter } else { 0.2 - jitter },
                    same,
                    fold: fold_of(k, n, 10),
                }
            })
            .collect();
        let a = k_fold_accuracy(&pairs, 10).expect("folds");
        assert_eq!(a.folds.len(), 10);
        assert_eq!(a.mean, 1.0);
        assert_eq!(a.std, 0.0);
        // The plateau's middle: between the highest different (0.2) and lowest same (0.6) pair.
        assert!(a.folds.iter().all(|f| (f.1 - 0.4).abs() < 1e-6), "{a:?}");
    }

    #[test]
    fn ten_fold_counts_a_known_error_rate() {
        // Fold by fold one of the 60 pairs per fold is a "different" pair scored as a genuine one.
        let n = 600;
        let pairs: Vec<ScoredPair> = (0..n)
            .map(|k| {
                let same = k % 2 == 0;
                let liar = k % 60 == 1;
                ScoredPair {
                    score: if same || liar { 0.8 } else { 0.1 },
                    same,
                    fold: fold_of(k, n, 10),
                }
            })
            .collect();
        let a = k_fold_accuracy(&pairs, 10).expect("folds");
        assert!((a.mean - 59.0 / 60.0).abs() < 1e-12, "{a:?}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(fold_of(0, 0, 10), 0);
        assert_eq!(fold_of(599, 600, 10), 9);
        assert!(curve(&[], &[0.1]).is_err());
        assert!(curve(&[f32::NAN], &[0.1]).is_err());
        let few: Vec<ScoredPair> = (0..5)
            .map(|k| ScoredPair {
                score: 0.5,
                same: true,
                fold: fold_of(k, 5, 10),
            })
            .collect();
        assert!(k_fold_accuracy(&few, 10).is_err());
        assert!(k_fold_accuracy(&[], 10).is_err());
        assert!(Tail::fit(&[0.1; 10]).is_err());
        assert!(Tail::fit(&[0.1; 1000]).is_err());
    }
}
