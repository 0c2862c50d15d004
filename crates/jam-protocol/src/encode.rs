//! Writing server messages: every envelope the server sends, as compact JSON [`Bytes`]
//! encoded once and shared by all receivers. The relayed `event:broadcast` is written
//! piece by piece, because it runs for every event.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ErrorCode, ProtocolError};
use crate::event;
use crate::ids::{RoomCode, UserId};
use crate::participant::{AwayReason, Participant};
use crate::tempo::Tempo;

#[derive(Serialize)]
struct Out<'a, D: Serialize> {
    event: &'a str,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// Encodes one envelope as compact JSON.
pub fn encode<D: Serialize>(event: &str, data: D, id: Option<&RawValue>) -> Bytes {
    write(&Out {
        event,
        data,
        id,
        seq: None,
    })
}

/// Encodes one reliable room message (1.1, §6): the envelope with the room's `seq`.
pub fn encode_room<D: Serialize>(event: &str, data: D, seq: u64, id: Option<&RawValue>) -> Bytes {
    write(&Out {
        event,
        data,
        id,
        seq: Some(seq),
    })
}

fn write(out: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(128);
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buf, out);
    Bytes::from(buf)
}

/// `session:created` / `session:joined` / `session:resumed` data.
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
    /// The room's last sequence number; the snapshot already reflects it (1.1).
    pub seq: u64,
    /// The seat's resume token, for its owner only (1.1).
    pub resume_token: &'a str,
    /// The server's clock, ms (1.1, §7).
    pub server_time: f64,
    /// The room's tempo (1.1, §9).
    pub tempo: &'a Tempo,
    /// `session:resumed` only: whether the missed messages follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
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

/// Encodes `error {code: "room_elsewhere", message, connect}` (1.2): `connect` is the owner
/// node's `GET /connect` answer.
pub fn encode_elsewhere(
    message: &str,
    connect: &serde_json::Value,
    id: Option<&RawValue>,
) -> Bytes {
    #[derive(Serialize)]
    struct E<'a> {
        code: ErrorCode,
        message: &'a str,
        connect: &'a serde_json::Value,
    }
    encode(
        event::ERROR,
        E {
            code: ErrorCode::RoomElsewhere,
            message,
            connect,
        },
        id,
    )
}

/// Encodes `session:moved {roomCode, connect}` (1.2): the room now lives on the node
/// whose `GET /connect` answer is `connect`.
pub fn encode_moved(room: &RoomCode, connect: &serde_json::Value) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        room_code: &'a RoomCode,
        connect: &'a serde_json::Value,
    }
    encode(
        event::MOVED,
        D {
            room_code: room,
            connect,
        },
        None,
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

/// Encodes `session:user-joined`, room message `seq`.
pub fn encode_user_joined(user: &Participant, seq: u64) -> Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        user: &'a Participant,
    }
    encode_room(event::USER_JOINED, D { user }, seq, None)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct About<'a> {
    user_id: &'a UserId,
}

/// Encodes `session:user-left`, room message `seq`.
pub fn encode_user_left(user: &UserId, seq: u64) -> Bytes {
    encode_room(event::USER_LEFT, About { user_id: user }, seq, None)
}

/// Encodes `session:user-away`, room message `seq` (1.1), with why (1.2, §11).
pub fn encode_user_away(user: &UserId, reason: AwayReason, seq: u64) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        user_id: &'a UserId,
        reason: AwayReason,
    }
    let data = D {
        user_id: user,
        reason,
    };
    encode_room(event::USER_AWAY, data, seq, None)
}

/// Encodes `session:user-back`, room message `seq` (1.1).
pub fn encode_user_back(user: &UserId, seq: u64) -> Bytes {
    encode_room(event::USER_BACK, About { user_id: user }, seq, None)
}

/// Encodes `session:host-changed`, room message `seq`.
pub fn encode_host_changed(host: &UserId, seq: u64) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        host_id: &'a UserId,
    }
    encode_room(event::HOST_CHANGED, D { host_id: host }, seq, None)
}

/// Encodes `tempo:changed {tempo}`, room message `seq`; the setter's copy echoes its `id`.
pub fn encode_tempo_changed(tempo: &Tempo, seq: u64, id: Option<&RawValue>) -> Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        tempo: &'a Tempo,
    }
    encode_room(event::TEMPO_CHANGED, D { tempo }, seq, id)
}

/// Encodes `session:latency {rttMs: {userId: ms | null}}` (1.1, §8): state, not history,
/// so no `seq`.
pub fn encode_latency<'a>(rtts: impl IntoIterator<Item = (&'a UserId, Option<u32>)>) -> Bytes {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(br#"{"event":"session:latency","data":{"rttMs":{"#);
    for (i, (user, rtt)) in rtts.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_json_str(&mut buf, user.as_str());
        buf.push(b':');
        match rtt {
            Some(ms) => buf.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
    }
    buf.extend_from_slice(b"}}}");
    Bytes::from(buf)
}

/// Encodes `clock:pong {t0, serverTime}` (1.1, §7), `t0` as the client wrote it.
pub fn encode_pong(t0: &RawValue, server_time: f64, id: Option<&RawValue>) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        t0: &'a RawValue,
        server_time: f64,
    }
    encode(event::CLOCK_PONG, D { t0, server_time }, id)
}

/// Encodes `auth:refreshed {exp}`: the seat's new token expires at `exp`, seconds since
/// the Unix epoch (1.2, §13).
pub fn encode_auth_refreshed(exp: u64, id: Option<&RawValue>) -> Bytes {
    #[derive(Serialize)]
    struct D {
        exp: u64,
    }
    encode(event::AUTH_REFRESHED, D { exp }, id)
}

/// Encodes the relayed `event:broadcast` once for every receiver, without `seq` (a
/// datagram-class event); `server_time_us` is when the server received it, in whole
/// microseconds of server time.
pub fn encode_broadcast(
    event_name: &str,
    payload: &RawValue,
    sender: &UserId,
    server_time_us: u64,
) -> Bytes {
    BroadcastDraft::new(event_name, payload, sender, server_time_us, None).finish(None)
}

/// The relayed `event:broadcast` written up to its last byte, so that a reliable one gets
/// its room `seq` appended under the room's lock (where the number is drawn) at the cost
/// of a few bytes.
///
/// Written piece by piece rather than through serde: the keys are fixed, so only the two
/// strings need escaping (by serde_json, as everywhere else), and this runs for every
/// relayed event. The bytes are those [`encode`] / [`encode_room`] would write. The buffer
/// is sized exactly (for the `seq` it is told to expect), because `Bytes` takes a `Vec`
/// whose length is its capacity without a second allocation.
#[derive(Debug)]
pub struct BroadcastDraft(Vec<u8>);

const SEQ_KEY: &[u8] = br#","seq":"#;

impl BroadcastDraft {
    /// Writes everything but the envelope's closing brace: `{eventName, payload,
    /// senderId, serverTime}`, `server_time_us` being when the server received the event.
    /// `seq` is the room sequence number [`BroadcastDraft::finish`] will most likely get,
    /// for the buffer's size; `None` for an ephemeral event (datagram-class, or sent with
    /// `"ephemeral": true`), which never gets one and carries `"ephemeral": true`.
    pub fn new(
        event_name: &str,
        payload: &RawValue,
        sender: &UserId,
        server_time_us: u64,
        seq: Option<u64>,
    ) -> Self {
        const HEAD: &[u8] = br#"{"event":"event:broadcast","data":{"eventName":"#;
        const PAYLOAD: &[u8] = br#","payload":"#;
        const SENDER: &[u8] = br#","senderId":"#;
        const TIME: &[u8] = br#","serverTime":"#;
        // 1.2, §11: an event without a `seq` is ephemeral, and says so.
        const EPHEMERAL: &[u8] = br#","ephemeral":true"#;
        const TAIL: &[u8] = b"}}";
        let payload = payload.get().as_bytes();
        let sender = sender.as_str();
        // Exact when `eventName` needs no escapes (the usual case); 4 counts the quotes.
        let len = HEAD.len()
            + PAYLOAD.len()
            + SENDER.len()
            + TIME.len()
            + TAIL.len()
            + 4
            + event_name.len()
            + payload.len()
            + sender.len()
            + ms_len(server_time_us)
            + seq.map_or(EPHEMERAL.len(), |s| SEQ_KEY.len() + digits(s));
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(HEAD);
        write_json_str(&mut buf, event_name);
        buf.extend_from_slice(PAYLOAD);
        buf.extend_from_slice(payload);
        buf.extend_from_slice(SENDER);
        write_json_str(&mut buf, sender);
        buf.extend_from_slice(TIME);
        write_ms(&mut buf, server_time_us);
        if seq.is_none() {
            buf.extend_from_slice(EPHEMERAL);
        }
        buf.push(b'}');
        BroadcastDraft(buf)
    }

    /// The envelope, with the top-level `seq` when one is given.
    pub fn finish(mut self, seq: Option<u64>) -> Bytes {
        if let Some(seq) = seq {
            self.0.extend_from_slice(SEQ_KEY);
            self.0
                .extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        self.0.push(b'}');
        if self.0.len() != self.0.capacity() {
            // Another `seq` than expected, or escapes in `eventName`: rare.
            self.0.shrink_to_fit();
        }
        Bytes::from(self.0)
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The length of [`write_ms`]'s text for `micros`.
fn ms_len(micros: u64) -> usize {
    digits(micros / 1000) + fraction_len(micros % 1000)
}

/// How many bytes [`write_ms`] writes for `frac` thousandths of a ms: none for 0, else the
/// point and up to three digits without trailing zeros.
fn fraction_len(frac: u64) -> usize {
    if frac == 0 {
        0
    } else if frac.is_multiple_of(100) {
        2
    } else if frac.is_multiple_of(10) {
        3
    } else {
        4
    }
}

/// Appends a time given in whole microseconds as a JSON number of milliseconds: the
/// integer part, then up to three decimals without trailing zeros (integers only, so it
/// is cheaper than formatting a float, and the value is exact to the microsecond).
pub fn write_ms(buf: &mut Vec<u8>, micros: u64) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(itoa.format(micros / 1000).as_bytes());
    let frac = micros % 1000;
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    buf.extend_from_slice(&digits[..fraction_len(frac)]);
}

/// Appends `s` as a JSON string, quoted and escaped.
fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(buf, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_message::{ServerEvent, ServerMessage};

    #[test]
    fn broadcast_encoding_matches_serde() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct D<'a> {
            event_name: &'a str,
            payload: &'a RawValue,
            sender_id: &'a UserId,
            server_time: &'a RawValue,
            ephemeral: bool,
        }
        let sender = UserId::generate();
        let payload: &RawValue = serde_json::from_str(r#"{ "a" : [1, "\u00e9\n"] }"#).unwrap();
        let time: &RawValue = serde_json::from_str("1796007548777.42").unwrap();
        for event_name in ["note", "n\"o\\t\u{1}e\u{7f}", "é🎹\u{2028}", ""] {
            let want = encode(
                event::BROADCAST,
                D {
                    event_name,
                    payload,
                    sender_id: &sender,
                    server_time: time,
                    ephemeral: true,
                },
                None,
            );
            assert_eq!(
                encode_broadcast(event_name, payload, &sender, 1_796_007_548_777_420),
                want,
                "{event_name:?}"
            );
        }
    }

    #[test]
    fn times_are_ms_exact_to_the_microsecond() {
        for (us, text) in [
            (0, "0"),
            (1, "0.001"),
            (10, "0.01"),
            (100, "0.1"),
            (1_000, "1"),
            (1_796_007_548_777_423, "1796007548777.423"),
            (1_796_007_548_777_420, "1796007548777.42"),
            (1_796_007_548_777_400, "1796007548777.4"),
            (1_796_007_548_777_000, "1796007548777"),
            (u64::MAX, "18446744073709551.615"),
        ] {
            let mut buf = Vec::new();
            write_ms(&mut buf, us);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), text);
            assert_eq!(ms_len(us), text.len(), "{us}");
            let v: f64 = serde_json::from_slice(&buf).unwrap();
            assert!(
                (v - us as f64 / 1000.0).abs() <= v.abs() * 1e-15 + 1e-9,
                "{us}"
            );
        }
    }

    #[test]
    fn a_reliable_broadcast_carries_its_room_seq_at_the_top() {
        let sender = UserId::generate();
        let payload: &RawValue = serde_json::from_str(r#"{"n":60}"#).unwrap();
        let with = BroadcastDraft::new("note", payload, &sender, 5_000, Some(1))
            .finish(Some(18_446_744_073_709_551_615));
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct D<'a> {
            event_name: &'a str,
            payload: &'a RawValue,
            sender_id: &'a UserId,
            server_time: u32,
        }
        let d = || D {
            event_name: "note",
            payload,
            sender_id: &sender,
            server_time: 5,
        };
        assert_eq!(with, encode_room(event::BROADCAST, d(), u64::MAX, None));
        // Without a `seq`, the event is ephemeral and says so (docs/protocol.md §11).
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct E<'a> {
            #[serde(flatten)]
            d: D<'a>,
            ephemeral: bool,
        }
        assert_eq!(
            BroadcastDraft::new("note", payload, &sender, 5_000, None).finish(None),
            encode(
                event::BROADCAST,
                E {
                    d: d(),
                    ephemeral: true
                },
                None
            )
        );
        let msg = ServerMessage::from_json(&with).unwrap();
        assert_eq!(msg.seq, Some(u64::MAX));
    }

    #[test]
    fn the_buffer_is_sized_exactly() {
        let sender = UserId::generate();
        let payload: &RawValue = serde_json::from_str(r#"{"n":60}"#).unwrap();
        for (hint, seq) in [
            (None, None),
            (Some(7), Some(7)),
            (Some(9), Some(10)),
            (Some(10), Some(9)),
        ] {
            let d = BroadcastDraft::new("note", payload, &sender, 1_796_007_548_777_423, hint);
            let exact = d.0.capacity();
            let bytes = d.finish(seq);
            if hint == seq {
                assert_eq!(bytes.len(), exact, "{hint:?}");
            }
            let msg = ServerMessage::from_json(&bytes).unwrap();
            assert_eq!(msg.seq, seq);
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
}
