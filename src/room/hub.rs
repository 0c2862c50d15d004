//! The [`Hub`]: every live room by code, and the ways into one: create, join (with the
//! per-address failed-join budget), the answer that seats a connection, and freeing a
//! seat. Also the hub's accessors (stats, clock, counts) for the rest of the server, and
//! the [`Membership`] handle itself (what it holds; what it does is `membership.rs`'s).
//!
//! Held seats, resume and restart recovery are `impl Hub` blocks in `resume.rs`; the
//! latency reporter is in `latency.rs`. Those files import this one, never the other way
//! round.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use jam_protocol::{
    self as protocol, ErrorCode, Name, Participant, ProtocolError, RoomCode, SessionData, Status,
    Tempo, UserId,
};
use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::budget::Hold;
use super::join_limit::AddressBudget;
use super::state::{Expiry, Room, RoomState, Seat};
use super::Limits;
use crate::addresses::{AddressCounts, AddressKey};
use crate::auth::SeatSignIn;
use crate::clock::ServerClock;
use crate::credentials::{self, Claims, ResumeKey};
use crate::history::HistoryBudget;
use crate::outbox::Outbox;
use crate::stats::Stats;
use crate::store::Store;

/// Every live room, by code.
pub struct Hub {
    rooms: Mutex<HashMap<RoomCode, Arc<Room>>>,
    join_failures: AddressBudget,
    creations: AddressBudget,
    /// Away seats by the address of the connection they lost, each counted once.
    pub(super) away_seats: AddressCounts,
    pub(super) history_budget: Arc<HistoryBudget>,
    pub(super) limits: Limits,
    pub(super) stats: Arc<Stats>,
    pub(super) key: ResumeKey,
    pub(super) clock: ServerClock,
    pub(super) started: Instant,
    next_attach: AtomicU64,
    pub(super) expiries: Mutex<BinaryHeap<Reverse<Expiry>>>,
    pub(super) expiry_added: Notify,
    /// Where each room's state outlives the process (docs/protocol.md §12).
    pub(super) store: Arc<Store>,
}

impl Hub {
    /// An empty hub with a fresh resume key (tokens die with the process).
    pub fn new(limits: Limits) -> Arc<Self> {
        Hub::with_key(limits, ResumeKey::generate())
    }

    /// An empty hub whose resume tokens are signed with `key`, with its rooms' state in
    /// memory only.
    pub fn with_key(limits: Limits, key: ResumeKey) -> Arc<Self> {
        Hub::with_store(limits, key, Store::memory())
    }

    /// An empty hub whose resume tokens are signed with `key` and whose rooms' state is
    /// kept in `store`.
    pub fn with_store(limits: Limits, key: ResumeKey, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            join_failures: AddressBudget::new(
                limits.join_failures_per_minute,
                limits.join_failure_burst,
            ),
            creations: AddressBudget::new(limits.room_creates_per_minute, limits.room_create_burst),
            away_seats: AddressCounts::new(limits.max_away_seats_per_address as usize),
            history_budget: HistoryBudget::new(limits.history_budget),
            limits,
            stats: Arc::new(Stats::default()),
            key,
            clock: ServerClock::new(),
            started: Instant::now(),
            next_attach: AtomicU64::new(0),
            expiries: Mutex::new(BinaryHeap::new()),
            expiry_added: Notify::new(),
            store,
        })
    }

    /// The room store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Hands the room store the state of `room` (docs/protocol.md §12): after every change
    /// of it, never per note.
    pub(super) fn save(&self, code: &RoomCode, state: &mut RoomState) {
        if !state.handed_over {
            self.store.save(&state.record(code));
        }
    }

    /// The server-wide counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The server's clock.
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    pub(super) fn rooms(&self) -> MutexGuard<'_, HashMap<RoomCode, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live rooms.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Seats in every room: (active, away; a silent seat is away). Locks each room in
    /// turn, briefly, outside the hub's lock: for the metrics, not for the event path.
    pub fn seat_counts(&self) -> (usize, usize) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        rooms.iter().fold((0, 0), |(active, away), room| {
            let state = room.lock();
            let gone = state
                .seats
                .iter()
                .filter(|s| s.participant.status == Status::Away)
                .count();
            (active + state.seats.len() - gone, away + gone)
        })
    }

    /// Seats in every room, away ones included.
    pub fn seat_total(&self) -> usize {
        let (active, away) = self.seat_counts();
        active + away
    }

    /// The codes of the live rooms.
    pub fn room_codes(&self) -> Vec<RoomCode> {
        self.rooms().keys().cloned().collect()
    }

    /// Bytes of history kept in every room (each message with its bookkeeping).
    pub fn history_bytes(&self) -> u64 {
        self.history_budget.used()
    }

    /// Looks a live room up by its canonical code.
    pub fn room(&self, code: &RoomCode) -> Option<Arc<Room>> {
        self.rooms().get(code).cloned()
    }

    pub(super) fn next_attach(&self) -> u64 {
        self.next_attach.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new seat held by `outbox` (a connection from `peer`), with its first token's
    /// nonce.
    pub(super) fn new_seat(
        &self,
        user: UserId,
        name: Name,
        instrument: String,
        order: u64,
        outbox: &Outbox,
        peer: Option<IpAddr>,
    ) -> Seat {
        Seat {
            participant: Participant {
                id: user.to_string(),
                name: name.display,
                instrument,
                status: Status::Active,
                rtt_ms: None,
            },
            user,
            name_key: name.key,
            order,
            outbox: Some(outbox.clone()),
            attach: self.next_attach(),
            nonce: credentials::nonce(),
            away: 0,
            address: peer.map(AddressKey::of),
            hold: Hold::attached(Instant::now()),
            sign_in: None,
        }
    }

    /// The hold on `seat` of `room` for the connection it is given to.
    pub(super) fn membership(self: &Arc<Self>, room: &Arc<Room>, seat: &Seat) -> Membership {
        Membership::new(
            self.clone(),
            room.clone(),
            seat.user.clone(),
            seat.order,
            seat.attach,
        )
    }

    /// The answer that seats a connection: `session:created`, `joined` or `resumed`, with
    /// the snapshot, the room's `seq` and the seat's current token.
    pub(super) fn session_answer(
        &self,
        event: &str,
        code: &RoomCode,
        user: &UserId,
        state: &RoomState,
        replayed: Option<bool>,
        id: Option<&RawValue>,
    ) -> Bytes {
        let participants: Vec<Participant> = state.seats.iter().map(Seat::snapshot).collect();
        let token = state
            .seats
            .iter()
            .find(|s| &s.user == user)
            .map(|seat| self.token(code, seat))
            .unwrap_or_default();
        protocol::encode(
            event,
            SessionData {
                room_code: code,
                user_id: user,
                host_id: &state.host,
                participants: &participants,
                seq: state.seq,
                resume_token: &token,
                server_time: self.clock.now_ms(),
                tempo: &state.tempo,
                replayed,
            },
            id,
        )
    }

    /// The seat's current resume token.
    pub(super) fn token(&self, code: &RoomCode, seat: &Seat) -> String {
        self.key.sign(&Claims {
            room: code.to_string(),
            user: seat.user.to_string(),
            name: seat.participant.name.clone(),
            instrument: seat.participant.instrument.clone(),
            order: seat.order,
            nonce: seat.nonce.clone(),
        })
    }

    /// Creates a room with the caller as host and queues `session:created` (with `id`)
    /// on the caller's outbox. `peer` is the caller's IP address, whose room creations
    /// are limited (`None`: not limited, for in-process use); the server's room cap
    /// limits everyone.
    pub fn create(
        self: &Arc<Self>,
        name: Name,
        instrument: String,
        outbox: &Outbox,
        id: Option<&RawValue>,
        peer: Option<IpAddr>,
    ) -> Result<Membership, ProtocolError> {
        let asked = Asked {
            name,
            instrument,
            sign_in: None,
        };
        self.create_as(None, asked, outbox, id, peer)
    }

    /// [`Hub::create`] under `code` when given (one reserved across nodes), else under a
    /// fresh code.
    pub fn create_as(
        self: &Arc<Self>,
        code: Option<RoomCode>,
        asked: Asked,
        outbox: &Outbox,
        id: Option<&RawValue>,
        peer: Option<IpAddr>,
    ) -> Result<Membership, ProtocolError> {
        if !self.store.is_ready() {
            return Err(ProtocolError::new(
                ErrorCode::Unavailable,
                "the server's room store is unreachable; try again in a moment",
            ));
        }
        let mut rooms = self.rooms();
        self.check_room_cap(&rooms)?;
        if peer.is_some_and(|ip| !self.creations.take(ip, Instant::now())) {
            let limited = &self.stats.rate_limited_room_requests;
            limited.fetch_add(1, Ordering::Relaxed);
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                "too many rooms created from your address; wait a minute",
            ));
        }
        let Asked {
            name,
            instrument,
            sign_in,
        } = asked;
        let mut seat = self.new_seat(UserId::generate(), name, instrument, 1, outbox, peer);
        seat.sign_in = sign_in;
        let code = match code.filter(|c| !rooms.contains_key(c)) {
            Some(code) => code,
            None => loop {
                let code = RoomCode::generate();
                if !rooms.contains_key(&code) {
                    break code;
                }
            },
        };
        Ok(self.open_room(&mut rooms, code, seat, false, outbox, id))
    }

    /// `rate_limited` when the server holds as many rooms as it may (docs/protocol.md §2):
    /// the answer a client already meets with waiting and trying again.
    pub(super) fn check_room_cap(
        &self,
        rooms: &HashMap<RoomCode, Arc<Room>>,
    ) -> Result<(), ProtocolError> {
        if rooms.len() < self.limits.max_rooms {
            return Ok(());
        }
        let limited = &self.stats.rate_limited_room_requests;
        limited.fetch_add(1, Ordering::Relaxed);
        Err(ProtocolError::new(
            ErrorCode::RateLimited,
            "the server holds as many rooms as it can; try again later",
        ))
    }

    /// Puts a room whose only seat is `seat` (its host) in the hub's map, and queues the
    /// seat's answer: `session:created`, or for a room `restored` after a restart
    /// `session:resumed` with nothing replayed.
    pub(super) fn open_room(
        self: &Arc<Self>,
        rooms: &mut HashMap<RoomCode, Arc<Room>>,
        code: RoomCode,
        seat: Seat,
        restored: bool,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        let user = seat.user.clone();
        let (order, attach) = (seat.order, seat.attach);
        let tempo = Tempo::default_at(self.clock.now_ms());
        let budget = self.history_budget.clone();
        let mut state = RoomState::new(user.clone(), seat, tempo, self.limits.history, budget);
        state.restored = restored;
        self.save(&code, &mut state);
        // The answer is queued while the hub lock is held, before the room is in the
        // map: nobody can join it until then, so it is the seat's first message about this
        // room, ahead of any `session:user-joined`.
        let (event, replayed) = match restored {
            false => (protocol::event::CREATED, None),
            true => (protocol::event::RESUMED, Some(false)),
        };
        outbox.push_reliable(self.session_answer(event, &code, &user, &state, replayed, id));
        let room = Arc::new(Room {
            code: code.clone(),
            state: Mutex::new(state),
        });
        rooms.insert(code, room.clone());
        Membership::new(self.clone(), room, user, order, attach)
    }

    /// Joins a room by the code the client typed: queues `session:joined` (with `id`) for
    /// the caller and `session:user-joined` for everyone else. `peer` is the caller's IP
    /// address, whose failed joins are limited (`None`: not limited, for in-process use).
    pub fn join(
        self: &Arc<Self>,
        code_input: &str,
        name: Name,
        instrument: String,
        outbox: &Outbox,
        id: Option<&RawValue>,
        peer: Option<IpAddr>,
    ) -> Result<Membership, ProtocolError> {
        let asked = Asked {
            name,
            instrument,
            sign_in: None,
        };
        self.join_as(code_input, asked, outbox, id, peer)
    }

    /// [`Hub::join`] of the seat `asked` for, with its sign-in: a `sub` that holds a seat
    /// in the room already (active or away) answers `name_taken` (docs/protocol.md §13).
    pub fn join_as(
        self: &Arc<Self>,
        code_input: &str,
        asked: Asked,
        outbox: &Outbox,
        id: Option<&RawValue>,
        peer: Option<IpAddr>,
    ) -> Result<Membership, ProtocolError> {
        let Asked {
            name,
            instrument,
            sign_in,
        } = asked;
        let now = Instant::now();
        if peer.is_some_and(|ip| !self.join_failures.allowed(ip, now)) {
            let limited = &self.stats.rate_limited_joins;
            limited.fetch_add(1, Ordering::Relaxed);
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                "too many joins of unknown rooms from your address; wait a minute",
            ));
        }
        let not_found = || {
            if let Some(ip) = peer {
                self.join_failures.record(ip, now);
            }
            ProtocolError::new(ErrorCode::RoomNotFound, "no room has that code")
        };
        let code = RoomCode::normalize(code_input).ok_or_else(not_found)?;
        let rooms = self.rooms();
        let room = rooms.get(&code).cloned().ok_or_else(not_found)?;
        let mut state = room.lock();
        self.check_room_for(&state, &name.key)?;
        if let Some(sign_in) = &sign_in {
            let sub = Some(sign_in.sub.as_str());
            if state
                .seats
                .iter()
                .any(|s| s.sign_in.as_ref().map(|x| x.sub.as_str()) == sub)
            {
                return Err(ProtocolError::new(
                    ErrorCode::NameTaken,
                    "you already have a seat in this room (one per signed-in user)",
                ));
            }
        }
        let user = UserId::generate();
        let order = state.next_order;
        state.next_order += 1;
        let mut seat = self.new_seat(user.clone(), name, instrument, order, outbox, peer);
        seat.sign_in = sign_in;
        let membership = self.membership(&room, &seat);
        let joined = seat.participant.clone();
        state.publish(Some(order), |seq| {
            protocol::encode_user_joined(&joined, seq)
        });
        state.seats.push(seat);
        // Queued under the room lock, after the `session:user-joined` above: every later
        // room message (a broadcast, someone else's join or leave) takes that lock too, so
        // it reaches the newcomer after this answer, and the participant list and `seq` it
        // carries are exactly the state those messages change.
        outbox.push_reliable(self.session_answer(
            protocol::event::JOINED,
            &code,
            &user,
            &state,
            None,
            id,
        ));
        self.save(&code, &mut state);
        drop(state);
        drop(rooms);
        Ok(membership)
    }

    /// `room_full` or `name_taken` for a seat with the name `key` coming into `state`.
    pub(super) fn check_room_for(&self, state: &RoomState, key: &str) -> Result<(), ProtocolError> {
        if state.seats.len() >= self.limits.max_room_size {
            return Err(ProtocolError::new(
                ErrorCode::RoomFull,
                format!(
                    "the room is full ({} participants)",
                    self.limits.max_room_size
                ),
            ));
        }
        if state.seats.iter().any(|s| s.name_key == key) {
            return Err(ProtocolError::new(
                ErrorCode::NameTaken,
                "someone in the room already has that name",
            ));
        }
        Ok(())
    }

    /// Frees a seat: `session:user-left` to the others, then `session:host-changed` if the
    /// host left; an empty room is removed from the hub. With `attach`, only while that
    /// membership still holds the seat.
    pub(super) fn remove(&self, room: &Arc<Room>, user: &UserId, attach: Option<u64>) {
        let mut rooms = self.rooms();
        let mut state = room.lock();
        if state.handed_over {
            return; // its seats are another node's now
        }
        let held = state
            .seats
            .iter()
            .any(|s| &s.user == user && attach.is_none_or(|a| s.attach == a));
        if !held {
            return;
        }
        if let Some(seat) = state.seat_mut(user).filter(|s| s.is_away()) {
            if let Some(key) = seat.address {
                self.away_seats.remove(key);
            }
        }
        state.remove(user);
        if state.seats.is_empty() {
            rooms.remove(&room.code);
            self.store.forget(room.code.as_str());
        } else {
            self.save(&room.code, &mut state);
        }
    }
}

/// What a create or join asks for: the seat's name and instrument, and with sign-in on,
/// whose seat it is and until when.
#[derive(Debug)]
pub struct Asked {
    /// The seat's name (the token's `name` claim when it has one).
    pub name: Name,
    /// The seat's instrument.
    pub instrument: String,
    /// The sign-in, when sign-in is on.
    pub sign_in: Option<SeatSignIn>,
}

/// A connection's hold on a seat. Dropping it ends the hold as a lost connection does
/// (the seat turns away, or is freed when there is no resume window), so presence is
/// right on every exit path; [`Membership::leave`] frees the seat at once.
pub struct Membership {
    pub(super) hub: Arc<Hub>,
    pub(super) room: Arc<Room>,
    pub(super) user: UserId,
    /// The seat's place in the join order: how fan-out and the history tell it apart.
    pub(super) order: u64,
    pub(super) attach: u64,
    /// The room `seq` this member's last reliable event got, to size the next one's
    /// buffer.
    pub(super) seq_hint: AtomicU64,
    pub(super) active: bool,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("room", &self.room.code)
            .field("user", &self.user)
            .finish()
    }
}

impl Membership {
    /// The hold of `user`'s seat (at `order` in the join order) under the attach number
    /// `attach`.
    pub(super) fn new(
        hub: Arc<Hub>,
        room: Arc<Room>,
        user: UserId,
        order: u64,
        attach: u64,
    ) -> Self {
        Membership {
            hub,
            room,
            user,
            order,
            attach,
            seq_hint: AtomicU64::new(0),
            active: true,
        }
    }

    /// The room's canonical code.
    pub fn room_code(&self) -> &RoomCode {
        &self.room.code
    }

    /// The member's user id.
    pub fn user(&self) -> &UserId {
        &self.user
    }
}

#[cfg(test)]
mod tests {
    use jam_protocol::ErrorCode;

    use crate::room::testing::{member, name};
    use crate::room::{Hub, Limits};

    #[test]
    fn names_are_unique_case_insensitively_and_rooms_have_a_size() {
        let hub = Hub::new(Limits {
            max_room_size: 2,
            ..Limits::default()
        });
        let a = member(&hub, 16);
        let ma = hub
            .create(name("Émile"), "".into(), &a.outbox, None, None)
            .unwrap();
        let code = ma.room_code().to_string();
        let err = hub
            .join(&code, name("éMILE"), "".into(), &a.outbox, None, None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NameTaken);
        let _mb = hub
            .join(&code, name("B"), "".into(), &a.outbox, None, None)
            .unwrap();
        let err = hub
            .join(&code, name("C"), "".into(), &a.outbox, None, None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RoomFull);
    }

    #[test]
    fn rooms_have_a_global_cap_and_each_address_a_creation_budget() {
        let hub = Hub::new(Limits {
            max_rooms: 3,
            room_create_burst: 2,
            room_creates_per_minute: 1,
            ..Limits::default()
        });
        let a = member(&hub, 16);
        let ip = |s: &str| Some(s.parse().unwrap());
        let create = |who: &str, peer| {
            hub.create(name(who), "".into(), &a.outbox, None, peer)
                .map_err(|e| e.code)
        };
        let _r1 = create("A", ip("2001:db8::1")).unwrap();
        let _r2 = create("B", ip("2001:db8::2")).unwrap();
        assert_eq!(
            create("C", ip("2001:db8::3")).map(|_| ()),
            Err(ErrorCode::RateLimited),
            "one /64 shares one budget"
        );
        let r3 = create("D", ip("192.0.2.1")).unwrap();
        assert_eq!(
            create("E", ip("192.0.2.2")).map(|_| ()),
            Err(ErrorCode::RateLimited),
            "the server is full"
        );
        assert_eq!(hub.room_count(), 3);
        r3.leave();
        assert!(
            create("E", ip("192.0.2.2")).is_ok(),
            "a room that ends frees a place"
        );
    }
}
