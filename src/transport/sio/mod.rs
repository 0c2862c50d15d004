//! The Socket.IO v4 binding (Engine.IO v4, socket.io-client 4.x) at `/socket.io/` on the
//! HTTP port, through [socketioxide]: a client's `emit(event, data)` is the envelope
//! `{event, data}`, and every envelope the server sends is emitted as its `event` with
//! its `data`. Like the other adapters it only moves messages; the protocol lives in
//! [`crate::session::Session`], so a Socket.IO client shares rooms with WebSocket and
//! WebTransport members.
//!
//! - **In.** socketioxide hands each event to one synchronous handler, in arrival order
//!   (its own async handlers each run as a spawned task, which would not keep the order
//!   of one sender's events). The handler builds the envelope from the raw JSON of the
//!   packet, so a `payload` is relayed as the client wrote it, and gives it to the
//!   session as a reliable-path message. An acknowledgement id becomes the envelope's
//!   `id`. socketioxide ends the session on an EVENT packet whose first element it cannot
//!   read as a name (`42"x"`, `42{}`, `42[`), so such packets are rewritten before it
//!   sees them (`checked_packet`: in a polling body by the admission middleware, over
//!   WebSocket by [`EventCheck`] below tungstenite) and answer `invalid_message`.
//! - **Out.** The writer task drains the session's [`Outbox`](crate::outbox::Outbox) and emits each envelope as
//!   `emit(event, data)`, or `emit(event, data, { seq })` when it carries a room sequence
//!   number (docs/protocol.md §6). A relayed event arrives already read into its parts, once
//!   for all Socket.IO receivers ([`Queued::Relayed`](crate::outbox::Queued::Relayed)), and the first of them encodes its
//!   arguments for all ([`Parts::encoded`](crate::outbox::Parts::encoded)), as `emit` would; each receiver sends that
//!   shared buffer to its socket through socketioxide's local adapter, which only puts the
//!   packet type in front. The answer that echoes a request's `id` is also the argument of
//!   that request's acknowledgement, as `{ event, data }`; a request with no answer (a
//!   relayed `event:broadcast`) is acknowledged with no argument once it was handled.
//! - **Admission** ([`crate::conn`]). A middleware in front of socketioxide applies the
//!   origin policy to every request (HTTP 403) and admits against the per-address limit
//!   (HTTP 429) every new Engine.IO session, which holds its place as long as it lives, and
//!   every request to a session (a long poll, a POST; not the upgrade, answered at once),
//!   which holds one until it is answered. A body is read whole before socketioxide sees it, within
//!   [`MAX_PAYLOAD_BYTES`] (413) and the peer timeout (408). The connection's session and handlers are set up in a Socket.IO
//!   connect middleware, which runs before the client is told it is connected, so an
//!   event sent at once finds them.
//! - **End.** A client's `socket.disconnect()` is a `session:leave`; a transport that
//!   closes or times out leaves the seat away for resume, as on the other transports. A
//!   connection the server ends (slow consumer, takeover, join deadline) gets a Socket.IO
//!   disconnect, which socket.io-client does not reconnect by itself; on shutdown the
//!   transports just close, so clients reconnect to the next server.
//!
//! By concern: `admit` (the admission middleware), `check` (incoming packets socketioxide
//! could not read), `connect` (a connection's start), `inbound` (events in), `outbound`
//! (the writer) and `encode` (an event encoded once for all its receivers).
//!
//! [socketioxide]: https://docs.rs/socketioxide

mod admit;
mod check;
mod connect;
mod encode;
mod inbound;
mod outbound;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use socketioxide::{ParserConfig, SocketIo};

use crate::conn::Context;
use crate::outbox::Bounds;

use admit::admit;
pub use check::EventCheck;
use connect::{prepare, start};
use encode::{Local, Slot};

/// Where the endpoint listens: socket.io-client's default path.
pub const PATH: &str = "/socket.io/";

pub use check::MAX_PAYLOAD_BYTES;

/// How long an Engine.IO session may stay without joining the Socket.IO namespace.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes of the endpoint, with its admission middleware. Call it inside the
/// runtime: it starts the task that closes every Socket.IO transport on shutdown.
pub fn router(ctx: Arc<Context>) -> Router {
    let limits = &ctx.session_limits;
    let parser = ParserConfig::common()
        // The protocol is JSON; a binary attachment is refused, and one is enough to
        // know that.
        .max_incoming_binaries(1)
        .max_incoming_binary_buf_size(limits.max_message_bytes)
        .packet_completion_timeout(Duration::from_secs(5));
    let slot = Slot::default();
    let (svc, io) = SocketIo::builder()
        .with_adapter::<Local>(slot.clone())
        .ping_interval(ctx.ping_interval)
        // Engine.IO drops a peer that has not answered a ping within the timeout: a
        // silent peer goes within `peer_timeout`, as on the other transports.
        .ping_timeout(
            ctx.peer_timeout
                .saturating_sub(ctx.ping_interval)
                .max(Duration::from_secs(1)),
        )
        .max_buffer_size(engine_buffer(ctx.outbox_bounds(), limits.max_message_bytes))
        .max_payload(MAX_PAYLOAD_BYTES as u64)
        .ws_max_message_size(MAX_PAYLOAD_BYTES)
        .ws_max_frame_size(MAX_PAYLOAD_BYTES)
        .connect_timeout(CONNECT_TIMEOUT)
        .with_parser(parser)
        .build_svc();
    let on_connect = ctx.clone();
    // The middleware runs before the client is told it is connected, so no event can
    // come before the handlers exist; the handler starts the writer once the socket is
    // connected (emits before that would fail).
    io.ns(
        "/",
        start.with(move |socket: SocketRef<Local>| {
            let ctx = on_connect.clone();
            let local = slot.get().cloned();
            async move { prepare(socket, ctx, local) }
        }),
    );
    let shutdown = ctx.shutdown.clone();
    ctx.tracker.spawn(async move {
        shutdown.cancelled().await;
        // Closes the transports without a Socket.IO disconnect, so clients reconnect
        // (and resume) once a server is back.
        let _ = tokio::time::timeout(Duration::from_secs(2), io.close()).await;
    });
    Router::new()
        .route_service(PATH, svc.clone())
        .route_service(PATH.trim_end_matches('/'), svc)
        .layer(axum::middleware::from_fn_with_state(ctx, admit))
}

/// Packets socketioxide queues for one socket (each its own Engine.IO copy of an event): as
/// many as the outgoing byte budget holds of the largest messages, so that a receiver
/// that stops reading holds about that budget there too, and at least 16.
fn engine_buffer(bounds: Bounds, max_message_bytes: usize) -> usize {
    (bounds.bytes / max_message_bytes.max(1)).clamp(16, bounds.messages.max(16))
}
