//! How long a seat whose connection ended is held, and how many such seats one address may
//! hold (docs/protocol.md §6): the rules that keep rooms with nobody connected from piling
//! up. A seat is held one resume window from the moment it went away; a resume that is
//! itself dropped within a window renews that at most [`MAX_RETURNS`] times in a row, and
//! one address holds at most so many away seats at once, whatever the transport.
//!
//! It owns the rule and the table of away seats by address; turning a seat away, and
//! freeing it, are `resume.rs`'s and the hub's.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::addresses::AddressKey;

/// How many times in a row a seat that comes back and goes away again within one resume
/// window gets a fresh window (this server's choice, docs/protocol.md §6). A seat that
/// stays connected for a whole window starts again from zero.
pub const MAX_RETURNS: u32 = 3;

/// Where a seat stands in its run of absences.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Hold {
    /// When its current connection took it.
    pub(super) attached_at: Option<Instant>,
    /// The end of its last hold, if it has been away since it last stayed a whole window.
    pub(super) until: Option<Instant>,
    /// Fresh windows given since then.
    pub(super) returns: u32,
}

impl Hold {
    /// A seat taken by a connection at `now`.
    pub(super) fn attached(now: Instant) -> Self {
        Hold {
            attached_at: Some(now),
            ..Hold::default()
        }
    }

    /// Its connection comes back at `now` (a resume): the run of absences goes on.
    pub(super) fn reattach(&mut self, now: Instant) {
        self.attached_at = Some(now);
    }

    /// Its connection went away at `now`: until when the seat is held (`None`: free it at
    /// once, its last hold having ended).
    pub(super) fn away(&mut self, now: Instant, window: Duration) -> Option<Instant> {
        let stayed = self
            .attached_at
            .is_none_or(|at| now.saturating_duration_since(at) >= window);
        if self.until.is_none() || stayed {
            self.returns = 0;
        } else if self.returns >= MAX_RETURNS {
            return self.until.filter(|&until| until > now);
        } else {
            self.returns += 1;
        }
        let until = now + window;
        self.until = Some(until);
        Some(until)
    }
}

/// Away seats by the address of the connection they lost. Every away seat with an address
/// is counted here exactly once.
#[derive(Debug)]
pub(super) struct AwaySeats {
    max: u32,
    table: Mutex<HashMap<AddressKey, u32>>,
}

impl AwaySeats {
    /// At most `max` away seats per address.
    pub(super) fn new(max: u32) -> Self {
        AwaySeats {
            max,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<AddressKey, u32>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more away seat for `key` if it holds fewer than the most; whether it
    /// did.
    pub(super) fn hold(&self, key: AddressKey) -> bool {
        let mut table = self.table();
        let held = table.entry(key).or_insert(0);
        if *held >= self.max {
            return false;
        }
        *held += 1;
        true
    }

    /// One of `key`'s away seats came back or was freed.
    pub(super) fn release(&self, key: AddressKey) {
        let mut table = self.table();
        if let Some(held) = table.get_mut(&key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                table.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn held(&self, key: AddressKey) -> u32 {
        self.table().get(&key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(30);

    #[test]
    fn quick_returns_renew_the_hold_a_bounded_number_of_times() {
        let t0 = Instant::now();
        let mut hold = Hold::attached(t0);
        let mut now = t0 + Duration::from_secs(1);
        assert_eq!(hold.away(now, W), Some(now + W), "the first absence");
        for _ in 0..MAX_RETURNS {
            now += Duration::from_secs(1);
            hold.reattach(now);
            now += Duration::from_secs(1);
            assert_eq!(hold.away(now, W), Some(now + W), "a fresh window");
        }
        let last = now + W;
        now += Duration::from_secs(1);
        hold.reattach(now);
        now += Duration::from_secs(1);
        assert_eq!(hold.away(now, W), Some(last), "no more renewals");
        hold.reattach(last);
        assert_eq!(hold.away(last + Duration::from_secs(1), W), None);
        // Staying a whole window starts again.
        let later = last + W + W;
        hold.reattach(later);
        let gone = later + W;
        assert_eq!(hold.away(gone, W), Some(gone + W));
    }

    #[test]
    fn an_address_holds_a_bounded_number_of_away_seats() {
        let seats = AwaySeats::new(2);
        let a = AddressKey::of("192.0.2.1".parse().unwrap());
        let b = AddressKey::of("192.0.2.2".parse().unwrap());
        assert!(seats.hold(a) && seats.hold(a));
        assert!(!seats.hold(a));
        assert!(seats.hold(b));
        seats.release(a);
        assert!(seats.hold(a));
        assert_eq!(seats.held(a), 2);
    }
}
