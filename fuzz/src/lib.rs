//! The bodies of the fuzz targets, in one place: the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` call them on every input, and `tests/fuzz_corpus.rs` (which
//! includes this file as a module) calls them on every file of `fuzz/corpus/` with plain
//! `cargo test` on stable. Each one panics when an invariant breaks.
//!
//! - [`envelope`]: what the server does with an incoming control message (JSON text) and
//!   datagram (JSON or MessagePack) before any room is involved.
//! - [`lines`]: the WebTransport control stream's line framer, against a model.
//! - [`session`]: up to three sessions in one hub, driven by a sequence of messages, with
//!   presence checked against what each connection was told.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jam_protocol::{
    encode_error, json_to_msgpack, msgpack_to_json, ClientMessage, Encoding, Envelope,
    ProtocolError, RoomCode, ServerEvent, ServerMessage, SessionInfo, MAX_EVENT_NAME_CHARS,
};
use jam_server::outbox::{CloseReason, DatagramSink, Inbox, Outbox, Path};
use jam_server::room::{Hub, Limits};
use jam_server::session::{Session, SessionLimits};
use jam_server::transport::lines::{Line, LineFramer};
use jam_server::transport::wt::handle_line;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The envelope decoder: the input as a WebSocket text message / control-stream line, and
/// as a datagram (JSON or MessagePack, whichever it sniffs as).
///
/// Invariants: no panic; the one-pass envelope reading agrees with the general one; a
/// validated message keeps the protocol's field rules; every error encodes into an `error`
/// a client can read; MessagePack becomes valid JSON; JSON → MessagePack → JSON keeps the
/// value.
pub fn envelope(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_envelope(text);
        if let Some(mp) = json_to_msgpack(data) {
            let back = msgpack_to_json(&mp).expect("our own MessagePack reads back");
            let a: Value = serde_json::from_str(text).expect("transcoded JSON is JSON");
            let b: Value = serde_json::from_str(&back).expect("msgpack_to_json writes JSON");
            assert_eq!(a, b, "JSON → MessagePack → JSON changed the value");
        }
    }
    if Encoding::sniff(data) == Encoding::MsgPack {
        match msgpack_to_json(data) {
            Ok(json) => {
                serde_json::from_str::<Value>(&json).expect("msgpack_to_json writes JSON");
                check_envelope(&json);
            }
            Err(e) => check_error(&e, None),
        }
    }
}

fn check_envelope(text: &str) {
    let one_pass = Envelope::parse(text);
    let general = Envelope::parse_general(text);
    assert_eq!(
        outcome(&one_pass),
        outcome(&general),
        "the one-pass reading and the general one disagree on {text:?}"
    );
    match one_pass {
        Err(rejection) => check_error(&rejection.error, rejection.id),
        Ok(env) => {
            if let Some(id) = env.id {
                let first = id.get().as_bytes()[0];
                assert!(
                    first == b'"' || first == b'-' || first.is_ascii_digit(),
                    "only numbers and strings are echoed: {}",
                    id.get()
                );
            }
            match env.message() {
                Err(e) => check_error(&e, env.id),
                Ok(msg) => check_message(&msg),
            }
        }
    }
}

/// A validated message keeps the rules of docs/protocol.md.
fn check_message(msg: &ClientMessage<'_>) {
    let name_ok = |display: &str| {
        let n = display.chars().count();
        (1..=jam_protocol::MAX_NAME_CHARS).contains(&n)
            && display.trim() == display
            && !display.chars().any(char::is_control)
    };
    match msg {
        ClientMessage::Create {
            name, instrument, ..
        }
        | ClientMessage::Join {
            name, instrument, ..
        } => {
            assert!(name_ok(&name.display), "name {:?} passed", name.display);
            assert!(
                instrument.chars().count() <= jam_protocol::MAX_INSTRUMENT_CHARS,
                "instrument {instrument:?} passed"
            );
        }
        ClientMessage::Broadcast(b) => {
            let n = b.event_name.chars().count();
            assert!(
                (1..=MAX_EVENT_NAME_CHARS).contains(&n),
                "event name {:?} passed",
                b.event_name
            );
            // JSON, as written: a number beyond f64 (legal JSON) is relayed as it came.
            serde_json::from_str::<Box<RawValue>>(b.payload.get()).expect("the payload is JSON");
        }
        ClientMessage::TempoSet {
            bpm, beats_per_bar, ..
        } => {
            use jam_protocol::tempo::{MAX_BEATS_PER_BAR, MAX_BPM, MIN_BPM};
            assert!((MIN_BPM..=MAX_BPM).contains(bpm), "bpm {bpm} passed");
            assert!(
                beats_per_bar.is_none_or(|b| (1..=MAX_BEATS_PER_BAR).contains(&b)),
                "beatsPerBar {beats_per_bar:?} passed"
            );
        }
        ClientMessage::ClockPing { t0 } => {
            let t0 = t0.get();
            serde_json::from_str::<Box<RawValue>>(t0).expect("t0 is JSON");
            let first = t0.as_bytes()[0];
            assert!(first == b'-' || first.is_ascii_digit(), "t0 {t0} passed");
        }
        ClientMessage::Leave { .. }
        | ClientMessage::Resume { .. }
        | ClientMessage::AuthRefresh { .. } => {}
    }
}

/// An error has a message, and its `error` envelope reads back with its code and id.
fn check_error(e: &ProtocolError, id: Option<&RawValue>) {
    assert!(
        !e.message.trim().is_empty(),
        "{:?} without a message",
        e.code
    );
    let bytes = encode_error(e, id);
    let back = decode(&bytes);
    match back.event {
        ServerEvent::Error { code, .. } => assert_eq!(code, e.code),
        other => panic!("encode_error wrote {other:?}"),
    }
    let want: Option<Value> =
        id.map(|id| serde_json::from_str(&tame_numbers(id.get())).expect("id is JSON"));
    assert_eq!(back.id, want, "the id is echoed as written");
}

/// A server message as a client reads it. The server copies a client's `id`, `t0` and
/// `payload` as written, and JSON puts no bound on numbers, so a message may carry one
/// beyond f64 (`1e400`) that serde_json refuses (JavaScript reads `Infinity`): such a
/// message must still be JSON, and read once those numbers are zero; anything else that
/// does not read is a bug.
fn decode(raw: &[u8]) -> ServerMessage {
    ServerMessage::from_json(raw).unwrap_or_else(|e| {
        let text = std::str::from_utf8(raw).expect("the server writes UTF-8");
        serde_json::from_str::<Box<RawValue>>(text)
            .unwrap_or_else(|e| panic!("{e}: the server wrote {text:?}"));
        let tamed = tame_numbers(text);
        assert_ne!(tamed, text, "{e}: a client cannot read {text:?}");
        ServerMessage::from_json(tamed.as_bytes())
            .unwrap_or_else(|e| panic!("{e}: a client cannot read {text:?}"))
    })
}

/// `json` with every number beyond f64's range replaced by `0`.
fn tame_numbers(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = bytes[i..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(bytes.len(), |n| i + n);
            let number = &json[i..end];
            let finite = number.parse::<f64>().is_ok_and(f64::is_finite);
            out.push_str(if finite { number } else { "0" });
            i = end;
            continue;
        }
        let len = json[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&json[i..i + len]);
        i += len;
    }
    out
}

fn outcome(parsed: &Result<Envelope<'_>, jam_protocol::Rejection<'_>>) -> String {
    match parsed {
        Err(r) => format!("rejected {:?} {:?}", r.id.map(|i| i.get()), r.error),
        Ok(env) => format!(
            "{:?} {:?} {:?}",
            env.event,
            env.id.map(|i| i.get()),
            env.message()
        ),
    }
}

/// The control stream's line framer: the first byte picks the line limit (0 to 63 bytes)
/// and the second how the rest is cut into chunks; what comes out must be what a model
/// that sees the whole stream at once says, whatever the chunks.
pub fn lines(data: &[u8]) {
    let [max, cut, rest @ ..] = data else {
        return;
    };
    let max = usize::from(max % 64);
    let mut framer = LineFramer::new(max);
    let mut got: Vec<Option<Vec<u8>>> = Vec::new();
    let mut collect = |line: Line<'_>| {
        got.push(match line {
            Line::Text(t) => Some(t.to_vec()),
            Line::TooLong => None,
        })
    };
    // Chunk sizes cycle through 1..=(cut % 16 + 1), so small cuts split every line.
    let mut step = 0usize;
    let mut pos = 0;
    while pos < rest.len() {
        step = step % (usize::from(cut % 16) + 1) + 1;
        let end = (pos + step).min(rest.len());
        framer.push(&rest[pos..end], &mut collect);
        pos = end;
    }
    // The model: every line over the limit (counted before a `\r` is stripped) is
    // reported once, complete or not; a complete one within it comes out without its
    // newline and trailing `\r`; an incomplete one waits.
    let mut want: Vec<Option<Vec<u8>>> = Vec::new();
    let mut parts = rest.split(|&b| b == b'\n').peekable();
    while let Some(line) = parts.next() {
        let complete = parts.peek().is_some();
        if line.len() > max {
            want.push(None);
        } else if complete {
            want.push(Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec()));
        }
    }
    assert_eq!(got, want, "max {max}, cut {cut}");
}

/// A datagram sink that keeps what it is given.
struct Datagrams {
    prefix: Vec<u8>,
    sent: Arc<Mutex<Vec<Bytes>>>,
}

impl DatagramSink for Datagrams {
    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn send(&self, framed: Bytes) -> Option<bool> {
        if framed.len() > 1200 {
            return None;
        }
        self.sent.lock().unwrap().push(framed);
        Some(true)
    }
}

/// What a connection of [`session`] was told about its room.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seat {
    code: String,
    user: String,
}

/// One live connection of [`session`]: its session, the queue its writer would drain, its
/// datagrams and its control-stream framer.
struct Live {
    session: Session,
    rx: Inbox<Bytes>,
    outbox: Outbox,
    datagrams: Option<(Encoding, Arc<Mutex<Vec<Bytes>>>)>,
    framer: LineFramer,
}

/// A connection slot of [`session`]: the live connection (replaced when it ends) and what
/// the client behind it remembers across connections.
struct Slot {
    live: Live,
    seat: Option<Seat>,
    /// The last seat's room code, user id and resume token, and the last `seq` seen.
    code: String,
    user: String,
    token: String,
    seq: u64,
    /// The highest `seq` seen since the current seat was taken (or resumed).
    seen: u64,
}

const PREFIX: &[u8] = &[0x04];

/// The session state machine fed with message sequences. The first byte picks the limits;
/// the rest is lines, each an operation on one of three connections in one hub: its first
/// byte picks the connection and the operation, the rest is its text, where `$C0`–`$C2`,
/// `$U0`–`$U2`, `$T0`–`$T2` and `$S0`–`$S2` stand for the room code, user id, resume token
/// and last `seq` that connection was given (so sequences can join, resume and take seats
/// over, which random bytes could not guess).
///
/// Invariants: no panic; every queued message and datagram decodes as a server message; a
/// session answer comes only to a connection in no room, `session:left` only to one in
/// that room, room events only to a connection in a room and never its own broadcast;
/// `seq` rises within a seat; the only connections the server closes are ones whose seat
/// was resumed elsewhere; and after every operation each room's seat count is what the
/// connections were told (present ones plus those held away), no more rooms exist than
/// that, and an empty room is gone.
pub fn session(data: &[u8]) -> Seen {
    let mut seen = Seen::new();
    let [config, rest @ ..] = data else {
        return seen;
    };
    let limits = Limits {
        max_room_size: 2 + usize::from(config % 3),
        resume_window: if config & 4 != 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        },
        ..Limits::default()
    };
    let tight = config & 8 != 0;
    let session_limits = SessionLimits {
        max_message_bytes: if config & 16 != 0 { 200 } else { 16 * 1024 },
        rate_limit: if tight { 1 } else { 1_000_000 },
        rate_burst: if tight { 4 } else { 1_000_000 },
        control_rate: if tight { 1 } else { 1_000_000 },
        control_burst: if tight { 6 } else { 1_000_000 },
        ..SessionLimits::default()
    };
    let hold = !limits.resume_window.is_zero();
    let hub = Hub::new(limits);
    let mut slots: Vec<Slot> = (0..3)
        .map(|i| Slot {
            live: connect(&hub, &session_limits, i),
            seat: None,
            code: String::new(),
            user: String::new(),
            token: String::new(),
            seq: 0,
            seen: 0,
        })
        .collect();
    let mut held: BTreeSet<Seat> = BTreeSet::new();

    for op in rest.split(|&b| b == b'\n') {
        let [head, body @ ..] = op else { continue };
        let who = usize::from(head % 3);
        let body = substitute(body, &slots);
        let live = &mut slots[who].live;
        match (head / 3) % 8 {
            // A WebSocket text message (binary frames are refused).
            0 | 1 => match std::str::from_utf8(&body) {
                Ok(text) => live.session.handle_text(text, Path::Reliable),
                Err(_) => live.session.invalid("binary frame"),
            },
            // Control-stream bytes, framed as WebTransport frames them, in two chunks.
            2 | 3 => {
                let mut bytes = body.clone();
                bytes.push(b'\n');
                let (a, b) = bytes.split_at(bytes.len() / 2);
                for chunk in [a, b] {
                    let session = &mut live.session;
                    live.framer.push(chunk, |line| handle_line(session, line));
                }
            }
            // A datagram as it came.
            4 => live.session.handle_datagram(&body),
            // A datagram of the text in MessagePack.
            5 => match json_to_msgpack(&body) {
                Some(mp) => live.session.handle_datagram(&mp),
                None => live.session.handle_datagram(&body),
            },
            // The control stream finishes: a leave, without an answer.
            6 => {
                live.session.leave();
                slots[who].seat = None;
            }
            // The connection is lost: its seat is held away (or freed with no window), and
            // the client connects again.
            _ => {
                if let Some(seat) = slots[who].seat.take() {
                    if hold {
                        held.insert(seat);
                    }
                }
                slots[who].live = connect(&hub, &session_limits, who);
            }
        }
        drain(&mut slots, &mut held, &hub, &session_limits, &mut seen);
        check_rooms(&slots, &held, &hub);
    }
    seen
}

fn connect(hub: &Arc<Hub>, limits: &SessionLimits, i: usize) -> Live {
    // Connection 0 is a WebSocket; 1 and 2 are WebTransport sessions that asked for JSON
    // and MessagePack datagrams.
    let encoding = match i {
        0 => None,
        1 => Some(Encoding::Json),
        _ => Some(Encoding::MsgPack),
    };
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = encoding.map(|e| {
        let sink: Box<dyn DatagramSink> = Box::new(Datagrams {
            prefix: PREFIX.to_vec(),
            sent: sent.clone(),
        });
        (sink, e)
    });
    let (outbox, rx) = Outbox::new(256, sink, CancellationToken::new(), hub.stats().clone());
    Live {
        session: Session::new(hub.clone(), outbox.clone(), limits.clone()),
        rx,
        outbox,
        datagrams: encoding.map(|e| (e, sent)),
        framer: LineFramer::new(limits.max_message_bytes + 1),
    }
}

/// `body` with the `$C`, `$U`, `$T` and `$S` placeholders replaced.
fn substitute(body: &[u8], slots: &[Slot]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'$' && i + 2 < body.len() && (b'0'..=b'2').contains(&body[i + 2]) {
            let slot = &slots[usize::from(body[i + 2] - b'0')];
            let with = match body[i + 1] {
                b'C' => Some(slot.code.clone()),
                b'U' => Some(slot.user.clone()),
                b'T' => Some(slot.token.clone()),
                b'S' => Some(slot.seq.to_string()),
                _ => None,
            };
            if let Some(with) = with {
                out.extend_from_slice(with.as_bytes());
                i += 3;
                continue;
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Reads everything queued for every connection, checking it against what each was told,
/// and replaces connections the server closed.
fn drain(
    slots: &mut [Slot],
    held: &mut BTreeSet<Seat>,
    hub: &Arc<Hub>,
    limits: &SessionLimits,
    seen: &mut Seen,
) {
    for who in 0..slots.len() {
        while let Ok(raw) = slots[who].live.rx.try_recv() {
            let msg = decode(&raw);
            seen.insert(kind(&msg.event));
            receive(slots, held, who, msg);
        }
        if let Some((encoding, sent)) = slots[who].live.datagrams.clone() {
            let sent: Vec<Bytes> = std::mem::take(&mut *sent.lock().unwrap());
            for framed in sent {
                let payload = framed.strip_prefix(PREFIX).expect("the session's prefix");
                let json = match encoding {
                    Encoding::Json => payload.to_vec(),
                    Encoding::MsgPack => msgpack_to_json(payload)
                        .expect("a MessagePack datagram")
                        .into_bytes(),
                };
                let msg = decode(&json);
                assert!(
                    matches!(
                        msg.event,
                        ServerEvent::Broadcast { .. } | ServerEvent::Pong { .. }
                    ),
                    "datagram {msg:?}"
                );
                seen.insert("datagram");
                receive(slots, held, who, msg);
            }
        }
    }
    for (who, slot) in slots.iter_mut().enumerate() {
        if let Some(reason) = slot.live.outbox.close_reason() {
            assert_eq!(reason, CloseReason::ResumedElsewhere, "connection {who}");
            assert_eq!(slot.seat, None, "connection {who} closed but still seated");
            seen.insert("taken over");
            slot.live = connect(hub, limits, who);
        }
    }
}

/// The kinds of server message one [`session`] run produced (event names, plus
/// `datagram` and `taken over`), so the corpus replay can check that the corpus still
/// reaches every part of the state machine.
pub type Seen = BTreeSet<&'static str>;

fn kind(event: &ServerEvent) -> &'static str {
    match event {
        ServerEvent::Created(_) => "session:created",
        ServerEvent::Joined(_) => "session:joined",
        ServerEvent::Resumed(_) => "session:resumed",
        ServerEvent::Left { .. } => "session:left",
        ServerEvent::UserJoined(_) => "session:user-joined",
        ServerEvent::UserLeft { .. } => "session:user-left",
        ServerEvent::HostChanged { .. } => "session:host-changed",
        ServerEvent::UserAway { .. } => "session:user-away",
        ServerEvent::UserBack { .. } => "session:user-back",
        ServerEvent::Pong { .. } => "clock:pong",
        ServerEvent::Broadcast { .. } => "event:broadcast",
        ServerEvent::TempoChanged(_) => "tempo:changed",
        ServerEvent::Latency(_) => "session:latency",
        ServerEvent::Moved { .. } => "session:moved",
        ServerEvent::AuthRefreshed { .. } => "auth:refreshed",
        ServerEvent::Error { code, .. } => code.as_str(),
    }
}

/// One message that connection `who` received.
fn receive(slots: &mut [Slot], held: &mut BTreeSet<Seat>, who: usize, msg: ServerMessage) {
    let in_room = slots[who].seat.is_some();
    let mut take_seat = |info: &SessionInfo, resumed: bool| {
        assert_eq!(
            slots[who].seat, None,
            "connection {who} got a session answer while seated"
        );
        assert!(
            info.participants.iter().any(|p| p.id == info.user_id),
            "the receiver is among the participants"
        );
        assert!(
            info.participants.iter().any(|p| p.id == info.host_id),
            "the host is among the participants"
        );
        let seat = Seat {
            code: info.room_code.clone(),
            user: info.user_id.clone(),
        };
        if resumed {
            held.remove(&seat);
            // A connection that held the seat was taken over.
            for (other, slot) in slots.iter_mut().enumerate() {
                if other != who && slot.seat.as_ref() == Some(&seat) {
                    slot.seat = None;
                    assert_eq!(
                        slot.live.outbox.close_reason(),
                        Some(CloseReason::ResumedElsewhere),
                        "connection {other} lost its seat to {who}"
                    );
                }
            }
        } else {
            assert!(!held.contains(&seat), "a new seat with a held seat's id");
        }
        let slot = &mut slots[who];
        slot.seat = Some(seat);
        slot.code = info.room_code.clone();
        slot.user = info.user_id.clone();
        slot.token = info.resume_token.clone();
        slot.seq = info.seq;
        slot.seen = if resumed { 0 } else { info.seq };
    };
    match &msg.event {
        ServerEvent::Created(info) | ServerEvent::Joined(info) => take_seat(info, false),
        ServerEvent::Resumed(info) => take_seat(info, true),
        ServerEvent::Left { room_code } => {
            let seat = slots[who].seat.take();
            assert_eq!(
                seat.map(|s| s.code).as_ref(),
                Some(room_code),
                "session:left for a room connection {who} was not in"
            );
        }
        ServerEvent::Error { message, .. } => {
            assert!(!message.trim().is_empty(), "an error without a message");
        }
        ServerEvent::Pong { t0, .. } => assert!(t0.is_number(), "pong t0 {t0}"),
        ServerEvent::Moved { .. } => panic!("session:moved from a server with one node"),
        ServerEvent::AuthRefreshed { .. } => panic!("auth:refreshed from a server without sign-in"),
        ServerEvent::Broadcast { sender_id, .. } => {
            let seat = slots[who].seat.as_ref();
            assert!(in_room, "a broadcast to connection {who} in no room");
            assert_ne!(
                Some(sender_id),
                seat.map(|s| &s.user),
                "a broadcast back to its sender"
            );
        }
        ServerEvent::UserJoined(_)
        | ServerEvent::UserLeft { .. }
        | ServerEvent::HostChanged { .. }
        | ServerEvent::UserAway { .. }
        | ServerEvent::UserBack { .. }
        | ServerEvent::TempoChanged(_)
        | ServerEvent::Latency(_) => {
            assert!(in_room, "{:?} to connection {who} in no room", msg.event);
        }
    }
    if let Some(seq) = msg.seq {
        let is_answer = matches!(
            msg.event,
            ServerEvent::Created(_) | ServerEvent::Joined(_) | ServerEvent::Resumed(_)
        );
        let slot = &mut slots[who];
        if !is_answer && slot.seat.is_some() {
            assert!(
                seq > slot.seen,
                "seq {seq} after {} on connection {who}: {:?}",
                slot.seen,
                msg.event
            );
            slot.seen = seq;
            slot.seq = seq;
        }
    }
}

/// Every room holds the seats its connections were told of, present or held away, and no
/// other room exists.
fn check_rooms(slots: &[Slot], held: &BTreeSet<Seat>, hub: &Hub) {
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for seat in slots.iter().filter_map(|s| s.seat.as_ref()).chain(held) {
        *want.entry(seat.code.as_str()).or_default() += 1;
    }
    for (code, n) in &want {
        let room = RoomCode::normalize(code)
            .and_then(|c| hub.room(&c))
            .unwrap_or_else(|| panic!("room {code} with {n} seats is gone"));
        assert_eq!(room.len(), *n, "seats in room {code}");
    }
    assert_eq!(hub.room_count(), want.len(), "rooms: {want:?}");
}
