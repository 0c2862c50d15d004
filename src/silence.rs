//! Silent seats, the connection's side (docs/protocol.md §11): when anything last arrived
//! from a connection, whether it is heartbeating (at least [`HEARTBEATS`] `clock:ping`s
//! within [`HEARTBEAT_WINDOW`]), and when its silence has lasted the limit.
//!
//! No timer runs per message: the session stamps the arrival time it reads anyway (one
//! clock read per message, which the rate budget and the relayed `serverTime` share), and
//! each transport's loop waits on [`Silence::deadline`], recomputed as it goes round. What
//! the room does with a silent seat is `room/silence.rs`'s.

use std::time::{Duration, Instant};

/// A connection is heartbeating when this many `clock:ping`s arrived…
pub const HEARTBEATS: usize = 3;
/// …within this long before the last thing heard from it.
pub const HEARTBEAT_WINDOW: Duration = Duration::from_secs(10);

/// One connection's silence clock.
#[derive(Debug)]
pub struct Silence {
    /// How long a heartbeating connection may be silent; zero turns the rule off.
    limit: Duration,
    /// When anything last arrived.
    last_heard: Instant,
    /// When the last [`HEARTBEATS`] pings arrived (a ring; `None` until that many came).
    pings: [Option<Instant>; HEARTBEATS],
    next_ping: usize,
    /// The connection was found silent and nothing has arrived since.
    silent: bool,
}

impl Silence {
    /// A clock that last heard the connection at `now` (when it opened).
    pub fn new(limit: Duration, now: Instant) -> Self {
        Silence {
            limit,
            last_heard: now,
            pings: [None; HEARTBEATS],
            next_ping: 0,
            silent: false,
        }
    }

    /// Something arrived at `now`; `true` when that ends a silence (the seat is back).
    #[inline]
    pub fn heard(&mut self, now: Instant) -> bool {
        self.last_heard = now;
        std::mem::take(&mut self.silent)
    }

    /// A `clock:ping` arrived at `now` (after [`Silence::heard`]).
    pub fn ping(&mut self, now: Instant) {
        self.pings[self.next_ping] = Some(now);
        self.next_ping = (self.next_ping + 1) % HEARTBEATS;
    }

    /// When anything last arrived.
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Whether the connection is silent now (found so, and nothing arrived since).
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// Whether it was heartbeating when it was last heard: its last [`HEARTBEATS`] pings
    /// all arrived within [`HEARTBEAT_WINDOW`] before that.
    fn heartbeating(&self) -> bool {
        let mut earliest = self.last_heard;
        for ping in self.pings {
            match ping {
                Some(at) => earliest = earliest.min(at),
                None => return false,
            }
        }
        self.last_heard.saturating_duration_since(earliest) <= HEARTBEAT_WINDOW
    }

    /// When the connection turns silent if nothing arrives before: `None` when the rule
    /// is off, it is not heartbeating, or it is silent already.
    pub fn deadline(&self) -> Option<Instant> {
        if self.limit.is_zero() || self.silent || !self.heartbeating() {
            return None;
        }
        Some(self.last_heard + self.limit)
    }

    /// Marks the connection silent if its deadline has passed by `now`; `true` only on
    /// the check that finds it so (the seat turns away once).
    pub fn fall_silent(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if deadline <= now => {
                self.silent = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(3);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A clock that heard pings at `pings_ms` (each also an arrival).
    fn pinged(t0: Instant, pings_ms: &[u64]) -> Silence {
        let mut s = Silence::new(LIMIT, t0);
        for &ms in pings_ms {
            s.heard(at(t0, ms));
            s.ping(at(t0, ms));
        }
        s
    }

    #[test]
    fn three_pings_within_ten_seconds_make_a_heartbeat_and_silence_then_counts() {
        let t0 = Instant::now();
        let s = pinged(t0, &[0, 1000]);
        assert_eq!(s.deadline(), None, "two pings are no heartbeat");
        let mut s = pinged(t0, &[0, 1000, 2000]);
        assert_eq!(s.deadline(), Some(at(t0, 5000)));
        assert!(!s.fall_silent(at(t0, 4999)));
        assert!(s.fall_silent(at(t0, 5000)));
        assert!(s.is_silent());
        assert!(!s.fall_silent(at(t0, 9000)), "found silent once");
        assert_eq!(s.deadline(), None);
        assert!(s.heard(at(t0, 9000)), "the first thing heard ends it");
        assert!(!s.heard(at(t0, 9001)));
    }

    #[test]
    fn pings_spread_over_more_than_ten_seconds_are_no_heartbeat() {
        let t0 = Instant::now();
        let s = pinged(t0, &[0, 6000, 10_001]);
        assert_eq!(s.deadline(), None);
        // Notes keep arriving after the last ping: the window counts back from them.
        let mut s = pinged(t0, &[2000, 3000, 4000]);
        s.heard(at(t0, 11_000));
        assert_eq!(s.deadline(), Some(at(t0, 14_000)));
        s.heard(at(t0, 12_500));
        assert_eq!(s.deadline(), None, "the pings are older than 10 s");
    }

    #[test]
    fn a_zero_limit_turns_the_rule_off() {
        let t0 = Instant::now();
        let mut s = Silence::new(Duration::ZERO, t0);
        for ms in [0, 100, 200, 300] {
            s.heard(at(t0, ms));
            s.ping(at(t0, ms));
        }
        assert_eq!(s.deadline(), None);
        assert!(!s.fall_silent(at(t0, 3_600_000)));
    }
}
