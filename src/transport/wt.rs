//! The WebTransport binding (docs/protocol.md §4) on wtransport: the endpoint at `/jam`, the
//! control stream as newline-delimited JSON, and `event:broadcast` datagrams in JSON or
//! MessagePack. It only frames and moves bytes; the protocol lives in [`Session`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::{Bytes, BytesMut};
use jam_protocol::Encoding;
use jam_wt::{datagram_header, DatagramReader};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::IncomingSession;
use wtransport::stream::SendStream;
use wtransport::{Connection, Endpoint, ServerConfig, VarInt};

use crate::conn::{until, Admission, Arrival, Context};
use crate::handshakes::{Decision, HandshakePlace};
use crate::outbox::{CloseReason, DatagramSink, Inbox, Outbox, Path};
use crate::session::Session;
use crate::stats::Transport;
use crate::tls::TlsIdentity;
use crate::transport::lines::{Line, LineFramer};

/// The URL path of the WebTransport endpoint.
pub const PATH: &str = "/jam";
/// quinn keeps this many bytes of outgoing datagrams at most; beyond it the oldest are
/// dropped. quinn's 1 MiB default would hold thousands of stale notes, and a late note
/// is worse than a lost one.
const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;
/// quinn keeps at most this many bytes written to a session's streams and not yet
/// acknowledged; a write past it waits. Its default (8 × 1.25 MB) let a peer that stops
/// reading its control stream hold about 6 MiB of the server's memory; this is enough
/// for a room's history replay in a few round trips.
const SEND_WINDOW: u64 = 512 * 1024;
/// Peers that support QUIC's ACK-frequency extension (quinn does; others ignore the
/// request) are asked to acknowledge after this many ack-eliciting packets rather than
/// every second one (or within their max ACK delay, 25 ms). A listener receives a note
/// datagram from each player, and each acknowledgement is a packet both ends pay for.
const ACK_ELICITING_THRESHOLD: u32 = 10;
/// The UDP socket's receive buffer. One socket carries every session's packets (each
/// player's notes and ACKs); the kernel's usual 208 KiB overflowed in bursts at about
/// 45,000 packets a second in, dropping notes while the server's core still had room.
/// Linux caps it at `net.core.rmem_max` (and doubles it for its own bookkeeping).
const UDP_RECV_BUFFER: usize = 2 << 20;
/// Client-opened bidirectional streams a session may have open at once: the extended
/// CONNECT stream, the control stream, and room for a stray one that is reset at once.
/// quinn keeps a map entry for every stream it allows up front (its default of 100 per
/// direction cost 8.6 KiB per connection, the largest item in an idle session's heap).
const MAX_CLIENT_BIDI_STREAMS: u32 = 4;
/// Client-opened unidirectional streams a session may have open at once: HTTP/3 needs
/// three (control, QPACK encoder and decoder; RFC 9114 §6.2 asks for at least that many);
/// the rest leaves room for streams the server does not read.
const MAX_CLIENT_UNI_STREAMS: u32 = 8;

/// WebTransport application close codes (docs/protocol.md §5, close codes).
pub mod close_code {
    /// The client finished its control stream or closed normally.
    pub const NORMAL: u32 = 0;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 1;
    /// The client stopped reading and its queue overflowed.
    pub const SLOW_CONSUMER: u32 = 2;
    /// The client was silent for the peer timeout.
    pub const TIMEOUT: u32 = 3;
    /// The client broke the binding.
    pub const PROTOCOL: u32 = 4;
    /// The seat was resumed on another connection (docs/protocol.md §6).
    pub const RESUMED_ELSEWHERE: u32 = 5;
    /// The room was handed over to another node (docs/protocol.md §12).
    pub const MOVED: u32 = 6;
    /// The seat's sign-in token expired without a refresh (docs/protocol.md §13).
    pub const TOKEN_EXPIRED: u32 = 7;
}

fn close_code_for(reason: CloseReason) -> u32 {
    match reason {
        CloseReason::Shutdown => close_code::SHUTDOWN,
        CloseReason::SlowConsumer => close_code::SLOW_CONSUMER,
        CloseReason::PeerTimeout => close_code::TIMEOUT,
        CloseReason::ProtocolViolation
        | CloseReason::InvalidData
        | CloseReason::TooBig
        | CloseReason::UnfinishedMessage => close_code::PROTOCOL,
        CloseReason::PeerClosed => close_code::NORMAL,
        CloseReason::ResumedElsewhere => close_code::RESUMED_ELSEWHERE,
        CloseReason::Moved => close_code::MOVED,
        CloseReason::TokenExpired => close_code::TOKEN_EXPIRED,
        CloseReason::NoRoom => close_code::TIMEOUT,
    }
}

/// What the WebTransport endpoint is bound with; kept to rebuild its configuration when
/// the certificate is renewed.
#[derive(Debug, Clone, Copy)]
pub struct WtConfig {
    /// The UDP address (`[::]` is dual-stack).
    pub addr: SocketAddr,
    /// QUIC keep-alive period.
    pub ping_interval: Duration,
    /// QUIC idle timeout: silence after which a session is dropped.
    pub peer_timeout: Duration,
}

/// The WebTransport endpoint.
pub struct WtServer {
    endpoint: Endpoint<Server>,
    config: WtConfig,
}

impl WtServer {
    /// Binds the UDP socket with the given identity.
    pub fn bind(config: WtConfig, identity: &TlsIdentity) -> Result<Self> {
        let socket = udp_socket(config.addr)
            .with_context(|| format!("binding the WebTransport UDP socket {}", config.addr))?;
        let endpoint = Endpoint::server(server_config(&config, identity, Some(socket)))?;
        // Port 0 becomes the port the OS chose, so a renewal rebinds nothing new.
        let config = WtConfig {
            addr: endpoint.local_addr()?,
            ..config
        };
        Ok(WtServer { endpoint, config })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Installs a new certificate for new sessions; open sessions keep theirs.
    pub fn reload_identity(&self, identity: &TlsIdentity) -> Result<()> {
        self.endpoint
            .reload_config(server_config(&self.config, identity, None), false)?;
        Ok(())
    }

    /// Closes the endpoint and every connection left on it.
    pub fn close(&self) {
        self.endpoint.close(
            VarInt::from_u32(close_code::SHUTDOWN),
            b"server shutting down",
        );
    }

    /// Waits until every connection has finished closing.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// The endpoint's UDP socket, bound to `addr` (`[::]` takes IPv4 too), with the receive
/// buffer [`UDP_RECV_BUFFER`].
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let SocketAddr::V6(v6) = addr {
        socket.set_only_v6(!v6.ip().is_unspecified())?;
    }
    // A smaller buffer than asked for (a low `rmem_max`) still works.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The endpoint's configuration: on `socket` when binding; a certificate reload keeps
/// the bound socket, and the address it names then is not used.
fn server_config(
    config: &WtConfig,
    identity: &TlsIdentity,
    socket: Option<std::net::UdpSocket>,
) -> ServerConfig {
    let mut transport = QuicTransportConfig::default();
    transport
        .keep_alive_interval(Some(config.ping_interval))
        .max_idle_timeout(config.peer_timeout.try_into().ok())
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .send_window(SEND_WINDOW)
        .max_concurrent_bidi_streams(MAX_CLIENT_BIDI_STREAMS.into())
        .max_concurrent_uni_streams(MAX_CLIENT_UNI_STREAMS.into());
    let mut acks = wtransport::quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(ACK_ELICITING_THRESHOLD.into());
    transport.ack_frequency_config(Some(acks));
    let builder = ServerConfig::builder();
    let builder = match socket {
        Some(socket) => builder.with_bind_socket(socket),
        None => builder.with_bind_address(config.addr),
    };
    builder
        .with_custom_transport(identity.identity.clone_identity(), transport)
        .build()
}

/// Accepts sessions until shutdown.
pub async fn run(wt: Arc<WtServer>, ctx: Arc<Context>) {
    loop {
        let incoming = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            incoming = wt.endpoint.accept() => incoming,
        };
        // An Initial's source address is not proven until a Retry token comes back: a
        // handshake counts against an address only once it is, or while the server can
        // take it on trust (crate::handshakes).
        let peer = incoming.remote_address();
        let validated = incoming.remote_address_validated();
        match ctx.handshakes().decide(peer.ip(), validated) {
            Decision::Accept(place) => {
                let ctx2 = ctx.clone();
                ctx.tracker.spawn(handle_incoming(incoming, place, ctx2));
            }
            Decision::Retry => incoming.retry(),
            Decision::Refuse => {
                debug!(%peer, "too many handshakes in progress; refused");
                incoming.refuse();
            }
        }
    }
}

/// Sends relayed datagrams straight to quinn: wtransport's `send_datagram` would copy
/// every payload behind a fresh header, once per receiver. Here the header (the session's
/// quarter stream id, RFC 9297) is computed once per session, and the framed bytes are
/// built once per event and shared by every receiver with the same header.
struct WtDatagrams {
    connection: Connection,
    header: Vec<u8>,
}

impl WtDatagrams {
    fn new(connection: Connection) -> Self {
        let header = datagram_header(&connection);
        WtDatagrams { connection, header }
    }
}

impl DatagramSink for WtDatagrams {
    fn prefix(&self) -> &[u8] {
        &self.header
    }

    fn send(&self, framed: Bytes) -> Option<bool> {
        use wtransport::quinn::SendDatagramError;
        match self.connection.quic_connection().send_datagram(framed) {
            Ok(()) => Some(true),
            // Too large for the path now, or the peer takes no datagrams: the control
            // stream carries it.
            Err(SendDatagramError::TooLarge)
            | Err(SendDatagramError::UnsupportedByPeer)
            | Err(SendDatagramError::Disabled) => None,
            // A lost note, never the end of the session (the session learns of the close
            // on its own).
            Err(SendDatagramError::ConnectionLost(_)) => Some(false),
        }
    }
}

/// One incoming session, from the handshake to the close. A plain `fn` on purpose: the
/// handshake's futures (the `IncomingSession` and wtransport's `accept`, 2.4 KiB)
/// are boxed and freed once the session is up, so the task that lives as long as the
/// session carries only `serve` (its cell shrinks from 3.9 to 1.3 KiB).
fn handle_incoming(
    incoming: IncomingSession,
    place: HandshakePlace,
    ctx: Arc<Context>,
) -> impl Future<Output = ()> + Send + 'static {
    // The address's place is taken at once, and refused (with 429) only after the origin
    // check, once the request can be answered.
    let arrival = ctx.arrive(incoming.remote_address(), Transport::WebTransport);
    let span = arrival.span().clone();
    let handshake = Box::pin(handshake(incoming, place, ctx, arrival));
    async move {
        let Some((connection, encoding, mut admission)) = handshake.await else {
            return;
        };
        admission.connected();
        debug!(?encoding, "encoding");
        let reason = serve(connection.clone(), encoding, &admission).await;
        let code = close_code_for(reason);
        connection.close(VarInt::from_u32(code), reason.as_str().as_bytes());
        admission.finish(reason);
    }
    .instrument(span)
}

/// Takes a session through the handshake (holding its `place` among the handshakes in
/// progress until the session request is in), the origin and address checks and the path
/// and encoding checks; `None` when it failed or was refused (already answered and logged).
async fn handshake(
    incoming: IncomingSession,
    place: HandshakePlace,
    ctx: Arc<Context>,
    arrival: Arrival,
) -> Option<(Connection, Encoding, Admission)> {
    let request = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        r = tokio::time::timeout(ctx.peer_timeout, incoming) => match r {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => { debug!(error = %e, "handshake failed"); return None; }
            Err(_) => { debug!("handshake timed out"); return None; }
        },
    };
    drop(place);
    let (path, query) = match request.path().split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (request.path().to_owned(), String::new()),
    };
    let peer = arrival.peer();
    if ctx
        .check_origin(request.origin(), peer, Transport::WebTransport)
        .is_err()
    {
        request.forbidden().await;
        return None;
    }
    let Ok(admission) = arrival.admit() else {
        request.too_many_requests().await;
        return None;
    };
    if path != PATH {
        debug!(%path, "no such path");
        request.not_found().await;
        return None;
    }
    let requested = query_param(&query, "encoding");
    let Some(encoding) = Encoding::from_query(requested) else {
        warn!(encoding = requested, "unknown encoding; session refused");
        request.forbidden().await;
        return None;
    };
    match request.accept().await {
        Ok(connection) => Some((connection, encoding, admission)),
        Err(e) => {
            debug!(error = %e, "session accept failed");
            None
        }
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Runs one session until it ends; returns why.
async fn serve(connection: Connection, encoding: Encoding, admission: &Admission) -> CloseReason {
    let ctx = admission.context();
    let token = admission.token().clone();
    let datagrams = DatagramReader::new(&connection);
    // Wait for the control stream; datagrams before it are dropped.
    let (send, mut recv) = loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => return CloseReason::Shutdown,
            s = connection.accept_bi() => match s {
                Ok(s) => break s,
                Err(_) => return CloseReason::PeerClosed,
            },
            d = datagrams.next() => if d.is_err() { return CloseReason::PeerClosed },
            _ = tokio::time::sleep(ctx.peer_timeout) => return CloseReason::PeerTimeout,
        }
    };
    let sink: Box<dyn DatagramSink> = Box::new(WtDatagrams::new(connection.clone()));
    let (mut session, outbox, rx) = admission.open_session(Some((sink, encoding)));
    let writer = tokio::spawn(write_control(
        send,
        rx,
        token.clone(),
        outbox.clone(),
        ctx.peer_timeout,
    ));

    let mut framer = LineFramer::new(session.max_message_bytes() + 1);
    // quinn hands out the received bytes as they are (no read buffer per session, no copy).
    let recv = recv.quic_stream_mut();
    // Finishing the control stream is a leave (docs/protocol.md §6); every other end holds the
    // seat.
    let mut finished = false;
    // QUIC's smoothed round-trip estimate, sampled at once and every ping interval (§8).
    let mut rtt = tokio::time::interval(ctx.ping_interval);
    // A stray stream's acceptance is one future for the session's life, not one made (and
    // its locks taken) again at every wake-up.
    let mut stray = std::pin::pin!(connection.accept_bi());
    let reason = loop {
        let lobby = session.lobby_deadline();
        // The silence limit counts from the last line, part of a line or datagram (§11).
        let silent_by = session.silence_deadline();
        let expires = session.expiry_deadline();
        tokio::select! {
            biased;
            _ = token.cancelled() => break outbox.close_reason().unwrap_or(CloseReason::Shutdown),
            _ = until(lobby) => break CloseReason::NoRoom,
            _ = until(silent_by) => session.check_silence(),
            _ = until(expires) => session.expire(),
            r = recv.read_chunk(usize::MAX, true) => match r {
                Ok(Some(chunk)) => {
                    let mut lines = 0;
                    framer.push(&chunk.bytes, |line| {
                        lines += 1;
                        handle_line(&mut session, line);
                    });
                    if lines == 0 {
                        session.heard();
                    }
                    // A room request for a room on another node waits for the directory.
                    session.settle().await;
                }
                Ok(None) => {
                    finished = true;
                    break CloseReason::PeerClosed;
                }
                Err(_) => break CloseReason::PeerClosed,
            },
            d = datagrams.next() => match d {
                Ok(d) => session.handle_datagram(&d),
                Err(_) => break CloseReason::PeerClosed,
            },
            _ = rtt.tick() => outbox.set_rtt(connection.rtt()),
            s = &mut stray => match s {
                // Only one control stream per session.
                Ok((mut s, r)) => {
                    let _ = s.reset(VarInt::from_u32(close_code::PROTOCOL));
                    r.stop(VarInt::from_u32(close_code::PROTOCOL));
                    stray.set(connection.accept_bi());
                }
                Err(_) => break CloseReason::PeerClosed,
            },
        }
    };
    // "Closed by peer" was a guess for every way the connection can fail: QUIC knows
    // whether it was its idle timeout.
    let reason = match (reason, connection.quic_connection().close_reason()) {
        (CloseReason::PeerClosed, Some(wtransport::quinn::ConnectionError::TimedOut)) => {
            CloseReason::PeerTimeout
        }
        (reason, _) => reason,
    };
    if finished {
        session.leave();
    }
    drop(session);
    outbox.close(reason);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    reason
}

/// Hands one line of the control stream to the session (public for the fuzz targets in
/// `fuzz/`, which feed sessions as this transport does).
#[doc(hidden)]
pub fn handle_line(session: &mut Session, line: Line<'_>) {
    match line {
        Line::TooLong => session.too_large(),
        Line::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() => session.heard(),
            Ok(text) => session.handle_text(text, Path::Reliable),
            Err(_) => session.invalid("the line is not valid UTF-8"),
        },
    }
}

/// Runs one control-stream write under the token and the deadline; `false` when the
/// writer should stop (a stalled write has cut the member off).
async fn guarded<E>(
    write: impl Future<Output = Result<(), E>>,
    token: &CancellationToken,
    outbox: &Outbox,
    deadline: Duration,
) -> bool {
    // The write is polled first: one that completes at once (quinn takes the bytes while
    // the send window has room, nearly always) goes out even when the connection is being
    // closed (a last message, such as `session:moved`, is not lost to the close that
    // follows it), and needs no timer. Only a write that has to wait gets the deadline's
    // timer and the token, boxed so that an idle writer's task stays small.
    let mut write = std::pin::pin!(write);
    let at_once = std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await;
    if let Some(r) = at_once {
        return r.is_ok();
    }
    Box::pin(async move {
        tokio::select! {
            biased;
            r = tokio::time::timeout(deadline, write) => match r {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    outbox.cut_off_slow();
                    false
                }
            },
            _ = token.cancelled() => false,
        }
    })
    .await
}

/// Ends every control-stream line.
const NEWLINE: Bytes = Bytes::from_static(b"\n");
/// A write of several queued messages stops growing at this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

/// Drains the outbox onto the control stream, one write per batch. quinn keeps the bytes it
/// is given as they are (a `&[u8]` write would be copied into a fresh buffer), and nothing
/// is kept here between writes, so an idle session holds no write buffer. A write that
/// cannot complete within `deadline` (quinn's send window stays full: the peer stopped
/// reading) cuts the member off as a slow consumer, as a full outbox does.
async fn write_control(
    mut send: SendStream,
    mut rx: Inbox<Bytes>,
    token: CancellationToken,
    outbox: Outbox,
    deadline: Duration,
) {
    loop {
        let first = tokio::select! {
            biased;
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = token.cancelled() => break,
        };
        let stream = send.quic_stream_mut();
        let written = if rx.is_empty() {
            // The usual case, one message: its shared bytes go out with no copy.
            let mut chunks = [first, NEWLINE];
            let write = stream.write_all_chunks(&mut chunks);
            guarded(write, &token, &outbox, deadline).await
        } else {
            // Several are queued: one buffer (sized for them) and one write for all.
            let guess = (first.len() + 1) * (rx.len() + 1);
            let mut batch = BytesMut::with_capacity(guess.min(BATCH_BYTES));
            batch.extend_from_slice(&first);
            batch.extend_from_slice(b"\n");
            while batch.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        batch.extend_from_slice(&m);
                        batch.extend_from_slice(b"\n");
                    }
                    Err(_) => break,
                }
            }
            let write = stream.write_chunk(batch.freeze());
            guarded(write, &token, &outbox, deadline).await
        };
        if !written {
            break;
        }
    }
    // Flush what is left after a close was asked for (e.g. a last error or session:left);
    // a slow consumer's stream is full, and what is queued for it is dropped.
    if outbox.close_reason() == Some(CloseReason::SlowConsumer) {
        return;
    }
    while let Ok(m) = rx.try_recv() {
        let mut chunks = [m, NEWLINE];
        let write = send.quic_stream_mut().write_all_chunks(&mut chunks);
        if tokio::time::timeout(Duration::from_millis(200), write)
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), send.finish()).await;
    if matches!(
        outbox.close_reason(),
        Some(CloseReason::Moved | CloseReason::TokenExpired)
    ) {
        // `session:moved` (or the `token_expired` error) must reach the client before the connection's close, which
        // would discard stream data still in flight: wait (briefly) until it is read.
        let stopped = send.quic_stream_mut().stopped();
        let _ = tokio::time::timeout(Duration::from_millis(500), stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(query_param("encoding=msgpack", "encoding"), Some("msgpack"));
        assert_eq!(query_param("a=1&encoding=json", "encoding"), Some("json"));
        assert_eq!(query_param("a=1", "encoding"), None);
    }
}
