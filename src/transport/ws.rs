//! The WebSocket binding (docs/protocol.md §3) on axum: `GET /ws`, one envelope per text
//! frame, pings, the silent-peer timeout, and close codes. It only moves frames; the
//! protocol lives in [`crate::session::Session`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use jam_protocol::SUBPROTOCOL;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

use crate::clock::ServerClock;
use crate::conn::{until, Admission, Context};
use crate::outbox::{CloseReason, Inbox, Outbox, Path};
use crate::stats::Transport;
use crate::transport::unfinished::{Unfinished, Watched};

/// The upgraded socket, its incoming frames followed for unfinished messages.
type Socket = WebSocketStream<Watched<TokioIo<hyper::upgrade::Upgraded>>>;

/// A frame or message larger than this is not read: the connection closes with 1009.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 16 * 1024;
/// The most bytes waiting to be written, pongs to the peer's pings included: a peer that
/// does not read, however much it sends, holds at most this much of the server's memory
/// (tungstenite's default is unbounded).
const MAX_WRITE_BUFFER: usize = 256 * 1024;

fn close_code_for(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::Shutdown | CloseReason::PeerTimeout => 1001,
        CloseReason::SlowConsumer | CloseReason::ProtocolViolation => 1008,
        CloseReason::InvalidData => 1007,
        CloseReason::TooBig => 1009,
        CloseReason::PeerClosed => 1000,
        // docs/protocol.md §6: the seat went to another connection.
        CloseReason::ResumedElsewhere => 4000,
        // docs/protocol.md §12: the room went to another node.
        CloseReason::Moved => 4001,
        // docs/protocol.md §13: the seat's sign-in ran out.
        CloseReason::TokenExpired => 4003,
        CloseReason::NoRoom | CloseReason::UnfinishedMessage => 1008,
    }
}

/// `GET /ws`: checks the origin, the address's connection count and the handshake
/// (RFC 6455 §4.2.1), answers 101 and runs the connection. The handshake is done here
/// rather than by axum's extractor so that the upgraded socket can be wrapped in
/// [`Watched`] before tungstenite reads its first frame.
pub async fn upgrade(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(ctx): State<Arc<Context>>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("?"));
    if let Err(refused) = ctx.check_origin(origin, peer, Transport::WebSocket) {
        return refused.into_response();
    }
    let accept = match handshake_key(headers) {
        Ok(key) => derive_accept_key(key.as_bytes()),
        Err(refusal) => return refusal.into_response(),
    };
    let protocol = offers_subprotocol(headers).then_some(HeaderValue::from_static(SUBPROTOCOL));
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        )
            .into_response();
    };
    let admission = match ctx.arrive(peer, Transport::WebSocket).admit() {
        Ok(admission) => admission,
        Err(refused) => return refused.into_response(),
    };
    // tungstenite's 128 KiB default buffers would cost 256 KiB per idle connection;
    // messages here are small and the writer flushes once per batch anyway.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let span = admission.span().clone();
    ctx.tracker.spawn(
        async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let (io, unfinished) = Watched::new(TokioIo::new(upgraded));
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            run(socket, unfinished, admission).await;
        }
        .instrument(span),
    );
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Whether the client offers the jam subprotocol (`Sec-WebSocket-Protocol`).
fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|p| p.trim() == SUBPROTOCOL)
        })
}

/// Why a request to `/ws` is not a WebSocket handshake this server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotAHandshake {
    /// No `Connection: upgrade` with `Upgrade: websocket`.
    NoUpgrade,
    /// A `Sec-WebSocket-Version` other than 13.
    Version,
    /// No `Sec-WebSocket-Key`.
    NoKey,
}

impl IntoResponse for NotAHandshake {
    fn into_response(self) -> Response {
        match self {
            NotAHandshake::NoUpgrade => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::UPGRADE, "websocket")],
                "this is a WebSocket endpoint",
            )
                .into_response(),
            NotAHandshake::Version => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "only WebSocket version 13 is spoken",
            )
                .into_response(),
            NotAHandshake::NoKey => {
                (StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key").into_response()
            }
        }
    }
}

/// The client's `Sec-WebSocket-Key` if the request is a WebSocket handshake (RFC 6455
/// §4.2.1).
fn handshake_key(headers: &HeaderMap) -> Result<&HeaderValue, NotAHandshake> {
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(NotAHandshake::NoUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err(NotAHandshake::Version);
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| !k.is_empty())
        .ok_or(NotAHandshake::NoKey)
}

/// Runs one upgraded connection until it ends (inside its span).
async fn run(socket: Socket, unfinished: Arc<Unfinished>, mut admission: Admission) {
    admission.connected();
    let ctx = admission.context().clone();
    let token = admission.token().clone();
    let (mut session, outbox, rx) = admission.open_session(None);
    let (sink, mut stream) = socket.split();
    let clock = *ctx.hub.clock();
    // The stamp of the last ping sent: only a pong that echoes it exactly times a round
    // trip, so a peer cannot make up its own (§8).
    let last_ping = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write(
        sink,
        rx,
        token.clone(),
        outbox.clone(),
        Timing {
            ping_interval: ctx.ping_interval,
            write_deadline: ctx.peer_timeout,
            clock,
            shutdown: ctx.shutdown.clone(),
            last_ping: last_ping.clone(),
        },
    ));

    let reason = loop {
        let lobby = session.lobby_deadline();
        // A message counts as heard once it is whole: one begun longer than the peer
        // timeout ago ends the connection, whatever pings the peer sends meanwhile.
        let unfinished_by = unfinished.since().map(|t| t + ctx.peer_timeout);
        if unfinished_by.is_some_and(|by| by <= Instant::now()) {
            break CloseReason::UnfinishedMessage;
        }
        // Every frame is heard (the session stamps it): the peer timeout and the silence
        // limit both count from the last one (docs/protocol.md §11).
        let peer_by = session.last_heard() + ctx.peer_timeout;
        let silent_by = session.silence_deadline();
        let expires = session.expiry_deadline();
        let next = tokio::select! {
            biased;
            _ = token.cancelled() => break outbox.close_reason().unwrap_or(CloseReason::Shutdown),
            _ = until(lobby) => break CloseReason::NoRoom,
            _ = until(unfinished_by) => break CloseReason::UnfinishedMessage,
            _ = tokio::time::sleep_until(peer_by.into()) => break CloseReason::PeerTimeout,
            _ = until(silent_by) => {
                session.check_silence();
                continue;
            }
            _ = until(expires) => {
                session.expire();
                continue;
            }
            next = stream.next() => next,
        };
        if !matches!(next, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
            session.heard();
        }
        match next {
            None | Some(Ok(Message::Close(_))) => break CloseReason::PeerClosed,
            Some(Ok(Message::Text(text))) => {
                session.handle_text(text.as_str(), Path::Reliable);
                // A room request for a room on another node waits for the directory.
                session.settle().await;
            }
            Some(Ok(Message::Binary(_))) => {
                session.invalid("binary frames are not accepted; send JSON text frames")
            }
            Some(Ok(Message::Pong(sent))) => {
                // Our pings carry their send time: the round trip, for §8. A pong that is
                // not the answer to the last ping (unsolicited, late, or made up) times
                // nothing, and no round trip is longer than the peer timeout.
                if let Ok(sent) = <[u8; 8]>::try_from(&sent[..]) {
                    let sent = u64::from_be_bytes(sent);
                    if sent != 0 && sent == last_ping.load(Ordering::Relaxed) {
                        let rtt = Duration::from_micros(clock.now_us().saturating_sub(sent));
                        outbox.set_rtt(rtt.min(ctx.peer_timeout));
                    }
                }
            }
            Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => {}
            Some(Err(e)) => break read_error_reason(e),
        }
    };
    // However the socket ended, it was no `session:leave`: the seat is held (§6).
    drop(session);
    outbox.close(reason);
    // Until the writer has sent its close frame (a slow consumer's waits, for up to the
    // peer timeout, for the peer to read again) and the peer has answered it or gone,
    // what the peer sends is read and dropped: a socket closed with unread bytes is
    // reset, and a reset throws away what the peer had not yet read, the close frame
    // included.
    let drained = async { while let Some(Ok(_)) = stream.next().await {} };
    // A slow consumer may have a backlog to read before it reaches the close frame; a
    // peer that is reading answers at once; a silent one never does.
    let answer_wait = match reason {
        CloseReason::SlowConsumer => ctx.peer_timeout,
        CloseReason::PeerTimeout => Duration::ZERO,
        _ => Duration::from_secs(1),
    };
    let backstop = ctx.peer_timeout + Duration::from_secs(2);
    let _ = tokio::time::timeout(backstop, async {
        let mut drained = std::pin::pin!(drained);
        tokio::select! {
            _ = writer => {
                let _ = tokio::time::timeout(answer_wait, drained).await;
            }
            _ = &mut drained => {}
        }
    })
    .await;
    admission.finish(reason);
    drop(stream);
}

fn read_error_reason(e: WsError) -> CloseReason {
    match e {
        WsError::Utf8(_) => CloseReason::InvalidData,
        WsError::Capacity(_) => CloseReason::TooBig,
        // A peer killed or cut off mid-connection: no close frame came, and that is all.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::PeerClosed,
        WsError::Protocol(_) => CloseReason::ProtocolViolation,
        other => {
            debug!(error = ?other, "read failed");
            CloseReason::PeerClosed
        }
    }
}

/// The writer's clocks.
struct Timing {
    ping_interval: Duration,
    /// A write (a batch or a ping) that cannot complete in this long means the peer has
    /// stopped reading.
    write_deadline: Duration,
    clock: ServerClock,
    /// The server's shutdown (the connection's own token is cancelled when it closes).
    shutdown: CancellationToken,
    /// Where the stamp of each ping goes as it is sent, for the reader to match its pong.
    last_ping: Arc<AtomicU64>,
}

/// What became of one write.
enum Wrote {
    Done,
    /// The token was cancelled meanwhile.
    Cancelled,
    /// The peer does not read: the write buffer is full or the write timed out.
    Stalled,
    /// The socket failed.
    Failed,
}

/// Runs one write under the deadline and the token.
async fn guarded(
    write: impl std::future::Future<Output = Result<(), WsError>>,
    token: &CancellationToken,
    deadline: Duration,
) -> Wrote {
    // The write is polled first: one that completes at once goes out even when
    // the connection is being closed (a last message, such as `session:moved`, is
    // not lost to the close that follows it).
    tokio::select! {
        biased;
        r = tokio::time::timeout(deadline, write) => match r {
            Ok(Ok(())) => Wrote::Done,
            Ok(Err(WsError::WriteBufferFull(_))) => Wrote::Stalled,
            Ok(Err(_)) => Wrote::Failed,
            Err(_) => Wrote::Stalled,
        },
        _ = token.cancelled() => Wrote::Cancelled,
    }
}

/// Drains the outbox onto the socket, flushing once per batch, and pings: at once (so the
/// room learns the round trip early) and then every ping interval, each ping carrying
/// its send time in server µs for the reader to time the pong. A peer that stops reading
/// is cut off as a slow consumer, whether its outbox overflows, a write stays blocked
/// past the deadline, or the bounded write buffer fills (with pongs to its own pings).
async fn write(
    mut sink: SplitSink<Socket, Message>,
    mut rx: Inbox<Bytes>,
    token: CancellationToken,
    outbox: Outbox,
    timing: Timing,
) {
    let mut ping = tokio::time::interval(timing.ping_interval);
    loop {
        let wrote = tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(first) => {
                    let batch = send_batch(&mut sink, first, &mut rx);
                    guarded(batch, &token, timing.write_deadline).await
                }
                None => break,
            },
            _ = token.cancelled() => break,
            _ = ping.tick() => {
                let now = timing.clock.now_us();
                timing.last_ping.store(now, Ordering::Relaxed);
                let stamp = Bytes::copy_from_slice(&now.to_be_bytes());
                guarded(sink.send(Message::Ping(stamp)), &token, timing.write_deadline).await
            }
        };
        match wrote {
            Wrote::Done => {}
            Wrote::Cancelled => break,
            Wrote::Stalled => {
                outbox.cut_off_slow();
                break;
            }
            Wrote::Failed => {
                outbox.close(CloseReason::PeerClosed);
                break;
            }
        }
    }
    let reason = outbox.close_reason().unwrap_or(CloseReason::Shutdown);
    if reason == CloseReason::SlowConsumer {
        // Its socket is full: nothing more is queued, and the close frame (1008) goes as
        // soon as the peer reads what is ahead of it, if it does within the write deadline
        // (the server's shutdown cuts the wait short). A peer that never reads again gets
        // no close frame, only the end of the connection.
        let close = async {
            // The buffer must drain before the frame fits in it.
            sink.flush().await?;
            sink.send(Message::Close(Some(CloseFrame {
                code: close_code_for(reason).into(),
                reason: Utf8Bytes::from_static(reason.as_str()),
            })))
            .await
        };
        tokio::select! {
            _ = tokio::time::timeout(timing.write_deadline, close) => {}
            _ = timing.shutdown.cancelled() => {}
        }
        return;
    }
    // Deliver what is still queued (a last error, session:left), then the close frame.
    let finish = async {
        while let Ok(m) = rx.try_recv() {
            sink.feed(text(m)).await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: close_code_for(reason).into(),
            reason: Utf8Bytes::from_static(reason.as_str()),
        })))
        .await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), finish).await;
}

async fn send_batch(
    sink: &mut SplitSink<Socket, Message>,
    first: Bytes,
    rx: &mut Inbox<Bytes>,
) -> Result<(), WsError> {
    sink.feed(text(first)).await?;
    for _ in 0..64 {
        match rx.try_recv() {
            Ok(m) => sink.feed(text(m)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

fn text(bytes: Bytes) -> Message {
    // The server only queues JSON it encoded itself, which is UTF-8.
    Message::Text(Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_name_what_happened() {
        let reason = read_error_reason;
        assert_eq!(
            reason(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            CloseReason::PeerClosed,
            "a killed client is no protocol violation"
        );
        assert_eq!(
            reason(WsError::Protocol(ProtocolError::NonZeroReservedBits)),
            CloseReason::ProtocolViolation
        );
        assert_eq!(reason(WsError::ConnectionClosed), CloseReason::PeerClosed);
    }
}
