//! Hand-over of frames from the capture threads to the GPU stage.
//!
//! Live lanes keep only their newest frame (a new one replaces the old, counted as dropped); recorded
//! lanes in benchmark mode block the streaming thread while their small queue is full, so every frame
//! is delivered and GStreamer's own back-pressure paces the decoder.
//!
//! A lane's two cameras (`twin`) are handed out as one instant: each live camera keeps its last
//! `TWIN_DEPTH` frames, and a tick takes the newest instant *both* have delivered. Why: with each
//! camera keeping only its own newest frame, a lane whose two decoders (or cameras) run a fraction
//! of a frame out of step hands the station the upper camera's frame of one instant and the lower
//! camera's of the one before, every tick, and the twin that would have met it is replaced before it
//! is taken; the lane's two-camera cues then see no pair for whole walks (docs/pad.md, "paced
//! pairing").

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Frame;

pub struct FrameHub {
    queues: Mutex<Vec<LaneQueue>>,
    changed: Condvar,
}

struct LaneQueue {
    frames: VecDeque<Frame>,
    /// Since when the lane has had a frame waiting (its queue not empty), for the stall watch.
    waiting_since: Option<Instant>,
    newest_only: bool,
    closed: bool,
    /// The other camera of this stream's lane, and how far apart two frames may be to show one
    /// instant.
    twin: Option<(usize, Duration)>,
}

/// How many frames a live camera with a twin keeps: enough for the newest instant both cameras
/// delivered to still be held when the slower of two decoders out of step by up to two frames
/// delivers it.
const TWIN_DEPTH: usize = 3;

/// How many frames an every-frame lane may have waiting.
const EVERY_FRAME_DEPTH: usize = 2;

pub enum Push {
    Queued,
    /// The frame replaced an older one that was never processed.
    Replaced,
    /// The hub is closed (shutdown): the frame was discarded.
    Closed,
}

impl FrameHub {
    pub fn new(newest_only: &[bool]) -> Self {
        let queues = newest_only
            .iter()
            .map(|&n| LaneQueue {
                frames: VecDeque::new(),
                waiting_since: None,
                newest_only: n,
                closed: false,
                twin: None,
            })
            .collect();
        Self {
            queues: Mutex::new(queues),
            changed: Condvar::new(),
        }
    }

    pub fn lanes(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LaneQueue>> {
        // A panic while holding this lock would already have aborted the frame path; the queues stay
        // consistent (VecDeque ops do not panic midway), so continue with the inner value.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, frame: Frame) -> Push {
        let lane = frame.lane;
        let mut q = self.lock();
        loop {
            let Some(lq) = q.get_mut(lane) else {
                return Push::Closed;
            };
            if lq.closed {
                return Push::Closed;
            }
            if lq.frames.is_empty() {
                lq.waiting_since = Some(Instant::now());
            }
            if lq.newest_only {
                let depth = if lq.twin.is_some() { TWIN_DEPTH } else { 1 };
                let replaced = lq.frames.len() >= depth;
                while lq.frames.len() >= depth {
                    lq.frames.pop_front();
                }
                lq.frames.push_back(frame);
                self.changed.notify_all();
                return if replaced {
                    Push::Replaced
                } else {
                    Push::Queued
                };
            }
            if lq.frames.len() < EVERY_FRAME_DEPTH {
                lq.frames.push_back(frame);
                self.changed.notify_all();
                return Push::Queued;
            }
            q = self
                .changed
                .wait_timeout(q, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Makes streams `a` and `b` the two cameras of one lane, whose frames no more than `within`
    /// apart show one instant (module docs). Only live streams keep more than one frame for it;
    /// recorded ones in benchmark mode deliver every frame anyway.
    pub fn twin(&self, a: usize, b: usize, within: Duration) {
        let mut q = self.lock();
        if a == b || a >= q.len() || b >= q.len() {
            return;
        }
        q[a].twin = Some((b, within));
        q[b].twin = Some((a, within));
    }

    /// The oldest waiting frame of every lane that has one (live: the newest, or for a lane's two
    /// cameras the newest instant both have, `newest_pair`); waits up to `timeout` for at least one.
    pub fn take_batch(&self, timeout: Duration) -> Batch {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        loop {
            let picks = picks(&q);
            let mut batch = Batch {
                frames: Vec::new(),
                passed_over: vec![0; q.len()],
            };
            for ((lq, pick), passed) in q.iter_mut().zip(picks).zip(&mut batch.passed_over) {
                if let Some(k) = pick {
                    // Frames come in time order: those before the one taken are passed over.
                    *passed = k as u64;
                    lq.frames.drain(..k);
                    batch.frames.extend(lq.frames.pop_front());
                }
                lq.waiting_since = (!lq.frames.is_empty()).then(Instant::now);
            }
            if !batch.frames.is_empty() {
                self.changed.notify_all();
                return batch;
            }
            let now = Instant::now();
            if now >= deadline {
                return batch;
            }
            q = self
                .changed
                .wait_timeout(q, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Stops accepting frames for a lane (source finished or shut down) and wakes a blocked producer.
    pub fn close_lane(&self, lane: usize) {
        if let Some(lq) = self.lock().get_mut(lane) {
            lq.closed = true;
        }
        self.changed.notify_all();
    }

    pub fn reopen_lane(&self, lane: usize) {
        if let Some(lq) = self.lock().get_mut(lane) {
            lq.closed = false;
        }
    }

    pub fn close_all(&self) {
        for lq in self.lock().iter_mut() {
            lq.closed = true;
        }
        self.changed.notify_all();
    }
}

/// One take: the frames handed out, and per stream how many older frames it passed over (older
/// than the instant handed out), for the stream's dropped count.
pub struct Batch {
    pub frames: Vec<Frame>,
    pub passed_over: Vec<u64>,
}

/// Which waiting frame each stream hands out (an index into its queue), chosen before any is
/// taken: a lane's two live cameras together, once, by the first of them.
fn picks(q: &[LaneQueue]) -> Vec<Option<usize>> {
    let mut picks = vec![None; q.len()];
    for (i, lq) in q.iter().enumerate() {
        let newest = lq.frames.len().checked_sub(1);
        picks[i] = match lq.twin {
            _ if !lq.newest_only => (!lq.frames.is_empty()).then_some(0),
            Some((j, within)) if q.get(j).is_some_and(|t| t.newest_only) => {
                if j < i {
                    continue; // chosen with its twin
                }
                let pair = newest_pair(&lq.frames, &q[j].frames, within);
                picks[j] = pair
                    .map(|(_, theirs)| theirs)
                    .or(q[j].frames.len().checked_sub(1));
                pair.map(|(mine, _)| mine).or(newest)
            }
            _ => newest,
        };
    }
    picks
}

/// The newest frame of `a` that has a twin in `b` (no more than `within` apart), and that twin:
/// indices into each. Presentation times where both have them (recorded footage), else the
/// instants they were captured (live cameras).
fn newest_pair(
    a: &VecDeque<Frame>,
    b: &VecDeque<Frame>,
    within: Duration,
) -> Option<(usize, usize)> {
    let apart = |x: &Frame, y: &Frame| match (x.pts, y.pts) {
        (Some(p), Some(q)) => Some(Duration::from_nanos(p.nseconds().abs_diff(q.nseconds()))),
        (None, None) => Some(x.captured.max(y.captured) - x.captured.min(y.captured)),
        _ => None,
    };
    (0..a.len()).rev().find_map(|i| {
        (0..b.len())
            .rev()
            .find(|&k| apart(&a[i], &b[k]).is_some_and(|d| d <= within))
            .map(|k| (i, k))
    })
}

impl FrameHub {
    /// Since when a frame has been waiting for the GPU stage, the earliest over the lanes (`None`:
    /// nothing waits). A live lane's newest frame replaces the last, but its wait goes on.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.lock().iter().filter_map(|lq| lq.waiting_since).min()
    }

    /// Every lane closed and nothing left to take.
    pub fn all_closed(&self) -> bool {
        self.lock()
            .iter()
            .all(|lq| lq.closed && lq.frames.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FrameLayout;
    use gstreamer as gst;

    const MS: Duration = Duration::from_millis(1);

    fn frame(stream: usize, at_ms: u64) -> Frame {
        Frame {
            lane: stream,
            seq: at_ms,
            pts: Some(gst::ClockTime::from_mseconds(at_ms)),
            captured: Instant::now(),
            layout: FrameLayout::i420(2, 2),
            buffer: gst::Buffer::new(),
        }
    }

    /// The presentation time of each stream's frame in a take, by stream.
    fn taken(hub: &FrameHub) -> Vec<Option<u64>> {
        let mut out = vec![None; hub.lanes()];
        for f in hub.take_batch(Duration::ZERO).frames {
            out[f.lane] = f.pts.map(|p| p.mseconds());
        }
        out
    }

    /// Two live cameras of a lane whose lower camera delivers each instant 60 ms after the upper
    /// one, a frame every 100 ms, with the station taking a batch every 150 ms (it keeps up with
    /// fewer frames than come); what each take held, upper then lower.
    fn out_of_step(hub: &FrameHub) -> Vec<(Option<u64>, Option<u64>)> {
        let mut takes = Vec::new();
        let mut next_take = 150;
        for now in (0..3000).step_by(10) {
            if now % 100 == 0 {
                hub.push(frame(0, now));
            }
            if now % 100 == 60 {
                hub.push(frame(1, now - 60));
            }
            if now == next_take {
                let t = taken(hub);
                takes.push((t[0], t[1]));
                next_take += 150;
            }
        }
        takes
    }

    #[test]
    fn a_lanes_two_cameras_out_of_step_are_handed_out_as_one_instant() {
        gst::init().unwrap();
        // Each camera keeping its own newest: the upper camera's frame is always an instant ahead
        // of the lower one's, and no take holds both views of one instant.
        let alone = FrameHub::new(&[true, true]);
        let takes = out_of_step(&alone);
        assert!(
            takes
                .iter()
                .all(|(u, l)| u.is_none() || l.is_none() || u != l),
            "{takes:?}"
        );
        // Twinned: every take holding both cameras holds one instant, the newest both delivered.
        let hub = FrameHub::new(&[true, true]);
        hub.twin(0, 1, 50 * MS);
        let takes = out_of_step(&hub);
        let both: Vec<_> = takes.iter().filter_map(|&(u, l)| u.zip(l)).collect();
        assert!(both.len() >= takes.len() - 1, "{takes:?}");
        assert!(both.iter().all(|(u, l)| u == l), "{takes:?}");
    }

    #[test]
    fn a_take_hands_out_the_newest_instant_both_cameras_have_and_keeps_the_newer() {
        gst::init().unwrap();
        let hub = FrameHub::new(&[true, true, true]);
        hub.twin(0, 2, 50 * MS);
        for t in [100, 200, 300] {
            assert!(matches!(hub.push(frame(0, t)), Push::Queued));
        }
        // A fourth frame replaces the oldest (counted as dropped where it is pushed).
        assert!(matches!(hub.push(frame(0, 400)), Push::Replaced));
        for t in [100, 200, 300] {
            hub.push(frame(2, t + 10));
            // A lane with one camera keeps its newest only.
            hub.push(frame(1, t));
        }
        let batch = hub.take_batch(Duration::ZERO);
        let pts: Vec<_> = batch
            .frames
            .iter()
            .map(|f| f.pts.map(|p| p.mseconds()))
            .collect();
        assert_eq!(pts, vec![Some(300), Some(300), Some(310)]);
        // Passed over: the upper camera's 200, the lower camera's 110 and 210.
        assert_eq!(batch.passed_over, vec![1, 0, 2]);
        // The upper camera's 400 waits for its twin, and goes out newest when there is none.
        assert_eq!(taken(&hub), vec![Some(400), None, None]);
        hub.push(frame(0, 500));
        hub.push(frame(2, 510));
        assert_eq!(taken(&hub), vec![Some(500), None, Some(510)]);
    }

    #[test]
    fn cameras_that_never_show_one_instant_still_deliver_their_newest() {
        gst::init().unwrap();
        // Half a frame apart, with twins no more than 20 ms apart.
        let hub = FrameHub::new(&[true, true]);
        hub.twin(0, 1, 20 * MS);
        for t in [100, 200, 300] {
            hub.push(frame(0, t));
            hub.push(frame(1, t + 50));
        }
        assert_eq!(taken(&hub), vec![Some(300), Some(350)]);
    }

    #[test]
    fn live_cameras_are_paired_by_when_their_frames_were_captured() {
        gst::init().unwrap();
        let hub = FrameHub::new(&[true, true]);
        hub.twin(0, 1, 50 * MS);
        let t0 = Instant::now();
        let live = |stream: usize, ms: u64| Frame {
            pts: None,
            captured: t0 + Duration::from_millis(ms),
            ..frame(stream, ms)
        };
        for t in [0, 100, 200] {
            hub.push(live(0, t));
        }
        for t in [40, 140] {
            hub.push(live(1, t));
        }
        let seqs: Vec<(usize, u64)> = (hub.take_batch(Duration::ZERO).frames.iter())
            .map(|f| (f.lane, f.seq))
            .collect();
        assert_eq!(seqs, vec![(0, 100), (1, 140)]);
    }
}
