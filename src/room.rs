//! The room core: the hub of live rooms, their members (seats), presence, host hand-over
//! and fan-out. It knows no transport: a member is reached through its [`Outbox`], a
//! bounded queue of encoded envelopes plus, for WebTransport members, a [`DatagramSink`].
//!
//! Concurrency: the hub's map and each room's state sit behind `std::sync::Mutex`es held
//! for a few instructions and never across an `.await`. Membership changes take the hub
//! lock and then the room lock (always in that order); fan-out takes only the room lock.
//! Fan-out never waits: it uses `try_send` and direct datagram sends, so one slow reader
//! cannot delay anyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol::{
    self, ErrorCode, Name, Participant, ProtocolError, RoomCode, SessionData, UserId,
};

/// Limits that the room core enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most participants in one room.
    pub max_room_size: usize,
    /// Messages a member's outbox holds before it counts as stalled.
    pub outbox_capacity: usize,
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
            outbox_capacity: 1024,
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

/// Why the server ends a connection; transports map it to their close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The server is shutting down.
    Shutdown,
    /// The member's reliable outbox overflowed: it stopped reading.
    SlowConsumer,
    /// Nothing was heard from the peer within the timeout.
    PeerTimeout,
    /// The peer broke the transport binding.
    ProtocolViolation,
    /// The peer sent text that is not valid UTF-8 (WebSocket close 1007).
    InvalidData,
    /// The peer sent a frame too large to read safely (WebSocket close 1009).
    TooBig,
    /// The peer ended its side (closed its socket or finished its control stream).
    PeerClosed,
}

impl CloseReason {
    /// A short text for close frames and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "server shutting down",
            CloseReason::SlowConsumer => "outgoing queue overflowed",
            CloseReason::PeerTimeout => "peer timed out",
            CloseReason::ProtocolViolation => "protocol violation",
            CloseReason::InvalidData => "invalid UTF-8",
            CloseReason::TooBig => "message too big",
            CloseReason::PeerClosed => "closed by peer",
        }
    }
}

/// Counters for the whole server, read by `GET /stats`, tests and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    /// `event:broadcast` accepted from clients, all paths.
    pub events_in: AtomicU64,
    /// Of those, how many arrived as datagrams.
    pub datagrams_in: AtomicU64,
    /// Deliveries handed to a receiver's queue or datagram sink.
    pub deliveries: AtomicU64,
    /// Deliveries sent as datagrams.
    pub datagrams_out: AtomicU64,
    /// Datagram-class deliveries dropped (full queue or failed datagram send).
    pub dropped: AtomicU64,
    /// Members disconnected because their reliable queue overflowed.
    pub slow_consumers: AtomicU64,
}

impl Stats {
    /// A plain copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            events_in: g(&self.events_in),
            datagrams_in: g(&self.datagrams_in),
            deliveries: g(&self.deliveries),
            datagrams_out: g(&self.datagrams_out),
            dropped: g(&self.dropped),
            slow_consumers: g(&self.slow_consumers),
        }
    }
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub events_in: u64,
    pub datagrams_in: u64,
    pub deliveries: u64,
    pub datagrams_out: u64,
    pub dropped: u64,
    pub slow_consumers: u64,
}

/// Which path an event arrived on, and so which path it leaves on (PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A WebSocket or a WebTransport control stream.
    Reliable,
    /// A WebTransport datagram.
    Datagram,
}

/// How a member wants its datagrams encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Compact JSON (the default).
    Json = 0,
    /// The same envelope as a MessagePack map.
    MsgPack = 1,
}

/// A member's unreliable channel (a WebTransport session's datagrams).
pub trait DatagramSink: Send + Sync + 'static {
    /// The largest payload the peer takes now, without the prefix; `None` when datagrams
    /// are unavailable.
    fn max_size(&self) -> Option<usize>;
    /// Bytes the transport puts before every payload (for WebTransport, the session's
    /// quarter stream id). Receivers that share a prefix share one framed copy per event.
    fn prefix(&self) -> &[u8];
    /// Sends one framed datagram (prefix + payload) without waiting; `false` when it was
    /// not sent.
    fn send(&self, framed: Bytes) -> bool;
}

/// Longest datagram prefix that [`Relayed`] caches (a QUIC varint is at most 8 bytes).
const MAX_PREFIX: usize = 8;

/// One framed copy of an event, for the receivers whose prefix is `prefix`.
#[derive(Debug)]
struct Framed {
    prefix: [u8; MAX_PREFIX],
    prefix_len: usize,
    bytes: Option<Bytes>,
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued on the receiver's reliable channel.
    Queued,
    /// Sent as a datagram.
    Datagram,
    /// Dropped: datagram-class and the receiver lags, or the datagram send failed.
    Dropped,
}

/// An `event:broadcast` encoded once for all its receivers: the JSON envelope, and on
/// first need its MessagePack form and one datagram-framed copy per encoding.
#[derive(Debug)]
pub struct Relayed {
    json: Bytes,
    msgpack: OnceLock<Option<Bytes>>,
    framed: [OnceLock<Framed>; 2],
}

impl Relayed {
    /// Wraps the encoded JSON envelope.
    pub fn new(json: Bytes) -> Self {
        Relayed {
            json,
            msgpack: OnceLock::new(),
            framed: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The envelope in `encoding`.
    pub fn encoded(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Json => Some(&self.json),
            Encoding::MsgPack => self.msgpack(),
        }
    }

    /// `prefix` + the envelope in `encoding`, built once for all receivers that share the
    /// prefix (in practice every WebTransport session: its id is that of the first
    /// request stream), and copied afresh only for a receiver with another prefix.
    pub fn framed(&self, encoding: Encoding, prefix: &[u8]) -> Option<Bytes> {
        let build = || {
            let body = self.encoded(encoding)?;
            let mut v = Vec::with_capacity(prefix.len() + body.len());
            v.extend_from_slice(prefix);
            v.extend_from_slice(body);
            Some(Bytes::from(v))
        };
        if prefix.len() > MAX_PREFIX {
            return build();
        }
        let slot = &self.framed[encoding as usize];
        let cached = slot.get_or_init(|| {
            let mut p = [0u8; MAX_PREFIX];
            p[..prefix.len()].copy_from_slice(prefix);
            Framed {
                prefix: p,
                prefix_len: prefix.len(),
                bytes: build(),
            }
        });
        if &cached.prefix[..cached.prefix_len] == prefix {
            cached.bytes.clone()
        } else {
            build()
        }
    }

    /// The JSON envelope.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The MessagePack envelope, encoded the first time a receiver needs it.
    pub fn msgpack(&self) -> Option<&Bytes> {
        self.msgpack
            .get_or_init(|| protocol::json_to_msgpack(&self.json).map(Bytes::from))
            .as_ref()
    }
}

struct OutboxShared {
    tx: mpsc::Sender<Bytes>,
    capacity: usize,
    datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
    closer: CancellationToken,
    reason: OnceLock<CloseReason>,
    stats: Arc<Stats>,
}

/// The sending half of a member's bounded queue of encoded envelopes (JSON, no framing),
/// plus its datagram sink. Cloning shares the queue.
#[derive(Clone)]
pub struct Outbox(Arc<OutboxShared>);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("capacity", &self.0.capacity)
            .field("datagrams", &self.0.datagrams.is_some())
            .finish()
    }
}

impl Outbox {
    /// Creates an outbox of `capacity` messages. `closer` is cancelled when the server
    /// decides to end the connection (its transport watches it).
    pub fn new(
        capacity: usize,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, mpsc::Receiver<Bytes>) {
        let capacity = capacity.max(2);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = OutboxShared {
            tx,
            capacity,
            datagrams,
            closer,
            reason: OnceLock::new(),
            stats,
        };
        (Outbox(Arc::new(shared)), rx)
    }

    /// Queues a control message or a reliable event; a full queue means the member
    /// stopped reading, and it is disconnected.
    pub fn push_reliable(&self, bytes: Bytes) -> bool {
        match self.0.tx.try_send(bytes) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.0.reason.get().is_none() {
                    self.0.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                }
                self.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a datagram-class event. Such events only use the lower half of the queue,
    /// so a lagging member loses these first and its control messages still fit.
    fn push_lossy(&self, bytes: Bytes) -> Delivered {
        if self.0.tx.capacity() <= self.0.capacity / 2 || self.0.tx.try_send(bytes).is_err() {
            return Delivered::Dropped;
        }
        Delivered::Queued
    }

    /// Delivers one relayed event along the path rules of PROTOCOL.md §4.
    pub fn deliver(&self, event: &Relayed, path: Path) -> Delivered {
        match (path, &self.0.datagrams) {
            (Path::Reliable, _) => {
                self.push_reliable(event.json().clone());
                Delivered::Queued
            }
            (Path::Datagram, Some((sink, encoding))) => {
                let fits = match (event.encoded(*encoding), sink.max_size()) {
                    (Some(body), Some(max)) => body.len() <= max,
                    _ => false,
                };
                match event.framed(*encoding, sink.prefix()) {
                    Some(framed) if fits => {
                        if sink.send(framed) {
                            Delivered::Datagram
                        } else {
                            Delivered::Dropped
                        }
                    }
                    // Too large for this receiver: the control stream carries it, as JSON.
                    _ => self.push_lossy(event.json().clone()),
                }
            }
            (Path::Datagram, None) => self.push_lossy(event.json().clone()),
        }
    }

    /// Asks the transport to end the connection; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.0.reason.set(reason);
        self.0.closer.cancel();
    }

    /// Why the server closed the connection, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.reason.get().copied()
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

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
    use crate::protocol::{validate_name, ServerEvent, ServerMessage};

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
    fn framed_copies_are_shared_per_prefix() {
        let ev = Relayed::new(Bytes::from_static(
            br#"{"event":"event:broadcast","data":{}}"#,
        ));
        let a = ev.framed(Encoding::Json, &[0]).unwrap();
        let b = ev.framed(Encoding::Json, &[0]).unwrap();
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "one copy for every receiver with prefix 0"
        );
        assert_eq!(&a[1..], &ev.json()[..]);
        let other = ev.framed(Encoding::Json, &[0x40, 0x41]).unwrap();
        assert_eq!(&other[..2], &[0x40, 0x41]);
        assert_eq!(&other[2..], &ev.json()[..]);
        let mp = ev.framed(Encoding::MsgPack, &[0]).unwrap();
        assert_eq!(&mp[1..], &ev.msgpack().unwrap()[..]);
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
