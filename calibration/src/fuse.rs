//! `gate-calibrate eval --fuse N`: several photos of one person averaged into one embedding, as
//! enrolment makes a template from several photos and as the station's `mean` fusion rule averages
//! a track's best frames (`engine::face::weighted_mean`, equal weights here).
//!
//! Each identity's photos, in the set's order, are cut into disjoint groups of N (a remainder is
//! left out). The same groups are scored three ways, each over every pair of groups:
//! - **one photo**: the first photo of one group against the first of the other (today's
//!   single-photo template against a single frame);
//! - **N-photo template**: one group's mean against the other's first photo, both ways round (a
//!   template from N photos against a single frame);
//! - **N on both**: group mean against group mean (an N-photo template against a track fused over
//!   N frames).
//!
//! Averaging removes what differs from photo to photo and keeps what is alike, for a stranger's
//! likeness as much as for the person: the impostor rows say how far the station's per-frame T
//! stays safe for fused embeddings. Groups enrolment would refuse (two photos below its
//! same-person similarity, `enrolment::check::template_of`) are counted.

use std::collections::BTreeMap;

use engine::face::prepare::cosine;
use engine::face::{Embedding, weighted_mean};

use crate::scores::{Pairs, print_row, summary};

/// Enrolment's default `same_person_cosine` (enrolment/src/quality.rs): every pair of an
/// enrolment's photos must reach it.
pub const ENROL_SAME_PERSON: f32 = 0.363;

struct Group<'a> {
    id: &'a str,
    first: &'a [f32],
    mean: Embedding,
    /// Enrolment would refuse these photos together (a pair below its same-person similarity).
    refused: bool,
}

fn groups<'a>(embedded: &[(&'a str, &'a [f32])], n: usize) -> Vec<Group<'a>> {
    let mut by_id: BTreeMap<&str, Vec<&[f32]>> = BTreeMap::new();
    for &(id, e) in embedded {
        by_id.entry(id).or_default().push(e);
    }
    let mut out = Vec::new();
    for (id, photos) in by_id {
        for g in photos.chunks_exact(n.max(1)) {
            let Some(mean) = weighted_mean(g.iter().map(|e| (1.0, *e))) else {
                continue;
            };
            let refused = (0..g.len())
                .any(|i| (i + 1..g.len()).any(|j| cosine(g[i], g[j]) < ENROL_SAME_PERSON));
            out.push(Group {
                id,
                first: g[0],
                mean,
                refused,
            });
        }
    }
    out
}

/// The three rows' pairs over `groups`.
fn score(groups: &[Group<'_>]) -> [Pairs; 3] {
    let mut rows: [Pairs; 3] = Default::default();
    let mut push = |row: usize, same: bool, c: f32| {
        if same {
            rows[row].genuine.push(c)
        } else {
            rows[row].impostor.push(c)
        }
    };
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            let same = a.id == b.id;
            push(0, same, cosine(a.first, b.first));
            push(1, same, cosine(&a.mean, b.first));
            push(1, same, cosine(&b.mean, a.first));
            push(2, same, cosine(&a.mean, &b.mean));
        }
    }
    rows
}

/// Prints the rows (and the rates at the station's T, when given) and returns them as JSON.
pub fn report(
    embedded: &[(&str, &[f32])],
    n: usize,
    threshold: Option<f32>,
) -> anyhow::Result<serde_json::Value> {
    if !(2..=64).contains(&n) {
        anyhow::bail!("--fuse {n}: photos per group must be 2..=64");
    }
    let groups = groups(embedded, n);
    let ids = {
        let mut v: Vec<&str> = groups.iter().map(|g| g.id).collect();
        v.dedup();
        v.len()
    };
    let refused = groups.iter().filter(|g| g.refused).count();
    println!(
        "fused over {n} photos: {} groups of {ids} people; {refused} groups enrolment would refuse (two photos below {ENROL_SAME_PERSON})",
        groups.len()
    );
    if groups.len() < 2 {
        anyhow::bail!("--fuse {n}: fewer than two groups of {n} photos with a face");
    }
    let rows = score(&groups);
    let names = ["one photo", "N-photo template", "N on both"];
    let keys = ["one_photo", "template", "both"];
    let mut out = serde_json::json!({
        "n": n, "groups": groups.len(), "people": ids, "refused_by_enrolment": refused,
    });
    // The one-photo row's FMR at T: the false matches the station accepts per frame today.
    let fmr_at_t = threshold.map(|t| crate::scores::fmr(&rows[0].impostor, t));
    for ((row, name), key) in rows.iter().zip(names).zip(keys) {
        let s = summary(row);
        print_row(name, &s);
        out[key] = s;
        if let (Some(t), Some(fmr0)) = (threshold, fmr_at_t) {
            let fmr = crate::scores::fmr(&row.impostor, t);
            let fnmr = crate::scores::fnmr(&row.genuine, t);
            // The threshold at which this row lets through no more strangers than one photo does
            // at T, and what it costs the enrolled there.
            let same = (fmr0 > 0.0)
                .then(|| crate::scores::fnmr_at_fmr(&row.genuine, &row.impostor, fmr0))
                .flatten();
            let at_same = same.map_or_else(
                || "n/a (too few impostors over T)".to_string(),
                |(t2, f2)| format!("threshold {t2:.3}, FNMR {:.2} %", f2 * 100.0),
            );
            println!(
                "    at T = {t}: FMR {:.3} %  FNMR {:.2} %; at one photo's FMR ({:.3} %): {at_same}",
                fmr * 100.0,
                fnmr * 100.0,
                fmr0 * 100.0
            );
            out[key]["at_t"] = serde_json::json!({"t": t, "fmr": fmr, "fnmr": fnmr});
            out[key]["at_one_photo_fmr"] = serde_json::json!({
                "fmr": fmr0, "threshold": same.map(|s| s.0), "fnmr": same.map(|s| s.1),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn unit(parts: &[(usize, f32)]) -> Vec<f32> {
        let mut v = vec![0.0f32; 128];
        for &(i, c) in parts {
            v[i] += c;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn groups_are_disjoint_per_person_and_the_rows_score_the_same_pairs() {
        // Person a: 5 photos (a remainder of 1 at n = 2), person b: 4. Each photo shares 0.6 with its
        // person's axis, the rest on an axis of its own.
        let photos: Vec<(&str, Vec<f32>)> = (0..9)
            .map(|k| {
                let (id, axis) = if k < 5 { ("a", 0) } else { ("b", 1) };
                (id, unit(&[(axis, 0.6), (10 + k, 0.8)]))
            })
            .collect();
        let embedded: Vec<(&str, &[f32])> =
            photos.iter().map(|(id, e)| (*id, e.as_slice())).collect();
        let g = groups(&embedded, 2);
        assert_eq!(g.len(), 4);
        assert_eq!(g.iter().filter(|g| g.id == "a").count(), 2);
        // Two photos at 0.36 to each other: below enrolment's 0.363.
        assert!(g.iter().all(|g| g.refused));
        let [one, template, both] = score(&g);
        // 4 groups: 2 genuine pairs, 4 impostor pairs; the template row counts both ways round.
        assert_eq!((one.genuine.len(), one.impostor.len()), (2, 4));
        assert_eq!((template.genuine.len(), template.impostor.len()), (4, 8));
        assert_eq!((both.genuine.len(), both.impostor.len()), (2, 4));
        // Two photos share 0.6² = 0.36. A mean of two is (1.2·axis + 0.8·own + 0.8·own) / √2.72:
        // 0.72 / √2.72 against a single photo, 1.44 / 2.72 against another such mean.
        let close = |v: &[f32], x: f32| v.iter().all(|c| (c - x).abs() < 1e-5);
        assert!(close(&one.genuine, 0.36), "{:?}", one.genuine);
        assert!(
            close(&template.genuine, 0.72 / 2.72f32.sqrt()),
            "{:?}",
            template.genuine
        );
        assert!(close(&both.genuine, 1.44 / 2.72), "{:?}", both.genuine);
        for row in [&one, &template, &both] {
            assert!(close(&row.impostor, 0.0));
        }
    }

    #[test]
    fn bad_group_sizes_are_errors() {
        let e = unit(&[(0, 1.0)]);
        let embedded = [("a", e.as_slice()), ("a", e.as_slice())];
        assert!(report(&embedded, 1, None).is_err());
        assert!(report(&embedded, 65, None).is_err());
        // One group only: nothing to compare.
        assert!(report(&embedded, 2, None).is_err());
    }
}
