//! What a connection's reader tasks hand over: each server message decoded, with the
//! channel it came on ([`Received`], [`Via`]); how the connection ended ([`Closed`]); and
//! the [`Tap`] a load generator puts before decoding.

use std::time::Instant;

use bytes::Bytes;
use jam_protocol::{ServerEvent, ServerMessage};

/// Which channel a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A WebSocket text frame.
    WebSocket,
    /// The WebTransport control stream.
    Stream,
    /// A WebTransport datagram.
    Datagram,
}

/// A hook on a connection's reader: it sees each message from the server as raw bytes
/// (JSON, or MessagePack for datagrams of such sessions; without framing) together with
/// the moment the reader got it, before any decoding. Returning `true` consumes the
/// message; `false` lets it be decoded and queued for
/// [`Client::recv`](crate::Client::recv) as usual.
pub type Tap = Box<dyn FnMut(Via, &[u8], Instant) -> bool + Send + 'static>;

/// A decoded message from the server.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message.
    pub message: ServerMessage,
    /// Where it came from.
    pub via: Via,
    /// The raw bytes as received (JSON, or MessagePack for datagrams of such sessions).
    pub raw: Bytes,
}

impl Received {
    /// The event.
    pub fn event(&self) -> &ServerEvent {
        &self.message.event
    }
}

/// How the connection ended, as far as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The server sent a WebSocket close frame.
    WebSocket {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The server closed the WebTransport session with an application code.
    WebTransport {
        /// Application close code.
        code: u64,
        /// Close reason.
        reason: String,
    },
    /// Anything else (reset, timeout, local close).
    Other(String),
}
