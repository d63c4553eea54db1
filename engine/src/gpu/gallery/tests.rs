//! The matching kernel against CPU brute force (f64 dot products of the same normalised f32
//! templates, or of their f16 roundings for f16 storage), with and without a candidate mask, after
//! upserts, removals and growth across pages, and on hostile input.
//!
//! f32: best and second-best rows exactly, similarities within 1e-5. Exactly, unless the CPU's own
//! ranking has two rows within 1e-6 of each other (then the GPU may pick either; the tests' seeds
//! produce none, and each test reports how many it saw).
//! f16 storage: similarities within F16_TOL of the f32 CPU result (each stored component is rounded
//! to nearest f16, relative error ≤ 2⁻¹¹, so |Δ| ≤ 2⁻¹¹·Σ|pᵢgᵢ| ≤ 2⁻¹¹ ≈ 4.9e-4 for unit vectors;
//! F16_TOL = 5e-4) and the same best subject whenever the CPU's top-2 gap exceeds 2·F16_TOL; against
//! the CPU on the f16-rounded templates, the f32 rules above.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const TOL: f32 = 1e-5;
const TIE: f64 = 1e-6;
const F16_TOL: f32 = 5e-4;

fn device() -> (wgpu::Device, wgpu::Queue) {
    crate::gpu::open_device().expect("wgpu device (lavapipe in CI)")
}

fn unit_rows(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        v.extend_from_slice(&normalise(&row).expect("non-zero"));
    }
    v
}

/// What the gallery stores for these rows: each normalised again (not always bit-identical).
fn stored(rows: &[f32]) -> Vec<f32> {
    (rows.chunks_exact(DIM))
        .flat_map(|t| normalise(t).expect("unit"))
        .collect()
}

fn options(precision: Precision) -> GalleryOptions {
    GalleryOptions {
        precision,
        ..Default::default()
    }
}

/// CPU brute force: per probe, the candidate rows ranked (similarity descending, row ascending),
/// top 3 (the third to detect near ties with the second).
fn brute(
    templates: &[f32],
    rows: &[u32],
    probes: &[f32],
    allowed: &dyn Fn(u32) -> bool,
) -> Vec<Vec<(u32, f64)>> {
    probes
        .chunks_exact(DIM)
        .map(|p| {
            let p = normalise(p).expect("valid probe");
            let mut ranked: Vec<(u32, f64)> = (templates.chunks_exact(DIM).enumerate())
                .filter(|(r, _)| allowed(rows[*r]))
                .map(|(r, t)| {
                    let s = t.iter().zip(&p).map(|(&a, &b)| a as f64 * b as f64).sum();
                    (r as u32, s)
                })
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(3);
            ranked
        })
        .collect()
}

/// Checks GPU results against the CPU ranking; returns how many near ties were tolerated.
fn check(what: &str, got: &[Match], want: &[Vec<(u32, f64)>], rows: &[u32], tol: f32) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: result count");
    let mut ties = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ctx = format!("{what}: probe {i}: got {g:?}, want {w:?}");
        if w.is_empty() {
            assert_eq!(*g, Match::NoCandidates, "{ctx}");
            continue;
        }
        let ranked = [g.best(), g.second()];
        for (rank, c) in ranked.iter().enumerate() {
            let Some(&(row, s)) = w.get(rank) else {
                assert!(c.is_none(), "{ctx}: rank {rank} should be empty");
                continue;
            };
            let c = c.unwrap_or_else(|| panic!("{ctx}: rank {rank} missing"));
            assert!(
                (c.similarity as f64 - s).abs() <= tol as f64,
                "{ctx}: rank {rank} similarity"
            );
            assert_eq!(c.subject, rows[c.row as usize], "{ctx}: subject of row");
            if c.row != row {
                // Only where the CPU itself cannot tell the rows apart.
                let near = w.iter().any(|&(r, s2)| r == c.row && (s2 - s).abs() < TIE);
                assert!(near, "{ctx}: rank {rank} row");
                ties += 1;
            }
        }
    }
    ties
}

struct Fixture {
    g: Gallery,
    templates: Vec<f32>,
    subjects: Vec<u32>,
}

fn fixture(
    device: &(wgpu::Device, wgpu::Queue),
    opts: GalleryOptions,
    n: usize,
    seed: u64,
) -> Fixture {
    let mut rng = StdRng::seed_from_u64(seed);
    let raw = unit_rows(&mut rng, n);
    // Sparse, unordered subject indices.
    let subjects: Vec<u32> = (0..n as u32)
        .map(|i| (i * 7919 + 13) % (MAX_SUBJECT / 4))
        .collect();
    let mut g = Gallery::new(&device.0, &device.1, opts).expect("gallery");
    g.upsert_many(&subjects, &raw).expect("upsert");
    assert_eq!(g.len(), n);
    let templates = stored(&raw);
    Fixture {
        g,
        templates,
        subjects,
    }
}

#[test]
fn gallery_matches_cpu_f32() {
    let dev = device();
    let mut ties = 0;
    for (n, seed) in [(1usize, 1u64), (2, 2), (3, 3), (1000, 4)] {
        let f = fixture(&dev, options(Precision::F32), n, seed);
        let mut rng = StdRng::seed_from_u64(seed + 100);
        for p in [1usize, 8, 64] {
            let probes = unit_rows(&mut rng, p);
            let got = f.g.run_blocking(&probes).expect("match");
            let want = brute(&f.templates, &f.subjects, &probes, &|_| true);
            ties += check(&format!("N={n} P={p}"), &got, &want, &f.subjects, TOL);
        }
    }
    eprintln!("near ties tolerated: {ties}");
}

#[test]
fn gallery_matches_cpu_100k() {
    let dev = device();
    let n = 100_000;
    let t = std::time::Instant::now();
    let f = fixture(&dev, options(Precision::F32), n, 5);
    let loaded = t.elapsed();
    assert!(f.g.pages() >= 1);
    let mut rng = StdRng::seed_from_u64(105);
    let probes = unit_rows(&mut rng, 2);
    let t = std::time::Instant::now();
    let got = f.g.run_blocking(&probes).expect("match");
    let gpu = t.elapsed();
    let want = brute(&f.templates, &f.subjects, &probes, &|_| true);
    let ties = check("N=100000 P=2", &got, &want, &f.subjects, TOL);
    eprintln!("100k: load {loaded:?}, match {gpu:?}, near ties {ties}");
}

#[test]
fn gallery_pages_and_f16() {
    let dev = device();
    let opts = GalleryOptions {
        precision: Precision::F16,
        page_rows: Some(256),
        ..Default::default()
    };
    let mut worst = 0f32;
    for (n, seed) in [(1usize, 11u64), (3, 12), (1000, 13)] {
        let f = fixture(&dev, opts, n, seed);
        assert_eq!(f.g.pages(), n.div_ceil(256));
        let rounded: Vec<f32> = (f.templates.iter())
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        assert_eq!(
            f.g.read_templates().expect("read"),
            rounded,
            "N={n}: stored f16 rows"
        );
        let mut rng = StdRng::seed_from_u64(seed + 100);
        for p in [1usize, 8, 64] {
            let probes = unit_rows(&mut rng, p);
            let got = f.g.run_blocking(&probes).expect("match");
            let what = format!("f16 N={n} P={p}");
            // The kernel itself: exact against the f16-rounded templates.
            let want16 = brute(&rounded, &f.subjects, &probes, &|_| true);
            check(&what, &got, &want16, &f.subjects, TOL);
            // The cost of f16 storage against f32 templates.
            let want = brute(&f.templates, &f.subjects, &probes, &|_| true);
            for (g, w) in got.iter().zip(&want) {
                let b = g.best().expect("found");
                worst = worst.max((b.similarity as f64 - w[0].1).abs() as f32);
                assert!(
                    (b.similarity as f64 - w[0].1).abs() <= F16_TOL as f64,
                    "{what}"
                );
                if w.len() > 1 && w[0].1 - w[1].1 > 2.0 * F16_TOL as f64 {
                    assert_eq!(b.row, w[0].0, "{what}: best subject despite a clear gap");
                }
            }
        }
    }
    eprintln!("f16 storage: max |Δ similarity| vs f32 templates {worst:.2e} (limit {F16_TOL:.0e})");
}

#[test]
fn gallery_candidate_mask() {
    let dev = device();
    let mut f = fixture(&dev, options(Precision::F32), 1000, 21);
    let mut rng = StdRng::seed_from_u64(121);
    let probes = unit_rows(&mut rng, 8);
    // About a third of the subjects, plus some that are not in the gallery.
    let mut allowed: Vec<u32> = (f.subjects.iter())
        .copied()
        .filter(|_| rng.random_bool(0.33))
        .collect();
    allowed.extend([MAX_SUBJECT, MAX_SUBJECT - 1, 5]);
    f.g.set_candidates(Some(&allowed)).expect("mask");
    assert!(f.g.narrowed());
    let set: std::collections::HashSet<u32> = allowed.iter().copied().collect();
    let got = f.g.run_blocking(&probes).expect("match");
    let want = brute(&f.templates, &f.subjects, &probes, &|s| set.contains(&s));
    check("mask 1/3", &got, &want, &f.subjects, TOL);
    for m in &got {
        assert!(set.contains(&m.best().expect("found").subject));
    }
    // Exactly one candidate: no second best.
    f.g.set_candidates(Some(&[f.subjects[417]])).expect("mask");
    let got = f.g.run_blocking(&probes).expect("match");
    for m in &got {
        assert_eq!(m.best().map(|c| c.row), Some(417));
        assert_eq!(m.second(), None);
    }
    // No subject of the gallery: no candidates.
    f.g.set_candidates(Some(&[MAX_SUBJECT])).expect("mask");
    assert!(
        f.g.run_blocking(&probes)
            .expect("match")
            .iter()
            .all(|m| *m == Match::NoCandidates)
    );
    f.g.set_candidates(Some(&[])).expect("mask");
    assert!(
        f.g.run_blocking(&probes)
            .expect("match")
            .iter()
            .all(|m| *m == Match::NoCandidates)
    );
    // Off again: everything.
    f.g.set_candidates(None).expect("unmask");
    let got = f.g.run_blocking(&probes).expect("match");
    check(
        "mask off",
        &got,
        &brute(&f.templates, &f.subjects, &probes, &|_| true),
        &f.subjects,
        TOL,
    );
    assert!(matches!(
        f.g.set_candidates(Some(&[MAX_SUBJECT + 1])),
        Err(GalleryError::Subject(_))
    ));
}

#[test]
fn gallery_updates_and_growth() {
    let dev = device();
    let opts = GalleryOptions {
        initial_rows: 1,
        page_rows: Some(64),
        ..Default::default()
    };
    let mut g = Gallery::new(&dev.0, &dev.1, opts).expect("gallery");
    assert_eq!(g.capacity(), 32);
    let mut rng = StdRng::seed_from_u64(31);
    // The model: subject → template; the gallery's row order is checked through `subject_at`.
    let mut model: HashMap<u32, Vec<f32>> = HashMap::new();
    let verify = |g: &Gallery, model: &HashMap<u32, Vec<f32>>, rng: &mut StdRng, what: &str| {
        assert_eq!(g.len(), model.len(), "{what}: len");
        let rows: Vec<u32> = (0..g.len() as u32)
            .map(|r| g.subject_at(r).expect("row"))
            .collect();
        let templates: Vec<f32> = rows.iter().flat_map(|s| model[s].clone()).collect();
        for (r, s) in rows.iter().enumerate() {
            assert_eq!(g.row_of(*s), Some(r as u32), "{what}: index");
        }
        assert_eq!(
            g.read_templates().expect("read"),
            templates,
            "{what}: stored rows"
        );
        let probes = unit_rows(rng, 8);
        let got = g.run_blocking(&probes).expect("match");
        check(
            what,
            &got,
            &brute(&templates, &rows, &probes, &|_| true),
            &rows,
            TOL,
        );
    };
    // One at a time: 32 → 64 (a GPU copy), then a second and third page.
    for s in 0..150u32 {
        let t = unit_rows(&mut rng, 1);
        assert_eq!(g.upsert(1000 + s, &t).expect("upsert"), s);
        model.insert(1000 + s, stored(&t));
    }
    assert_eq!((g.capacity(), g.pages()), (192, 3));
    verify(&g, &model, &mut rng, "after 150 upserts");
    // Replace some in place (row unchanged), including one in each page.
    for s in [1000u32, 1063, 1064, 1149] {
        let row = g.row_of(s);
        let t = unit_rows(&mut rng, 1);
        // Not normalised on the way in: the gallery does it.
        let scaled: Vec<f32> = t.iter().map(|v| v * 3.5).collect();
        g.upsert(s, &scaled).expect("upsert");
        assert_eq!(g.row_of(s), row);
        model.insert(s, normalise(&scaled).expect("unit").to_vec());
    }
    verify(&g, &model, &mut rng, "after replacing");
    // Remove: the last row, the first, one per page, one missing.
    for s in [1149u32, 1000, 1070, 1130, 1010] {
        assert!(g.remove(s).expect("remove"));
        model.remove(&s);
    }
    assert!(!g.remove(999_999).expect("remove missing"));
    verify(&g, &model, &mut rng, "after removals");
    // A batch mixing new subjects, existing ones and a duplicate (the last one wins).
    let batch: Vec<u32> = vec![5000, 1001, 5001, 5000, 1100];
    let ts = unit_rows(&mut rng, batch.len());
    g.upsert_many(&batch, &ts).expect("batch");
    for (s, t) in batch.iter().zip(ts.chunks_exact(DIM)) {
        model.insert(*s, stored(t));
    }
    verify(&g, &model, &mut rng, "after a mixed batch");
    // Bulk append of many blocks across pages.
    let bulk: Vec<u32> = (20_000..20_300).collect();
    let ts = unit_rows(&mut rng, bulk.len());
    g.upsert_many(&bulk, &ts).expect("bulk");
    for (s, t) in bulk.iter().zip(ts.chunks_exact(DIM)) {
        model.insert(*s, stored(t));
    }
    verify(&g, &model, &mut rng, "after a bulk append");
    // Empty it.
    let all: Vec<u32> = model.keys().copied().collect();
    for s in all {
        assert!(g.remove(s).expect("remove"));
    }
    assert!(g.is_empty());
    let got = g.run_blocking(&unit_rows(&mut rng, 2)).expect("match");
    assert_eq!(got, vec![Match::NoCandidates; 2]);
}

#[test]
fn gallery_ties_and_hostile_input() {
    let dev = device();
    let mut g = Gallery::new(&dev.0, &dev.1, options(Precision::F32)).expect("gallery");
    let mut rng = StdRng::seed_from_u64(41);
    let probe = unit_rows(&mut rng, 1);
    // Empty gallery: a clear "no candidates" per probe.
    assert_eq!(
        g.run_blocking(&probe).expect("empty"),
        vec![Match::NoCandidates]
    );
    // Probes of the wrong length, none, too many.
    for bad in [vec![0.5f32; 127], vec![0.5; 129], vec![]] {
        assert!(matches!(g.run_blocking(&bad), Err(GalleryError::Probes(_))));
    }
    let many = vec![1.0f32; (MAX_PROBES + 1) * DIM];
    assert!(matches!(g.prepare(&many), Err(GalleryError::Probes(_))));
    // Identical templates under three subjects: the lower rows win, in row order.
    let t = unit_rows(&mut rng, 1);
    for s in [30u32, 10, 20] {
        g.upsert(s, &t).expect("upsert");
    }
    let m = g.run_blocking(&t).expect("match");
    assert_eq!(m[0].best().map(|c| (c.row, c.subject)), Some((0, 30)));
    assert_eq!(m[0].second().map(|c| (c.row, c.subject)), Some((1, 10)));
    // NaN, infinity or zeros in one probe: that probe is invalid, the others still match.
    let mut probes = unit_rows(&mut rng, 4);
    probes[DIM + 5] = f32::NAN;
    probes[2 * DIM] = f32::INFINITY;
    probes[3 * DIM..].fill(0.0);
    let m = g.run_blocking(&probes).expect("match");
    assert!(matches!(m[0], Match::Found { .. }));
    assert_eq!(&m[1..], &[Match::InvalidProbe; 3]);
    // Bad templates and subjects change nothing.
    let mut nan = unit_rows(&mut rng, 1);
    nan[3] = f32::NAN;
    assert!(matches!(
        g.upsert(40, &nan),
        Err(GalleryError::Template { .. })
    ));
    assert!(matches!(
        g.upsert(40, &[0.0; DIM]),
        Err(GalleryError::Template { .. })
    ));
    assert!(matches!(
        g.upsert(40, &[1.0; 64]),
        Err(GalleryError::Template { .. })
    ));
    assert!(matches!(
        g.upsert(MAX_SUBJECT + 1, &t),
        Err(GalleryError::Subject(_))
    ));
    let two = unit_rows(&mut rng, 2);
    let mut bad_batch = two.clone();
    bad_batch[DIM + 1] = f32::NAN;
    assert!(g.upsert_many(&[50, 51], &bad_batch).is_err());
    assert_eq!(g.len(), 3);
    assert_eq!(g.row_of(50), None);
    // A dispatch prepared before a change is refused, not misread.
    let d = g.prepare(&probe).expect("prepare");
    g.upsert(60, &two[..DIM]).expect("upsert");
    assert!(matches!(g.results(&d), Err(GalleryError::Stale)));
    // Bad options.
    let bad = GalleryOptions {
        page_rows: Some(33),
        ..Default::default()
    };
    assert!(matches!(
        Gallery::new(&dev.0, &dev.1, bad),
        Err(GalleryError::Option(_))
    ));
}
