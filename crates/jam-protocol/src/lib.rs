//! # jam-protocol
//!
//! The jam protocol (`docs/protocol.md`) as types and bytes, with no I/O: what both ends of a
//! connection agree on. The server (`jam-server`), the Rust client (`jam-client`) and the
//! benchmark (`jam-bench`) all speak it through this crate, so a client decodes exactly
//! what the server encodes.
//!
//! ## The parts
//!
//! - [`event`]: the event names.
//! - [`ids`]: [`RoomCode`] and [`UserId`]; [`participant`]: a room member as all see it.
//! - [`validate`]: the field rules (names, instruments, event names).
//! - [`tempo`]: the room's shared tempo as it travels.
//! - [`error`]: [`ErrorCode`], the wire `code` of an `error`, and [`ProtocolError`].
//! - [`envelope`]: reading a client's message into a validated [`ClientMessage`]; the
//!   hot `event:broadcast` in one pass, its `payload` kept as raw JSON.
//! - [`encode`](mod@encode): writing every server message once into shared [`bytes::Bytes`].
//! - [`msgpack`]: MessagePack ↔ JSON for WebTransport datagrams.
//! - [`datagram`]: a datagram's [`Encoding`] and the QUIC varint that heads it.
//! - [`server_message`]: the client side, a server message as a client reads it.
//!
//! Data flows `envelope` → (the server's rooms) → `encode` on the server, and
//! `server_message` on a client. Modules import only modules above them in this list:
//! `event`, `error`, `ids`, `participant`, `tempo`, `validate`, `datagram`, `msgpack`,
//! `server_message`, `encode`, `envelope` (the root only declares and re-exports; the
//! `tests/layers.rs` of the server package checks this order).

#![warn(missing_docs)]

pub mod datagram;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod event;
pub mod ids;
pub mod msgpack;
pub mod participant;
pub mod server_message;
pub mod tempo;
pub mod validate;

pub use datagram::Encoding;
pub use encode::{
    encode, encode_auth_refreshed, encode_broadcast, encode_elsewhere, encode_error,
    encode_host_changed, encode_latency, encode_left, encode_moved, encode_pong, encode_room,
    encode_tempo_changed, encode_user_away, encode_user_back, encode_user_joined, encode_user_left,
    write_ms, BroadcastDraft, SessionData,
};
pub use envelope::{Broadcast, ClientMessage, Envelope, Rejection};
pub use error::{ErrorCode, ProtocolError};
pub use ids::{RoomCode, UserId, ROOM_CODE_ALPHABET, ROOM_CODE_LEN};
pub use msgpack::{json_to_msgpack, msgpack_to_json};
pub use participant::{AwayReason, Participant, Status};
pub use server_message::{DecodeError, ServerEvent, ServerMessage, SessionInfo};
pub use tempo::Tempo;
pub use validate::{
    name_key, validate_instrument, validate_name, Name, MAX_EVENT_NAME_CHARS, MAX_INSTRUMENT_CHARS,
    MAX_NAME_CHARS,
};

/// The protocol version reported by `GET /connect`.
pub const PROTOCOL_VERSION: u32 = 1;
/// The WebSocket subprotocol clients offer and the server selects.
pub const SUBPROTOCOL: &str = "jam.v1";
