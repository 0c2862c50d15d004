//! How long a seat whose connection ended is held, and how many such seats one address may
//! hold (docs/protocol.md §6): the rules that keep rooms with nobody connected from piling
//! up. A seat is held one resume window from the moment it went away; a resume that is
//! itself dropped within a window renews that at most [`MAX_RETURNS`] times in a row, and
//! one address holds at most so many away seats at once, whatever the transport.
//!
//! It owns the rule; the count of away seats by address is an
//! [`AddressCounts`](crate::addresses::AddressCounts) the hub keeps, and turning a seat
//! away, and freeing it, are `resume.rs`'s and the hub's.

use std::time::{Duration, Instant};

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
}
