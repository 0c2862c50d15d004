//! The room core: the hub of live rooms, their members (seats), presence, host hand-over
//! and fan-out. It knows no transport: a member is reached through its [`Outbox`]
//! (`outbox.rs`: the bounded queue, the datagram sink and the encode-once [`Relayed`]).
//!
//! Concurrency: the hub's map and each room's state sit behind `std::sync::Mutex`es held
//! for a few instructions and never across an `.await`. Membership changes take the hub
//! lock and then the room lock (always in that order); fan-out takes only the room lock.
//! Fan-out never waits: it uses `try_send` and direct datagram sends, so one slow reader
//! cannot delay anyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use jam_protocol::{
    self as protocol, ErrorCode, Name, Participant, ProtocolError, RoomCode, SessionData, UserId,
};
use serde_json::value::RawValue;

use crate::outbox::{Delivered, Outbox, Path, Relayed};
use crate::stats::Stats;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_room_size: 16,
            join_failure_burst: 20,
            join_failures_per_minute: 20,
        }
    }
}

/// Per-IP budget of failed joins: a token bucket per address, forgotten once full again.
#[derive(Debug, Default)]
struct JoinFailures {
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl JoinFailures {
    fn tokens(&mut self, ip: IpAddr, limits: &Limits, now: Instant) -> f64 {
        let burst = f64::from(limits.join_failure_burst);
        let rate = f64::from(limits.join_failures_per_minute) / 60.0;
        match self.buckets.get(&ip) {
            Some(&(tokens, at)) => {
                (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(burst)
            }
            None => burst,
        }
    }

    /// Whether `ip` may try a join now.
    fn allowed(&mut self, ip: IpAddr, limits: &Limits, now: Instant) -> bool {
        self.tokens(ip, limits, now) >= 1.0
    }

    /// Records one failed join by `ip`.
    fn record(&mut self, ip: IpAddr, limits: &Limits, now: Instant) {
        let tokens = (self.tokens(ip, limits, now) - 1.0).max(0.0);
        if self.buckets.len() >= 65_536 {
            // Forget addresses whose bucket has refilled; they lose nothing by it.
            let burst = f64::from(limits.join_failure_burst);
            let rate = f64::from(limits.join_failures_per_minute) / 60.0;
            self.buckets.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        self.buckets.insert(ip, (tokens, now));
    }
}

/// One place in a room. The seat, not the connection, carries the user's identity, so a
/// later version can hand a seat to a reconnecting client by swapping its outbox.
struct Seat {
    participant: Participant,
    user: UserId,
    name_key: String,
    outbox: Outbox,
}

struct RoomState {
    seats: Vec<Seat>,
    host: UserId,
}

/// A live room.
pub struct Room {
    code: RoomCode,
    state: Mutex<RoomState>,
}

impl Room {
    /// Its canonical code.
    pub fn code(&self) -> &RoomCode {
        &self.code
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than stopping the whole room, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.lock().seats.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every live room, by code.
pub struct Hub {
    rooms: Mutex<HashMap<RoomCode, Arc<Room>>>,
    join_failures: Mutex<JoinFailures>,
    limits: Limits,
    stats: Arc<Stats>,
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            join_failures: Mutex::new(JoinFailures::default()),
            limits,
            stats: Arc::new(Stats::default()),
        })
    }

    /// The server-wide counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomCode, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live rooms.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Looks a live room up by its canonical code.
    pub fn room(&self, code: &RoomCode) -> Option<Arc<Room>> {
        self.rooms().get(code).cloned()
    }

    /// Creates a room with the caller as host and queues `session:created` (with `id`)
    /// on the caller's outbox.
    pub fn create(
        self: &Arc<Self>,
        name: Name,
        instrument: String,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        let user = UserId::generate();
        let seat = new_seat(user.clone(), name, instrument, outbox.clone());
        let mut rooms = self.rooms();
        let code = loop {
            let code = RoomCode::generate();
            if !rooms.contains_key(&code) {
                break code;
            }
        };
        let room = Arc::new(Room {
            code: code.clone(),
            state: Mutex::new(RoomState {
                seats: vec![seat],
                host: user.clone(),
            }),
        });
        {
            // The answer is queued while the hub lock is held, before the room is in the
            // map: nobody can join it until then, so `session:created` is the creator's
            // first message about this room, ahead of any `session:user-joined`.
            let state = room.lock();
            outbox.push_reliable(session_answer(
                protocol::event::CREATED,
                &code,
                &user,
                &state,
                id,
            ));
        }
        rooms.insert(code, room.clone());
        drop(rooms);
        Membership {
            hub: self.clone(),
            room,
            user,
            active: true,
        }
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
        let now = Instant::now();
        if let Some(ip) = peer {
            let mut failures = self.join_failures.lock().unwrap_or_else(|e| e.into_inner());
            if !failures.allowed(ip, &self.limits, now) {
                return Err(ProtocolError::new(
                    ErrorCode::RateLimited,
                    "too many joins of unknown rooms from your address; wait a minute",
                ));
            }
        }
        let not_found = || {
            if let Some(ip) = peer {
                self.join_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(ip, &self.limits, now);
            }
            ProtocolError::new(ErrorCode::RoomNotFound, "no room has that code")
        };
        let code = RoomCode::normalize(code_input).ok_or_else(not_found)?;
        let rooms = self.rooms();
        let room = rooms.get(&code).cloned().ok_or_else(not_found)?;
        let mut state = room.lock();
        if state.seats.len() >= self.limits.max_room_size {
            return Err(ProtocolError::new(
                ErrorCode::RoomFull,
                format!(
                    "the room is full ({} participants)",
                    self.limits.max_room_size
                ),
            ));
        }
        if state.seats.iter().any(|s| s.name_key == name.key) {
            return Err(ProtocolError::new(
                ErrorCode::NameTaken,
                "someone in the room already has that name",
            ));
        }
        let user = UserId::generate();
        let seat = new_seat(user.clone(), name, instrument, outbox.clone());
        let joined = protocol::encode_user_joined(&seat.participant);
        for other in &state.seats {
            other.outbox.push_reliable(joined.clone());
        }
        state.seats.push(seat);
        // Queued under the room lock, like the `session:user-joined` above: every later
        // room message (a broadcast, someone else's join or leave) takes that lock too, so
        // it reaches the newcomer after this answer, and the participant list it carries
        // is exactly the state those messages change.
        outbox.push_reliable(session_answer(
            protocol::event::JOINED,
            &code,
            &user,
            &state,
            id,
        ));
        drop(state);
        drop(rooms);
        Ok(Membership {
            hub: self.clone(),
            room,
            user,
            active: true,
        })
    }

    /// Removes a member: `session:user-left` to the others, then `session:host-changed`
    /// if the host left; an empty room is removed from the hub.
    fn remove(&self, room: &Arc<Room>, user: &UserId) {
        let mut rooms = self.rooms();
        let mut state = room.lock();
        let Some(pos) = state.seats.iter().position(|s| &s.user == user) else {
            return;
        };
        state.seats.remove(pos);
        if state.seats.is_empty() {
            rooms.remove(&room.code);
            return;
        }
        let left = protocol::encode_user_left(user);
        for seat in &state.seats {
            seat.outbox.push_reliable(left.clone());
        }
        if &state.host == user {
            let host = state.seats[0].user.clone();
            let changed = protocol::encode_host_changed(&host);
            for seat in &state.seats {
                seat.outbox.push_reliable(changed.clone());
            }
            state.host = host;
        }
    }
}

fn new_seat(user: UserId, name: Name, instrument: String, outbox: Outbox) -> Seat {
    Seat {
        participant: Participant {
            id: user.to_string(),
            name: name.display,
            instrument,
        },
        user,
        name_key: name.key,
        outbox,
    }
}

fn session_answer(
    event: &str,
    code: &RoomCode,
    user: &UserId,
    state: &RoomState,
    id: Option<&RawValue>,
) -> Bytes {
    let participants: Vec<Participant> =
        state.seats.iter().map(|s| s.participant.clone()).collect();
    protocol::encode(
        event,
        SessionData {
            room_code: code,
            user_id: user,
            host_id: &state.host,
            participants: &participants,
        },
        id,
    )
}

/// A connection's place in a room. Dropping it leaves the room, so presence is cleaned
/// up on every exit path (error, disconnect, shutdown).
pub struct Membership {
    hub: Arc<Hub>,
    room: Arc<Room>,
    user: UserId,
    active: bool,
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
    /// The room's canonical code.
    pub fn room_code(&self) -> &RoomCode {
        &self.room.code
    }

    /// The member's user id.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Relays an event to every other member of the room.
    pub fn broadcast(&self, event: &Relayed, path: Path) {
        let (mut handed, mut datagrams, mut dropped) = (0, 0, 0);
        {
            let state = self.room.lock();
            for seat in state.seats.iter().filter(|s| s.user != self.user) {
                handed += 1;
                match seat.outbox.deliver(event, path) {
                    Delivered::Queued => {}
                    Delivered::Datagram => datagrams += 1,
                    Delivered::Dropped => dropped += 1,
                }
            }
        }
        // Shared counters are touched once per event, not once per receiver.
        let stats = &self.hub.stats;
        stats.deliveries.fetch_add(handed, Ordering::Relaxed);
        if datagrams > 0 {
            stats.datagrams_out.fetch_add(datagrams, Ordering::Relaxed);
        }
        if dropped > 0 {
            stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Leaves the room now (the same as dropping it).
    pub fn leave(mut self) {
        self.active = false;
        self.hub.remove(&self.room, &self.user);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.active {
            self.hub.remove(&self.room, &self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::CloseReason;
    use jam_protocol::{validate_name, ServerEvent, ServerMessage};
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    struct Member {
        outbox: Outbox,
        rx: mpsc::Receiver<Bytes>,
        token: CancellationToken,
    }

    fn member(hub: &Hub, capacity: usize) -> Member {
        let token = CancellationToken::new();
        let (outbox, rx) = Outbox::new(capacity, None, token.clone(), hub.stats().clone());
        Member { outbox, rx, token }
    }

    fn next(m: &mut Member) -> ServerEvent {
        let bytes = m.rx.try_recv().expect("a queued message");
        ServerMessage::from_json(&bytes).unwrap().event
    }

    fn name(s: &str) -> Name {
        validate_name(s).unwrap()
    }

    #[test]
    fn create_join_leave_and_host_hand_over() {
        let hub = Hub::new(Limits::default());
        let mut a = member(&hub, 16);
        let mut b = member(&hub, 16);
        let mut c = member(&hub, 16);
        let ma = hub.create(name("Ana"), "piano".into(), &a.outbox, None);
        let code = ma.room_code().to_string();
        let ServerEvent::Created(info) = next(&mut a) else {
            panic!()
        };
        assert_eq!(info.host_id, info.user_id);
        let mb = hub
            .join(
                &code.to_lowercase(),
                name("Bo"),
                "".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        let _mc = hub
            .join(&code, name("Cy"), "drums".into(), &c.outbox, None, None)
            .unwrap();
        let ServerEvent::Joined(info) = next(&mut b) else {
            panic!()
        };
        assert_eq!(info.participants.len(), 2);
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(p) if p.name == "Bo"));
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(p) if p.name == "Cy"));
        let ServerEvent::Joined(info) = next(&mut c) else {
            panic!()
        };
        let names: Vec<_> = info.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Ana", "Bo", "Cy"]);
        assert!(matches!(next(&mut b), ServerEvent::UserJoined(_)));

        let host = ma.user().to_string();
        drop(ma);
        for m in [&mut b, &mut c] {
            assert_eq!(
                next(m),
                ServerEvent::UserLeft {
                    user_id: host.clone()
                }
            );
            assert_eq!(
                next(m),
                ServerEvent::HostChanged {
                    host_id: mb.user().to_string()
                }
            );
        }
        drop(mb);
        drop(_mc);
        assert_eq!(hub.room_count(), 0);
        assert!(matches!(
            hub.join(&code, name("Dee"), "".into(), &a.outbox, None, None),
            Err(ProtocolError {
                code: ErrorCode::RoomNotFound,
                ..
            })
        ));
    }

    #[test]
    fn failed_joins_are_limited_per_address() {
        let hub = Hub::new(Limits {
            join_failure_burst: 3,
            join_failures_per_minute: 60,
            ..Limits::default()
        });
        let a = member(&hub, 64);
        let room = hub.create(name("A"), "".into(), &a.outbox, None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let join = |code: &str, who: &str, ip| {
            hub.join(code, name(who), "".into(), &a.outbox, None, Some(ip))
                .map(|m| m.leave())
                .map_err(|e| e.code)
        };
        assert_eq!(join(room.room_code().as_str(), "ok", ip), Ok(()));
        for _ in 0..3 {
            assert_eq!(join("ZZZZZZ", "B", ip), Err(ErrorCode::RoomNotFound));
        }
        // Over budget: every join from that address is refused, good codes included, so a
        // guesser learns nothing.
        assert_eq!(join("ZZZZZZ", "B", ip), Err(ErrorCode::RateLimited));
        assert_eq!(
            join(room.room_code().as_str(), "B", ip),
            Err(ErrorCode::RateLimited)
        );
        assert_eq!(join(room.room_code().as_str(), "B", other), Ok(()));
        // Successful joins cost nothing.
        for _ in 0..5 {
            assert_eq!(join(room.room_code().as_str(), "C", other), Ok(()));
        }
    }

    #[test]
    fn names_are_unique_case_insensitively_and_rooms_have_a_size() {
        let hub = Hub::new(Limits {
            max_room_size: 2,
            ..Limits::default()
        });
        let a = member(&hub, 16);
        let ma = hub.create(name("Émile"), "".into(), &a.outbox, None);
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
    fn fan_out_skips_the_sender_and_a_stalled_member_is_cut_off() {
        let hub = Hub::new(Limits::default());
        let mut a = member(&hub, 16);
        let mut b = member(&hub, 8);
        let ma = hub.create(name("A"), "".into(), &a.outbox, None);
        let mb = hub
            .join(
                ma.room_code().as_str(),
                name("B"),
                "".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        while a.rx.try_recv().is_ok() {}
        while b.rx.try_recv().is_ok() {}
        let ev = Relayed::new(Bytes::from_static(b"{\"event\":\"event:broadcast\"}"));
        // Datagram-class events only fill half of B's queue and are then dropped.
        for _ in 0..10 {
            ma.broadcast(&ev, Path::Datagram);
        }
        assert!(
            a.rx.try_recv().is_err(),
            "the sender never gets its own event"
        );
        assert!(!b.token.is_cancelled());
        assert_eq!(hub.stats().dropped.load(Ordering::Relaxed), 6);
        // Reliable events fill the rest; one more overflows and B is disconnected.
        for _ in 0..5 {
            ma.broadcast(&ev, Path::Reliable);
        }
        assert!(b.token.is_cancelled());
        assert_eq!(b.outbox.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(hub.stats().slow_consumers.load(Ordering::Relaxed), 1);
        drop(mb);
        assert_eq!(hub.room(ma.room_code()).unwrap().len(), 1);
    }
}
