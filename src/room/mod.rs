//! The room core: the hub of live rooms, their seats, presence, host hand-over, fan-out,
//! and seats that survive the network (docs/protocol.md §6). It knows no transport: a member
//! is reached through its [`Outbox`](crate::outbox::Outbox) (`outbox.rs`: the bounded
//! queue, the datagram sink and the encode-once [`Relayed`](crate::outbox::Relayed)).
//!
//! A seat, not a connection, carries the identity: a connection holds a [`Membership`]
//! of a seat, and a seat whose connection ends without a leave stays, `away`, for the
//! resume window. Every reliable room message gets the room's next `seq` and is kept in
//! its history as sent.
//!
//! One concern a file; the [`Hub`]'s `impl` blocks are spread over the files of the
//! concerns they serve:
//!
//! ```text
//!   state.rs        a room's seats, `seq`, history and tempo; publish, remove, host hand-over
//!   join_limit.rs   per-address token buckets: failed joins (guessing room codes) and
//!                   rooms created
//!   budget.rs       away seats held per address; how long a seat is held, and how often
//!                   a resume may renew that
//!   hub.rs          the Hub: the rooms table, create, join, the session answer, accessors;
//!                   the Membership handle's fields
//!   trim.rs         the history budget: trims the least recently written histories
//!   resume.rs       held seats: away, expiry, resume with replay, rooms recreated after a
//!                   restart
//!   stored.rs       rooms brought back from the room store at start; the exact save at a
//!                   clean stop
//!   membership.rs   a connection's hold on a seat: broadcast (the hot path), tempo, leave
//!   silence.rs      seats that fall silent while their connection stays open (§11)
//!   sign_in.rs      a seat's sign-in: whose it is, until when, the refresh (§13)
//!   latency.rs      the `session:latency` reporter (docs/protocol.md §8)
//! ```
//!
//! Concurrency: the hub's map and each room's state sit behind `std::sync::Mutex`es held
//! for a few instructions and never across an `.await`. Membership changes take the hub
//! lock and then the room lock (always in that order); fan-out takes only the room lock.
//! Fan-out never waits: it uses `try_send` and direct datagram sends, so one slow reader
//! cannot delay anyone else. Held seats expire from one task ([`Hub::run_expiry`]).
//!
//! This module owns [`Limits`] and the public paths (`room::{Hub, Room, Membership,
//! Limits}`); the logic is in the files above.

use std::time::Duration;

use crate::history::HistoryLimits;

mod budget;
mod hub;
mod join_limit;
mod latency;
mod membership;
mod resume;
mod sign_in;
mod silence;
mod state;
mod stored;
#[cfg(test)]
mod testing;
mod trim;

pub use hub::Membership;
pub use hub::{Asked, Hub};
pub use state::Room;

/// Limits that the room core enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most participants in one room.
    pub max_room_size: usize,
    /// Failed joins (unknown room code) one IP address may make in a burst…
    pub join_failure_burst: u32,
    /// …and per minute after it. Room codes have about 30 bits; this, not their length,
    /// is what makes guessing them hopeless.
    pub join_failures_per_minute: u32,
    /// How long a seat whose connection ended is held; zero frees it at once (version 1).
    pub resume_window: Duration,
    /// How much of its recent reliable messages a room keeps for replay.
    pub history: HistoryLimits,
    /// Most live rooms, away-only rooms included.
    pub max_rooms: usize,
    /// Most bytes of history in all rooms together (each message counted with
    /// [`ENTRY_COST`](crate::history::ENTRY_COST) bytes of bookkeeping).
    pub history_budget: u64,
    /// Rooms one address may create in a burst…
    pub room_create_burst: u32,
    /// …and per minute after it.
    pub room_creates_per_minute: u32,
    /// Most away seats whose last connection came from one address, held at once.
    pub max_away_seats_per_address: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_room_size: 16,
            join_failure_burst: 20,
            join_failures_per_minute: 20,
            resume_window: Duration::from_secs(30),
            history: HistoryLimits::default(),
            max_rooms: 2000,
            history_budget: 128 * 1024 * 1024,
            room_create_burst: 20,
            room_creates_per_minute: 20,
            max_away_seats_per_address: 32,
        }
    }
}
