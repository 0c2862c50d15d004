//! # jam-protocol
//!
//! The jam protocol (`PROTOCOL.md`) as types and bytes, with no I/O: what both ends of a
//! connection agree on. The server (`jam-server`), the Rust client (`jam-client`) and the
//! benchmark (`jam-bench`) all speak it through this crate, so a client decodes exactly
//! what the server encodes.
//!
//! ## The parts
//!
//! - [`ids`]: [`RoomCode`] and [`UserId`].
//! - [`validate`]: the field rules (names, instruments, event names).
//! - [`error`]: [`ErrorCode`], the wire `code` of an `error`, and [`ProtocolError`].
//! - [`envelope`]: reading a client's message into a validated [`ClientMessage`]; the
//!   hot `event:broadcast` in one pass, its `payload` kept as raw JSON.
//! - [`encode`]: writing every server message once into shared [`bytes::Bytes`].
//! - [`msgpack`]: MessagePack ↔ JSON for WebTransport datagrams.
//! - [`datagram`]: a datagram's [`Encoding`] and the QUIC varint that heads it.
//! - [`server_message`]: the client side, a server message as a client reads it.
//!
//! Data flows `envelope` → (the server's rooms) → `encode` on the server, and
//! `server_message` on a client.

#![warn(missing_docs)]

pub mod datagram;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod msgpack;
pub mod server_message;
pub mod validate;

pub use datagram::Encoding;
pub use encode::{
    encode, encode_broadcast, encode_error, encode_host_changed, encode_left, encode_user_joined,
    encode_user_left, Participant, SessionData,
};
pub use envelope::{Broadcast, ClientMessage, Envelope, Rejection};
pub use error::{ErrorCode, ProtocolError};
pub use ids::{RoomCode, UserId};
pub use msgpack::{json_to_msgpack, msgpack_to_json};
pub use server_message::{DecodeError, ServerEvent, ServerMessage, SessionInfo};
pub use validate::{validate_instrument, validate_name, Name};

/// The protocol version reported by `GET /connect`.
pub const PROTOCOL_VERSION: u32 = 1;
/// The WebSocket subprotocol clients offer and the server selects.
pub const SUBPROTOCOL: &str = "jam.v1";
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
