//! The fast executor's workers: helper threads that spin between the kernels of one inference.
//!
//! Why not rayon (used here before): one BlazeFace frame is ~25 parallel sections of 20–300 µs,
//! with short serial steps between them. Rayon's idle workers go to sleep within microseconds, so
//! nearly every section paid a futex wake-up (tens of µs on a VM) before the second core did
//! anything: two threads ran back-256 only 1.2–1.5× faster than one, front-128 slower than one.
//! Here a helper that finished a job keeps polling for the next one for [`SPIN`] before it parks,
//! as onnxruntime's and OpenVINO's pools do, and work is handed out by an atomic counter, so a
//! part a slow helper has not claimed yet is done by the caller instead of waited for.
//!
//! Protocol. One word holds `epoch | parts | next`: the caller writes the job, then publishes a
//! new epoch with `next = 0`; a worker claims part `next` by compare-and-swap on the whole word,
//! so a claim can only succeed for the epoch it read, and the job of that epoch stays alive until
//! every claimed part is counted done (the caller waits for that before returning).

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper polls before it parks: longer than the serial gaps inside one
/// inference (tens of µs), far shorter than the gap between frames, so an idle station does not
/// keep a core busy.
const SPIN: Duration = Duration::from_micros(300);

/// Parts one job may have (the word's 16-bit fields); a larger job runs on the caller alone.
const MAX_PARTS: usize = u16::MAX as usize;

/// A job as the helpers see it: borrowed from the caller's stack for one epoch.
type Job = *const (dyn Fn(usize) + Sync + 'static);

struct Shared {
    /// `epoch << 32 | parts << 16 | next`.
    word: AtomicU64,
    /// The current epoch's job; written by the caller only while no part is claimed.
    job: UnsafeCell<Option<Job>>,
    /// Parts of the current epoch finished (or panicked).
    done: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Per helper: it is parked (or about to park) and needs an unpark.
    sleeping: Vec<AtomicBool>,
}

// SAFETY: `job` is written by the one caller that holds `Team::busy`, before it publishes the
// epoch, and only while no part of any epoch is claimed; helpers read it only after claiming a
// part of the published epoch (the claim's SeqCst CAS orders the read after the write). The job
// itself is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// `workers − 1` helper threads plus the calling thread.
pub(super) struct Team {
    shared: Arc<Shared>,
    helpers: Vec<(JoinHandle<()>, Thread)>,
    /// One job at a time; a concurrent caller (or a job that itself asks for workers) runs its
    /// parts alone instead of waiting.
    busy: Mutex<()>,
}

/// The teams alive in this process, by size (see [`Team::shared`]).
static TEAMS: Mutex<Vec<(usize, Weak<Team>)>> = Mutex::new(Vec::new());

impl Team {
    /// The process's team of `workers`, started on first use and shared by every model that
    /// asks for the same size. Why shared: a station runs a detector and SFace one after the
    /// other; with a team each, the detector's helper would still be polling when SFace's wants
    /// the core, and on two cores three busy threads make a part wait for a time slice.
    pub(super) fn shared(workers: usize) -> std::io::Result<Arc<Self>> {
        let mut teams = TEAMS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        teams.retain(|(_, t)| t.strong_count() > 0);
        if let Some(team) = teams
            .iter()
            .find(|(n, _)| *n == workers)
            .and_then(|(_, t)| t.upgrade())
        {
            return Ok(team);
        }
        let team = Arc::new(Self::new(workers)?);
        teams.push((workers, Arc::downgrade(&team)));
        Ok(team)
    }

    /// A team of `workers` (the caller counts as one): `workers − 1` threads are started.
    pub(super) fn new(workers: usize) -> std::io::Result<Self> {
        let helpers = workers.saturating_sub(1);
        let shared = Arc::new(Shared {
            word: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleeping: (0..helpers).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut team = Self {
            shared,
            helpers: Vec::with_capacity(helpers),
            busy: Mutex::new(()),
        };
        for i in 0..helpers {
            let shared = Arc::clone(&team.shared);
            // On error `team` is dropped here, which stops the helpers already started.
            let handle = thread::Builder::new()
                .name(format!("engine-fast-{i}"))
                .spawn(move || helper(&shared, i))?;
            let thread = handle.thread().clone();
            team.helpers.push((handle, thread));
        }
        Ok(team)
    }

    /// Threads that work on a job, the caller included.
    pub(super) fn workers(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `job(p)` once for every `p` in `0..parts`, spread over the team, and returns when all
    /// have run. Parts run in no particular order, so they must not depend on each other. A
    /// panic in any part is raised again here after every part has finished.
    pub(super) fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        let guard = match self.busy.try_lock() {
            Ok(g) if parts > 1 && parts <= MAX_PARTS && !self.helpers.is_empty() => g,
            _ => return (0..parts).for_each(job),
        };
        let s = &*self.shared;
        // SAFETY: the lifetime is erased only for the helpers, which call the job solely for
        // claimed parts of this epoch; this function does not return (or unwind) before all
        // `parts` claimed parts are counted done, so the borrow outlives every call.
        let erased: Job = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(job as *const _)
        };
        // SAFETY: no part is claimed (the previous epoch finished before its `run` returned), so
        // no helper reads `job` now; see `Shared`'s Sync.
        unsafe { *s.job.get() = Some(erased) };
        s.done.store(0, SeqCst);
        s.panicked.store(false, SeqCst);
        let epoch = (s.word.load(SeqCst) >> 32).wrapping_add(1) & 0xffff_ffff;
        let word = epoch << 32 | (parts as u64) << 16;
        s.word.store(word, SeqCst);
        for (sleeping, (_, thread)) in s.sleeping.iter().zip(&self.helpers) {
            if sleeping.swap(false, SeqCst) {
                thread.unpark();
            }
        }
        work(s, epoch);
        let mut polls = 0u32;
        while s.done.load(SeqCst) < parts {
            // Only parts a helper already claimed remain; they are short, but a helper may have
            // been descheduled, so stop burning this core after a while.
            polls = polls.saturating_add(1);
            if polls < 1 << 12 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        // SAFETY: every part is done, so no helper reads `job`.
        unsafe { *s.job.get() = None };
        let panicked = s.panicked.load(SeqCst);
        drop(guard);
        if panicked {
            panic::resume_unwind(Box::new("a part of a fast-executor job panicked"));
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        for (sleeping, (_, thread)) in self.shared.sleeping.iter().zip(&self.helpers) {
            sleeping.store(false, SeqCst);
            thread.unpark();
        }
        for (handle, _) in self.helpers.drain(..) {
            // A helper catches its jobs' panics, so joining fails only if the thread itself
            // broke; nothing is left to clean up then.
            let _ = handle.join();
        }
    }
}

/// Claims and runs parts of `epoch` until none is left (or a newer epoch is published).
fn work(s: &Shared, epoch: u64) {
    loop {
        let w = s.word.load(SeqCst);
        let (parts, next) = ((w >> 16) & 0xffff, w & 0xffff);
        if w >> 32 != epoch || next >= parts {
            return;
        }
        if s.word
            .compare_exchange_weak(w, w + 1, SeqCst, SeqCst)
            .is_err()
        {
            continue;
        }
        // SAFETY: part `next` of this epoch is claimed and not yet counted done, so the caller
        // is still inside `run` and `job` is this epoch's (see `Shared`).
        if let Some(job) = unsafe { *s.job.get() } {
            // SAFETY: as above, the closure is alive until this part is counted done.
            let job = unsafe { &*job };
            if panic::catch_unwind(AssertUnwindSafe(|| job(next as usize))).is_err() {
                s.panicked.store(true, SeqCst);
            }
        }
        s.done.fetch_add(1, SeqCst);
    }
}

/// A helper's life: poll for a new epoch, work on it, park after [`SPIN`] without one.
fn helper(s: &Shared, me: usize) {
    let Some(sleeping) = s.sleeping.get(me) else {
        return;
    };
    let mut seen = s.word.load(SeqCst) >> 32;
    let mut idle_since = Instant::now();
    let mut polls = 0u32;
    while !s.stop.load(SeqCst) {
        let epoch = s.word.load(SeqCst) >> 32;
        if epoch != seen {
            seen = epoch;
            work(s, epoch);
            idle_since = Instant::now();
            continue;
        }
        polls = polls.wrapping_add(1);
        // Reading the clock costs more than a poll; look at it now and then.
        if !polls.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        sleeping.store(true, SeqCst);
        // A job published between the last poll and the flag would find the flag unset and
        // not unpark us: look once more before parking.
        if s.word.load(SeqCst) >> 32 != seen || s.stop.load(SeqCst) {
            sleeping.store(false, SeqCst);
            continue;
        }
        while sleeping.load(SeqCst) && !s.stop.load(SeqCst) {
            thread::park();
        }
        idle_since = Instant::now();
    }
}

/// How a kernel may spread its work: alone on the calling thread, or over a [`Team`].
#[derive(Clone, Copy)]
pub(super) struct Workers<'t>(Option<&'t Team>);

impl<'t> Workers<'t> {
    pub(super) const ONE: Workers<'static> = Workers(None);

    pub(super) fn of(team: Option<&'t Team>) -> Self {
        Self(team)
    }

    /// Threads a job may use (1: the caller alone).
    pub(super) fn count(self) -> usize {
        self.0.map_or(1, Team::workers)
    }

    /// `job(p)` for every `p` in `0..parts`, on the team when there is one.
    pub(super) fn run(self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        match self.0 {
            Some(team) => team.run(parts, job),
            None => (0..parts).for_each(job),
        }
    }

    /// `job(first, items)` over `data` cut into items of `item` elements, the items split into
    /// up to `parts` contiguous runs (`first`: the run's first item index).
    pub(super) fn chunks<T: Send>(
        self,
        data: &mut [T],
        item: usize,
        parts: usize,
        job: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let items = data.len().checked_div(item).unwrap_or(0);
        let parts = parts.clamp(1, items.max(1));
        if parts == 1 {
            return job(0, data);
        }
        // Each run is lent through its own lock, taken once by the part that owns it.
        let mut runs: Vec<(usize, Mutex<&mut [T]>)> = Vec::with_capacity(parts);
        let mut rest = data;
        for p in 0..parts {
            let (from, to) = (p * items / parts, (p + 1) * items / parts);
            let len = if p + 1 == parts {
                rest.len()
            } else {
                (to - from) * item
            };
            let (mine, others) = rest.split_at_mut(len);
            runs.push((from, Mutex::new(mine)));
            rest = others;
        }
        self.run(parts, &|p| {
            if let Some((first, run)) = runs.get(p)
                && let Ok(mut run) = run.lock()
            {
                job(*first, &mut run);
            }
        });
    }
}

/// An output buffer shared by the parts of one job, which write disjoint elements of it.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);
impl SharedOut {
    /// The element `i` places on (a method, so that closures capture the whole Sync wrapper
    /// rather than its raw pointer field).
    pub(super) fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

// SAFETY: users write only disjoint elements from different parts, and the buffer outlives the
// job (`Team::run` returns after every part).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Every part runs exactly once, over many jobs, for part counts around the worker count.
    #[test]
    fn every_part_runs_once() {
        let team = Team::new(3).unwrap();
        for round in 0..2_000usize {
            let parts = round % 9;
            let hits: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
            team.run(parts, &|p| {
                hits[p].fetch_add(1, SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "round {round}");
        }
    }

    /// Jobs keep working after the helpers parked (idle longer than the spin).
    #[test]
    fn wakes_parked_helpers() {
        let team = Team::new(2).unwrap();
        for _ in 0..3 {
            thread::sleep(SPIN * 4);
            let sum = AtomicUsize::new(0);
            team.run(64, &|p| {
                sum.fetch_add(p, SeqCst);
            });
            assert_eq!(sum.load(SeqCst), 64 * 63 / 2);
        }
    }

    /// Concurrent callers and a job that asks the team again both complete (the second runs
    /// alone rather than waiting).
    #[test]
    fn concurrent_and_nested_callers() {
        let team = Team::new(2).unwrap();
        let total = AtomicUsize::new(0);
        thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..200 {
                        team.run(4, &|_| {
                            team.run(3, &|_| {
                                total.fetch_add(1, SeqCst);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 3 * 200 * 4 * 3);
    }

    /// A panicking part is raised to the caller after the other parts ran, and the team stays
    /// usable.
    #[test]
    fn a_panic_reaches_the_caller() {
        let team = Team::new(2).unwrap();
        let ran = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            team.run(8, &|p| {
                ran.fetch_add(1, SeqCst);
                assert!(p != 5, "part five");
            })
        }));
        assert!(r.is_err());
        assert_eq!(ran.load(SeqCst), 8);
        let after = AtomicUsize::new(0);
        team.run(8, &|_| {
            after.fetch_add(1, SeqCst);
        });
        assert_eq!(after.load(SeqCst), 8);
    }

    /// `chunks` hands out every item once, in contiguous runs with the right first index.
    #[test]
    fn chunks_cover_the_data() {
        let team = Team::new(2).unwrap();
        for (len, item, parts) in [(0, 4, 2), (12, 4, 2), (12, 4, 5), (10, 1, 3), (7, 7, 4)] {
            let mut data: Vec<usize> = vec![0; len];
            Workers::of(Some(&team)).chunks(&mut data, item, parts, |first, run| {
                for (i, v) in run.iter_mut().enumerate() {
                    *v = first * item + i + 1;
                }
            });
            let want: Vec<usize> = (1..=len).collect();
            assert_eq!(data, want, "len {len} item {item} parts {parts}");
        }
    }
}
