//! Writing server messages: every envelope the server sends, as compact JSON [`Bytes`]
//! encoded once and shared by all receivers. The relayed `event:broadcast` is written
//! piece by piece, because it runs for every event.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ErrorCode, ProtocolError};
use crate::event;
use crate::ids::{RoomCode, UserId};
use crate::participant::Participant;

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
}
