//! Rate arithmetic, with no I/O and no clock of its own (every call is given `now`): the
//! token bucket behind the session's send and room-request budgets and the hub's
//! failed-join budget, and the "at most N in any one second" window behind the session's
//! error throttle and ping budget.
//!
//! It owns the numbers only; what is limited, and what happens to a refused message, is
//! the caller's rule (`session.rs`, `room/join_limit.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a token bucket refills: `per_second` tokens a second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refill {
    per_second: f64,
    burst: f64,
}

impl Refill {
    /// `rate` tokens a second, up to `burst`.
    pub fn per_second(rate: u32, burst: u32) -> Self {
        Refill {
            per_second: f64::from(rate),
            burst: f64::from(burst),
        }
    }

    /// `rate` tokens a minute, up to `burst`.
    pub fn per_minute(rate: u32, burst: u32) -> Self {
        Refill {
            per_second: f64::from(rate) / 60.0,
            burst: f64::from(burst),
        }
    }
}

/// A token bucket's level at its last change. It does not hold its [`Refill`]: a table of
/// many buckets under one rule (the failed joins, per address) stores the level only.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket holding its whole burst at `now`.
    pub fn full(refill: Refill, now: Instant) -> Self {
        Bucket {
            tokens: refill.burst,
            at: now,
        }
    }

    /// The tokens it holds at `now`, refilled since its last change.
    pub fn level(&self, refill: Refill, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * refill.per_second).min(refill.burst)
    }

    /// Takes one token if there is one; whether there was.
    pub fn take(&mut self, refill: Refill, now: Instant) -> bool {
        self.tokens = self.level(refill, now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Spends one token whether or not there is one (a cost already incurred), leaving at
    /// least none.
    pub fn spend(&mut self, refill: Refill, now: Instant) {
        self.tokens = (self.level(refill, now) - 1.0).max(0.0);
        self.at = now;
    }
}

/// A bucket with its own rule, for one budget of one connection.
#[derive(Debug)]
pub struct TokenBucket {
    refill: Refill,
    bucket: Bucket,
}

impl TokenBucket {
    /// `rate` tokens a second up to `burst`, full at `now`. A burst below one would refuse
    /// everything, so it holds at least one token.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let refill = Refill::per_second(rate, burst.max(1));
        TokenBucket {
            refill,
            bucket: Bucket::full(refill, now),
        }
    }

    /// Takes one token if there is one; whether there was.
    pub fn take(&mut self, now: Instant) -> bool {
        self.bucket.take(self.refill, now)
    }
}

/// "At most `max` in any one-second window": the times of the last ones allowed.
#[derive(Debug)]
pub struct Window {
    sent: VecDeque<Instant>,
    max: usize,
}

impl Window {
    /// A window that allows `max` a second.
    pub fn new(max: usize) -> Self {
        Window {
            sent: VecDeque::new(),
            max,
        }
    }

    /// Whether one more is allowed at `now` (and if so, counts it).
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.sent.front() {
            if now.saturating_duration_since(t) >= Duration::from_secs(1) {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() >= self.max {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 2000, t0);
        assert_eq!((0..2500).filter(|_| b.take(t0)).count(), 2000);
        assert!(!b.take(t0));
        // 10 ms later, 10 more tokens.
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!((0..50).filter(|_| b.take(t1)).count(), 10);
    }

    #[test]
    fn a_zero_burst_still_holds_one_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 0, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0));
    }

    #[test]
    fn spending_an_empty_bucket_leaves_it_empty_not_in_debt() {
        let t0 = Instant::now();
        let refill = Refill::per_minute(60, 2);
        let mut b = Bucket::full(refill, t0);
        assert_eq!(b.level(refill, t0), 2.0);
        for _ in 0..5 {
            b.spend(refill, t0);
        }
        assert_eq!(b.level(refill, t0), 0.0);
        // One a second: half a second later, half a token; the level never passes the burst.
        let half = t0 + Duration::from_millis(500);
        assert_eq!(b.level(refill, half), 0.5);
        assert!(!b.take(refill, half));
        assert_eq!(b.level(refill, half + Duration::from_secs(60)), 2.0);
    }

    #[test]
    fn a_window_allows_max_in_any_sliding_second() {
        let t0 = Instant::now();
        let mut w = Window::new(3);
        assert_eq!((0..5).filter(|_| w.allow(t0)).count(), 3);
        assert!(!w.allow(t0 + Duration::from_millis(999)));
        assert!(w.allow(t0 + Duration::from_millis(1000)));
    }
}
