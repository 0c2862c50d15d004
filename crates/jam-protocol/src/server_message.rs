//! The client side of the protocol: what a client reads from the server. The Rust client,
//! the tests and the benchmark decode with these types exactly what the server encodes.

use serde::Deserialize;

use crate::error::ErrorCode;
use crate::event;
use crate::participant::Participant;

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
