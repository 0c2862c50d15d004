//! # jam-client
//!
//! A Rust client for the jam protocol over WebSocket and WebTransport (control stream and
//! datagrams, JSON or MessagePack). The server's tests, the benchmark (`jam-bench`) and
//! tools share it; it speaks the protocol through `jam-protocol`, so it decodes exactly
//! what the server encodes.
//!
//! ## How the parts fit
//!
//! - [`Client`] (in `client.rs`): one connection; sending, requests that await their
//!   answer, and the queue of what arrived.
//! - `ws.rs` / `wt.rs`: connecting each transport and its reader tasks. Reader tasks (one
//!   per WebSocket; for WebTransport one for datagrams and one for the control stream)
//!   decode everything the server sends into [`Received`] (with the path it came on) and
//!   queue it; [`Client::recv`] and [`Client::recv_timeout`] take from that queue.
//!   Sending is direct.
//! - `http.rs`: `GET /connect` and other plain HTTP requests (reqwest).
//! - [`ClientError`]: every failure, typed.
//!
//! A load generator can hand a [`Tap`] to [`Client::connect_ws_tapped`] or
//! [`Client::connect_wt_tapped`]: the reader then shows it every message as raw bytes with
//! its arrival time before decoding, and what the tap consumes is neither decoded nor
//! queued (the benchmark takes its note events this way and leaves the rest to `recv`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), jam_client::ClientError> {
//! use jam_client::Client;
//! let mut a = Client::connect_ws("ws://127.0.0.1:3001/ws").await?;
//! let room = a.create("Ana", "piano").await?;
//! a.broadcast(&room.room_code, "note", &serde_json::json!({"n": 60})).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod error;
mod http;
mod ws;
mod wt;

use std::time::{Duration, Instant};

use bytes::Bytes;
use jam_protocol::{event, ServerEvent, ServerMessage};
use serde_json::{json, Value};

pub use client::Client;
pub use error::{ClientError, Result};
pub use http::{fetch_connect, http_get, http_get_with_host};
pub use jam_protocol::Encoding;
pub use wt::wt_endpoint;

/// How long the helpers wait for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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
/// message; `false` lets it be decoded and queued for [`Client::recv`] as usual.
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

/// Builds an `event:broadcast` envelope.
pub fn broadcast_envelope(room: &str, event_name: &str, payload: &Value) -> Value {
    json!({
        "event": event::BROADCAST,
        "data": { "roomCode": room, "eventName": event_name, "payload": payload },
    })
}

/// Encodes a JSON envelope as MessagePack (for datagram tests and the benchmark).
pub fn to_msgpack(envelope: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(envelope).unwrap_or_default()
}
