//! # jam-server
//!
//! A real-time server for musicians playing together: rooms with six-character codes,
//! presence, and note events relayed to everyone else in the room as fast as possible.
//!
//! ## How the parts fit
//!
//! ```text
//!   browser / Rust client
//!     │  WebTransport (HTTP/3): control stream (NDJSON) + datagrams (JSON or MessagePack)
//!     │  WebSocket: one JSON envelope per text frame
//!     ▼
//!   transport::wt / transport::ws    framing, pings, close codes; one task pair per connection
//!     ▼
//!   session::Session                 one connection's protocol state: checks, rate limit, errors
//!     ▼
//!   room::Hub / Room / Outbox        rooms, presence, host hand-over, encode-once fan-out
//!     ▲
//!   protocol                         envelope, messages, validation, encoding (no I/O)
//! ```
//!
//! - [`protocol`] is pure: parse and validate client messages, encode server messages.
//! - [`room`] knows no transport: members are reached through a bounded [`room::Outbox`]
//!   (and, for WebTransport, a [`room::DatagramSink`]); fan-out never waits.
//! - [`session`] turns one incoming message into hub calls and answers.
//! - [`transport`] adapts WebSocket (axum) and WebTransport (wtransport) to sessions.
//! - [`http`] serves the web demo, `/connect`, `/healthz` and `/stats`.
//! - [`tls`] loads or makes the certificate; [`server`] wires everything and shuts down.
//! - [`client`] is a Rust client for both transports, used by tests and tools.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod http;
pub mod protocol;
pub mod room;
pub mod server;
pub mod session;
pub mod tls;
pub mod transport;

pub use config::Config;
pub use server::RunningServer;
