//! Closed lighting loop of one lane: smoothed scene luminance in, illumination set-point out.
//!
//! A dead band between `low` and `high` plus a minimum interval between changes is the hysteresis:
//! without it, a lane whose luminance sits near one threshold would flicker its lights every frame,
//! and the camera's own auto-exposure would chase the lights.

use std::time::{Duration, Instant};

use super::LightingLoopConfig;

#[derive(Debug, Clone)]
pub struct LightingLoop {
    cfg: LightingLoopConfig,
    smoothed: Option<f32>,
    level: u8,
    last_change: Option<Instant>,
}

impl LightingLoop {
    pub fn new(cfg: LightingLoopConfig) -> Self {
        let level = cfg.initial;
        Self {
            cfg,
            smoothed: None,
            level,
            last_change: None,
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn smoothed(&self) -> Option<f32> {
        self.smoothed
    }

    /// Feeds one frame's mean luma (0–1); returns a new set-point when the lights should change.
    pub fn update(&mut self, luma_mean: f32, now: Instant) -> Option<u8> {
        if !luma_mean.is_finite() {
            return None;
        }
        let a = self.cfg.smoothing;
        let s = match self.smoothed {
            Some(prev) => prev + a * (luma_mean - prev),
            None => luma_mean,
        };
        self.smoothed = Some(s);
        if let Some(t) = self.last_change
            && now.duration_since(t) < Duration::from_millis(self.cfg.min_interval_ms)
        {
            return None;
        }
        let next = if s < self.cfg.low {
            self.level.saturating_add(self.cfg.step).min(100)
        } else if s > self.cfg.high {
            self.level.saturating_sub(self.cfg.step)
        } else {
            self.level
        };
        if next == self.level {
            return None;
        }
        self.level = next;
        self.last_change = Some(now);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LightingLoopConfig {
        LightingLoopConfig {
            low: 0.3,
            high: 0.6,
            step: 10,
            min_interval_ms: 100,
            initial: 50,
            smoothing: 1.0,
        }
    }

    #[test]
    fn dark_scene_brightens_until_full_then_stops() {
        let mut l = LightingLoop::new(cfg());
        let t0 = Instant::now();
        let mut got = vec![];
        for i in 0..10 {
            if let Some(v) = l.update(0.1, t0 + Duration::from_millis(100 * i)) {
                got.push(v);
            }
        }
        assert_eq!(got, vec![60, 70, 80, 90, 100]);
    }

    #[test]
    fn bright_scene_dims_and_band_holds() {
        let mut l = LightingLoop::new(cfg());
        let t0 = Instant::now();
        assert_eq!(l.update(0.9, t0), Some(40));
        // Inside the band nothing changes, however long it stays.
        for i in 1..20 {
            assert_eq!(l.update(0.45, t0 + Duration::from_millis(200 * i)), None);
        }
        assert_eq!(l.level(), 40);
    }

    #[test]
    fn changes_are_rate_limited() {
        let mut l = LightingLoop::new(cfg());
        let t0 = Instant::now();
        assert_eq!(l.update(0.1, t0), Some(60));
        assert_eq!(l.update(0.1, t0 + Duration::from_millis(50)), None);
        assert_eq!(l.update(0.1, t0 + Duration::from_millis(100)), Some(70));
    }

    #[test]
    fn smoothing_ignores_one_frame_flash() {
        let mut l = LightingLoop::new(LightingLoopConfig {
            smoothing: 0.1,
            ..cfg()
        });
        let t0 = Instant::now();
        assert_eq!(l.update(0.45, t0), None);
        assert_eq!(
            l.update(1.0, t0 + Duration::from_secs(1)),
            None,
            "one bright frame moved the lights"
        );
        assert_eq!(l.update(f32::NAN, t0 + Duration::from_secs(2)), None);
    }
}
