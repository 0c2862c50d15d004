//! # jam-client
//!
//! A Rust client for the jam protocol over WebSocket and WebTransport (control stream and
//! datagrams, JSON or MessagePack). The server's tests, the benchmark (`jam-bench`) and
//! tools share it; it speaks the protocol through `jam-protocol`, so it decodes exactly
//! what the server encodes.
//!
//! ## How the parts fit
//!
//! Modules import only modules above them in this list (the root only declares and
//! re-exports; the server package's `tests/layers.rs` checks it):
//!
//! - `received.rs`: what arrives ([`Received`], [`Via`], [`Closed`]) and the [`Tap`].
//! - `error.rs`: [`ClientError`], every failure, typed.
//! - [`clock`]: the NTP-style [`ClockEstimator`] of the room clock (docs/protocol.md §7).
//! - `outgoing.rs`: envelopes to send ([`broadcast_envelope`], [`to_msgpack`]).
//! - `link.rs`: a live connection's parts: its sending half, the queue its reader
//!   tasks fill, and how it ended.
//! - `http.rs`: `GET /connect` and other plain HTTP requests (reqwest).
//! - `ws.rs` / `wt.rs`: connecting each transport and its reader tasks. Reader tasks (one
//!   per WebSocket; for WebTransport one for datagrams and one for the control stream)
//!   decode everything the server sends into [`Received`] (with the path it came on) and
//!   queue it. Sending is direct.
//! - `client.rs`: [`Client`], one connection; sending, requests that await their answer,
//!   and [`Client::recv`] / [`Client::recv_timeout`] on the queue.
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
pub mod clock;
mod error;
mod http;
mod link;
mod outgoing;
mod received;
mod ws;
mod wt;

pub use client::{Client, TokenProvider, DEFAULT_TIMEOUT};
pub use clock::ClockEstimator;
pub use error::{ClientError, Result};
pub use http::{fetch_connect, fetch_connect_for, http_get, http_get_with_host};
pub use jam_protocol::Encoding;
pub use link::Rtts;
pub use outgoing::{broadcast_envelope, to_msgpack};
pub use received::{Closed, Received, Tap, Via};
pub use wt::{client_initials, is_retry, wt_endpoint, wt_endpoint_bound};
