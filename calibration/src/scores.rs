//! Verification error rates from genuine (same person) and impostor (different people) similarity
//! scores. Higher score = more alike (cosine).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eer {
    /// Equal error rate: where the false-match and false-non-match rates cross.
    pub rate: f64,
    pub threshold: f32,
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
        .map(|s| f32::from_bits(s.to_bits() + 1))
        .unwrap_or(f32::NEG_INFINITY);
    Some((t, fnmr(genuine, t)))
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
}
