//! Reading client messages: the envelope's shape, the `id` to echo, and each event's
//! `data`, validated field by field into a [`ClientMessage`] that borrows from the
//! incoming text.
//!
//! The hot message, `event:broadcast`, is read in one pass by a serde visitor; anything
//! that pass refuses is read again the general way, so every refusal and its message are
//! those of the general path. The `payload` stays the sender's raw JSON (`RawValue`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ProtocolError;
use crate::event;
use crate::tempo::{MAX_BEATS_PER_BAR, MAX_BPM, MIN_BPM};
use crate::validate::{validate_event_name, validate_instrument, validate_name, Name};

/// A client message, validated field by field; borrows from the incoming text.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `session:create`.
    Create {
        /// Validated name.
        name: Name,
        /// Validated instrument.
        instrument: String,
        /// The sign-in token (1.2, §13), unchecked.
        token: Option<Cow<'a, str>>,
    },
    /// `session:join`; the room code is normalised by the room core.
    Join {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
        /// Validated name.
        name: Name,
        /// Validated instrument.
        instrument: String,
        /// The sign-in token (1.2, §13), unchecked.
        token: Option<Cow<'a, str>>,
    },
    /// `session:leave`.
    Leave {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
    },
    /// `event:broadcast`.
    Broadcast(Broadcast<'a>),
    /// `session:resume` (1.1, §6).
    Resume {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
        /// The token from the last `session:created` / `joined` / `resumed`.
        resume_token: Cow<'a, str>,
        /// The last room `seq` the client saw; `None` when missing or `null`.
        last_seq: Option<u64>,
    },
    /// `clock:ping` (1.1, §7).
    ClockPing {
        /// The client's number, echoed as written.
        t0: &'a RawValue,
    },
    /// `auth:refresh` (1.2, §13).
    AuthRefresh {
        /// The new sign-in token, unchecked.
        token: Cow<'a, str>,
    },
    /// `tempo:set` (1.1, §9).
    TempoSet {
        /// Room code as the client wrote it.
        room_code: Cow<'a, str>,
        /// 20 to 300.
        bpm: f64,
        /// 1 to 16; `None` when missing or `null` (unchanged).
        beats_per_bar: Option<u32>,
    },
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
    /// `"ephemeral": true` (1.2, §11): relayed but never numbered, kept or replayed.
    pub ephemeral: bool,
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
    #[serde(default)]
    ephemeral: bool,
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
            Ephemeral,
            #[serde(other)]
            Other,
        }

        let mut room_code = None;
        let mut event_name = None;
        let mut payload = None;
        let mut ephemeral = None;
        while let Some(key) = map.next_key()? {
            match key {
                Key::RoomCode => set(&mut room_code, "roomCode", map.next_value::<Text>()?.0)?,
                Key::EventName => {
                    set(&mut event_name, "eventName", map.next_value::<Text>()?.0)?;
                }
                Key::Payload => set(&mut payload, "payload", map.next_value()?)?,
                // `true` or `false`; `null` or any other value is refused.
                Key::Ephemeral => set(&mut ephemeral, "ephemeral", map.next_value::<bool>()?)?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(BroadcastData {
            room_code: room_code.ok_or_else(|| de::Error::missing_field("roomCode"))?,
            event_name: event_name.ok_or_else(|| de::Error::missing_field("eventName"))?,
            payload: payload.ok_or_else(|| de::Error::missing_field("payload"))?,
            ephemeral: ephemeral.unwrap_or(false),
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

    /// [`Envelope::parse`] without the one-pass reading, to compare the two (the unit
    /// tests and the fuzz targets in `fuzz/` do).
    #[doc(hidden)]
    pub fn parse_general(text: &'a str) -> Result<Self, Rejection<'a>> {
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
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.event == event::BROADCAST
    }

    /// Whether this is a `tempo:set` (which counts against the broadcast send rate).
    #[inline]
    pub fn is_tempo_set(&self) -> bool {
        self.event == event::TEMPO_SET
    }

    /// Whether this is a `clock:ping` (which, like a broadcast, may come as a datagram).
    #[inline]
    pub fn is_clock_ping(&self) -> bool {
        self.event == event::CLOCK_PING
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
            #[serde(borrow, default)]
            token: Option<Cow<'a, str>>,
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
            #[serde(borrow, default)]
            token: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct RefreshData<'a> {
            #[serde(borrow)]
            token: Cow<'a, str>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LeaveData<'a> {
            #[serde(borrow)]
            room_code: Cow<'a, str>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ResumeData<'a> {
            #[serde(borrow)]
            room_code: Cow<'a, str>,
            #[serde(borrow)]
            resume_token: Cow<'a, str>,
            #[serde(borrow, default)]
            last_seq: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TempoData<'a> {
            #[serde(borrow)]
            room_code: Cow<'a, str>,
            bpm: f64,
            #[serde(default)]
            beats_per_bar: Option<f64>,
        }
        #[derive(Deserialize)]
        struct PingData<'a> {
            #[serde(borrow)]
            t0: &'a RawValue,
        }
        fn broadcast(d: BroadcastData<'_>) -> Result<ClientMessage<'_>, ProtocolError> {
            validate_event_name(&d.event_name)?;
            Ok(ClientMessage::Broadcast(Broadcast {
                room_code: d.room_code,
                event_name: d.event_name,
                payload: d.payload,
                ephemeral: d.ephemeral,
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
                    token: d.token,
                })
            }
            event::JOIN => {
                let d: JoinData = fields(data)?;
                Ok(ClientMessage::Join {
                    name: validate_name(&d.name)?,
                    instrument: validate_instrument(d.instrument.as_deref())?,
                    room_code: d.room_code,
                    token: d.token,
                })
            }
            event::LEAVE => {
                let d: LeaveData = fields(data)?;
                Ok(ClientMessage::Leave {
                    room_code: d.room_code,
                })
            }
            event::BROADCAST => broadcast(fields(data)?),
            event::RESUME => {
                let d: ResumeData = fields(data)?;
                let last_seq = match d.last_seq.map(RawValue::get) {
                    None | Some("null") => None,
                    Some(n) => Some(n.parse::<u64>().map_err(|_| {
                        ProtocolError::invalid("lastSeq must be an integer of at least 0")
                    })?),
                };
                Ok(ClientMessage::Resume {
                    room_code: d.room_code,
                    resume_token: d.resume_token,
                    last_seq,
                })
            }
            event::TEMPO_SET => {
                let d: TempoData = fields(data)?;
                if !(MIN_BPM..=MAX_BPM).contains(&d.bpm) {
                    return Err(ProtocolError::invalid("bpm must be between 20 and 300"));
                }
                let beats_per_bar = match d.beats_per_bar {
                    None => None,
                    Some(n)
                        if n.fract() == 0.0
                            && (1.0..=f64::from(MAX_BEATS_PER_BAR)).contains(&n) =>
                    {
                        Some(n as u32)
                    }
                    Some(_) => {
                        return Err(ProtocolError::invalid(
                            "beatsPerBar must be a whole number from 1 to 16",
                        ))
                    }
                };
                Ok(ClientMessage::TempoSet {
                    room_code: d.room_code,
                    bpm: d.bpm,
                    beats_per_bar,
                })
            }
            event::AUTH_REFRESH => {
                let d: RefreshData = fields(data)?;
                Ok(ClientMessage::AuthRefresh { token: d.token })
            }
            event::CLOCK_PING => {
                let d: PingData = fields(data)?;
                let first = d.t0.get().as_bytes().first().copied().unwrap_or(b' ');
                if first != b'-' && !first.is_ascii_digit() {
                    return Err(ProtocolError::invalid("t0 must be a number"));
                }
                Ok(ClientMessage::ClockPing { t0: d.t0 })
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::encode_broadcast;
    use crate::error::ErrorCode;
    use crate::ids::UserId;

    fn err_code(text: &str) -> ErrorCode {
        match Envelope::parse(text) {
            Err(r) => r.error.code,
            Ok(env) => env.message().expect_err("should be invalid").code,
        }
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
                token,
            } => {
                assert_eq!(room_code, "abc");
                assert_eq!(name.display, "Bo");
                assert_eq!(instrument, "");
                assert_eq!(token, None);
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
    fn resume_and_ping_fields() {
        fn parse(text: &str) -> Result<ClientMessage<'_>, ProtocolError> {
            Envelope::parse(text).unwrap().message()
        }
        match parse(r#"{"event":"session:resume","data":{"roomCode":"k7f3q0","resumeToken":"t.s","lastSeq":12}}"#).unwrap() {
            ClientMessage::Resume { room_code, resume_token, last_seq } => {
                assert_eq!((&*room_code, &*resume_token, last_seq), ("k7f3q0", "t.s", Some(12)));
            }
            other => panic!("unexpected {other:?}"),
        }
        for no_seq in [r#""lastSeq":null"#, r#""x":1"#] {
            let text = format!(
                r#"{{"event":"session:resume","data":{{"roomCode":"A","resumeToken":"t",{no_seq}}}}}"#
            );
            assert!(
                matches!(
                    parse(&text).unwrap(),
                    ClientMessage::Resume { last_seq: None, .. }
                ),
                "{text}"
            );
        }
        for bad in [
            r#"-1"#,
            r#"1.5"#,
            r#""3""#,
            r#"true"#,
            r#"1e3"#,
            r#"18446744073709551616"#,
        ] {
            let text = format!(
                r#"{{"event":"session:resume","data":{{"roomCode":"A","resumeToken":"t","lastSeq":{bad}}}}}"#
            );
            assert_eq!(err_code(&text), ErrorCode::InvalidMessage, "{bad}");
        }
        assert_eq!(
            err_code(r#"{"event":"session:resume","data":{"roomCode":"A"}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            err_code(r#"{"event":"session:resume","data":{"roomCode":"A","resumeToken":5}}"#),
            ErrorCode::InvalidMessage
        );

        match parse(r#"{"event":"clock:ping","data":{"t0":-12.5e3},"id":3}"#).unwrap() {
            ClientMessage::ClockPing { t0 } => assert_eq!(t0.get(), "-12.5e3"),
            other => panic!("unexpected {other:?}"),
        }
        for bad in [r#""1""#, "null", "[1]", "{}"] {
            let text = format!(r#"{{"event":"clock:ping","data":{{"t0":{bad}}}}}"#);
            assert_eq!(err_code(&text), ErrorCode::InvalidMessage, "{bad}");
        }
        assert_eq!(
            err_code(r#"{"event":"clock:ping","data":{}}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn tempo_fields() {
        fn parse(text: &str) -> Result<ClientMessage<'_>, ProtocolError> {
            Envelope::parse(text).unwrap().message()
        }
        let set =
            |data: &str| format!(r#"{{"event":"tempo:set","data":{{"roomCode":"A",{data}}}}}"#);
        for (data, want) in [
            (r#""bpm":20"#, (20.0, None)),
            (r#""bpm":300,"beatsPerBar":null"#, (300.0, None)),
            (r#""bpm":97.5,"beatsPerBar":3"#, (97.5, Some(3))),
            (r#""bpm":1.2e2,"beatsPerBar":16.0"#, (120.0, Some(16))),
        ] {
            match parse(&set(data)).unwrap() {
                ClientMessage::TempoSet {
                    bpm, beats_per_bar, ..
                } => assert_eq!((bpm, beats_per_bar), want, "{data}"),
                other => panic!("{other:?}"),
            }
        }
        for bad in [
            r#""bpm":19.99"#,
            r#""bpm":300.01"#,
            r#""bpm":"120""#,
            r#""bpm":null"#,
            r#""x":1"#,
            r#""bpm":120,"beatsPerBar":0"#,
            r#""bpm":120,"beatsPerBar":17"#,
            r#""bpm":120,"beatsPerBar":3.5"#,
            r#""bpm":120,"beatsPerBar":"4""#,
        ] {
            assert_eq!(err_code(&set(bad)), ErrorCode::InvalidMessage, "{bad}");
        }
    }

    #[test]
    fn ephemeral_is_true_false_or_absent() {
        let with = |v: &str| {
            format!(
                r#"{{"event":"event:broadcast","data":{{"roomCode":"A","eventName":"n","payload":1{v}}}}}"#
            )
        };
        let ephemeral = |text: &str| match Envelope::parse(text).and_then(|e| {
            e.message()
                .map(|m| match m {
                    ClientMessage::Broadcast(b) => b.ephemeral,
                    _ => panic!("not a broadcast"),
                })
                .map_err(|error| Rejection { id: None, error })
        }) {
            Ok(b) => Ok(b),
            Err(r) => Err(r.error.code),
        };
        assert_eq!(ephemeral(&with("")), Ok(false));
        assert_eq!(ephemeral(&with(r#","ephemeral":false"#)), Ok(false));
        assert_eq!(ephemeral(&with(r#","ephemeral":true"#)), Ok(true));
        for bad in [
            r#","ephemeral":null"#,
            r#","ephemeral":"yes""#,
            r#","ephemeral":1"#,
        ] {
            assert_eq!(
                ephemeral(&with(bad)),
                Err(ErrorCode::InvalidMessage),
                "{bad}"
            );
        }
    }

    #[test]
    fn payload_is_kept_byte_for_byte() {
        let text = r#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"note","payload":{ "n" : 60,"v":1.50 }}}"#;
        let env = Envelope::parse(text).unwrap();
        let ClientMessage::Broadcast(b) = env.message().unwrap() else {
            panic!("not a broadcast");
        };
        assert_eq!(b.payload.get(), r#"{ "n" : 60,"v":1.50 }"#);
        let out = encode_broadcast(&b.event_name, b.payload, &UserId::from_text("u1"), 7_001);
        assert_eq!(
            &out[..],
            br#"{"event":"event:broadcast","data":{"eventName":"note","payload":{ "n" : 60,"v":1.50 },"senderId":"u1","serverTime":7.001,"ephemeral":true}}"#
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
}
