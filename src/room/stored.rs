//! Rooms brought back from the room store (docs/protocol.md §12). At start, every stored room
//! is put back as it was stored: its tempo, host, seats in join order (each `away`, each
//! with its current token's nonce, so only that token brings it back) and `seq`, with an
//! empty history. Each seat is held one resume window from then, as any away seat is; a
//! resume takes it back as after a dropped connection (`resume.rs`), and seats nobody
//! resumes leave as usual. At a clean stop every room is stored with its exact `seq`.
//!
//! Writing a room's record on each change is the hub's ([`Hub::save`]); the store itself
//! is `store/`.

use std::cmp::Reverse;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jam_protocol::{self as protocol, Participant, RoomCode, Status, UserId};
use tracing::{info, warn};

use super::budget::Hold;
use super::hub::Hub;
use super::state::{Expiry, Room, RoomState, Seat};
use crate::auth::SeatSignIn;
use crate::outbox::CloseReason;
use crate::store::RoomRecord;

impl Hub {
    /// Puts the stored rooms back, every seat away and held for one resume window from
    /// now; returns how many came back. Records that make no room (no seats, a bad code)
    /// are deleted; with no resume window (version 1), nothing comes back.
    pub fn restore(self: &Arc<Self>, records: Vec<RoomRecord>) -> usize {
        let now = Instant::now();
        let until = now + self.limits.resume_window;
        let mut restored = 0;
        let mut rooms = self.rooms();
        for record in records {
            let code = record.code.clone();
            if self.limits.resume_window.is_zero() {
                self.store.forget(&code);
                continue;
            }
            if RoomCode::normalize(&code).is_some_and(|c| rooms.contains_key(&c)) {
                continue; // brought in already (two requests for it raced)
            }
            if rooms.len() >= self.limits.max_rooms {
                warn!(room = %code, "more stored rooms than --max-rooms; left in the store");
                continue;
            }
            let Some((code, mut state)) = self.room_state(record, until) else {
                warn!(room = %code, "a stored room has no valid seat; deleted");
                self.store.forget(&code);
                continue;
            };
            self.save(&code, &mut state);
            let users: Vec<UserId> = state.seats.iter().map(|s| s.user.clone()).collect();
            let room = Arc::new(Room {
                code: code.clone(),
                state: Mutex::new(state),
            });
            let mut expiries = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
            for user in users {
                expiries.push(Reverse(Expiry {
                    at: until,
                    room: room.clone(),
                    user,
                    away: 1,
                }));
            }
            rooms.insert(code, room);
            restored += 1;
        }
        drop(rooms);
        self.expiry_added.notify_one();
        if restored > 0 {
            info!(rooms = restored, "rooms brought back from the room store");
        }
        restored
    }

    /// The state of a stored room: every seat away and held `until`; `None` when it has no
    /// valid seat or code.
    fn room_state(&self, record: RoomRecord, until: Instant) -> Option<(RoomCode, RoomState)> {
        let code = RoomCode::normalize(&record.code)?;
        let mut seats: Vec<Seat> = record
            .seats
            .into_iter()
            .filter_map(|s| {
                let user = UserId::parse(&s.user)?;
                Some(Seat {
                    participant: Participant {
                        id: user.to_string(),
                        name: s.name.clone(),
                        instrument: s.instrument,
                        status: Status::Away,
                        rtt_ms: None,
                    },
                    user,
                    name_key: protocol::name_key(&s.name),
                    order: s.order,
                    outbox: None,
                    attach: self.next_attach(),
                    nonce: s.nonce,
                    away: 1,
                    address: None,
                    hold: Hold {
                        attached_at: None,
                        until: Some(until),
                        returns: 0,
                    },
                    sign_in: s.sub.zip(s.exp).map(|(sub, exp)| SeatSignIn { sub, exp }),
                })
            })
            .collect();
        seats.sort_by_key(|s| s.order);
        let first = seats.first()?;
        let host = UserId::parse(&record.host)
            .filter(|h| seats.iter().any(|s| &s.user == h))
            .unwrap_or_else(|| first.user.clone());
        let next_order = seats.last().map_or(1, |s| s.order + 1);
        let mut rest = seats.into_iter();
        let mut state = RoomState::new(
            host,
            rest.next()?,
            record.tempo,
            self.limits.history,
            self.history_budget.clone(),
        );
        state.seats.extend(rest);
        state.seq = record.seq;
        state.seq_ceiling = record.seq;
        state.next_order = record.next_order.max(next_order);
        Some((code, state))
    }

    /// Before a hand-over to other nodes (docs/protocol.md §12): hands the store every room's
    /// exact state one last time and stops writing it (it is another node's to write from
    /// now); returns each room's code and seat count.
    pub fn freeze_for_hand_over(&self) -> Vec<(RoomCode, usize)> {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        rooms
            .iter()
            .map(|room| {
                let mut state = room.lock();
                let record = state.exact_record(&room.code);
                self.store.save(&record);
                state.handed_over = true;
                (room.code.clone(), state.seats.len())
            })
            .collect()
    }

    /// Hands room `code` over (frozen, or claimed by another node): takes it out of this
    /// hub and sends every member `moved` (a `session:moved`) before closing its
    /// connection ([`CloseReason::Moved`]).
    pub fn hand_over(&self, code: &RoomCode, moved: &bytes::Bytes) {
        let Some(room) = self.rooms().remove(code) else {
            return;
        };
        let mut state = room.lock();
        state.handed_over = true;
        for seat in &mut state.seats {
            match seat.outbox.take() {
                Some(outbox) => {
                    outbox.push_reliable(moved.clone());
                    outbox.close(CloseReason::Moved);
                }
                None => {
                    if let Some(key) = seat.address.take() {
                        self.away_seats.remove(key);
                    }
                }
            }
        }
    }

    /// Hands the store every room again (when it answers after an outage).
    pub fn save_all(&self) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        for room in rooms {
            self.save(&room.code, &mut room.lock());
        }
    }

    /// Hands the store every room with its exact `seq` (at a clean stop, after the
    /// connections have closed).
    pub fn save_all_exact(&self) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        for room in rooms {
            let record = room.lock().exact_record(&room.code);
            self.store.save(&record);
        }
    }
}
