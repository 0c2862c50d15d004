//! The latency reporter (docs/protocol.md §8): every seat present learns everyone's round
//! trip in `session:latency` when one appears or moves, at most every [`LATENCY_EVERY`].
//!
//! It only reads the round trips the transports measure (through each seat's outbox) and
//! remembers, in the room's state, what it last sent; measuring them is the transports'
//! job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jam_protocol::{self as protocol, UserId};
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::state::{Room, RoomState};

/// `session:latency` goes out when a round trip moved by at least this many ms…
const LATENCY_STEP_MS: u32 = 2;
/// …and at most this often.
const LATENCY_EVERY: Duration = Duration::from_secs(2);
/// How often the hub looks for round trips to report.
const LATENCY_TICK: Duration = Duration::from_millis(200);

impl RoomState {
    /// `session:latency` to every seat present when a round trip appeared or moved by
    /// [`LATENCY_STEP_MS`] since the last one, at most every [`LATENCY_EVERY`]
    /// (docs/protocol.md §8). Returns whether it was sent.
    fn report_latency(&mut self, now: Instant) -> bool {
        if self
            .latency_at
            .is_some_and(|at| now.saturating_duration_since(at) < LATENCY_EVERY)
        {
            return false;
        }
        let present = || {
            self.seats
                .iter()
                .filter_map(|s| Some((&s.user, s.outbox.as_ref()?.rtt_ms())))
        };
        let changed = present().any(|(user, rtt)| {
            let before = self
                .latency_sent
                .iter()
                .find(|(u, _)| u == user)
                .map(|(_, r)| *r);
            match (before, rtt) {
                (None, _) | (Some(None), Some(_)) => true,
                (Some(Some(a)), Some(b)) => a.abs_diff(b) >= LATENCY_STEP_MS,
                (Some(_), None) => false,
            }
        });
        // Nothing to say (the usual tick): no allocation.
        if !changed {
            return false;
        }
        let current: Vec<(UserId, Option<u32>)> = present().map(|(u, r)| (u.clone(), r)).collect();
        let bytes = protocol::encode_latency(current.iter().map(|(u, r)| (u, *r)));
        for outbox in self.seats.iter().filter_map(|s| s.outbox.as_ref()) {
            outbox.push_reliable(bytes.clone());
        }
        self.latency_sent = current;
        self.latency_at = Some(now);
        true
    }
}

impl Hub {
    /// Sends `session:latency` to the rooms whose round trips changed (docs/protocol.md §8).
    pub fn report_latency(&self, now: Instant) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        for room in rooms {
            room.lock().report_latency(now);
        }
    }

    /// Reports round trips as they change, until `shutdown`.
    pub async fn run_latency(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(LATENCY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.report_latency(Instant::now()),
            }
        }
    }
}
