//! The client side of the room clock (docs/protocol.md §7): an NTP-style estimate of the
//! server clock's offset from `clock:ping` samples. Of the recent samples, those whose
//! round trip is within a small margin of the shortest are kept and the median of their
//! offsets is taken; the error bound is half the shortest round trip (the offset cannot
//! be off by more than the time the pong might have spent on either leg).
//!
//! Times are ms. The local clock is whatever the caller samples `t0` and `t1` from (this
//! crate uses Unix time from [`local_now_ms`]), so the offset is `server - local`.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// Samples kept (the oldest go first).
const KEEP: usize = 16;
/// Samples whose round trip exceeds the shortest by more than this many ms, or by more
/// than half the shortest, do not count.
const MARGIN_MS: f64 = 1.0;

/// One `clock:ping` / `clock:pong` exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSample {
    /// The round trip, ms.
    pub rtt_ms: f64,
    /// `serverTime - (t0 + t1) / 2`, ms.
    pub offset_ms: f64,
}

/// The offset of the server's clock from the local one, estimated from pings.
#[derive(Debug, Clone, Default)]
pub struct ClockEstimator {
    samples: VecDeque<ClockSample>,
}

impl ClockEstimator {
    /// An estimator with no samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample: a ping sent at local `t0`, answered with `server_time`, received at
    /// local `t1`.
    pub fn add(&mut self, t0: f64, server_time: f64, t1: f64) -> ClockSample {
        let sample = ClockSample {
            rtt_ms: (t1 - t0).max(0.0),
            offset_ms: server_time - (t0 + t1) / 2.0,
        };
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        sample
    }

    /// The shortest round trip among the samples kept, ms.
    pub fn rtt_ms(&self) -> Option<f64> {
        self.samples.iter().map(|s| s.rtt_ms).reduce(f64::min)
    }

    /// The estimated offset (`server - local`), ms.
    pub fn offset_ms(&self) -> Option<f64> {
        let best = self.rtt_ms()?;
        let margin = MARGIN_MS.max(best / 2.0);
        let mut offsets: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.rtt_ms <= best + margin)
            .map(|s| s.offset_ms)
            .collect();
        offsets.sort_by(f64::total_cmp);
        let mid = offsets.len() / 2;
        Some(if offsets.len() % 2 == 1 {
            offsets[mid]
        } else {
            (offsets[mid - 1] + offsets[mid]) / 2.0
        })
    }

    /// How far off the offset may be: half the shortest round trip, ms.
    pub fn error_ms(&self) -> Option<f64> {
        self.rtt_ms().map(|r| r / 2.0)
    }

    /// The server's clock now, by the estimate.
    pub fn server_now(&self) -> Option<f64> {
        Some(local_now_ms() + self.offset_ms()?)
    }
}

/// The local clock the estimates are against: Unix time, ms.
pub fn local_now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_the_fastest_samples_wins_and_the_bound_is_half_the_best_round_trip() {
        let mut c = ClockEstimator::new();
        assert_eq!(c.offset_ms(), None);
        // True offset 100 ms; fast samples are symmetric, slow ones skewed by queueing.
        c.add(0.0, 102.0, 4.0); // rtt 4, offset 100
        c.add(10.0, 112.5, 14.0); // rtt 4, offset 100.5
        c.add(20.0, 121.0, 23.0); // rtt 3, offset 99.5
        c.add(30.0, 180.0, 90.0); // rtt 60, offset 120: ignored
        c.add(100.0, 150.0, 130.0); // rtt 30, offset 35: ignored
        assert_eq!(c.rtt_ms(), Some(3.0));
        assert_eq!(c.error_ms(), Some(1.5));
        assert_eq!(c.offset_ms(), Some(100.0));
        let truth = 100.0;
        assert!((c.offset_ms().unwrap() - truth).abs() <= c.error_ms().unwrap());
    }

    #[test]
    fn old_samples_are_forgotten() {
        let mut c = ClockEstimator::new();
        c.add(0.0, 50.5, 1.0); // the fastest, offset 50
        for i in 0..KEEP {
            let t0 = 10.0 * i as f64 + 10.0;
            c.add(t0, t0 + 1.0 + 7.0, t0 + 2.0); // rtt 2, offset 7
        }
        assert_eq!(c.rtt_ms(), Some(2.0));
        assert_eq!(c.offset_ms(), Some(7.0));
    }
}
