//! The room core: the hub of live rooms, their seats, presence, host hand-over, fan-out,
//! and seats that survive the network (PROTOCOL.md §6): away, resume with replay from the
//! room's [`History`], takeover, and rooms recreated from signed tokens after a restart.
//! It knows no transport: a member is reached through its [`Outbox`] (`outbox.rs`: the
//! bounded queue, the datagram sink and the encode-once [`Relayed`]).
//!
//! A seat, not a connection, carries the identity: a connection holds a [`Membership`]
//! of a seat, and a seat whose connection ends without a leave stays, `away`, for the
//! resume window. Every reliable room message gets the room's next `seq` and is kept in
//! its history as sent.
//!
//! Concurrency: the hub's map and each room's state sit behind `std::sync::Mutex`es held
//! for a few instructions and never across an `.await`. Membership changes take the hub
//! lock and then the room lock (always in that order); fan-out takes only the room lock.
//! Fan-out never waits: it uses `try_send` and direct datagram sends, so one slow reader
//! cannot delay anyone else. Held seats expire from one task ([`Hub::run_expiry`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jam_protocol::{
    self as protocol, BroadcastDraft, ErrorCode, Name, Participant, ProtocolError, RoomCode,
    SessionData, Status, Tempo, UserId,
};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::addresses::AddressKey;
use crate::clock::ServerClock;
use crate::history::{History, HistoryLimits};
use crate::outbox::{CloseReason, Delivered, Outbox, Path, Relayed};
use crate::resume::{self, Claims, ResumeKey};
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
    /// How long a seat whose connection ended is held; zero frees it at once (version 1).
    pub resume_window: Duration,
    /// How much of its recent reliable messages a room keeps for replay.
    pub history: HistoryLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_room_size: 16,
            join_failure_burst: 20,
            join_failures_per_minute: 20,
            resume_window: Duration::from_secs(30),
            history: HistoryLimits::default(),
        }
    }
}

/// Per-address budget of failed joins: a token bucket per [`AddressKey`] (so every
/// address of one IPv6 /64 shares one), in two generations: when the current one is full,
/// it becomes the previous one and the previous one is dropped, so the table stays bounded
/// without a scan, and an address keeps its spent budget for at least one generation.
#[derive(Debug, Default)]
struct JoinFailures {
    current: HashMap<AddressKey, (f64, Instant)>,
    previous: HashMap<AddressKey, (f64, Instant)>,
}

/// Addresses a generation of [`JoinFailures`] remembers.
const JOIN_FAILURE_GENERATION: usize = 32_768;

impl JoinFailures {
    fn tokens(&self, key: AddressKey, limits: &Limits, now: Instant) -> f64 {
        let burst = f64::from(limits.join_failure_burst);
        let rate = f64::from(limits.join_failures_per_minute) / 60.0;
        match self.current.get(&key).or_else(|| self.previous.get(&key)) {
            Some(&(tokens, at)) => {
                (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(burst)
            }
            None => burst,
        }
    }

    /// Whether `ip` may try a join now.
    fn allowed(&self, ip: IpAddr, limits: &Limits, now: Instant) -> bool {
        self.tokens(AddressKey::of(ip), limits, now) >= 1.0
    }

    /// Records one failed join by `ip`; returns the generation dropped, if one was, for
    /// the caller to free outside the lock.
    fn record(
        &mut self,
        ip: IpAddr,
        limits: &Limits,
        now: Instant,
    ) -> Option<HashMap<AddressKey, (f64, Instant)>> {
        let key = AddressKey::of(ip);
        let tokens = (self.tokens(key, limits, now) - 1.0).max(0.0);
        let mut dropped = None;
        if self.current.len() >= JOIN_FAILURE_GENERATION && !self.current.contains_key(&key) {
            let old = std::mem::take(&mut self.current);
            dropped = Some(std::mem::replace(&mut self.previous, old));
        }
        self.current.insert(key, (tokens, now));
        dropped
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// One place in a room. The seat, not the connection, carries the user's identity.
struct Seat {
    participant: Participant,
    user: UserId,
    name_key: String,
    /// Place in the room's join order (smaller joined earlier); survives a restart in the
    /// seat's token.
    order: u64,
    /// The connection's outbox; `None` while the seat is away.
    outbox: Option<Outbox>,
    /// The number of the [`Membership`] that holds the seat now; an older one, taken over
    /// by a resume, changes nothing when it ends.
    attach: u64,
    /// The nonce of the seat's current resume token: the only one that resumes it.
    nonce: String,
    /// Counts the seat's times away, so that the expiry of an earlier absence does nothing.
    away: u64,
}

impl Seat {
    fn is_away(&self) -> bool {
        self.outbox.is_none()
    }

    /// The seat as everyone sees it now, its round trip included.
    fn snapshot(&self) -> Participant {
        Participant {
            rtt_ms: self.outbox.as_ref().and_then(Outbox::rtt_ms),
            ..self.participant.clone()
        }
    }
}

struct RoomState {
    /// In join order.
    seats: Vec<Seat>,
    host: UserId,
    /// The last room sequence number given out.
    seq: u64,
    history: History,
    next_order: u64,
    tempo: Tempo,
    /// Recreated from a token after a restart: seats that come back are added while the
    /// hub's restart window lasts.
    restored: bool,
    /// The round trips last sent in `session:latency`, and when.
    latency_sent: Vec<(UserId, Option<u32>)>,
    latency_at: Option<Instant>,
}

impl RoomState {
    fn new(host: UserId, seat: Seat, tempo: Tempo, limits: HistoryLimits) -> Self {
        RoomState {
            next_order: seat.order + 1,
            seats: vec![seat],
            host,
            seq: 0,
            history: History::new(limits),
            tempo,
            restored: false,
            latency_sent: Vec::new(),
            latency_at: None,
        }
    }

    /// `session:latency` to every seat present when a round trip appeared or moved by
    /// [`LATENCY_STEP_MS`] since the last one, at most every [`LATENCY_EVERY`]
    /// (PROTOCOL.md §8). Returns whether it was sent.
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

    /// Sends a reliable room message to every seat present but the one whose place in
    /// the join order is `skip`, under the room's next `seq`, and keeps it for replay.
    fn publish(&mut self, skip: Option<u64>, make: impl FnOnce(u64) -> Bytes) {
        self.seq += 1;
        let bytes = make(self.seq);
        for seat in self.seats.iter().filter(|s| Some(s.order) != skip) {
            if let Some(outbox) = &seat.outbox {
                outbox.push_reliable(bytes.clone());
            }
        }
        self.history.push(self.seq, bytes, skip);
    }

    fn seat_mut(&mut self, user: &UserId) -> Option<&mut Seat> {
        self.seats.iter_mut().find(|s| &s.user == user)
    }

    /// Removes a seat for good: `session:user-left` to the others, then
    /// `session:host-changed` if it was the host (the earliest-joined seat left, away or
    /// not, takes over).
    fn remove(&mut self, user: &UserId) {
        let Some(pos) = self.seats.iter().position(|s| &s.user == user) else {
            return;
        };
        let order = self.seats.remove(pos).order;
        if self.seats.is_empty() {
            return;
        }
        self.publish(Some(order), |seq| protocol::encode_user_left(user, seq));
        if &self.host == user {
            let host = self.seats[0].user.clone();
            self.publish(None, |seq| protocol::encode_host_changed(&host, seq));
            self.host = host;
        }
    }

    /// Makes the earliest-joined seat the host (after a restart, while seats come back).
    fn host_is_earliest(&mut self) {
        let earliest = self.seats[0].user.clone();
        if earliest != self.host {
            self.publish(None, |seq| protocol::encode_host_changed(&earliest, seq));
            self.host = earliest;
        }
    }
}

/// `session:latency` goes out when a round trip moved by at least this many ms…
const LATENCY_STEP_MS: u32 = 2;
/// …and at most this often.
const LATENCY_EVERY: Duration = Duration::from_secs(2);
/// How often the hub looks for round trips to report.
const LATENCY_TICK: Duration = Duration::from_millis(200);

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

    /// Number of seats, away ones included.
    pub fn len(&self) -> usize {
        self.lock().seats.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A held seat's deadline.
struct Expiry {
    at: Instant,
    room: Arc<Room>,
    user: UserId,
    away: u64,
}

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Expiry {}
impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Every live room, by code.
pub struct Hub {
    rooms: Mutex<HashMap<RoomCode, Arc<Room>>>,
    join_failures: Mutex<JoinFailures>,
    limits: Limits,
    stats: Arc<Stats>,
    key: ResumeKey,
    clock: ServerClock,
    started: Instant,
    next_attach: AtomicU64,
    expiries: Mutex<BinaryHeap<Reverse<Expiry>>>,
    expiry_added: Notify,
}

impl Hub {
    /// An empty hub with a fresh resume key (tokens die with the process).
    pub fn new(limits: Limits) -> Arc<Self> {
        Hub::with_key(limits, ResumeKey::generate())
    }

    /// An empty hub whose resume tokens are signed with `key`.
    pub fn with_key(limits: Limits, key: ResumeKey) -> Arc<Self> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            join_failures: Mutex::new(JoinFailures::default()),
            limits,
            stats: Arc::new(Stats::default()),
            key,
            clock: ServerClock::new(),
            started: Instant::now(),
            next_attach: AtomicU64::new(0),
            expiries: Mutex::new(BinaryHeap::new()),
            expiry_added: Notify::new(),
        })
    }

    /// The server-wide counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The server's clock.
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomCode, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live rooms.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Seats in every room: (active, away). Locks each room in turn, briefly, outside the
    /// hub's lock: for the metrics, not for the event path.
    pub fn seat_counts(&self) -> (usize, usize) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        rooms.iter().fold((0, 0), |(active, away), room| {
            let state = room.lock();
            let gone = state.seats.iter().filter(|s| s.is_away()).count();
            (active + state.seats.len() - gone, away + gone)
        })
    }

    /// Looks a live room up by its canonical code.
    pub fn room(&self, code: &RoomCode) -> Option<Arc<Room>> {
        self.rooms().get(code).cloned()
    }

    fn next_attach(&self) -> u64 {
        self.next_attach.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new seat held by `outbox`, with its first token's nonce.
    fn new_seat(
        &self,
        user: UserId,
        name: Name,
        instrument: String,
        order: u64,
        outbox: &Outbox,
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
            nonce: resume::nonce(),
            away: 0,
        }
    }

    fn membership(self: &Arc<Self>, room: &Arc<Room>, seat: &Seat) -> Membership {
        Membership {
            hub: self.clone(),
            room: room.clone(),
            user: seat.user.clone(),
            order: seat.order,
            attach: seat.attach,
            seq_hint: AtomicU64::new(0),
            active: true,
        }
    }

    /// The answer that seats a connection: `session:created`, `joined` or `resumed`, with
    /// the snapshot, the room's `seq` and the seat's current token.
    fn session_answer(
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

    fn token(&self, code: &RoomCode, seat: &Seat) -> String {
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
    /// on the caller's outbox.
    pub fn create(
        self: &Arc<Self>,
        name: Name,
        instrument: String,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        let seat = self.new_seat(UserId::generate(), name, instrument, 1, outbox);
        let mut rooms = self.rooms();
        let code = loop {
            let code = RoomCode::generate();
            if !rooms.contains_key(&code) {
                break code;
            }
        };
        self.open_room(&mut rooms, code, seat, false, outbox, id)
    }

    /// Puts a room whose only seat is `seat` (its host) in the hub's map, and queues the
    /// seat's answer: `session:created`, or for a room `restored` after a restart
    /// `session:resumed` with nothing replayed.
    fn open_room(
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
        let mut state = RoomState::new(user.clone(), seat, tempo, self.limits.history);
        state.restored = restored;
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
        Membership {
            hub: self.clone(),
            room,
            user,
            order,
            attach,
            seq_hint: AtomicU64::new(0),
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
            let failures = self.join_failures.lock().unwrap_or_else(|e| e.into_inner());
            if !failures.allowed(ip, &self.limits, now) {
                let limited = &self.stats.rate_limited_joins;
                limited.fetch_add(1, Ordering::Relaxed);
                return Err(ProtocolError::new(
                    ErrorCode::RateLimited,
                    "too many joins of unknown rooms from your address; wait a minute",
                ));
            }
        }
        let not_found = || {
            if let Some(ip) = peer {
                let dropped = self
                    .join_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(ip, &self.limits, now);
                // A dropped generation is freed here, after the lock.
                drop(dropped);
            }
            ProtocolError::new(ErrorCode::RoomNotFound, "no room has that code")
        };
        let code = RoomCode::normalize(code_input).ok_or_else(not_found)?;
        let rooms = self.rooms();
        let room = rooms.get(&code).cloned().ok_or_else(not_found)?;
        let mut state = room.lock();
        self.check_room_for(&state, &name.key)?;
        let user = UserId::generate();
        let order = state.next_order;
        state.next_order += 1;
        let seat = self.new_seat(user.clone(), name, instrument, order, outbox);
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
        drop(state);
        drop(rooms);
        Ok(membership)
    }

    /// `room_full` or `name_taken` for a seat with the name `key` coming into `state`.
    fn check_room_for(&self, state: &RoomState, key: &str) -> Result<(), ProtocolError> {
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

    /// Whether rooms may still be recreated from tokens signed before a restart.
    fn in_restart_window(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) < self.limits.resume_window
    }

    /// Takes a seat back with its token (PROTOCOL.md §6): queues `session:resumed` (with
    /// `id`) and, when the history still holds them, the reliable room messages after
    /// `last_seq` that the seat missed, then tells the others `session:user-back`. A
    /// connection that still holds the seat is closed ([`CloseReason::ResumedElsewhere`]).
    /// After a restart, the first resume of a room recreates it, and later ones bring
    /// their seats back, for one resume window.
    pub fn resume(
        self: &Arc<Self>,
        code_input: &str,
        token: &str,
        last_seq: Option<u64>,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Result<Membership, ProtocolError> {
        let failed = |why: &'static str| ProtocolError::new(ErrorCode::ResumeFailed, why);
        let claims = self
            .key
            .verify(token)
            .ok_or_else(|| failed("the resume token is not valid"))?;
        let code = RoomCode::normalize(code_input)
            .filter(|c| c.as_str() == claims.room)
            .ok_or_else(|| failed("the resume token is for another room"))?;
        let user =
            UserId::parse(&claims.user).ok_or_else(|| failed("the resume token is not valid"))?;
        let now = Instant::now();
        let mut rooms = self.rooms();
        let room = match rooms.get(&code) {
            Some(room) => room.clone(),
            None if self.in_restart_window(now) => {
                return Ok(self.recreate(&mut rooms, code, user, claims, outbox, id));
            }
            None => return Err(failed("the room is gone")),
        };
        let mut state = room.lock();
        let replay_room = outbox.free_capacity().saturating_sub(2);
        let pos = state.seats.iter().position(|s| s.user == user);
        match pos {
            Some(pos) if state.seats[pos].nonce != claims.nonce => {
                Err(failed("the resume token was already used"))
            }
            Some(pos) => {
                let seat = &mut state.seats[pos];
                if let Some(old) = seat.outbox.replace(outbox.clone()) {
                    old.close(CloseReason::ResumedElsewhere);
                }
                seat.participant.status = Status::Active;
                seat.attach = self.next_attach();
                seat.away += 1;
                seat.nonce = resume::nonce();
                let order = seat.order;
                let membership = self.membership(&room, seat);
                let missed: Option<Vec<Bytes>> = last_seq
                    .and_then(|last| state.history.since(last, state.seq))
                    .map(|run| {
                        run.filter(|e| e.skip != Some(order))
                            .map(|e| e.bytes.clone())
                            .collect()
                    })
                    .filter(|missed: &Vec<Bytes>| missed.len() <= replay_room);
                outbox.push_reliable(self.session_answer(
                    protocol::event::RESUMED,
                    &code,
                    &user,
                    &state,
                    Some(missed.is_some()),
                    id,
                ));
                for bytes in missed.into_iter().flatten() {
                    outbox.push_reliable(bytes);
                }
                state.publish(Some(order), |seq| protocol::encode_user_back(&user, seq));
                Ok(membership)
            }
            None if state.restored && self.in_restart_window(now) => {
                let name = protocol::validate_name(&claims.name)
                    .map_err(|_| failed("the resume token is not valid"))?;
                self.check_room_for(&state, &name.key)
                    .map_err(|_| failed("the seat's name was taken or its room filled"))?;
                let mut seat =
                    self.new_seat(user.clone(), name, claims.instrument, claims.order, outbox);
                let membership = self.membership(&room, &seat);
                let joined = seat.participant.clone();
                // The seat is announced (and the host settled) before its outbox is on it:
                // the newcomer's own answer comes first and its snapshot holds all that.
                let held = seat.outbox.take();
                state.publish(Some(claims.order), |seq| {
                    protocol::encode_user_joined(&joined, seq)
                });
                let at = state.seats.partition_point(|s| s.order < seat.order);
                state.seats.insert(at, seat);
                state.next_order = state.next_order.max(claims.order + 1);
                state.host_is_earliest();
                if let Some(seat) = state.seat_mut(&user) {
                    seat.outbox = held;
                }
                outbox.push_reliable(self.session_answer(
                    protocol::event::RESUMED,
                    &code,
                    &user,
                    &state,
                    Some(false),
                    id,
                ));
                Ok(membership)
            }
            None => Err(failed("the seat is no longer held")),
        }
    }

    /// Recreates a room after a restart from the first token that names it.
    fn recreate(
        self: &Arc<Self>,
        rooms: &mut HashMap<RoomCode, Arc<Room>>,
        code: RoomCode,
        user: UserId,
        claims: Claims,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        // A name this server would refuse (an older one signed it) still gets the key
        // every other name is compared by.
        let name = protocol::validate_name(&claims.name).unwrap_or_else(|_| Name {
            display: claims.name.clone(),
            key: protocol::name_key(&claims.name),
        });
        let seat = self.new_seat(user, name, claims.instrument, claims.order, outbox);
        self.open_room(rooms, code, seat, true, outbox, id)
    }

    /// A connection that held a seat ended without a leave: the seat turns away and is
    /// held for the resume window (or, with no window, freed at once as in version 1).
    fn detach(&self, room: &Arc<Room>, user: &UserId, attach: u64) {
        if self.limits.resume_window.is_zero() {
            self.remove(room, user, Some(attach));
            return;
        }
        let mut state = room.lock();
        let Some(seat) = state.seat_mut(user) else {
            return;
        };
        if seat.attach != attach {
            return; // taken over by a resume
        }
        seat.outbox = None;
        seat.participant.status = Status::Away;
        seat.away += 1;
        let away = seat.away;
        let order = seat.order;
        state.publish(Some(order), |seq| protocol::encode_user_away(user, seq));
        drop(state);
        let expiry = Expiry {
            at: Instant::now() + self.limits.resume_window,
            room: room.clone(),
            user: user.clone(),
            away,
        };
        self.expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Reverse(expiry));
        self.expiry_added.notify_one();
    }

    /// Frees a seat: `session:user-left` to the others, then `session:host-changed` if the
    /// host left; an empty room is removed from the hub. With `attach`, only while that
    /// membership still holds the seat.
    fn remove(&self, room: &Arc<Room>, user: &UserId, attach: Option<u64>) {
        let mut rooms = self.rooms();
        let mut state = room.lock();
        let held = state
            .seats
            .iter()
            .any(|s| &s.user == user && attach.is_none_or(|a| s.attach == a));
        if !held {
            return;
        }
        state.remove(user);
        if state.seats.is_empty() {
            rooms.remove(&room.code);
        }
    }

    /// Frees every held seat whose window has ended by `now`; returns when the next one
    /// ends.
    pub fn expire_due(&self, now: Instant) -> Option<Instant> {
        loop {
            let due = {
                let mut heap = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
                match heap.peek() {
                    Some(Reverse(e)) if e.at <= now => heap.pop().map(|Reverse(e)| e),
                    Some(Reverse(e)) => return Some(e.at),
                    None => return None,
                }
            };
            let e = due?;
            let still_away = e
                .room
                .lock()
                .seats
                .iter()
                .any(|s| s.user == e.user && s.is_away() && s.away == e.away);
            if still_away {
                self.remove(&e.room, &e.user, None);
            }
        }
    }

    /// Sends `session:latency` to the rooms whose round trips changed (PROTOCOL.md §8).
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

    /// Frees held seats as their windows end, until `shutdown`.
    pub async fn run_expiry(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next = self.expire_due(Instant::now());
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.expiry_added.notified() => {}
                _ = wait => {}
            }
        }
    }
}

/// A connection's hold on a seat. Dropping it ends the hold as a lost connection does
/// (the seat turns away, or is freed when there is no resume window), so presence is
/// right on every exit path; [`Membership::leave`] frees the seat at once.
pub struct Membership {
    hub: Arc<Hub>,
    room: Arc<Room>,
    user: UserId,
    /// The seat's place in the join order: how fan-out and the history tell it apart.
    order: u64,
    attach: u64,
    /// The room `seq` this member's last reliable event got, to size the next one's
    /// buffer.
    seq_hint: AtomicU64,
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

    /// Relays an event that the server received at `server_time_us` to every other seat
    /// present: encoded once, outside the room's lock. One that came on a reliable path
    /// gets the room's next `seq` (its last bytes are written under the lock, where the
    /// number is drawn) and is kept for replay; a datagram-class one is neither.
    pub fn broadcast(&self, event_name: &str, payload: &RawValue, server_time_us: u64, path: Path) {
        let hint = match path {
            Path::Reliable => Some(self.seq_hint.load(Ordering::Relaxed) + 1),
            Path::Datagram => None,
        };
        let draft = BroadcastDraft::new(event_name, payload, &self.user, server_time_us, hint);
        let (mut handed, mut datagrams, mut dropped) = (0, 0, 0);
        let mut deliver = |state: &RoomState, event: &Relayed| {
            for seat in state.seats.iter().filter(|s| s.order != self.order) {
                let Some(outbox) = &seat.outbox else { continue };
                handed += 1;
                match outbox.deliver(event, path) {
                    Delivered::Queued => {}
                    Delivered::Datagram => datagrams += 1,
                    Delivered::Dropped => dropped += 1,
                }
            }
        };
        match path {
            Path::Datagram => {
                let event = Relayed::new(draft.finish(None));
                deliver(&self.room.lock(), &event);
            }
            Path::Reliable => {
                let mut state = self.room.lock();
                state.seq += 1;
                let seq = state.seq;
                let bytes = draft.finish(Some(seq));
                deliver(&state, &Relayed::new(bytes.clone()));
                state.history.push(seq, bytes, Some(self.order));
                drop(state);
                self.seq_hint.store(seq, Ordering::Relaxed);
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

    /// Changes the room's tempo (PROTOCOL.md §9): it takes effect on the first bar line of
    /// the current tempo at least 250 ms from now; everyone, the setter included, gets
    /// `tempo:changed` (the setter's copy echoes `id`).
    pub fn set_tempo(&self, bpm: f64, beats_per_bar: Option<u32>, id: Option<&RawValue>) {
        let now = self.hub.clock.now_ms();
        let mut state = self.room.lock();
        let tempo = state
            .tempo
            .changed(bpm, beats_per_bar, now, self.user.as_str());
        state.seq += 1;
        let seq = state.seq;
        let to_room = protocol::encode_tempo_changed(&tempo, seq, None);
        for seat in &state.seats {
            let Some(outbox) = &seat.outbox else { continue };
            if seat.order == self.order && id.is_some() {
                outbox.push_reliable(protocol::encode_tempo_changed(&tempo, seq, id));
            } else {
                outbox.push_reliable(to_room.clone());
            }
        }
        state.history.push(seq, to_room, None);
        state.tempo = tempo;
    }

    /// Leaves the room now: the seat is freed.
    pub fn leave(mut self) {
        self.active = false;
        self.hub.remove(&self.room, &self.user, Some(self.attach));
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.active {
            self.hub.detach(&self.room, &self.user, self.attach);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::CloseReason;
    use jam_protocol::{validate_name, ServerEvent, ServerMessage, SessionInfo};
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
        ma.leave();
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
        mb.leave();
        _mc.leave();
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
    fn an_ipv6_64_shares_one_guessing_budget_and_the_table_stays_bounded() {
        let limits = Limits {
            join_failure_burst: 3,
            join_failures_per_minute: 1,
            ..Limits::default()
        };
        let now = Instant::now();
        let mut f = JoinFailures::default();
        // Three failures from three addresses of one /64 spend its whole burst.
        for i in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, i]);
            assert!(f.allowed(ip, &limits, now));
            f.record(ip, &limits, now);
        }
        let fresh_in_the_64: IpAddr = "2001:db8:0:7::99".parse().unwrap();
        assert!(
            !f.allowed(fresh_in_the_64, &limits, now),
            "rotating addresses gains nothing"
        );
        assert!(f.allowed("2001:db8:0:8::1".parse().unwrap(), &limits, now));
        // Many addresses: two generations at most, and a spent budget survives a swap.
        for i in 0..(3 * JOIN_FAILURE_GENERATION as u32) {
            f.record(IpAddr::from(i.to_be_bytes()), &limits, now);
            assert!(f.len() <= 2 * JOIN_FAILURE_GENERATION);
        }
        let last = IpAddr::from((3 * JOIN_FAILURE_GENERATION as u32 - 1).to_be_bytes());
        assert!(f.tokens(AddressKey::of(last), &limits, now) < 3.0);
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
        let payload: Box<RawValue> = serde_json::from_str("1").unwrap();

        // Datagram-class events only fill half of B's queue and are then dropped.
        for _ in 0..10 {
            ma.broadcast("n", &payload, 0, Path::Datagram);
        }
        assert!(
            a.rx.try_recv().is_err(),
            "the sender never gets its own event"
        );
        assert!(!b.token.is_cancelled());
        assert_eq!(hub.stats().dropped.load(Ordering::Relaxed), 6);
        // Reliable events fill the rest; one more overflows and B is disconnected.
        for _ in 0..5 {
            ma.broadcast("n", &payload, 0, Path::Reliable);
        }
        assert!(b.token.is_cancelled());
        assert_eq!(b.outbox.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(hub.stats().slow_consumers.load(Ordering::Relaxed), 1);
        mb.leave();
        assert_eq!(hub.room(ma.room_code()).unwrap().len(), 1);
    }

    // ----- Seats that survive the network (PROTOCOL.md §6) -----

    /// The next queued message, with its `seq`.
    fn next_msg(m: &mut Member) -> ServerMessage {
        let bytes = m.rx.try_recv().expect("a queued message");
        ServerMessage::from_json(&bytes).unwrap()
    }

    fn info(event: ServerEvent) -> SessionInfo {
        match event {
            ServerEvent::Created(i) | ServerEvent::Joined(i) | ServerEvent::Resumed(i) => i,
            other => panic!("not a session answer: {other:?}"),
        }
    }

    fn drain(m: &mut Member) -> Vec<ServerMessage> {
        std::iter::from_fn(|| m.rx.try_recv().ok())
            .map(|b| ServerMessage::from_json(&b).unwrap())
            .collect()
    }

    /// Ana (host) and Bo in one room; both answers read.
    fn duo(
        hub: &Arc<Hub>,
    ) -> (
        Member,
        Membership,
        SessionInfo,
        Member,
        Membership,
        SessionInfo,
    ) {
        let mut a = member(hub, 64);
        let mut b = member(hub, 64);
        let ma = hub.create(name("Ana"), "piano".into(), &a.outbox, None);
        let ia = info(next(&mut a));
        let mb = hub
            .join(
                &ia.room_code,
                name("Bo"),
                "bass".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        let ib = info(next(&mut b));
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(_)));
        (a, ma, ia, b, mb, ib)
    }

    fn resume(
        hub: &Arc<Hub>,
        code: &str,
        token: &str,
        last: Option<u64>,
        m: &Member,
    ) -> Result<Membership, ErrorCode> {
        hub.resume(code, token, last, &m.outbox, None)
            .map_err(|e| e.code)
    }

    #[test]
    fn a_lost_connection_holds_the_seat_and_a_resume_replays_what_it_missed() {
        let hub = Hub::new(Limits::default());
        let (mut a, ma, ia, _b, mb, ib) = duo(&hub);
        assert_eq!((ia.seq, ib.seq), (0, 1), "the join is room message 1");
        drop(mb);
        let away = next_msg(&mut a);
        assert_eq!(
            away.event,
            ServerEvent::UserAway {
                user_id: ib.user_id.clone()
            }
        );
        assert_eq!(away.seq, Some(2));
        let room = hub
            .room(&RoomCode::normalize(&ia.room_code).unwrap())
            .unwrap();
        assert_eq!(room.len(), 2, "the seat still counts");
        // While away: the name stays taken, and the room goes on.
        let mut c = member(&hub, 64);
        assert_eq!(
            hub.join(&ia.room_code, name("BO"), "".into(), &c.outbox, None, None)
                .map(|_| ())
                .map_err(|e| e.code),
            Err(ErrorCode::NameTaken)
        );
        let payload: Box<RawValue> = serde_json::from_str(r#"{"n":60}"#).unwrap();
        ma.broadcast("note", &payload, 0, Path::Reliable);
        ma.broadcast("note", &payload, 0, Path::Datagram);
        let mc = hub
            .join(&ia.room_code, name("Cy"), "".into(), &c.outbox, None, None)
            .unwrap();
        let sent_to_a = drain(&mut a);
        assert_eq!(
            sent_to_a.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(4)],
            "a sees Cy join"
        );

        // Bo comes back on a new connection, from seq 1: the broadcast (3) and Cy's join (4)
        // are replayed as first sent; its own away notice (2) and the datagram are not.
        let mut b2 = member(&hub, 64);
        let mb2 = resume(&hub, &ia.room_code, &ib.resume_token, Some(1), &b2).unwrap();
        let answer = next_msg(&mut b2);
        let resumed = info(answer.event);
        assert_eq!(
            (resumed.user_id.as_str(), resumed.replayed),
            (ib.user_id.as_str(), Some(true))
        );
        assert_eq!(resumed.seq, 4);
        assert_ne!(resumed.resume_token, ib.resume_token, "a fresh token");
        assert!(resumed
            .participants
            .iter()
            .all(|p| p.status == Status::Active));
        let replay = drain(&mut b2);
        assert_eq!(
            replay.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(3), Some(4)]
        );
        assert!(
            matches!(&replay[0].event, ServerEvent::Broadcast { sender_id, .. } if *sender_id == ia.user_id)
        );
        assert!(replay.iter().all(|m| m.id.is_none()));
        // The others hear that Bo is back, and nothing else.
        for m in [&mut a, &mut c] {
            let msgs = drain(m);
            let back = msgs.last().unwrap();
            assert_eq!(
                back.event,
                ServerEvent::UserBack {
                    user_id: ib.user_id.clone()
                }
            );
            assert_eq!(back.seq, Some(5));
        }
        // The token was single-use; the new one works.
        let mut b3 = member(&hub, 64);
        assert_eq!(
            resume(&hub, &ia.room_code, &ib.resume_token, None, &b3).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        drop((mb2, mc));
        let _mb3 = resume(&hub, &ia.room_code, &resumed.resume_token, None, &b3).unwrap();
        assert_eq!(
            info(next_msg(&mut b3).event).replayed,
            Some(false),
            "no lastSeq: the snapshot is the state"
        );
    }

    #[test]
    fn a_resume_replays_nothing_when_the_history_no_longer_reaches_back() {
        let hub = Hub::new(Limits {
            history: HistoryLimits {
                messages: 2,
                bytes: 1 << 20,
            },
            ..Limits::default()
        });
        let (_a, ma, ia, _b, mb, ib) = duo(&hub);
        drop(mb);
        let payload: Box<RawValue> = serde_json::from_str("1").unwrap();
        for _ in 0..3 {
            ma.broadcast("n", &payload, 0, Path::Reliable);
        }
        for last in [Some(1), Some(99), None] {
            let mut b2 = member(&hub, 64);
            let room = hub
                .room(&RoomCode::normalize(&ia.room_code).unwrap())
                .unwrap();
            let token = {
                let state = room.lock();
                let seat = state
                    .seats
                    .iter()
                    .find(|s| s.user.as_str() == ib.user_id)
                    .unwrap();
                hub.token(room.code(), seat)
            };
            let m = resume(&hub, &ia.room_code, &token, last, &b2).unwrap();
            assert_eq!(
                info(next_msg(&mut b2).event).replayed,
                Some(false),
                "{last:?}"
            );
            assert!(drain(&mut b2).is_empty(), "{last:?}: nothing replayed");
            drop(m);
        }
    }

    #[test]
    fn a_held_seat_expires_into_a_leave_and_the_earliest_seat_becomes_host() {
        let window = Duration::from_secs(30);
        let hub = Hub::new(Limits::default());
        let (a, ma, ia, mut b, mb, ib) = duo(&hub);
        drop(ma);
        assert_eq!(
            next(&mut b),
            ServerEvent::UserAway {
                user_id: ia.user_id.clone()
            }
        );
        let now = Instant::now();
        assert!(hub.expire_due(now).is_some(), "not yet");
        assert!(b.rx.try_recv().is_err());
        assert_eq!(
            hub.expire_due(now + window + Duration::from_millis(1)),
            None
        );
        assert_eq!(
            next(&mut b),
            ServerEvent::UserLeft {
                user_id: ia.user_id.clone()
            }
        );
        assert_eq!(
            next(&mut b),
            ServerEvent::HostChanged {
                host_id: ib.user_id.clone()
            }
        );
        assert_eq!(
            resume(&hub, &ia.room_code, &ia.resume_token, None, &a).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        // A room whose seats are all away lives until the last window ends.
        drop(mb);
        let code = RoomCode::normalize(&ia.room_code).unwrap();
        assert!(hub.room(&code).is_some());
        hub.expire_due(Instant::now() + window + Duration::from_millis(1));
        assert!(hub.room(&code).is_none());
    }

    #[test]
    fn a_resume_takes_over_a_connection_that_still_holds_the_seat() {
        let hub = Hub::new(Limits::default());
        let (mut a, _ma, ia, b, mb, ib) = duo(&hub);
        let mut b2 = member(&hub, 64);
        let mb2 = resume(&hub, &ia.room_code, &ib.resume_token, Some(ib.seq), &b2).unwrap();
        assert_eq!(b.outbox.close_reason(), Some(CloseReason::ResumedElsewhere));
        assert!(b.token.is_cancelled());
        assert_eq!(info(next_msg(&mut b2).event).replayed, Some(true));
        // The old connection ending changes nothing: no away, no leave.
        drop(mb);
        assert_eq!(
            drain(&mut a)
                .into_iter()
                .map(|m| m.event)
                .collect::<Vec<_>>(),
            [ServerEvent::UserBack {
                user_id: ib.user_id.clone()
            }]
        );
        drop(mb2);
        assert!(matches!(next(&mut a), ServerEvent::UserAway { .. }));
    }

    #[test]
    fn tokens_for_another_room_or_forged_are_refused_and_refusals_do_not_use_them_up() {
        let hub = Hub::new(Limits::default());
        let (_a, _ma, ia, _b, mb, ib) = duo(&hub);
        let (mut c, _mc, ic, _d, _md, _id) = duo(&hub);
        drop(mb);
        let wrong = [
            (ic.room_code.as_str(), ib.resume_token.clone()),
            (ia.room_code.as_str(), format!("{}x", ib.resume_token)),
            (ia.room_code.as_str(), "nope".into()),
            ("??????", ib.resume_token.clone()),
        ];
        for (code, token) in wrong {
            assert_eq!(
                resume(&hub, code, &token, None, &c).map(|_| ()),
                Err(ErrorCode::ResumeFailed),
                "{code} {token}"
            );
        }
        assert!(c.rx.try_recv().is_err(), "the hub answers nothing itself");
        let _mb = resume(
            &hub,
            &ia.room_code.to_lowercase(),
            &ib.resume_token,
            None,
            &c,
        )
        .unwrap();
        assert!(matches!(next(&mut c), ServerEvent::Resumed(_)));
        // A token from another server's key is refused.
        let other = Hub::new(Limits::default());
        let mut e = member(&other, 64);
        let me = other.create(name("E"), "".into(), &e.outbox, None);
        let ie = info(next(&mut e));
        drop(me);
        assert_eq!(
            resume(&hub, &ie.room_code, &ie.resume_token, None, &e).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
    }

    #[test]
    fn no_window_frees_a_lost_seat_at_once() {
        let hub = Hub::new(Limits {
            resume_window: Duration::ZERO,
            ..Limits::default()
        });
        let (_a, ma, ia, mut b, mb, ib) = duo(&hub);
        drop(ma);
        assert_eq!(
            next(&mut b),
            ServerEvent::UserLeft {
                user_id: ia.user_id.clone()
            }
        );
        assert_eq!(
            next(&mut b),
            ServerEvent::HostChanged {
                host_id: ib.user_id.clone()
            }
        );
        drop(mb);
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn after_a_restart_seats_come_back_in_join_order_with_the_earliest_as_host() {
        let key = ResumeKey::generate();
        let old = Hub::with_key(Limits::default(), key.clone());
        let mut a = member(&old, 64);
        let ma = old.create(name("Ana"), "piano".into(), &a.outbox, None);
        let ia = info(next(&mut a));
        let mut seats = vec![];
        for who in ["Bo", "Cy"] {
            let mut m = member(&old, 64);
            let mm = old
                .join(&ia.room_code, name(who), "".into(), &m.outbox, None, None)
                .unwrap();
            seats.push((info(next(&mut m)), mm));
        }
        drop(ma);

        let new = Hub::with_key(Limits::default(), key);
        // Cy comes back first: the room is recreated under its code, Cy hosts.
        let mut c = member(&new, 64);
        let ic = &seats[1].0;
        let _mc = resume(&new, &ia.room_code, &ic.resume_token, Some(ic.seq), &c).unwrap();
        let rc = info(next(&mut c));
        assert_eq!(
            (
                rc.room_code.as_str(),
                rc.user_id.as_str(),
                rc.host_id.as_str()
            ),
            (
                ia.room_code.as_str(),
                ic.user_id.as_str(),
                ic.user_id.as_str()
            )
        );
        assert_eq!((rc.seq, rc.replayed), (0, Some(false)));
        // Ana comes back: announced to Cy, and Ana (earlier) is host again.
        let mut a2 = member(&new, 64);
        let _ma2 = resume(&new, &ia.room_code, &ia.resume_token, None, &a2).unwrap();
        let ra = info(next(&mut a2));
        assert_eq!(ra.host_id, ia.user_id);
        let names: Vec<_> = ra
            .participants
            .iter()
            .map(|p| (p.name.as_str(), p.instrument.as_str()))
            .collect();
        assert_eq!(names, [("Ana", "piano"), ("Cy", "")]);
        assert!(matches!(next(&mut c), ServerEvent::UserJoined(p) if p.id == ia.user_id));
        assert_eq!(
            next(&mut c),
            ServerEvent::HostChanged {
                host_id: ia.user_id.clone()
            }
        );
        // A used token stays used across the restart.
        let mut x = member(&new, 64);
        assert_eq!(
            resume(&new, &ia.room_code, &ia.resume_token, None, &x).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        // Someone took Bo's name meanwhile: Bo's seat cannot come back.
        let _mx = new
            .join(&ia.room_code, name("bo"), "".into(), &x.outbox, None, None)
            .unwrap();
        let mut b2 = member(&new, 64);
        assert_eq!(
            resume(&new, &ia.room_code, &seats[0].0.resume_token, None, &b2).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        assert!(b2.rx.try_recv().is_err());
        let _ = &mut x;
    }

    #[test]
    fn a_room_recreated_from_a_name_now_refused_keys_it_like_every_other_name() {
        let key = ResumeKey::generate();
        let old = Hub::with_key(Limits::default(), key.clone());
        let mut a = member(&old, 64);
        let _ma = old.create(name("Ana"), "".into(), &a.outbox, None);
        let ia = info(next(&mut a));
        // A token for a name this server refuses (a control character), Cyrillic А first.
        let odd = "\u{410}NA\u{7}";
        assert!(validate_name(odd).is_err());
        let token = key.sign(&crate::resume::Claims {
            room: ia.room_code.clone(),
            user: UserId::generate().to_string(),
            name: odd.into(),
            instrument: String::new(),
            order: 1,
            nonce: crate::resume::nonce(),
        });
        let new = Hub::with_key(Limits::default(), key);
        let m = member(&new, 64);
        let _mm = resume(&new, &ia.room_code, &token, None, &m).unwrap();
        let room = new
            .room(&RoomCode::normalize(&ia.room_code).unwrap())
            .unwrap();
        let key = room.lock().seats[0].name_key.clone();
        assert_eq!(key, protocol::name_key(odd));
        assert_ne!(
            key,
            odd.to_lowercase(),
            "the NFKC + skeleton key, not lower case"
        );
    }
}
