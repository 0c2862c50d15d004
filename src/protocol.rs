//! The jam protocol, version 1: envelope, client and server messages, error codes,
//! validation and encoding. No I/O lives here.
//!
//! Incoming text is parsed without copying what the server only relays: an
//! `event:broadcast` keeps its `payload` as the sender's raw JSON (`RawValue`), and the
//! relayed envelope is encoded once into [`Bytes`] for every receiver.
//!
//! The client side of the same types ([`ServerEvent`]) lives here too, so the Rust client,
//! the tests and the benchmark decode exactly what the server encodes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The protocol version reported by `GET /connect`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest instrument, in Unicode scalar values.
pub const MAX_INSTRUMENT_CHARS: usize = 32;
/// Longest `eventName`, in Unicode scalar values.
pub const MAX_EVENT_NAME_CHARS: usize = 64;
/// Length of a room code.
pub const ROOM_CODE_LEN: usize = 6;
/// Crockford base32 alphabet: digits and upper-case letters without I, L, O, U.
pub const ROOM_CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Event names on the wire.
pub mod event {
    /// Client: create a room.
    pub const CREATE: &str = "session:create";
    /// Client: join a room.
    pub const JOIN: &str = "session:join";
    /// Client: leave the room.
    pub const LEAVE: &str = "session:leave";
    /// Both ways: a relayed event.
    pub const BROADCAST: &str = "event:broadcast";
    /// Server: the room was created.
    pub const CREATED: &str = "session:created";
    /// Server: the caller joined.
    pub const JOINED: &str = "session:joined";
    /// Server: the caller left.
    pub const LEFT: &str = "session:left";
    /// Server: someone else joined.
    pub const USER_JOINED: &str = "session:user-joined";
    /// Server: someone else left.
    pub const USER_LEFT: &str = "session:user-left";
    /// Server: the host changed.
    pub const HOST_CHANGED: &str = "session:host-changed";
    /// Server: an error answer.
    pub const ERROR: &str = "error";
}

/// The wire `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message is not a valid envelope, names an unknown event, or a field is
    /// missing, of the wrong type or breaks its rule.
    InvalidMessage,
    /// Another participant of the room has that name (case-insensitively).
    NameTaken,
    /// The room has reached its size limit.
    RoomFull,
    /// The room code names no live room.
    RoomNotFound,
    /// The connection is already in a room.
    AlreadyInSession,
    /// The connection is not in the room the message names.
    NotInSession,
    /// The message is larger than the configured limit.
    PayloadTooLarge,
    /// The connection sends `event:broadcast` faster than its budget.
    RateLimited,
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::AlreadyInSession => "already_in_session",
            ErrorCode::NotInSession => "not_in_session",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol failure that answers the client with an `error` message; the connection
/// stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// What clients branch on.
    pub code: ErrorCode,
    /// What people read.
    pub message: Cow<'static, str>,
}

impl ProtocolError {
    /// An error with a fixed message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `invalid_message` with the given explanation.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidMessage, message)
    }
}

/// A canonical room code: six characters of the Crockford alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode([u8; ROOM_CODE_LEN]);

impl RoomCode {
    /// A fresh code from the operating system's secure generator (via `rand`'s `ThreadRng`,
    /// a CSPRNG seeded from the OS).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut code = [0u8; ROOM_CODE_LEN];
        for c in &mut code {
            *c = ROOM_CODE_ALPHABET[rng.random_range(0..ROOM_CODE_ALPHABET.len())];
        }
        RoomCode(code)
    }

    /// Normalises what a person typed or read aloud: Unicode white space and `-` removed,
    /// upper-cased, `O` → `0`, `I`/`L` → `1`. `None` when the result is not a well-formed
    /// code (which the caller reports as `room_not_found`).
    pub fn normalize(input: &str) -> Option<Self> {
        let mut code = [0u8; ROOM_CODE_LEN];
        let mut len = 0;
        for ch in input.chars() {
            if ch.is_whitespace() || ch == '-' {
                continue;
            }
            let up = match ch.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !up.is_ascii() || !ROOM_CODE_ALPHABET.contains(&(up as u8)) || len == ROOM_CODE_LEN {
                return None;
            }
            code[len] = up as u8;
            len += 1;
        }
        (len == ROOM_CODE_LEN).then_some(RoomCode(code))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        // The bytes are always drawn from the ASCII alphabet.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoomCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An opaque user id: 128 random bits as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    /// A fresh id from a cryptographically secure generator.
    pub fn generate() -> Self {
        let bits: u128 = rand::rng().random();
        UserId(format!("{bits:032x}").into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member of a room as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Opaque user id.
    pub id: String,
    /// Display name, trimmed.
    pub name: String,
    /// Instrument, trimmed; `""` when none was given.
    pub instrument: String,
}

/// A validated display name and its case-folded key for uniqueness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name as shown (trimmed).
    pub display: String,
    /// Unicode lower case of `display`, compared for `name_taken`.
    pub key: String,
}

/// Validates a display name: trimmed of Unicode white space, 1 to 32 characters, no
/// control characters.
pub fn validate_name(raw: &str) -> Result<Name, ProtocolError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(ProtocolError::invalid("name must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(ProtocolError::invalid("name is longer than 32 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ProtocolError::invalid(
            "name must not contain control characters",
        ));
    }
    Ok(Name {
        display: name.to_owned(),
        key: name.to_lowercase(),
    })
}

/// Validates an instrument: missing or `null` is `""`; trimmed; at most 32 characters;
/// no control characters.
pub fn validate_instrument(raw: Option<&str>) -> Result<String, ProtocolError> {
    let instrument = raw.unwrap_or("").trim();
    if instrument.chars().count() > MAX_INSTRUMENT_CHARS {
        return Err(ProtocolError::invalid(
            "instrument is longer than 32 characters",
        ));
    }
    if instrument.chars().any(char::is_control) {
        return Err(ProtocolError::invalid(
            "instrument must not contain control characters",
        ));
    }
    Ok(instrument.to_owned())
}

fn validate_event_name(raw: &str) -> Result<(), ProtocolError> {
    let n = raw.chars().count();
    if n == 0 || n > MAX_EVENT_NAME_CHARS {
        return Err(ProtocolError::invalid(
            "eventName must be 1 to 64 characters",
        ));
    }
    Ok(())
}

/// A client message, validated field by field; borrows from the incoming text.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `session:create`.
    Create {
        /// Validated name.
        name: Name,
        /// Validated instrument.
        instrument: String,
    },
    /// `session:join`; the room code is normalised by the room core.
    Join {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
        /// Validated name.
        name: Name,
        /// Validated instrument.
        instrument: String,
    },
    /// `session:leave`.
    Leave {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
    },
    /// `event:broadcast`.
    Broadcast(Broadcast<'a>),
}

/// A validated `event:broadcast` from a client.
#[derive(Debug)]
pub struct Broadcast<'a> {
    /// Room code as the client wrote it.
    pub room_code: Cow<'a, str>,
    /// 1 to 64 characters.
    pub event_name: Cow<'a, str>,
    /// The sender's JSON, relayed as written.
    pub payload: &'a RawValue,
}

/// The envelope's first parse: shape, event name and id, and for an `event:broadcast`
/// whose `event` comes before its `data` (what every client sends), its fields too, so
/// the hot message is read in one pass.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The `event` name.
    pub event: Cow<'a, str>,
    /// The `id` to echo, when it is a number or a string.
    pub id: Option<&'a RawValue>,
    data: Data<'a>,
}

/// `data` as the envelope's parse left it; [`Envelope::message`] checks its rules.
#[derive(Debug)]
enum Data<'a> {
    /// The raw object, decoded for its event by `message()`.
    Raw(&'a RawValue),
    /// The fields of an `event:broadcast`, decoded in the envelope's own pass.
    Broadcast(BroadcastData<'a>),
}

/// The fields of `event:broadcast` before their rules are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BroadcastData<'a> {
    #[serde(borrow)]
    room_code: Cow<'a, str>,
    #[serde(borrow)]
    event_name: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The envelope's fields before their rules are checked; `event` is `None` when it is
/// missing or not a string.
struct RawEnvelope<'a> {
    event: Option<Cow<'a, str>>,
    data: Option<Data<'a>>,
    id: Option<&'a RawValue>,
}

/// The general reading of the envelope: `data` stays raw whatever the event.
#[derive(Deserialize)]
struct GeneralEnvelope<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

impl<'a> From<GeneralEnvelope<'a>> for RawEnvelope<'a> {
    fn from(env: GeneralEnvelope<'a>) -> Self {
        RawEnvelope {
            event: env.event.and_then(|e| json_str(e.get())),
            data: env.data.map(Data::Raw),
            id: env.id,
        }
    }
}

/// The one-pass reading of the envelope, for the hot message. It accepts a subset of
/// what [`GeneralEnvelope`] accepts and reads it the same way; anything else (an
/// `event` that is neither a string nor `null`, a broadcast whose fields are missing,
/// mistyped or repeated, `data` that is not an object, a repeated top-level field,
/// malformed JSON) is an error, on which
/// [`Envelope::parse`] reads the text again the general way, so every refusal and its
/// message stay those of the general path.
impl<'de> Deserialize<'de> for RawEnvelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Key {
            Event,
            Data,
            Id,
            #[serde(other)]
            Other,
        }

        struct EnvelopeVisitor;

        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = RawEnvelope<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an envelope object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut event = None;
                let mut data = None;
                let mut id = None;
                while let Some(key) = map.next_key()? {
                    match key {
                        Key::Event => {
                            let value = map.next_value::<Option<Text>>()?;
                            set(&mut event, "event", value.map(|t| t.0))?;
                        }
                        Key::Data => {
                            let is_broadcast =
                                matches!(&event, Some(Some(e)) if e == event::BROADCAST);
                            let value = if is_broadcast {
                                Some(Data::Broadcast(map.next_value_seed(BroadcastSeed)?))
                            } else {
                                map.next_value::<Option<&RawValue>>()?.map(Data::Raw)
                            };
                            set(&mut data, "data", value)?;
                        }
                        Key::Id => set(&mut id, "id", map.next_value()?)?,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawEnvelope {
                    event: event.flatten(),
                    data: data.flatten(),
                    id: id.flatten(),
                })
            }
        }

        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A string, borrowed when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Stores a field's value, refusing a second one as serde's derive does.
fn set<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

/// Decodes the `data` object of an `event:broadcast` inside the envelope's pass. Only an
/// object is accepted (the derived reading would take an array too).
struct BroadcastSeed;

impl<'de> DeserializeSeed<'de> for BroadcastSeed {
    type Value = BroadcastData<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BroadcastSeed {
    type Value = BroadcastData<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event:broadcast data object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Key {
            RoomCode,
            EventName,
            Payload,
            #[serde(other)]
            Other,
        }

        let mut room_code = None;
        let mut event_name = None;
        let mut payload = None;
        while let Some(key) = map.next_key()? {
            match key {
                Key::RoomCode => set(&mut room_code, "roomCode", map.next_value::<Text>()?.0)?,
                Key::EventName => {
                    set(&mut event_name, "eventName", map.next_value::<Text>()?.0)?;
                }
                Key::Payload => set(&mut payload, "payload", map.next_value()?)?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(BroadcastData {
            room_code: room_code.ok_or_else(|| de::Error::missing_field("roomCode"))?,
            event_name: event_name.ok_or_else(|| de::Error::missing_field("eventName"))?,
            payload: payload.ok_or_else(|| de::Error::missing_field("payload"))?,
        })
    }
}

/// Why an incoming message was refused, with the `id` to echo if one could be read.
#[derive(Debug)]
pub struct Rejection<'a> {
    /// The `id` of the message, when it parsed as an object with a number or string `id`.
    pub id: Option<&'a RawValue>,
    /// The error to answer.
    pub error: ProtocolError,
}

impl<'a> Rejection<'a> {
    fn invalid(id: Option<&'a RawValue>, message: &'static str) -> Self {
        Rejection {
            id,
            error: ProtocolError::invalid(message),
        }
    }
}

/// serde would also accept a JSON array for a struct: insist on an object.
fn check_object(text: &str) -> Result<(), Rejection<'_>> {
    if text.trim_start().starts_with('{') {
        Ok(())
    } else {
        Err(Rejection::invalid(None, "message must be a JSON object"))
    }
}

/// Reads the envelope the general way, keeping `data` raw whatever the event.
fn read_general(text: &str) -> Result<RawEnvelope<'_>, Rejection<'_>> {
    serde_json::from_str::<GeneralEnvelope>(text)
        .map(RawEnvelope::from)
        .map_err(|_| Rejection::invalid(None, "message is not valid JSON"))
}

fn echoable_id(id: Option<&RawValue>) -> Option<&RawValue> {
    id.filter(|raw| {
        let first = raw.get().as_bytes().first().copied().unwrap_or(b' ');
        first == b'"' || first == b'-' || first.is_ascii_digit()
    })
}

impl<'a> Envelope<'a> {
    /// Parses the envelope: a JSON object with a string `event` and an object `data`.
    /// Unknown top-level fields are ignored.
    pub fn parse(text: &'a str) -> Result<Self, Rejection<'a>> {
        check_object(text)?;
        // One pass reads nearly every message; what it refuses, the general reading reads
        // again and decides the answer.
        let raw = match serde_json::from_str::<RawEnvelope<'a>>(text) {
            Ok(raw) => raw,
            Err(_) => read_general(text)?,
        };
        Self::check(raw)
    }

    /// [`Envelope::parse`] without the one-pass reading, to compare the two.
    #[cfg(test)]
    fn parse_general(text: &'a str) -> Result<Self, Rejection<'a>> {
        check_object(text)?;
        Self::check(read_general(text)?)
    }

    /// Applies the envelope's rules to the fields as read.
    fn check(raw: RawEnvelope<'a>) -> Result<Self, Rejection<'a>> {
        let id = echoable_id(raw.id);
        let event = raw
            .event
            .ok_or_else(|| Rejection::invalid(id, "`event` must be a string"))?;
        let data = raw
            .data
            .filter(|d| match d {
                Data::Raw(raw) => raw.get().starts_with('{'),
                Data::Broadcast(_) => true,
            })
            .ok_or_else(|| Rejection::invalid(id, "`data` must be an object"))?;
        Ok(Envelope { event, id, data })
    }

    /// Whether this is an `event:broadcast` (the rate limit is checked before its fields).
    pub fn is_broadcast(&self) -> bool {
        self.event == event::BROADCAST
    }

    /// Validates `data` for the named event.
    pub fn message(&self) -> Result<ClientMessage<'a>, ProtocolError> {
        fn fields<'de, T: Deserialize<'de>>(data: &'de RawValue) -> Result<T, ProtocolError> {
            serde_json::from_str(data.get()).map_err(|e| {
                ProtocolError::invalid(format!("invalid data: {}", strip_position(&e)))
            })
        }
        #[derive(Deserialize)]
        struct CreateData<'a> {
            #[serde(borrow)]
            name: Cow<'a, str>,
            #[serde(borrow, default)]
            instrument: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct JoinData<'a> {
            #[serde(borrow)]
            room_code: Cow<'a, str>,
            #[serde(borrow)]
            name: Cow<'a, str>,
            #[serde(borrow, default)]
            instrument: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LeaveData<'a> {
            #[serde(borrow)]
            room_code: Cow<'a, str>,
        }
        fn broadcast(d: BroadcastData<'_>) -> Result<ClientMessage<'_>, ProtocolError> {
            validate_event_name(&d.event_name)?;
            Ok(ClientMessage::Broadcast(Broadcast {
                room_code: d.room_code,
                event_name: d.event_name,
                payload: d.payload,
            }))
        }

        let data = match &self.data {
            Data::Broadcast(d) => return broadcast(d.clone()),
            Data::Raw(raw) => *raw,
        };
        match &*self.event {
            event::CREATE => {
                let d: CreateData = fields(data)?;
                Ok(ClientMessage::Create {
                    name: validate_name(&d.name)?,
                    instrument: validate_instrument(d.instrument.as_deref())?,
                })
            }
            event::JOIN => {
                let d: JoinData = fields(data)?;
                Ok(ClientMessage::Join {
                    name: validate_name(&d.name)?,
                    instrument: validate_instrument(d.instrument.as_deref())?,
                    room_code: d.room_code,
                })
            }
            event::LEAVE => {
                let d: LeaveData = fields(data)?;
                Ok(ClientMessage::Leave {
                    room_code: d.room_code,
                })
            }
            event::BROADCAST => broadcast(fields(data)?),
            other => Err(ProtocolError::invalid(format!(
                "unknown event `{}`",
                truncate_chars(other, 64)
            ))),
        }
    }
}

/// A JSON string value, borrowed when it has no escapes (the usual case), else unescaped.
fn json_str(raw: &str) -> Option<Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

/// serde_json appends " at line 1 column 17"; people want just the reason.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Converts a MessagePack datagram into the equivalent compact JSON text. Values with no
/// JSON form (binary, extension types, non-string map keys, NaN and infinities) are
/// refused.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<String, ProtocolError> {
    let not_msgpack = || ProtocolError::invalid("datagram is neither JSON nor valid MessagePack");
    // rmpv reads the reserved marker 0xc1 as nil; MessagePack forbids it.
    if bytes.first() == Some(&0xc1) {
        return Err(not_msgpack());
    }
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest).map_err(|_| not_msgpack())?;
    if !rest.is_empty() {
        return Err(not_msgpack());
    }
    let json = rmpv_to_json(value)?;
    serde_json::to_string(&json).map_err(|_| ProtocolError::invalid("unencodable MessagePack"))
}

fn rmpv_to_json(value: rmpv::Value) -> Result<serde_json::Value, ProtocolError> {
    use rmpv::Value as M;
    use serde_json::Value as J;
    let no_json =
        |what: &'static str| ProtocolError::invalid(format!("MessagePack {what} has no JSON form"));
    Ok(match value {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(b),
        M::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else if let Some(s) = i.as_i64() {
                J::from(s)
            } else {
                return Err(no_json("integer"));
            }
        }
        M::F32(f) => serde_json::Number::from_f64(f64::from(f))
            .map(J::Number)
            .ok_or_else(|| no_json("NaN or infinity"))?,
        M::F64(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| no_json("NaN or infinity"))?,
        M::String(s) => J::String(s.into_str().ok_or_else(|| no_json("non-UTF-8 string"))?),
        M::Binary(_) => return Err(no_json("binary")),
        M::Ext(..) => return Err(no_json("extension type")),
        M::Array(items) => J::Array(
            items
                .into_iter()
                .map(rmpv_to_json)
                .collect::<Result<_, _>>()?,
        ),
        M::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let M::String(key) = k else {
                    return Err(no_json("non-string map key"));
                };
                let key = key.into_str().ok_or_else(|| no_json("non-UTF-8 map key"))?;
                map.insert(key, rmpv_to_json(v)?);
            }
            J::Object(map)
        }
    })
}

/// Converts compact JSON (as the server encodes it) to MessagePack, maps as maps, keys in
/// their JSON order. Streamed token by token (no `Value` tree in between).
pub fn json_to_msgpack(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut from = serde_json::Deserializer::from_slice(json);
    let mut to = rmp_serde::Serializer::new(&mut out).with_struct_map();
    serde_transcode::transcode(&mut from, &mut to).ok()?;
    from.end().ok()?;
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Server → client encoding.

#[derive(Serialize)]
struct Out<'a, D: Serialize> {
    event: &'a str,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
}

/// Encodes one envelope as compact JSON.
pub fn encode<D: Serialize>(event: &str, data: D, id: Option<&RawValue>) -> Bytes {
    let mut buf = Vec::with_capacity(128);
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buf, &Out { event, data, id });
    Bytes::from(buf)
}

/// `session:created` / `session:joined` data.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionData<'a> {
    /// Canonical code.
    pub room_code: &'a RoomCode,
    /// The caller's id.
    pub user_id: &'a UserId,
    /// The host's id.
    pub host_id: &'a UserId,
    /// The room in join order.
    pub participants: &'a [Participant],
}

/// Encodes an `error` answer.
pub fn encode_error(error: &ProtocolError, id: Option<&RawValue>) -> Bytes {
    #[derive(Serialize)]
    struct E<'a> {
        code: ErrorCode,
        message: &'a str,
    }
    encode(
        event::ERROR,
        E {
            code: error.code,
            message: &error.message,
        },
        id,
    )
}

/// Encodes `session:left`.
pub fn encode_left(room: &RoomCode, id: Option<&RawValue>) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        room_code: &'a RoomCode,
    }
    encode(event::LEFT, D { room_code: room }, id)
}

/// Encodes `session:user-joined`.
pub fn encode_user_joined(user: &Participant) -> Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        user: &'a Participant,
    }
    encode(event::USER_JOINED, D { user }, None)
}

/// Encodes `session:user-left`.
pub fn encode_user_left(user: &UserId) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        user_id: &'a UserId,
    }
    encode(event::USER_LEFT, D { user_id: user }, None)
}

/// Encodes `session:host-changed`.
pub fn encode_host_changed(host: &UserId) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        host_id: &'a UserId,
    }
    encode(event::HOST_CHANGED, D { host_id: host }, None)
}

/// Encodes the relayed `event:broadcast` once for every receiver.
///
/// Written piece by piece rather than through serde: the keys are fixed, so only the two
/// strings need escaping (by serde_json, as everywhere else), and this runs for every
/// relayed event. The bytes are those [`encode`] would write.
pub fn encode_broadcast(event_name: &str, payload: &RawValue, sender: &UserId) -> Bytes {
    const HEAD: &[u8] = br#"{"event":"event:broadcast","data":{"eventName":"#;
    const PAYLOAD: &[u8] = br#","payload":"#;
    const SENDER: &[u8] = br#","senderId":"#;
    const TAIL: &[u8] = b"}}";
    let payload = payload.get().as_bytes();
    let sender = sender.as_str();
    // Exact when `eventName` needs no escapes (the usual case); 4 counts the names' quotes.
    let fixed = HEAD.len() + PAYLOAD.len() + SENDER.len() + TAIL.len() + 4;
    let mut buf = Vec::with_capacity(fixed + event_name.len() + payload.len() + sender.len());
    buf.extend_from_slice(HEAD);
    write_json_str(&mut buf, event_name);
    buf.extend_from_slice(PAYLOAD);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(SENDER);
    write_json_str(&mut buf, sender);
    buf.extend_from_slice(TAIL);
    Bytes::from(buf)
}

/// Appends `s` as a JSON string, quoted and escaped.
fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(buf, s);
}

// ---------------------------------------------------------------------------------------
// Client side: what a client receives.

/// `session:created` / `session:joined` as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Canonical room code.
    pub room_code: String,
    /// The receiver's own id.
    pub user_id: String,
    /// The host's id.
    pub host_id: String,
    /// Everyone in the room, in join order.
    pub participants: Vec<Participant>,
}

/// A server message as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `session:created`.
    Created(SessionInfo),
    /// `session:joined`.
    Joined(SessionInfo),
    /// `session:left`.
    Left {
        /// Canonical room code.
        room_code: String,
    },
    /// `session:user-joined`.
    UserJoined(Participant),
    /// `session:user-left`.
    UserLeft {
        /// Who left.
        user_id: String,
    },
    /// `session:host-changed`.
    HostChanged {
        /// The new host.
        host_id: String,
    },
    /// `event:broadcast`.
    Broadcast {
        /// The sender's event name.
        event_name: String,
        /// The sender's payload.
        payload: serde_json::Value,
        /// Who sent it.
        sender_id: String,
    },
    /// `error`.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable text.
        message: String,
    },
}

/// A decoded server envelope: the event and the echoed `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    /// The event.
    pub event: ServerEvent,
    /// The echoed `id`, if any.
    pub id: Option<serde_json::Value>,
}

/// Why a client could not decode a server message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the envelope's shape.
    #[error("malformed envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// Not MessagePack of the envelope's shape.
    #[error("malformed MessagePack envelope: {0}")]
    MsgPack(#[from] rmp_serde::decode::Error),
    /// An event name the client does not know.
    #[error("unknown server event `{0}`")]
    UnknownEvent(String),
}

#[derive(Deserialize)]
struct AnyEnvelope {
    event: String,
    data: serde_json::Value,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

impl ServerMessage {
    /// Decodes a JSON envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_any(serde_json::from_slice(bytes)?)
    }

    /// Decodes a MessagePack envelope.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_any(rmp_serde::from_slice(bytes)?)
    }

    fn from_any(env: AnyEnvelope) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Left {
            room_code: String,
        }
        #[derive(Deserialize)]
        struct UserJoined {
            user: Participant,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct UserLeft {
            user_id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct HostChanged {
            host_id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Relayed {
            event_name: String,
            payload: serde_json::Value,
            sender_id: String,
        }
        #[derive(Deserialize)]
        struct Error {
            code: ErrorCode,
            message: String,
        }
        use serde_json::from_value as v;
        let event = match env.event.as_str() {
            event::CREATED => ServerEvent::Created(v(env.data)?),
            event::JOINED => ServerEvent::Joined(v(env.data)?),
            event::LEFT => ServerEvent::Left {
                room_code: v::<Left>(env.data)?.room_code,
            },
            event::USER_JOINED => ServerEvent::UserJoined(v::<UserJoined>(env.data)?.user),
            event::USER_LEFT => ServerEvent::UserLeft {
                user_id: v::<UserLeft>(env.data)?.user_id,
            },
            event::HOST_CHANGED => ServerEvent::HostChanged {
                host_id: v::<HostChanged>(env.data)?.host_id,
            },
            event::BROADCAST => {
                let r: Relayed = v(env.data)?;
                ServerEvent::Broadcast {
                    event_name: r.event_name,
                    payload: r.payload,
                    sender_id: r.sender_id,
                }
            }
            event::ERROR => {
                let e: Error = v(env.data)?;
                ServerEvent::Error {
                    code: e.code,
                    message: e.message,
                }
            }
            other => return Err(DecodeError::UnknownEvent(other.to_owned())),
        };
        Ok(ServerMessage { event, id: env.id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(text: &str) -> ErrorCode {
        match Envelope::parse(text) {
            Err(r) => r.error.code,
            Ok(env) => env.message().expect_err("should be invalid").code,
        }
    }

    #[test]
    fn room_codes_are_six_crockford_characters_and_unique_enough() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let code = RoomCode::generate();
            assert_eq!(code.as_str().len(), 6);
            assert!(code
                .as_str()
                .bytes()
                .all(|b| ROOM_CODE_ALPHABET.contains(&b)));
            assert_eq!(RoomCode::normalize(code.as_str()), Some(code.clone()));
            seen.insert(code);
        }
        assert!(seen.len() > 990, "codes repeat far too often");
    }

    #[test]
    fn room_code_normalisation() {
        let want = RoomCode::normalize("K7F3Q0").unwrap();
        for typed in ["k7f3q0", "K7F-3Q0", " k7f 3qo ", "K7F3QO", "k7f\u{2003}3q0"] {
            assert_eq!(RoomCode::normalize(typed), Some(want.clone()), "{typed:?}");
        }
        assert_eq!(RoomCode::normalize("abc-ili").unwrap().as_str(), "ABC111");
        for bad in ["", "K7F3Q", "K7F3Q00", "K7F3QU", "K7F3Q!", "K7F3QÉ"] {
            assert_eq!(RoomCode::normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_are_opaque_and_long_enough() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_name("  Ana \u{3000}").unwrap().display, "Ana");
        assert_eq!(validate_name("ÁNA").unwrap().key, "ána");
        assert_eq!(
            validate_name(&"é".repeat(32))
                .unwrap()
                .display
                .chars()
                .count(),
            32
        );
        assert!(validate_name(&"é".repeat(33)).is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name("a\nb").is_err());
    }

    #[test]
    fn instrument_rules() {
        assert_eq!(validate_instrument(None).unwrap(), "");
        assert_eq!(validate_instrument(Some(" bass ")).unwrap(), "bass");
        assert!(validate_instrument(Some(&"x".repeat(33))).is_err());
        assert!(validate_instrument(Some("a\u{1b}")).is_err());
    }

    #[test]
    fn envelope_shape() {
        assert_eq!(err_code("nope"), ErrorCode::InvalidMessage);
        assert_eq!(err_code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(
            err_code(r#"{"event":1,"data":{}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(err_code(r#"{"event":"x"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            err_code(r#"{"event":"x","data":[]}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            err_code(r#"{"event":"nope","data":{}}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn id_is_echoed_only_for_numbers_and_strings() {
        let r = Envelope::parse(r#"{"event":1,"data":{},"id":7}"#).unwrap_err();
        assert_eq!(r.id.map(RawValue::get), Some("7"));
        let r = Envelope::parse(r#"{"event":1,"data":{},"id":"a\"b"}"#).unwrap_err();
        assert_eq!(r.id.map(RawValue::get), Some(r#""a\"b""#));
        let r = Envelope::parse(r#"{"event":1,"data":{},"id":{"x":1}}"#).unwrap_err();
        assert!(r.id.is_none());
        assert!(Envelope::parse("{bad").unwrap_err().id.is_none());
    }

    #[test]
    fn fields_and_types() {
        let ok = Envelope::parse(
            r#"{"event":"session:join","data":{"roomCode":"abc","name":" Bo ","instrument":null,"extra":1},"x":2}"#,
        )
        .unwrap();
        match ok.message().unwrap() {
            ClientMessage::Join {
                room_code,
                name,
                instrument,
            } => {
                assert_eq!(room_code, "abc");
                assert_eq!(name.display, "Bo");
                assert_eq!(instrument, "");
            }
            other => panic!("unexpected {other:?}"),
        }
        for bad in [
            r#"{"event":"session:create","data":{}}"#,
            r#"{"event":"session:create","data":{"name":5}}"#,
            r#"{"event":"session:create","data":{"name":"a","instrument":3}}"#,
            r#"{"event":"session:join","data":{"name":"a"}}"#,
            r#"{"event":"session:leave","data":{"roomCode":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n"}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"","payload":1}}"#,
        ] {
            assert_eq!(err_code(bad), ErrorCode::InvalidMessage, "{bad}");
        }
        let long = format!(
            r#"{{"event":"event:broadcast","data":{{"roomCode":"A","eventName":"{}","payload":1}}}}"#,
            "e".repeat(65)
        );
        assert_eq!(err_code(&long), ErrorCode::InvalidMessage);
    }

    #[test]
    fn payload_is_kept_byte_for_byte() {
        let text = r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"note","payload":{ "n" : 60,"v":1.50 }}}"#;
        let env = Envelope::parse(text).unwrap();
        let ClientMessage::Broadcast(b) = env.message().unwrap() else {
            panic!("not a broadcast");
        };
        assert_eq!(b.payload.get(), r#"{ "n" : 60,"v":1.50 }"#);
        let out = encode_broadcast(&b.event_name, b.payload, &UserId("u1".into()));
        assert_eq!(
            &out[..],
            br#"{"event":"event:broadcast","data":{"eventName":"note","payload":{ "n" : 60,"v":1.50 },"senderId":"u1"}}"#
        );
        let null =
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":null}}"#;
        assert!(Envelope::parse(null).unwrap().message().is_ok());
    }

    /// What a message comes to: the rejection, or the event, the echoed id and what
    /// `message()` makes of `data`.
    fn outcome(parsed: Result<Envelope<'_>, Rejection<'_>>) -> String {
        match parsed {
            Err(r) => format!("rejected {:?} {:?}", r.id.map(RawValue::get), r.error),
            Ok(env) => format!(
                "{:?} {:?} {:?}",
                env.event,
                env.id.map(RawValue::get),
                env.message()
            ),
        }
    }

    /// The one-pass reading must agree with the general one on every message.
    fn assert_agrees(text: &str) {
        assert_eq!(
            outcome(Envelope::parse(text)),
            outcome(Envelope::parse_general(text)),
            "{text}"
        );
    }

    fn read_in_one_pass(text: &str) -> bool {
        matches!(
            Envelope::parse(text),
            Ok(Envelope {
                data: Data::Broadcast(_),
                ..
            })
        )
    }

    #[test]
    fn one_pass_reads_usual_broadcasts() {
        for text in [
            r#"{"event":"event:broadcast","data":{"roomCode":"K7F3QX","eventName":"note","payload":{"n":[60,{"v":1}]}}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"K7F3QX","eventName":"note","payload":null},"id":7}"#,
            r#"{"id":"q\"1","event":"event:broadcast","data":{"payload":1,"eventName":"n","roomCode":"a"}}"#,
            r#" { "event" : "event:broadcast" , "data" : { "roomCode" : "A" , "eventName" : "n" , "payload" : [ ] } } "#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A\u0042","eventName":"n\"\u00e9","payload":"\ud83c\udfb9"}}"#,
            r#"{"event":"event:broadcast","data":{"room\u0043ode":"A","eventName":"n","payload":1}}"#,
            r#"{"event":"event:broadcast","x":{"y":[1,{"z":2}]},"data":{"roomCode":"A","eventName":"n","payload":1,"extra":{"a":[1]}},"z":null}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"","payload":1}}"#,
        ] {
            assert!(read_in_one_pass(text), "{text}");
            assert_agrees(text);
        }
    }

    #[test]
    fn one_pass_agrees_with_the_general_reading() {
        let long_name = format!(
            r#"{{"event":"event:broadcast","data":{{"roomCode":"A","eventName":"{}","payload":1}}}}"#,
            "é".repeat(65)
        );
        let max_name = long_name.replacen('é', "", 1);
        let texts = [
            long_name.as_str(),
            max_name.as_str(),
            // `id` in every form.
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":-1.5e3}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":null}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":{"a":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":[1]}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":true}"#,
            // Keys in unusual order, or escaped.
            r#"{"data":{"roomCode":"A","eventName":"n","payload":1},"event":"event:broadcast"}"#,
            r#"{"data":{"roomCode":"A","eventName":"n"},"event":"event:broadcast","id":3}"#,
            r#"{"event":"event\u003abroadcast","data":{"roomCode":"A","eventName":"n","payload":1}}"#,
            r#"{"\u0065vent":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}}"#,
            // Wrong types.
            r#"{"event":"event:broadcast","data":{"roomCode":1,"eventName":"n","payload":1},"id":1}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":null,"payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":["n"],"payload":1}}"#,
            r#"{"event":"event:broadcast","data":["A","n",1],"id":2}"#,
            r#"{"event":"event:broadcast","data":null,"id":2}"#,
            r#"{"event":"event:broadcast","data":"x"}"#,
            r#"{"event":null,"data":{"roomCode":"A","eventName":"n","payload":1}}"#,
            r#"{"event":["event:broadcast"],"data":{}}"#,
            // Missing fields.
            r#"{"event":"event:broadcast","data":{"eventName":"n","payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n"},"id":"x"}"#,
            r#"{"event":"event:broadcast","data":{}}"#,
            r#"{"event":"event:broadcast"}"#,
            r#"{"data":{"roomCode":"A","eventName":"n","payload":1}}"#,
            // Repeated fields.
            r#"{"event":"event:broadcast","data":{"roomCode":"A","roomCode":"B","eventName":"n","payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1,"payload":2}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"data":{}}"#,
            r#"{"event":"event:broadcast","event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1},"id":1,"id":2}"#,
            // Malformed JSON.
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":01}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":{"a":1,}}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n\x","payload":1}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}}}"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}} x"#,
            r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":1}}  "#,
            "{\"event\":\"event:broadcast\",\"data\":{\"roomCode\":\"A\u{1}\",\"eventName\":\"n\",\"payload\":1}}",
            "\u{a0}{\"event\":\"event:broadcast\",\"data\":{}}",
            "[]",
            "",
            // Other events take the same road as before.
            r#"{"event":"session:join","data":{"roomCode":"abc","name":" Bo ","instrument":null},"id":4}"#,
            r#"{"event":"session:leave","data":{"roomCode":"abc"},"event":"x"}"#,
            r#"{"event":"session:create","data":[],"id":"c"}"#,
            r#"{"event":"nope","data":{}}"#,
        ];
        for text in texts {
            assert_agrees(text);
        }
    }

    #[test]
    fn broadcast_encoding_matches_serde() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct D<'a> {
            event_name: &'a str,
            payload: &'a RawValue,
            sender_id: &'a UserId,
        }
        let sender = UserId::generate();
        let payload: &RawValue = serde_json::from_str(r#"{ "a" : [1, "\u00e9\n"] }"#).unwrap();
        for event_name in ["note", "n\"o\\t\u{1}e\u{7f}", "é🎹\u{2028}", ""] {
            let want = encode(
                event::BROADCAST,
                D {
                    event_name,
                    payload,
                    sender_id: &sender,
                },
                None,
            );
            assert_eq!(
                encode_broadcast(event_name, payload, &sender),
                want,
                "{event_name:?}"
            );
        }
    }

    #[test]
    fn error_encoding_echoes_id() {
        let id: Box<RawValue> = serde_json::from_str("\"q1\"").unwrap();
        let bytes = encode_error(&ProtocolError::new(ErrorCode::RoomFull, "full"), Some(&id));
        assert_eq!(
            &bytes[..],
            br#"{"event":"error","data":{"code":"room_full","message":"full"},"id":"q1"}"#
        );
        let msg = ServerMessage::from_json(&bytes).unwrap();
        assert_eq!(msg.id, Some(serde_json::json!("q1")));
        assert!(matches!(
            msg.event,
            ServerEvent::Error {
                code: ErrorCode::RoomFull,
                ..
            }
        ));
    }

    #[test]
    fn msgpack_round_trip_and_refusals() {
        let json = br#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":{"k":[1,-2,1.5,"s",null,true]}}}"#;
        let mp = json_to_msgpack(json).unwrap();
        let back = msgpack_to_json(&mp).unwrap();
        let a: serde_json::Value = serde_json::from_slice(json).unwrap();
        let b: serde_json::Value = serde_json::from_str(&back).unwrap();
        assert_eq!(a, b);
        // Maps stay maps with their keys in JSON order; integers take their smallest form.
        assert_eq!(
            json_to_msgpack(br#"{"b":1,"a":[300,-1]}"#).unwrap(),
            [0x82, 0xa1, b'b', 0x01, 0xa1, b'a', 0x92, 0xcd, 0x01, 0x2c, 0xff]
        );
        assert_eq!(json_to_msgpack(br#"{"a":1} x"#), None, "trailing bytes");
        assert_eq!(json_to_msgpack(br#"{"a":"#), None, "truncated");

        let bin = rmp_serde::to_vec(&serde_bytes_like()).unwrap();
        assert!(msgpack_to_json(&bin).is_err());
        let mut nan = Vec::new();
        rmp::encode::write_f64(&mut nan, f64::NAN).unwrap();
        assert!(msgpack_to_json(&nan).is_err());
        let mut intkey = Vec::new();
        rmpv::encode::write_value(
            &mut intkey,
            &rmpv::Value::Map(vec![(rmpv::Value::from(1), rmpv::Value::from(2))]),
        )
        .unwrap();
        assert!(msgpack_to_json(&intkey).is_err());
        assert!(msgpack_to_json(&[0xc1]).is_err());
        assert!(msgpack_to_json(&[0x92, 0x01]).is_err(), "truncated");
        assert!(msgpack_to_json(&[0x01, 0x02]).is_err(), "trailing bytes");
    }

    fn serde_bytes_like() -> rmpv::Value {
        rmpv::Value::Binary(vec![1, 2, 3])
    }
}
