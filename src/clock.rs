//! The server's clock (docs/protocol.md §7): a monotonic clock anchored to Unix time once at
//! start, in milliseconds with microsecond resolution. It never jumps with the wall clock,
//! so `serverTime` values of one server run can be subtracted safely.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The clock every `serverTime` of one server run is read from.
#[derive(Debug, Clone, Copy)]
pub struct ServerClock {
    start: Instant,
    /// Unix time at `start`, µs.
    anchor_us: u64,
}

impl ServerClock {
    /// A clock anchored now.
    pub fn new() -> Self {
        let anchor_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        ServerClock {
            start: Instant::now(),
            anchor_us,
        }
    }

    /// Server time at `at`, in whole microseconds.
    pub fn at_us(&self, at: Instant) -> u64 {
        self.anchor_us + at.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Server time at `at`, ms (microsecond resolution).
    pub fn at(&self, at: Instant) -> f64 {
        self.at_us(at) as f64 / 1000.0
    }

    /// Server time now, in whole microseconds.
    pub fn now_us(&self) -> u64 {
        self.at_us(Instant::now())
    }

    /// Server time now, ms.
    pub fn now_ms(&self) -> f64 {
        self.at(Instant::now())
    }
}

impl Default for ServerClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn server_time_is_unix_ms_and_moves_with_the_monotonic_clock() {
        let clock = ServerClock::new();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        assert!((clock.now_ms() - unix_ms).abs() < 1000.0);
        let t = Instant::now();
        let later = t + Duration::from_micros(1_234_567);
        assert!(
            (clock.at(later) - clock.at(t) - 1234.567).abs() <= 0.0011,
            "whole microseconds"
        );
        assert!(clock.at(t - Duration::from_secs(5)) <= clock.at(t));
    }
}
