//! # jam-server
//!
//! A real-time server for musicians playing together: rooms with six-character codes,
//! presence, and note events relayed to everyone else in the room as fast as possible.
//!
//! ## How the parts fit
//!
//! Dependencies point one way: each module imports only modules above it in this picture
//! (the arrows point at what is imported), never one below it, so no module imports a
//! module that imports it back. `tests/layers.rs` checks the order for every crate.
//!
//! ```text
//!   jam_protocol (crate)   envelope, messages, ids, validation, JSON / MessagePack (no I/O)
//!     ▲
//!   stats, clock           server-wide counters; the server clock (serverTime)
//!   addresses              an address as the per-address limits count it (IPv6: its /64),
//!                          and the count every per-address cap keeps
//!   handshakes             QUIC handshakes in progress: Retry or accept, per-address caps
//!   descriptors            the descriptor limit: raised to the hard one, sizes the cap
//!   stall                  a socket whose writes make no progress fails after a deadline
//!   private_file           writing a secret readable by the server's user only (0600)
//!   rate                   token buckets and one-second windows (the arithmetic only)
//!   silence                when a heartbeating connection counts as silent (§11)
//!   credentials, history   the resume key and its signed tokens; a room's replayable
//!                          recent messages
//!   auth                   signing in with the app's JWTs: the key, its one algorithm,
//!                          the claims a seat takes (§13)
//!   origins                which web origins may connect (--allowed-origins)
//!   proxies                clients behind a trusted reverse proxy (--trusted-proxies)
//!   store/                 the room store: each room's state beyond the process (memory,
//!                          an embedded database file, Redis), written off the event path
//!   outbox                 delivery: a member's bounded queue + datagram sink, encode-once
//!     ▲                    `Relayed`, `CloseReason`
//!   room/                  Hub / Room / Membership: rooms, presence, host hand-over, fan-out,
//!     ▲                    held seats and resume, latency reports, the failed-join budget;
//!     │                    one concern a file, bottom up: state, join_limit; hub; resume;
//!     │                    stored; membership; silence; latency
//!   cluster, followup      several nodes on one Redis: the owner directory, claims and
//!                          hand-over; room requests that wait for it
//!   session                one connection's protocol state: check order, rate limit, errors
//!     ▲
//!   conn                   one admission path for every transport: origin, address slot,
//!                          gauges, connection id, span, session, finish
//!     ▲
//!   transport::{ws, wt}    framing, pings, close codes; one task pair per connection
//!     ▲                    (wt reads datagrams with the jam_wt crate, shared with the client;
//!     │                    ws follows unfinished messages with transport::unfinished)
//!   transport::sio         Socket.IO v4 at /socket.io/ (socketioxide): events ⇄ envelopes
//!     ▲
//!   metrics                GET /metrics: Prometheus text, read from stats and the hub
//!     ▲
//!   http                   web demo, /connect, /healthz, /stats, the /ws and /socket.io/ routes
//!     ▲
//!   server                 binds, certificates, shutdown   ◄── config, tls, credentials
//!     ▲
//!   main.rs                parse, validate, run until Ctrl-C / SIGTERM
//! ```
//!
//! - [`room`] knows no transport: members are reached through a bounded
//!   [`outbox::Outbox`] (and, for WebTransport, an [`outbox::DatagramSink`]); fan-out never
//!   waits.
//! - [`session`] turns one incoming message into hub calls and answers; it is synchronous.
//! - [`transport`] adapts WebSocket (axum), WebTransport (wtransport) and Socket.IO
//!   (socketioxide) to sessions.
//! - [`tls`] loads or makes the certificate, [`credentials`] the resume key; [`server`]
//!   wires everything and shuts down.
//!
//! The Rust client (`jam-client`), the protocol (`jam-protocol`) and the load generator
//! (`jam-bench`) are crates of this workspace under `crates/`.

#![warn(missing_docs)]

pub mod addresses;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod credentials;
pub mod descriptors;
pub mod followup;
pub mod handshakes;
pub mod history;
pub mod http;
pub mod metrics;
pub mod origins;
pub mod outbox;
pub mod private_file;
pub mod proxies;
pub mod rate;
pub mod room;
pub mod server;
pub mod session;
pub mod silence;
pub mod stall;
pub mod stats;
pub mod store;
pub mod tls;
pub mod transport;

pub use config::Config;
pub use server::RunningServer;
