//! Hand-over of frames from the capture threads to the GPU stage.
//!
//! Live lanes keep only their newest frame (a new one replaces the old, counted as dropped); recorded
//! lanes in benchmark mode block the streaming thread while their small queue is full, so every frame
//! is delivered and GStreamer's own back-pressure paces the decoder.

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
}

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
                let replaced = !lq.frames.is_empty();
                lq.frames.clear();
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

    /// The oldest waiting frame of every lane that has one; waits up to `timeout` for at least one.
    pub fn take_batch(&self, timeout: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        loop {
            let batch: Vec<Frame> = q
                .iter_mut()
                .filter_map(|lq| {
                    let f = lq.frames.pop_front();
                    lq.waiting_since = (!lq.frames.is_empty()).then(Instant::now);
                    f
                })
                .collect();
            if !batch.is_empty() {
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
