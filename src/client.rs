//! A Rust client for the jam protocol over WebSocket and WebTransport (control stream and
//! datagrams, JSON or MessagePack). Tests, the benchmark and tools share it.
//!
//! Reader tasks (one per WebSocket; for WebTransport one for datagrams and one for the
//! control stream) decode everything the server sends into
//! [`Received`] (with the path it came on) and queue it; [`Client::recv`] and
//! [`Client::recv_timeout`] take from that queue. Sending is direct.
//!
//! A load generator can hand a [`Tap`] to [`Client::connect_ws_tapped`] or
//! [`Client::connect_wt_tapped`]: the reader then shows it every message as raw bytes with
//! its arrival time before decoding, and what the tap consumes is neither decoded nor
//! queued (the benchmark takes its note events this way and leaves the rest to `recv`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use jam_server::client::Client;
//! let mut a = Client::connect_ws("ws://127.0.0.1:3001/ws").await?;
//! let room = a.create("Ana", "piano").await?;
//! a.broadcast(&room.room_code, "note", &serde_json::json!({"n": 60})).await?;
//! # Ok(()) }
//! ```

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wtransport::endpoint::endpoint_side;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, VarInt};

use crate::protocol::{event, ErrorCode, ServerEvent, ServerMessage, SessionInfo};
use crate::room::Encoding;
use crate::transport::wt::DatagramReader;

/// The WebSocket read buffer: a few KiB holds many note events per read.
const CLIENT_READ_BUFFER: usize = 8 * 1024;

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

type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

enum Sender {
    Ws(tokio::sync::Mutex<WsSink>),
    Wt {
        connection: Connection,
        stream: tokio::sync::Mutex<wtransport::SendStream>,
    },
}

/// A connected client.
pub struct Client {
    sender: Sender,
    rx: mpsc::UnboundedReceiver<Received>,
    closed: Arc<Mutex<Option<Closed>>>,
    next_id: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
        if let Sender::Wt { connection, .. } = &self.sender {
            connection.close(VarInt::from_u32(0), b"client dropped");
        }
    }
}

fn set_closed(slot: &Mutex<Option<Closed>>, closed: Closed) {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(closed);
    }
}

impl Client {
    /// Connects over WebSocket, offering the `jam.v1` subprotocol, with Nagle's algorithm
    /// off (`TCP_NODELAY`, as browsers set it for WebSockets), so each event leaves at once.
    pub async fn connect_ws(url: &str) -> Result<Client> {
        Client::connect_ws_tapped(url, None).await
    }

    /// Like [`Client::connect_ws`], with a [`Tap`] on the reader.
    pub async fn connect_ws_tapped(url: &str, mut tap: Option<Tap>) -> Result<Client> {
        let nodelay = true;
        let mut request = url.into_client_request().context("WebSocket URL")?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            crate::transport::ws::SUBPROTOCOL.parse()?,
        );
        // tungstenite zero-fills the free part of its read buffer before every read; its
        // 128 KiB default made that memset a fifth of a busy bench's CPU.
        let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
        let (socket, _response) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), nodelay)
                .await
                .with_context(|| format!("connecting to {url}"))?;
        let (sink, mut stream) = socket.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Arc::new(Mutex::new(None));
        let closed2 = closed.clone();
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Text(text)) => {
                        if let Some(tap) = tap.as_mut() {
                            if tap(Via::WebSocket, text.as_bytes(), Instant::now()) {
                                continue;
                            }
                        }
                        let raw = Bytes::copy_from_slice(text.as_bytes());
                        match ServerMessage::from_json(&raw) {
                            Ok(message) => {
                                let _ = tx.send(Received {
                                    message,
                                    via: Via::WebSocket,
                                    raw,
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "undecodable server message"),
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        set_closed(&closed2, Closed::WebSocket { code, reason });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        set_closed(&closed2, Closed::Other(e.to_string()));
                        break;
                    }
                }
            }
            set_closed(&closed2, Closed::Other("stream ended".into()));
        });
        Ok(Client {
            sender: Sender::Ws(tokio::sync::Mutex::new(sink)),
            rx,
            closed,
            next_id: 0,
            reader,
        })
    }

    /// Connects over WebTransport to `url` (e.g. `https://127.0.0.1:4433/jam`), trusting
    /// the certificate with SHA-256 `cert_hash_hex`; datagrams from the server arrive in
    /// `encoding`.
    pub async fn connect_wt(url: &str, cert_hash_hex: &str, encoding: Encoding) -> Result<Client> {
        Client::connect_wt_tapped(url, cert_hash_hex, encoding, None).await
    }

    /// Like [`Client::connect_wt`], with a [`Tap`] on the reader (control stream lines
    /// and datagrams).
    pub async fn connect_wt_tapped(
        url: &str,
        cert_hash_hex: &str,
        encoding: Encoding,
        tap: Option<Tap>,
    ) -> Result<Client> {
        let endpoint = wt_endpoint(cert_hash_hex, None)?;
        Client::connect_wt_on(&endpoint, url, encoding, tap).await
    }

    /// Like [`Client::connect_wt_tapped`], on an endpoint from [`wt_endpoint`] that other
    /// clients may share (one UDP socket for all of them).
    pub async fn connect_wt_on(
        endpoint: &Endpoint<endpoint_side::Client>,
        url: &str,
        encoding: Encoding,
        tap: Option<Tap>,
    ) -> Result<Client> {
        let url = match encoding {
            Encoding::Json => url.to_owned(),
            Encoding::MsgPack => format!("{url}?encoding=msgpack"),
        };
        let connection = endpoint
            .connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (send, recv) = connection
            .open_bi()
            .await
            .context("opening the control stream")?
            .await
            .context("opening the control stream")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Arc::new(Mutex::new(None));
        let reader = tokio::spawn(read_wt(connection.clone(), recv, tx, closed.clone(), tap));
        Ok(Client {
            sender: Sender::Wt {
                connection,
                stream: tokio::sync::Mutex::new(send),
            },
            rx,
            closed,
            next_id: 0,
            reader,
        })
    }

    /// Connects over WebTransport using what `GET /connect` at `http_base` publishes.
    pub async fn connect_via(http_base: &str, encoding: Encoding) -> Result<Client> {
        let info = fetch_connect(http_base).await?;
        let wt = &info["webtransport"];
        let url = wt["url"]
            .as_str()
            .ok_or_else(|| anyhow!("no webtransport url"))?;
        let hash = wt["certificateHashes"][0]["value"]
            .as_str()
            .ok_or_else(|| anyhow!("no certificate hash"))?;
        Client::connect_wt(url, hash, encoding).await
    }

    /// Sends one envelope on the reliable channel (WebSocket frame or control stream line).
    pub async fn send(&self, envelope: &Value) -> Result<()> {
        self.send_text(&envelope.to_string()).await
    }

    /// Sends text as-is on the reliable channel (a WebSocket text frame, or a control
    /// stream line: a newline is appended).
    pub async fn send_text(&self, text: &str) -> Result<()> {
        match &self.sender {
            Sender::Ws(sink) => sink.lock().await.send(Message::text(text)).await?,
            Sender::Wt { stream, .. } => {
                let mut line = Vec::with_capacity(text.len() + 1);
                line.extend_from_slice(text.as_bytes());
                line.push(b'\n');
                stream.lock().await.write_all(&line).await?;
            }
        }
        Ok(())
    }

    /// Writes raw bytes on the control stream (no newline added) or sends a WebSocket
    /// binary frame: for tests of framing edge cases.
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        match &self.sender {
            Sender::Ws(sink) => {
                sink.lock()
                    .await
                    .send(Message::binary(Bytes::copy_from_slice(bytes)))
                    .await?
            }
            Sender::Wt { stream, .. } => stream.lock().await.write_all(bytes).await?,
        }
        Ok(())
    }

    /// Sends one datagram (WebTransport only).
    pub fn send_datagram(&self, bytes: &[u8]) -> Result<()> {
        match &self.sender {
            Sender::Wt { connection, .. } => Ok(connection.send_datagram(bytes)?),
            Sender::Ws(_) => bail!("datagrams need WebTransport"),
        }
    }

    /// The largest datagram the server accepts now (WebTransport only).
    pub fn max_datagram_size(&self) -> Option<usize> {
        match &self.sender {
            Sender::Wt { connection, .. } => connection.max_datagram_size(),
            Sender::Ws(_) => None,
        }
    }

    /// The underlying WebTransport connection, if any.
    pub fn wt_connection(&self) -> Option<&Connection> {
        match &self.sender {
            Sender::Wt { connection, .. } => Some(connection),
            Sender::Ws(_) => None,
        }
    }

    /// Sends `event:broadcast` on the reliable channel.
    pub async fn broadcast(&self, room: &str, event_name: &str, payload: &Value) -> Result<()> {
        self.send(&broadcast_envelope(room, event_name, payload))
            .await
    }

    /// Sends `event:broadcast` as a JSON datagram.
    pub fn broadcast_datagram(&self, room: &str, event_name: &str, payload: &Value) -> Result<()> {
        self.send_datagram(
            broadcast_envelope(room, event_name, payload)
                .to_string()
                .as_bytes(),
        )
    }

    /// Sends a request with a fresh numeric `id` and waits for the answer that echoes it;
    /// messages that arrive before the answer are skipped.
    pub async fn request(&mut self, event_name: &str, data: Value) -> Result<ServerMessage> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "event": event_name, "data": data, "id": id }))
            .await?;
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = self.recv_timeout(left).await?;
            if got.message.id == Some(json!(id)) {
                return Ok(got.message);
            }
        }
    }

    /// Creates a room.
    pub async fn create(&mut self, name: &str, instrument: &str) -> Result<SessionInfo> {
        let answer = self
            .request(
                event::CREATE,
                json!({ "name": name, "instrument": instrument }),
            )
            .await?;
        match answer.event {
            ServerEvent::Created(info) => Ok(info),
            other => bail!("expected session:created, got {other:?}"),
        }
    }

    /// Joins a room; an `error` answer becomes `Err` carrying [`JoinError`].
    pub async fn join(&mut self, room: &str, name: &str, instrument: &str) -> Result<SessionInfo> {
        let answer = self
            .request(
                event::JOIN,
                json!({ "roomCode": room, "name": name, "instrument": instrument }),
            )
            .await?;
        match answer.event {
            ServerEvent::Joined(info) => Ok(info),
            ServerEvent::Error { code, message } => Err(JoinError { code, message }.into()),
            other => bail!("expected session:joined, got {other:?}"),
        }
    }

    /// Leaves the room.
    pub async fn leave(&mut self, room: &str) -> Result<ServerMessage> {
        self.request(event::LEAVE, json!({ "roomCode": room }))
            .await
    }

    /// The next message, or `None` once the connection is closed and drained.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Received> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => bail!("connection closed: {:?}", self.closed()),
            Err(_) => bail!("no message within {timeout:?}"),
        }
    }

    /// The next message within [`DEFAULT_TIMEOUT`].
    pub async fn next(&mut self) -> Result<Received> {
        self.recv_timeout(DEFAULT_TIMEOUT).await
    }

    /// Waits for the next message that satisfies `pred`, skipping others.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Received) -> bool,
    ) -> Result<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = self.recv_timeout(left).await?;
            if pred(&got) {
                return Ok(got);
            }
        }
    }

    /// Asserts nothing arrives within `window` (for "never comes back" checks).
    pub async fn expect_silence(&mut self, window: Duration) -> Result<()> {
        match tokio::time::timeout(window, self.rx.recv()).await {
            Err(_) => Ok(()),
            Ok(Some(r)) => bail!("expected silence, got {:?}", r.message),
            Ok(None) => Ok(()),
        }
    }

    /// Waits until the connection is closed (all messages before it are discarded) and
    /// tells how.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => bail!("still open after {timeout:?}"),
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return self
                        .closed()
                        .ok_or_else(|| anyhow!("closed without a reason"))
                }
            }
        }
    }

    /// How the connection ended, if it has.
    pub fn closed(&self) -> Option<Closed> {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closes the connection cleanly (WebSocket close 1000 / finishing the control stream).
    pub async fn close(&self) -> Result<()> {
        match &self.sender {
            Sender::Ws(sink) => sink.lock().await.send(Message::Close(None)).await?,
            Sender::Wt { stream, .. } => stream.lock().await.finish().await?,
        }
        Ok(())
    }

    /// Drops the connection abruptly, as a vanished peer would (no close handshake).
    pub fn abort(self) {
        if let Sender::Wt { connection, .. } = &self.sender {
            connection.close(VarInt::from_u32(99), b"aborted");
        }
        drop(self);
    }
}

/// An `error` answer to a join.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JoinError {
    /// Wire code.
    pub code: ErrorCode,
    /// Text.
    pub message: String,
}

/// Builds an `event:broadcast` envelope.
pub fn broadcast_envelope(room: &str, event_name: &str, payload: &Value) -> Value {
    json!({
        "event": event::BROADCAST,
        "data": { "roomCode": room, "eventName": event_name, "payload": payload },
    })
}

/// A WebTransport client endpoint (one UDP socket) that trusts the certificate with
/// SHA-256 `cert_hash_hex`. Each [`Client::connect_wt`] makes its own, as separate
/// browsers would; many clients in one process may share one with
/// [`Client::connect_wt_on`], so that one `recvmmsg` serves them all (jam-bench does).
/// `recv_buffer` sets the socket's receive buffer (bytes), which a shared socket needs
/// larger than the default.
pub fn wt_endpoint(
    cert_hash_hex: &str,
    recv_buffer: Option<usize>,
) -> Result<Endpoint<endpoint_side::Client>> {
    let digest = parse_hash(cert_hash_hex)?;
    let builder = ClientConfig::builder();
    let builder = match recv_buffer {
        None => builder.with_bind_default(),
        Some(bytes) => {
            let socket = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            socket.set_only_v6(false)?;
            socket.set_recv_buffer_size(bytes)?;
            socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
            builder.with_bind_socket(socket.into())
        }
    };
    let config = builder
        .with_server_certificate_hashes([digest])
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .build();
    Ok(Endpoint::client(config)?)
}

fn parse_hash(hex: &str) -> Result<Sha256Digest> {
    if hex.len() != 64 {
        bail!("certificate hash must be 64 hex digits");
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).context("certificate hash")?;
    }
    Ok(Sha256Digest::new(bytes))
}

async fn read_wt(
    connection: Connection,
    recv: wtransport::RecvStream,
    tx: mpsc::UnboundedSender<Received>,
    closed: Arc<Mutex<Option<Closed>>>,
    tap: Option<Tap>,
) {
    let tap = tap.map(|t| Arc::new(Mutex::new(t)));
    // The control stream gets a task of its own, so that waking up for a datagram does
    // not poll the stream too (a quinn stream read per datagram cost the bench a few %).
    let mut lines = AbortOnDrop(tokio::spawn(read_lines(recv, tx.clone(), tap.clone())));
    let datagrams = DatagramReader::new(&connection);
    loop {
        match datagrams.next().await {
            Ok(raw) => on_datagram(raw, tap.as_deref(), &tx),
            Err(e) => {
                // The control stream hands over what it still has before the close shows.
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut lines.0).await;
                set_closed(&closed, closed_by(e));
                return;
            }
        }
    }
}

/// A shared [`Tap`], for a connection read by more than one task.
type SharedTap = Arc<Mutex<Tap>>;

/// Shows `raw` to the tap, if there is one; `true` when the tap consumed it.
fn tapped(tap: Option<&Mutex<Tap>>, via: Via, raw: &[u8], at: Instant) -> bool {
    tap.is_some_and(|t| (t.lock().unwrap_or_else(|e| e.into_inner()))(via, raw, at))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the control stream's lines until it ends.
async fn read_lines(
    mut recv: wtransport::RecvStream,
    tx: mpsc::UnboundedSender<Received>,
    tap: Option<SharedTap>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        let arrived = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        // Lines are taken from a moving start and the buffer is compacted once per read,
        // so a large batch costs one pass rather than one shift per line.
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + i];
            start += i + 1;
            if tapped(tap.as_deref(), Via::Stream, line, arrived) {
                continue;
            }
            let raw = Bytes::copy_from_slice(line);
            match ServerMessage::from_json(&raw) {
                Ok(message) => {
                    let _ = tx.send(Received {
                        message,
                        via: Via::Stream,
                        raw,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "undecodable server line"),
            }
        }
        pending.drain(..start);
    }
}

fn on_datagram(raw: Bytes, tap: Option<&Mutex<Tap>>, tx: &mpsc::UnboundedSender<Received>) {
    if tapped(tap, Via::Datagram, &raw, Instant::now()) {
        return;
    }
    let decoded = if raw.first() == Some(&b'{') {
        ServerMessage::from_json(&raw)
    } else {
        ServerMessage::from_msgpack(&raw)
    };
    match decoded {
        Ok(message) => {
            let _ = tx.send(Received {
                message,
                via: Via::Datagram,
                raw,
            });
        }
        Err(e) => tracing::warn!(error = %e, "undecodable datagram"),
    }
}

fn closed_by(e: wtransport::error::ConnectionError) -> Closed {
    match e {
        wtransport::error::ConnectionError::ApplicationClosed(c) => Closed::WebTransport {
            code: c.code().into_inner(),
            reason: String::from_utf8_lossy(c.reason()).into_owned(),
        },
        other => Closed::Other(other.to_string()),
    }
}

/// `GET /connect` from `http_base` (e.g. `http://127.0.0.1:3001`), as JSON.
pub async fn fetch_connect(http_base: &str) -> Result<Value> {
    let (status, body) = http_get(&format!("{}/connect", http_base.trim_end_matches('/'))).await?;
    if status != 200 {
        bail!("/connect answered {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// A minimal HTTP/1.1 GET over plain TCP (for `/connect`, `/healthz`, `/stats` and the
/// web demo): returns the status code and the body. Good enough for this server, which
/// answers with `Content-Length` and closes on `Connection: close`.
pub async fn http_get(url: &str) -> Result<(u16, Vec<u8>)> {
    http_get_with_host(url, None).await
}

/// Like [`http_get`], with an explicit `Host` header.
pub async fn http_get_with_host(url: &str, host: Option<&str>) -> Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or(authority)
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(DEFAULT_TIMEOUT, stream.read_to_end(&mut response)).await??;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line"))?;
    let body = response[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok((status, if chunked { dechunk(&body) } else { body }))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..i]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&body[i + 2..i + 2 + size]);
        body = &body[(i + 4 + size).min(body.len())..];
    }
    out
}

/// Encodes a JSON envelope as MessagePack (for datagram tests and the benchmark).
pub fn to_msgpack(envelope: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(envelope).unwrap_or_default()
}
