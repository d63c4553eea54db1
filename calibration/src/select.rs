//! Which photos of a labelled set to use, and a small parallel map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

/// One labelled photo: `rel` as written in labels.csv, `path` joined onto the set folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labelled {
    pub path: PathBuf,
    pub rel: String,
    pub id: String,
}

/// A CSV file's rows after its header, each with its line number (for messages) and its fields
/// trimmed. Quoted fields (a path with a comma in it) are read as any CSV writer makes them. Rows
/// may have any field count: each reader says what it expected, naming the line.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<(u64, csv::StringRecord)>,
}

pub fn read_csv(path: &Path) -> Result<Csv> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header = r
        .headers()
        .with_context(|| format!("{}:1: reading the header", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            anyhow::anyhow!("{}:{line}: {e}", path.display())
        })?;
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        rows.push((line, rec));
    }
    Ok(Csv { header, rows })
}

pub fn read_labels(set: &Path) -> Result<Vec<Labelled>> {
    let path = set.join("labels.csv");
    let mut out = Vec::new();
    for (line, rec) in read_csv(&path)?.rows {
        let (Some(p), Some(id), 2) = (rec.get(0), rec.get(1), rec.len()) else {
            bail!("{}:{line}: expected path,identity", path.display());
        };
        out.push(Labelled {
            path: set.join(p),
            rel: p.to_owned(),
            id: id.to_owned(),
        });
    }
    Ok(out)
}

/// Sorted by path; per identity, the first `skip` photos are dropped and at most `take` kept.
pub fn per_identity(mut photos: Vec<Labelled>, skip: usize, take: Option<usize>) -> Vec<Labelled> {
    photos.sort();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    photos.retain(|p| {
        let c = count.entry(p.id.clone()).or_default();
        *c += 1;
        *c > skip && take.is_none_or(|t| *c <= skip + t)
    });
    photos
}

pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `f` over `items` on `threads` workers (each takes the next unclaimed item); results in order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let progress = Progress::new(items.len());
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                        progress.show(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    progress.finish();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Progress of the long runs on stderr (embedding hundreds of photos takes minutes on a CPU): on
/// a terminal indicatif's bar; otherwise (a log file, CI, a pipe) a plain line every 10 s, so a
/// long run is never silent and the log never fills with bars (indicatif draws nothing there).
struct Progress {
    total: usize,
    start: std::time::Instant,
    /// The terminal's bar; `None` off a terminal or for a single item.
    bar: Option<indicatif::ProgressBar>,
    /// When the last plain line was written, ms after `start`.
    last_ms: AtomicUsize,
    on: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        let on = total > 1;
        let bar = (on && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            // A fixed template cannot fail to parse; the default style is the fallback all the same.
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} ({percent} %) {elapsed}, about {eta} left",
            ) {
                bar.set_style(style.progress_chars("# "));
            }
            bar
        });
        Self {
            total,
            start: std::time::Instant::now(),
            bar,
            last_ms: AtomicUsize::new(0),
            on,
        }
    }

    fn show(&self, done: usize) {
        if !self.on {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        let ms = self.start.elapsed().as_millis() as usize;
        let last = self.last_ms.load(Ordering::Relaxed);
        // The last item is `finish`'s to report.
        if done >= self.total || ms < last + 10_000 {
            return;
        }
        if self
            .last_ms
            .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            eprintln!("{}", line(done, self.total, ms));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.on {
            eprintln!(
                "progress: all {} done in {:.0} s",
                self.total,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

/// The plain progress line written when stderr is not a terminal.
fn line(done: usize, total: usize, ms: usize) -> String {
    let eta = if done > 0 {
        ms as f64 / 1e3 * total.saturating_sub(done) as f64 / done as f64
    } else {
        0.0
    };
    format!(
        "progress: {done} of {total} ({:.0} %) in {:.0} s, about {eta:.0} s left",
        done as f64 * 100.0 / total.max(1) as f64,
        ms as f64 / 1e3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_progress_line_says_how_far_and_how_long() {
        assert_eq!(
            line(120, 480, 30_000),
            "progress: 120 of 480 (25 %) in 30 s, about 90 s left"
        );
        assert_eq!(
            line(0, 0, 0),
            "progress: 0 of 0 (0 %) in 0 s, about 0 s left"
        );
    }

    fn l(p: &str, id: &str) -> Labelled {
        Labelled {
            path: PathBuf::from(p),
            rel: p.into(),
            id: id.into(),
        }
    }

    #[test]
    fn per_identity_skips_then_takes() {
        let v = vec![l("a3", "a"), l("a1", "a"), l("a2", "a"), l("b1", "b")];
        let got: Vec<String> = per_identity(v.clone(), 1, Some(1))
            .into_iter()
            .map(|x| x.rel)
            .collect();
        assert_eq!(got, ["a2"]);
        assert_eq!(per_identity(v.clone(), 0, None).len(), 4);
        assert_eq!(per_identity(v, 0, Some(2)).len(), 3);
    }

    #[test]
    fn par_map_keeps_order() {
        let v: Vec<u32> = (0..100).collect();
        assert_eq!(
            par_map(&v, 3, |x| x * 2),
            (0..100).map(|x| x * 2).collect::<Vec<_>>()
        );
    }

    /// A path with a comma in it, quoted as CSV writers quote it, is one field; blank lines are
    /// skipped; a short row names its line.
    #[test]
    fn labels_read_quoted_paths_and_name_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = "path,identity\n\"images/Smith, J/1.jpg\",smith\n\nimages/b.jpg , b \n";
        std::fs::write(dir.path().join("labels.csv"), csv).expect("writes");
        let got = read_labels(dir.path()).expect("reads");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].rel, "images/Smith, J/1.jpg");
        assert_eq!(got[0].id, "smith");
        assert_eq!(got[1].rel, "images/b.jpg");
        assert_eq!(got[1].path, dir.path().join("images/b.jpg"));
        std::fs::write(
            dir.path().join("labels.csv"),
            "path,identity\na.jpg,a\nb.jpg\n",
        )
        .expect("writes");
        let e = read_labels(dir.path()).expect_err("short row");
        assert!(
            format!("{e:#}").contains("labels.csv:3: expected path,identity"),
            "{e:#}"
        );
    }
}
