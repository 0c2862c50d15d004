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
//! - **Out.** The writer task drains the session's [`Outbox`] and emits each envelope as
//!   `emit(event, data)`, or `emit(event, data, { seq })` when it carries a room sequence
//!   number (docs/protocol.md §6). A relayed event arrives already read into its parts, once
//!   for all Socket.IO receivers ([`Queued::Relayed`]), and the first of them encodes its
//!   arguments for all ([`Parts::encoded`]), as `emit` would; each receiver sends that
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
//! [socketioxide]: https://docs.rs/socketioxide

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Emitter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{ParserConfig, SendError, SocketError, SocketIo};
use socketioxide_core::adapter::{
    BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, SocketEmitter,
};
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::Parse;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::{debug, Instrument};

use jam_protocol::{self as protocol, ErrorCode, ProtocolError};

use crate::cluster::Cluster;
use crate::conn::{until, Admission, Context, Refused as RefusedConn};
use crate::followup::Followup;
use crate::outbox::{Bounds, CloseReason, Inbox, Outbox, Parts, Path, Queued};
use crate::session::Session;
use crate::stats::Transport;

/// Where the endpoint listens: socket.io-client's default path.
pub const PATH: &str = "/socket.io/";

/// The largest Engine.IO payload (a polling request body, a WebSocket message): the
/// WebSocket endpoint's frame limit. Larger events up to it answer `payload_too_large`.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// How long an Engine.IO session may stay without joining the Socket.IO namespace.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Envelopes emitted per wake-up of the writer before it looks at the token again.
const BATCH: usize = 64;

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

/// socketioxide's in-memory adapter, as its own `LocalAdapter` is, except that it also
/// leaves its local half ([`CoreLocalAdapter`]) in a [`Slot`] for the writers: through
/// it an event whose arguments were encoded once goes to one socket as it is
/// ([`send_encoded`]), where `emit` would encode it again for every socket.
struct Local(Arc<CoreLocalAdapter<Emitter>>);

/// Where the namespace's [`Local`] adapter leaves its local half.
type Slot = Arc<OnceLock<Arc<CoreLocalAdapter<Emitter>>>>;

impl CoreAdapter<Emitter> for Local {
    type Error = Infallible;
    type State = Slot;
    type AckStream = <Emitter as SocketEmitter>::AckStream;
    type InitRes = ();

    fn new(slot: &Slot, local: CoreLocalAdapter<Emitter>) -> Self {
        let local = Arc::new(local);
        // Only the main namespace is served, so only one is made.
        let _ = slot.set(local.clone());
        Local(local)
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        on_success();
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Infallible> {
        Ok(self.0.broadcast_with_ack(packet, opts, timeout).0)
    }

    fn get_local(&self) -> &CoreLocalAdapter<Emitter> {
        &self.0
    }
}

impl DefinedAdapter for Local {}

/// An admitted Engine.IO session (its place in its address's count), carried in the
/// handshake request's extensions, which the session keeps for its lifetime.
#[derive(Clone)]
struct Admitted(Arc<Mutex<Option<Admission>>>);

impl Admitted {
    fn take(&self) -> Option<Admission> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whether the request belongs to an existing Engine.IO session (it names its `sid`).
fn names_session(query: Option<&str>) -> bool {
    query
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.starts_with("sid="))
}

/// Whether `query` has the parameter `pair` (`name=value`).
fn has_pair(query: Option<&str>, pair: &str) -> bool {
    query.unwrap_or("").split('&').any(|p| p == pair)
}

/// In front of socketioxide: the origin policy (docs/protocol.md §10) on every request, CORS
/// for allowed origins (long-polling from a page on another origin is a cross-origin
/// XHR), and the per-address limit on every new Engine.IO session.
async fn admit(
    State(ctx): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let named = origin.as_ref().map(|o| o.to_str().unwrap_or("?"));
    if let Err(refused) = ctx.check_origin(named, peer, Transport::SocketIo) {
        return refused.into_response();
    }
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        if req.method() == Method::GET
            && names_session(req.uri().query())
            && has_pair(req.uri().query(), "transport=websocket")
        {
            // The upgrade of a session to WebSocket is answered at once (101, or an
            // error), and the WebSocket rides on its session's place.
            next.run(req).await
        } else if names_session(req.uri().query()) {
            // A request to an existing session (a long poll, a POST of packets) holds a
            // place of its address until it is answered, beside its session's own; its
            // body is read whole first.
            let Ok(_place) = ctx.arrive(peer, Transport::SocketIo).admit() else {
                return closing(
                    StatusCode::TOO_MANY_REQUESTS,
                    RefusedConn::TooManyFromAddress.as_str(),
                );
            };
            let req = match whole_body(req, &ctx).await {
                Ok(req) => req,
                Err(refused) => return refused,
            };
            next.run(req).await
        } else {
            // A new Engine.IO session holds a place for as long as it lives.
            let admission = match ctx.arrive(peer, Transport::SocketIo).admit() {
                Ok(admission) => admission,
                Err(refused) => return refused.into_response(),
            };
            req.extensions_mut()
                .insert(Admitted(Arc::new(Mutex::new(Some(admission)))));
            next.run(req).await
        }
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `req` with its body read whole, so that socketioxide never waits on a peer's body:
/// a body larger than [`MAX_PAYLOAD_BYTES`] is refused (413), and one not finished within
/// the peer timeout is cut off (408, and the HTTP connection closes).
async fn whole_body(req: Request, ctx: &Arc<Context>) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64) {
        return Err(closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    let read = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES);
    let Ok(read) = tokio::time::timeout(ctx.peer_timeout, read).await else {
        debug!("socket.io: request body not finished in time");
        return Err(closing(
            StatusCode::REQUEST_TIMEOUT,
            "request body not finished in time",
        ));
    };
    match read {
        Ok(bytes) => {
            let mut parts = parts;
            let bytes = match checked_payload(&bytes) {
                Some(checked) => {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(checked.len()));
                    Bytes::from(checked)
                }
                None => bytes,
            };
            Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
        }
        Err(e) => {
            // A chunked body past the limit, or a broken one.
            debug!(error = %e, "socket.io: request body refused");
            Err(closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body refused",
            ))
        }
    }
}

/// A refusal after which the HTTP connection closes (its unread body goes with it).
fn closing(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONNECTION, "close")], text).into_response()
}

/// One Socket.IO connection's state, shared by the inbound handler (socketioxide's
/// receive path), the disconnect handler and the writer task. It holds no reference to
/// the socket (the socket holds the handler).
struct Conn {
    /// `None` once the connection has ended.
    session: Mutex<Option<Session>>,
    outbox: Outbox,
    /// Acknowledgements waiting for their answer, by acknowledgement id (the `id` of
    /// the request's envelope). Each has a marker ([`Queued::Mark`]) behind its request's
    /// answers in the outbox, so the map holds no more than the queue does.
    acks: Mutex<HashMap<i64, Pending>>,
    /// The client sent a Socket.IO disconnect: it left, rather than lost, the room.
    left: AtomicBool,
}

impl Conn {
    fn lobby_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::lobby_deadline)
    }

    /// When the seat turns away for silence (docs/protocol.md §11). Only events are heard
    /// here: Engine.IO's pings and pongs stay inside socketioxide.
    fn silence_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::silence_deadline)
    }

    /// When the seat's sign-in token runs out (docs/protocol.md §13).
    fn expiry_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::expiry_deadline)
    }

    fn expire(&self) {
        if let Some(session) = self.lock_session().as_mut() {
            session.expire();
        }
    }

    fn check_silence(&self) {
        if let Some(session) = self.lock_session().as_mut() {
            session.check_silence();
        }
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_acks(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Pending>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One incoming event: `value` is the packet's JSON array `[event, data, ...]`. A room
    /// request that waits for the node directory is returned, to run on its own task
    /// ([`Conn::settle`]).
    fn receive(
        &self,
        socket: &Arc<Socket<Local>>,
        mut value: Value,
        ack_id: Option<i64>,
    ) -> Option<(Followup, Arc<Cluster>)> {
        let ack = ack_id.map(|_| {
            let Ok(ack) = AckSender::from_message_parts(socket, &mut value, &ack_id);
            ack
        });
        let mut guard = self.lock_session();
        let session = guard.as_mut()?;
        let read = match &value {
            Value::Str(text, None) if is_malformed(text) => Err(Refused::NotAnEvent),
            Value::Str(text, None) => envelope(text, ack_id).ok_or(Refused::NotAnEvent),
            _ => Err(Refused::Binary),
        };
        let read = read.and_then(|env| {
            if env.len() > session.max_message_bytes() {
                Err(Refused::TooLarge)
            } else {
                Ok(env)
            }
        });
        // What the acknowledgement gets if the session does not answer: the error for
        // a message refused before the session could read it (the session's own error
        // for it carries no id, as on the WebSocket).
        let otherwise = read.as_ref().err().map(|why| {
            let error = match why {
                Refused::TooLarge => ProtocolError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "message is larger than {} bytes",
                        session.max_message_bytes()
                    ),
                ),
                other => ProtocolError::invalid(other.as_str()),
            };
            protocol::encode_error(&error, None)
        });
        if let (Some(id), Some(ack)) = (ack_id, ack) {
            self.lock_acks().insert(id, Pending { ack, otherwise });
        }
        match read {
            Ok(env) => session.handle_text(&env, Path::Reliable),
            Err(Refused::TooLarge) => session.too_large(),
            Err(why) => session.invalid(why.as_str()),
        }
        let waiting = session.take_followup();
        if waiting.is_none() {
            if let Some(id) = ack_id {
                self.outbox.push_mark(id);
            }
        }
        waiting
    }

    /// Runs a room request that waits for the node directory, then answers it (and its
    /// acknowledgement) as the session would have at once.
    async fn settle(
        self: Arc<Self>,
        followup: Followup,
        cluster: Arc<Cluster>,
        ack_id: Option<i64>,
    ) {
        let hub = match self.lock_session().as_ref() {
            Some(session) => session.hub().clone(),
            None => return,
        };
        let settled = followup.run(&cluster, &hub).await;
        if let Some(session) = self.lock_session().as_mut() {
            session.apply(settled);
        }
        if let Some(id) = ack_id {
            self.outbox.push_mark(id);
        }
    }
}

/// The event name an EVENT packet that socketioxide could not read is rewritten to
/// ([`checked_packet`]): socketioxide ends the session on an event whose first element
/// it cannot read as a name, so such a packet reaches it as this event instead, and
/// [`Conn::receive`] answers it `invalid_message` like any other packet that is not
/// `[name, data]`. It needs no escape (socketioxide reads names only without escapes)
/// and is no event of the protocol.
const MALFORMED: &str = "[malformed]";

/// An Engine.IO packet (`4` + a Socket.IO packet) as socketioxide may read it: an EVENT
/// packet (`2`, then an optional `/namespace,`, an optional acknowledgement id) whose
/// data is not a JSON array starting with a name is rewritten to the EVENT
/// `[`[`MALFORMED`]`]` with the same namespace and acknowledgement id, and so is a
/// message with no Socket.IO packet type or an unknown one; everything else is `None`
/// (passed on as it is). The packet is read as socketioxide's parser reads it
/// (`socketioxide-parser-common`, `de.rs`: `read_nsp`, `read_ack`; `value/de.rs`:
/// `read_event`).
fn checked_packet(packet: &str) -> Option<String> {
    let sio = packet.strip_prefix('4')?;
    // No Socket.IO packet type at all, or none socketioxide knows: it would end the
    // session on these too (`de.rs`, `deserialize_packet`).
    if !sio.starts_with(|c: char| ('0'..='6').contains(&c)) {
        return Some(format!("42[\"{MALFORMED}\"]"));
    }
    let rest = sio.strip_prefix('2')?;
    let (ns, rest) = if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => (&rest[..comma], &rest[comma + 1..]),
            None => (rest, ""),
        }
    } else {
        ("", rest)
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = match rest.as_bytes().get(digits) {
        Some(b'[' | b'{') if digits > 0 => rest[..digits].parse::<i64>().ok(),
        _ => None,
    };
    let data = &rest[digits..];
    if event_name_readable(data) {
        return None;
    }
    let ns = if ns.is_empty() {
        String::new()
    } else {
        format!("{ns},")
    };
    let ack = ack.map(|id| id.to_string()).unwrap_or_default();
    Some(format!("42{ns}{ack}[\"{MALFORMED}\"]"))
}

/// Whether socketioxide reads `data` as an event: a JSON array of valid JSON whose first
/// element is a string without escapes (it borrows the name).
fn event_name_readable(data: &str) -> bool {
    struct FirstName;
    impl<'de> serde::de::Visitor<'de> for FirstName {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("[name, ...]")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            seq.next_element::<&'de str>()?
                .ok_or_else(|| serde::de::Error::custom("no name"))?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(data);
    serde::Deserializer::deserialize_seq(&mut de, FirstName).is_ok()
}

/// An Engine.IO polling payload (packets separated by the record separator) with every
/// packet passed through [`checked_packet`]; `None` when none changed.
fn checked_payload(payload: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut changed = false;
    let packets: Vec<std::borrow::Cow<'_, str>> = text
        .split('\u{1e}')
        .map(|p| match checked_packet(p) {
            Some(rewritten) => {
                changed = true;
                rewritten.into()
            }
            None => p.into(),
        })
        .collect();
    changed.then(|| packets.join("\u{1e}").into_bytes())
}

/// The bytes a client sends on a socket upgraded to Engine.IO over WebSocket, with each
/// EVENT packet socketioxide could not read rewritten by `checked_packet`, below
/// tungstenite: socketioxide would end the session on one, and nothing above the socket
/// sees a WebSocket message before socketioxide does. The server wraps every HTTP socket;
/// until [`EventCheck::switch`] is set (an upgrade request to [`PATH`]) it passes bytes
/// through untouched, and it checks only a stream whose upgrade request ended its last
/// read (a client that sends frames before the handshake is answered is not checked).
///
/// A whole unfragmented, masked text frame up to [`MAX_PAYLOAD_BYTES`] is read before it
/// is passed on (tungstenite reads it whole too); every other frame (control, binary,
/// fragmented, larger) streams through as it comes. A rewritten frame goes on with a
/// zero mask key.
#[derive(Debug)]
pub struct EventCheck<T> {
    io: T,
    on: Arc<AtomicBool>,
    /// Whether the stream is checked: `None` until the first read after the switch.
    checking: Option<bool>,
    /// The last bytes read before the switch.
    tail: [u8; 4],
    /// Bytes read and not yet passed on; the first `ready` of them are checked.
    buf: bytes::BytesMut,
    ready: usize,
    /// Bytes of a frame passed through as they come that are still to come.
    passing: u64,
}

impl<T> EventCheck<T> {
    /// Wraps `io`, passing its bytes through until switched on.
    pub fn new(io: T) -> Self {
        EventCheck {
            io,
            on: Arc::new(AtomicBool::new(false)),
            checking: None,
            tail: [0; 4],
            buf: bytes::BytesMut::new(),
            ready: 0,
            passing: 0,
        }
    }

    /// The switch that turns checking on (for good) from the next read.
    pub fn switch(&self) -> Arc<AtomicBool> {
        self.on.clone()
    }

    /// Moves the bytes at the start of `buf` that can be passed on into `ready`, rewriting
    /// a malformed event; `false` when more bytes must be read first.
    fn advance(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        if self.passing > 0 {
            let n = self.passing.min(self.buf.len() as u64);
            self.passing -= n;
            self.ready = n as usize;
            return true;
        }
        let Some(frame) = FrameHead::read(&self.buf) else {
            return false;
        };
        let checked = frame.fin
            && frame.opcode == 1
            && frame.mask.is_some()
            && frame.len <= MAX_PAYLOAD_BYTES as u64;
        let total = (frame.head_len as u64).saturating_add(frame.len);
        if !checked {
            let n = total.min(self.buf.len() as u64);
            self.ready = n as usize;
            self.passing = total - n;
            return true;
        }
        let total = total as usize;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return false;
        }
        let mut payload = self.buf[frame.head_len..total].to_vec();
        if let Some(mask) = frame.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let rewritten = std::str::from_utf8(&payload).ok().and_then(checked_packet);
        match rewritten {
            None => self.ready = total,
            Some(packet) => {
                let rest = self.buf.split_off(total);
                self.buf.clear();
                let len = packet.len();
                self.buf.extend_from_slice(&[0x81]);
                if len < 126 {
                    self.buf.extend_from_slice(&[0x80 | len as u8]);
                } else if len <= usize::from(u16::MAX) {
                    self.buf.extend_from_slice(&[0x80 | 126]);
                    self.buf.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    self.buf.extend_from_slice(&[0x80 | 127]);
                    self.buf.extend_from_slice(&(len as u64).to_be_bytes());
                }
                self.buf.extend_from_slice(&[0; 4]);
                self.buf.extend_from_slice(packet.as_bytes());
                self.ready = self.buf.len();
                self.buf.extend_from_slice(&rest);
            }
        }
        true
    }
}

/// A WebSocket frame header (RFC 6455 §5.2).
struct FrameHead {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    head_len: usize,
}

impl FrameHead {
    /// The header at the start of `bytes`, or `None` if it is not all there yet.
    fn read(bytes: &[u8]) -> Option<FrameHead> {
        let (&b0, rest) = bytes.split_first()?;
        let &b1 = rest.first()?;
        let (len, mut at) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let key: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(key)
        } else {
            None
        };
        Some(FrameHead {
            // The reserved bits must be clear for the frame to be checked.
            fin: b0 & 0xf0 == 0x80,
            opcode: b0 & 0x0f,
            mask,
            len,
            head_len: at,
        })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EventCheck<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.checking.is_none() {
            if !this.on.load(Ordering::Relaxed) {
                let before = out.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, out))?;
                let read = &out.filled()[before..];
                for &b in read.iter().rev().take(4).rev() {
                    this.tail.rotate_left(1);
                    this.tail[3] = b;
                }
                return Poll::Ready(Ok(()));
            }
            this.checking = Some(&this.tail == b"\r\n\r\n");
        }
        if this.checking == Some(false) {
            return Pin::new(&mut this.io).poll_read(cx, out);
        }
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf.split_to(n));
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.buf.capacity() - this.buf.len() < 4096 {
                this.buf.reserve(8192);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.io),
                cx,
                &mut this.buf
            ))?;
            if n == 0 {
                // The end of the stream: what is left (an unfinished frame) goes on as
                // it is, for tungstenite to refuse.
                this.ready = this.buf.len();
                this.passing = 0;
                if this.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EventCheck<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why the adapter refused an event before the session read it.
#[derive(Debug, Clone, Copy)]
enum Refused {
    NotAnEvent,
    Binary,
    TooLarge,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Refused::NotAnEvent => "a Socket.IO event must be [name, data]",
            Refused::Binary => "binary data is not accepted; send JSON",
            Refused::TooLarge => "message too large",
        }
    }
}

/// An acknowledgement waiting for its request's answer.
struct Pending {
    ack: AckSender<Local>,
    /// What it gets when the session sent no answer (else it gets no argument).
    otherwise: Option<Bytes>,
}

/// The protocol envelope for the Socket.IO event `args` (`["name", data, ...]`, as
/// JSON): `{"event": name, "data": data, "id": ack}`, with the name and data exactly as
/// the client wrote them. Arguments after `data` are ignored like unknown fields; a
/// missing `data` leaves the envelope without one (the session answers
/// `invalid_message`). `None` when `args` is not an array.
fn envelope(args: &str, ack: Option<i64>) -> Option<String> {
    let args: Vec<&RawValue> = serde_json::from_str(args).ok()?;
    let (event, data) = (args.first()?, args.get(1));
    let mut env = String::with_capacity(args.iter().map(|a| a.get().len()).sum::<usize>() + 48);
    env.push_str(r#"{"event":"#);
    env.push_str(event.get());
    if let Some(data) = data {
        env.push_str(r#","data":"#);
        env.push_str(data.get());
    }
    if let Some(id) = ack {
        env.push_str(r#","id":"#);
        env.push_str(&id.to_string());
    }
    env.push('}');
    Some(env)
}

/// Whether `args` is the event [`checked_packet`] left for a malformed one.
fn is_malformed(args: &str) -> bool {
    args.strip_prefix("[\"")
        .and_then(|rest| rest.strip_prefix(MALFORMED))
        .is_some_and(|rest| rest == "\"]")
}

/// socketioxide's handler for every event: hands it to the connection in order.
struct Inbound(Arc<Conn>);

/// The type parameter of [`Inbound`]'s [`MessageHandler`] implementation.
struct InOrder;

impl MessageHandler<Local, InOrder> for Inbound {
    fn call(&self, socket: Arc<Socket<Local>>, value: Value, ack_id: Option<i64>) {
        if let Some((followup, cluster)) = self.0.receive(&socket, value, ack_id) {
            tokio::spawn(self.0.clone().settle(followup, cluster, ack_id));
        }
    }
}

/// What the connect handler needs to start the writer, left by [`prepare`] in the
/// socket's extensions.
#[derive(Clone)]
struct Starter(Arc<Mutex<Option<Writer>>>);

struct Writer {
    conn: Arc<Conn>,
    local: Arc<CoreLocalAdapter<Emitter>>,
    rx: Inbox<Queued>,
    admission: Admission,
    guard: tokio_util::task::task_tracker::TaskTrackerToken,
}

/// The connect middleware: admits the connection, opens its session and registers its
/// handlers. An error refuses it (`connect_error` at the client).
fn prepare(
    socket: SocketRef<Local>,
    ctx: Arc<Context>,
    local: Option<Arc<CoreLocalAdapter<Emitter>>>,
) -> Result<(), &'static str> {
    let local = local.ok_or("namespace not ready")?;
    let parts = socket.req_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    // The Engine.IO session's admission; a second connect on the same session (after a
    // namespace disconnect) asks for a new one.
    let admission = match parts.extensions.get::<Admitted>().and_then(Admitted::take) {
        Some(admission) => admission,
        None => ctx
            .arrive(peer, Transport::SocketIo)
            .admit()
            .map_err(|refused| refused.as_str())?,
    };
    let mut admission = admission;
    admission.connected();
    let (session, outbox, rx) = admission.open_session_with_parts();
    let conn = Arc::new(Conn {
        session: Mutex::new(Some(session)),
        outbox,
        acks: Mutex::new(HashMap::new()),
        left: AtomicBool::new(false),
    });
    socket.on_fallback(Inbound(conn.clone()));
    let on_disconnect = conn.clone();
    socket.on_disconnect(move |reason: DisconnectReason| {
        let conn = on_disconnect.clone();
        async move {
            if reason == DisconnectReason::ClientNSDisconnect {
                conn.left.store(true, Ordering::Relaxed);
            }
            conn.outbox.close(close_reason_for(reason));
        }
    });
    socket
        .extensions
        .insert(Starter(Arc::new(Mutex::new(Some(Writer {
            conn,
            local,
            rx,
            admission,
            guard: ctx.tracker.token(),
        })))));
    Ok(())
}

/// The connect handler (a task of its own): runs the writer [`prepare`] left.
async fn start(socket: SocketRef<Local>) {
    let writer = socket
        .extensions
        .remove::<Starter>()
        .and_then(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    let Some(w) = writer else {
        return;
    };
    let _guard = w.guard;
    let span = w.admission.span().clone();
    let out = Out {
        socket,
        local: w.local,
    };
    run(out, w.conn, w.rx, w.admission).instrument(span).await;
}

fn close_reason_for(reason: DisconnectReason) -> CloseReason {
    use DisconnectReason::*;
    match reason {
        TransportClose | TransportError | ClientNSDisconnect => CloseReason::PeerClosed,
        HeartbeatTimeout => CloseReason::PeerTimeout,
        MultipleHttpPollingError | PacketParsingError => CloseReason::ProtocolViolation,
        ClosingServer => CloseReason::Shutdown,
        // The server disconnected it, and set its reason first.
        ServerNSDisconnect => CloseReason::Shutdown,
    }
}

/// The writer: drains the outbox onto the socket until the connection ends, then ends
/// the session.
async fn run(out: Out, conn: Arc<Conn>, mut rx: Inbox<Queued>, admission: Admission) {
    let token = admission.token().clone();
    loop {
        let lobby = conn.lobby_deadline();
        // Events arrive on socketioxide's tasks: a deadline passed by a later event is
        // checked again and waited for anew.
        let silent_by = conn.silence_deadline();
        let expires = conn.expiry_deadline();
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = until(lobby) => {
                conn.outbox.close(CloseReason::NoRoom);
                break;
            }
            _ = until(silent_by) => conn.check_silence(),
            _ = until(expires) => conn.expire(),
            m = rx.recv() => {
                let Some(first) = m else { break };
                let mut open = emit(&out, &conn, first);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) if open => open = emit(&out, &conn, m),
                        _ => break,
                    }
                }
                if !open {
                    break;
                }
            }
        }
    }
    let reason = conn.outbox.close_reason().unwrap_or(CloseReason::Shutdown);
    // However it ended, no more messages are handled; only a Socket.IO disconnect from
    // the client frees the seat at once (like `session:leave`), else it is held (§6).
    let session = conn.lock_session().take();
    if let Some(mut session) = session {
        if conn.left.load(Ordering::Relaxed) {
            session.leave();
        }
    }
    match reason {
        CloseReason::PeerClosed | CloseReason::PeerTimeout | CloseReason::Shutdown => {}
        CloseReason::SlowConsumer => {
            // Its buffer is most likely full: the disconnect goes only if it fits; if
            // not, Engine.IO's next ping does not fit either and it drops the client.
            let _ = out.socket.clone().disconnect();
        }
        _ => {
            // Deliver what is still queued (a last error), then disconnect.
            while let Ok(m) = rx.try_recv() {
                if !emit(&out, &conn, m) {
                    break;
                }
            }
            let _ = out.socket.clone().disconnect();
        }
    }
    // Pending acknowledgements hold the socket: let them go.
    conn.lock_acks().clear();
    admission.finish(reason);
}

/// The second argument of an event that carries a room sequence number.
#[derive(Serialize)]
struct Meta {
    seq: u64,
}

/// What an acknowledgement receives: the direct answer, without its `id`.
#[derive(Serialize)]
struct Answer<'a> {
    event: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl<'a> Answer<'a> {
    fn of(parts: &'a Parts) -> Self {
        Answer {
            event: &parts.event,
            data: &parts.data,
            seq: parts.seq,
        }
    }
}

/// Where the writer sends: its socket, and the namespace's local adapter for events
/// encoded once.
struct Out {
    socket: SocketRef<Local>,
    local: Arc<CoreLocalAdapter<Emitter>>,
}

/// Emits one queued item (or runs an acknowledgement marker); `false` when the
/// connection is over. A relayed event comes read into its parts, and its arguments are
/// encoded once, by its first Socket.IO receiver, for all of them; only the server's own
/// envelopes to this connection are read and encoded here.
fn emit(out: &Out, conn: &Conn, item: Queued) -> bool {
    match item {
        Queued::Relayed(parts) => {
            let args = parts
                .encoded
                .get_or_init(|| arguments(out.local.parser(), &parts));
            emit_parts(out, conn, &parts, args.clone())
        }
        Queued::Envelope(json) => match Parts::read(&json) {
            Ok(parts) => {
                let args = arguments(out.local.parser(), &parts);
                emit_parts(out, conn, &parts, args)
            }
            Err(e) => {
                debug!(error = %e, "socket.io: an envelope without event or data");
                true
            }
        },
        Queued::Mark(id) => acknowledge(conn, id),
    }
}

/// The arguments of `emit(event, data)`, or of `emit(event, data, { seq })`, encoded by
/// `parser` exactly as `emit` encodes them; `None` when they cannot be.
fn arguments(parser: impl Parse, parts: &Parts) -> Option<Value> {
    let data: &RawValue = &parts.data;
    let event = Some(&*parts.event);
    let encoded = match parts.seq {
        Some(seq) => parser.encode_value(&(data, Meta { seq }), event),
        None => parser.encode_value(&(data,), event),
    };
    encoded
        .map_err(|e| debug!(error = %e, "socket.io: an event not encoded"))
        .ok()
}

/// Sends the event whose arguments are `args` (see [`arguments`]), and acknowledges the
/// request whose `id` it answers.
fn emit_parts(out: &Out, conn: &Conn, parts: &Parts, args: Option<Value>) -> bool {
    if let Some(args) = args {
        if !sent(conn, send_encoded(out, args)) {
            return false;
        }
    }
    match parts.id.and_then(|id| conn.lock_acks().remove(&id)) {
        Some(pending) => sent(conn, pending.ack.send(&Answer::of(parts))),
        None => true,
    }
}

/// What `emit` does once it has encoded the arguments: an EVENT packet with them, on the
/// socket's namespace, to the socket alone. The packet is put together from the shared
/// arguments (a reference-counted buffer) for this socket.
fn send_encoded(out: &Out, args: Value) -> Result<(), SendError> {
    if !out.socket.connected() {
        return Err(SendError::Socket(SocketError::Closed));
    }
    let packet = Packet::event(out.local.path().clone(), args);
    out.local
        .broadcast(packet, BroadcastOptions::new(out.socket.id))
        .map_err(|errors| {
            SendError::Socket(errors.into_iter().next().unwrap_or(SocketError::Closed))
        })
}

/// The end of request `id`'s answers: its acknowledgement, if no answer took it, gets the
/// refusal it was left with, or no argument.
fn acknowledge(conn: &Conn, id: i64) -> bool {
    let Some(pending) = conn.lock_acks().remove(&id) else {
        return true;
    };
    match pending.otherwise {
        Some(answer) => match Parts::read(&answer) {
            Ok(parts) => sent(conn, pending.ack.send(&Answer::of(&parts))),
            Err(_) => true,
        },
        // No answer came: the request was handled and that is all.
        None => sent(conn, pending.ack.send(&[(); 0])),
    }
}

/// Whether an emit went out; a full Engine.IO buffer means the client stopped reading.
fn sent(conn: &Conn, result: Result<(), SendError>) -> bool {
    match result {
        Ok(()) => true,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            conn.outbox.cut_off_slow();
            false
        }
        Err(SendError::Socket(SocketError::Closed)) => false,
        Err(e) => {
            debug!(error = %e, "socket.io: emit failed");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_becomes_the_envelope_with_its_data_as_written() {
        assert_eq!(
            envelope(r#"["session:create",{"name":"A", "x" :[1, 2.50]}]"#, None).as_deref(),
            Some(r#"{"event":"session:create","data":{"name":"A", "x" :[1, 2.50]}}"#)
        );
        assert_eq!(
            envelope(r#"["a\"b",1,"extra"]"#, Some(7)).as_deref(),
            Some(r#"{"event":"a\"b","data":1,"id":7}"#)
        );
        assert_eq!(
            envelope(r#"["session:create"]"#, Some(-1)).as_deref(),
            Some(r#"{"event":"session:create","id":-1}"#)
        );
        assert_eq!(envelope(r#"{"event":"x"}"#, None), None);
        assert_eq!(envelope(r#"[]"#, None), None);
        assert_eq!(envelope("not json", None), None);
    }

    #[test]
    fn events_socketioxide_cannot_read_become_the_malformed_event() {
        for (packet, want) in [
            (r#"42"hello""#, r#"42["[malformed]"]"#),
            ("42{}", r#"42["[malformed]"]"#),
            ("42[]", r#"42["[malformed]"]"#),
            ("42[1,2]", r#"42["[malformed]"]"#),
            ("42[", r#"42["[malformed]"]"#),
            (r#"42["x","#, r#"42["[malformed]"]"#),
            (r#"42["a\"b",1]"#, r#"42["[malformed]"]"#),
            ("42", r#"42["[malformed]"]"#),
            ("4217[1]", r#"4217["[malformed]"]"#),
            (r#"4217"x""#, r#"42["[malformed]"]"#),
            ("42/room,9{}", r#"42/room,9["[malformed]"]"#),
            ("42/room", r#"42/room,["[malformed]"]"#),
            ("4", r#"42["[malformed]"]"#),
            ("49[]", r#"42["[malformed]"]"#),
            ("4x", r#"42["[malformed]"]"#),
        ] {
            assert_eq!(checked_packet(packet).as_deref(), Some(want), "{packet}");
            let args = want.trim_start_matches(|c: char| c != '[');
            assert!(is_malformed(args), "{want}");
        }
        for fine in [
            r#"42["session:create",{"name":"A"}]"#,
            r#"4212["x"]"#,
            r#"42/room,["x",1]"#,
            "40",
            "41",
            "431[{}]",
            "3",
        ] {
            assert_eq!(checked_packet(fine), None, "{fine}");
        }
        assert_eq!(
            checked_payload(b"42[\"a\",1]\x1e421{}\x1e3").as_deref(),
            Some(&b"42[\"a\",1]\x1e421[\"[malformed]\"]\x1e3"[..])
        );
        assert_eq!(checked_payload(b"42[\"a\",1]\x1e3"), None);
    }

    /// A client frame: masked with a key that is not zero, `fin` and opcode `op`.
    fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![if fin { 0x80 | op } else { op }];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[tokio::test]
    async fn an_upgraded_stream_reaches_tungstenite_with_malformed_events_rewritten() {
        use futures_util::StreamExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};

        let big = format!(r#"42["x","{}"]"#, "y".repeat(70_000));
        let mut bytes = b"GET /socket.io/ HTTP/1.1\r\n\r\n".to_vec();
        let head = bytes.len();
        bytes.extend(frame(true, 1, br#"421{"a":1}"#));
        bytes.extend(frame(true, 9, b"ping"));
        bytes.extend(frame(true, 1, br#"42["ok",1]"#));
        bytes.extend(frame(false, 1, b"42"));
        bytes.extend(frame(true, 0, b"{}"));
        bytes.extend(frame(true, 1, big.as_bytes()));
        bytes.extend(frame(true, 1, &[b'4', b'2', b'"'].repeat(100)));
        // Read through a small pipe, so frames come in pieces.
        let (mut near, far) = tokio::io::duplex(61);
        let writer = tokio::spawn(async move {
            near.write_all(&bytes).await.unwrap();
            near
        });
        let mut checked = EventCheck::new(far);
        let mut request = vec![0; head];
        checked.read_exact(&mut request).await.unwrap();
        checked.switch().store(true, Ordering::Relaxed);
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(checked, Role::Server, None).await;
        let got: Vec<Message> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ws.take(6).map(Result::unwrap).collect(),
        )
        .await
        .expect("six messages");
        drop(writer.await.unwrap());
        let texts: Vec<String> = got
            .iter()
            .filter_map(|m| m.to_text().ok().map(str::to_owned))
            .collect();
        assert_eq!(texts[0], r#"421["[malformed]"]"#);
        assert!(got[1].is_ping());
        assert_eq!(texts[2], r#"42["ok",1]"#);
        // A fragmented message passes as it came.
        assert_eq!(texts[3], "42{}");
        assert_eq!(texts[4], big);
        assert_eq!(texts[5], r#"42["[malformed]"]"#);
    }

    #[test]
    fn only_requests_naming_a_session_skip_admission() {
        assert!(names_session(Some("EIO=4&transport=polling&sid=abc")));
        assert!(names_session(Some("sid=abc&EIO=4")));
        assert!(!names_session(Some("EIO=4&transport=websocket")));
        assert!(!names_session(Some("EIO=4&xsid=1")));
        assert!(!names_session(None));
        assert!(has_pair(
            Some("EIO=4&transport=websocket&sid=abc"),
            "transport=websocket"
        ));
        assert!(!has_pair(
            Some("EIO=4&transport=polling&x=transport=websocket"),
            "transport=websocket"
        ));
    }
}
