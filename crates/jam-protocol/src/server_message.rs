//! The client side of the protocol: what a client reads from the server. The Rust client,
//! the tests and the benchmark decode with these types exactly what the server encodes.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::ErrorCode;
use crate::event;
use crate::participant::{AwayReason, Participant};
use crate::tempo::Tempo;

/// `session:created` / `session:joined` / `session:resumed` as a client reads it. The 1.1
/// fields default when a version 1 server leaves them out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// The room's last sequence number, which the snapshot reflects.
    #[serde(default)]
    pub seq: u64,
    /// The token that resumes this seat (single use).
    #[serde(default)]
    pub resume_token: String,
    /// The server's clock at the answer, ms.
    #[serde(default)]
    pub server_time: f64,
    /// The room's tempo.
    #[serde(default)]
    pub tempo: Option<Tempo>,
    /// `session:resumed` only: whether the missed messages follow.
    #[serde(default)]
    pub replayed: Option<bool>,
}

/// A server message as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `session:created`.
    Created(SessionInfo),
    /// `session:joined`.
    Joined(SessionInfo),
    /// `session:resumed` (1.1).
    Resumed(SessionInfo),
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
    /// `session:user-away` (1.1).
    UserAway {
        /// Whose seat turned away.
        user_id: String,
        /// Why (1.2, §11); `None` from a 1.1 server.
        reason: Option<AwayReason>,
    },
    /// `session:user-back` (1.1).
    UserBack {
        /// Who resumed.
        user_id: String,
    },
    /// `auth:refreshed` (1.2, §13).
    AuthRefreshed {
        /// When the new token expires, seconds since the Unix epoch.
        exp: u64,
    },
    /// `clock:pong` (1.1).
    Pong {
        /// The ping's `t0`.
        t0: serde_json::Value,
        /// The server's clock when it answered, ms.
        server_time: f64,
    },
    /// `event:broadcast`.
    Broadcast {
        /// The sender's event name.
        event_name: String,
        /// The sender's payload.
        payload: serde_json::Value,
        /// Who sent it.
        sender_id: String,
        /// When the server received it, ms of server time (1.1, §7).
        server_time: Option<f64>,
    },
    /// `tempo:changed` (1.1, §9).
    TempoChanged(Tempo),
    /// `session:latency` (1.1, §8): each active seat's round trip, `None` unmeasured.
    Latency(BTreeMap<String, Option<u32>>),
    /// `error`.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable text.
        message: String,
        /// `room_elsewhere` (1.2): the owner node's `GET /connect` answer.
        connect: Option<serde_json::Value>,
    },
    /// `session:moved` (1.2, §12): the room now lives on another node.
    Moved {
        /// The room's code.
        room_code: String,
        /// The new owner's `GET /connect` answer.
        connect: serde_json::Value,
    },
}

/// A decoded server envelope: the event, the echoed `id` and the room `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    /// The event.
    pub event: ServerEvent,
    /// The echoed `id`, if any.
    pub id: Option<serde_json::Value>,
    /// The room sequence number of a reliable room message (1.1).
    pub seq: Option<u64>,
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
    #[serde(default)]
    seq: Option<u64>,
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
        struct About {
            user_id: String,
        }
        #[derive(Deserialize)]
        struct Refreshed {
            exp: u64,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Away {
            user_id: String,
            #[serde(default)]
            reason: Option<AwayReason>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Pong {
            t0: serde_json::Value,
            server_time: f64,
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
            #[serde(default)]
            server_time: Option<f64>,
        }
        #[derive(Deserialize)]
        struct TempoChanged {
            tempo: Tempo,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Latency {
            rtt_ms: BTreeMap<String, Option<u32>>,
        }
        #[derive(Deserialize)]
        struct Error {
            code: ErrorCode,
            message: String,
            #[serde(default)]
            connect: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Moved {
            room_code: String,
            connect: serde_json::Value,
        }
        use serde_json::from_value as v;
        let event = match env.event.as_str() {
            event::CREATED => ServerEvent::Created(v(env.data)?),
            event::JOINED => ServerEvent::Joined(v(env.data)?),
            event::LEFT => ServerEvent::Left {
                room_code: v::<Left>(env.data)?.room_code,
            },
            event::USER_JOINED => ServerEvent::UserJoined(v::<UserJoined>(env.data)?.user),
            event::RESUMED => ServerEvent::Resumed(v(env.data)?),
            event::USER_LEFT => ServerEvent::UserLeft {
                user_id: v::<About>(env.data)?.user_id,
            },
            event::USER_AWAY => {
                let away: Away = v(env.data)?;
                ServerEvent::UserAway {
                    user_id: away.user_id,
                    reason: away.reason,
                }
            }
            event::USER_BACK => ServerEvent::UserBack {
                user_id: v::<About>(env.data)?.user_id,
            },
            event::AUTH_REFRESHED => ServerEvent::AuthRefreshed {
                exp: v::<Refreshed>(env.data)?.exp,
            },
            event::CLOCK_PONG => {
                let p: Pong = v(env.data)?;
                ServerEvent::Pong {
                    t0: p.t0,
                    server_time: p.server_time,
                }
            }
            event::HOST_CHANGED => ServerEvent::HostChanged {
                host_id: v::<HostChanged>(env.data)?.host_id,
            },
            event::BROADCAST => {
                let r: Relayed = v(env.data)?;
                ServerEvent::Broadcast {
                    event_name: r.event_name,
                    payload: r.payload,
                    sender_id: r.sender_id,
                    server_time: r.server_time,
                }
            }
            event::TEMPO_CHANGED => ServerEvent::TempoChanged(v::<TempoChanged>(env.data)?.tempo),
            event::LATENCY => ServerEvent::Latency(v::<Latency>(env.data)?.rtt_ms),
            event::ERROR => {
                let e: Error = v(env.data)?;
                ServerEvent::Error {
                    code: e.code,
                    message: e.message,
                    connect: e.connect,
                }
            }
            event::MOVED => {
                let m: Moved = v(env.data)?;
                ServerEvent::Moved {
                    room_code: m.room_code,
                    connect: m.connect,
                }
            }
            other => return Err(DecodeError::UnknownEvent(other.to_owned())),
        };
        Ok(ServerMessage {
            event,
            id: env.id,
            seq: env.seq,
        })
    }
}
