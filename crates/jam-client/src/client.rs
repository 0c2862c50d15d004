//! [`Client`]: one connection to a jam server, whatever its transport. It sends directly
//! and takes what the reader tasks (`ws.rs`, `wt.rs`) queued; requests carry a fresh `id`
//! and wait for the answer that echoes it.

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use jam_protocol::{event, Encoding, ErrorCode, ServerEvent, ServerMessage, SessionInfo};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use wtransport::endpoint::endpoint_side;
use wtransport::{Connection, Endpoint, VarInt};

use crate::clock::{local_now_ms, ClockEstimator};
use crate::error::{ClientError, Result};
use crate::http::{fetch_connect, fetch_connect_for};
use crate::link::{ClosedSlot, Link, Rtts, Sender};
use crate::outgoing::broadcast_envelope;
use crate::received::{Closed, Received, Tap};
use crate::{ws, wt};

/// How long the helpers wait for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected client.
pub struct Client {
    sender: Sender,
    rx: mpsc::UnboundedReceiver<Received>,
    latency: watch::Receiver<Rtts>,
    closed: ClosedSlot,
    next_id: u64,
    last_seq: Option<u64>,
    reader: tokio::task::JoinHandle<()>,
    /// Where creates, joins and refreshes get the app's sign-in token (§13).
    tokens: Option<TokenProvider>,
}

/// Gives the app's sign-in token (a JWT) when the client needs one: for a create, a join
/// or [`Client::refresh_token`] (docs/protocol.md §13). `None` sends none.
pub type TokenProvider = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl From<Link> for Client {
    fn from(link: Link) -> Self {
        Client {
            sender: link.sender,
            rx: link.rx,
            latency: link.latency,
            closed: link.closed,
            next_id: 0,
            last_seq: None,
            reader: link.reader,
            tokens: None,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
        if let Sender::Wt { connection, .. } = &self.sender {
            connection.close(VarInt::from_u32(0), b"client dropped");
        }
    }
}

impl Client {
    /// Connects over WebSocket, offering the `jam.v1` subprotocol, with Nagle's algorithm
    /// off (`TCP_NODELAY`, as browsers set it for WebSockets), so each event leaves at once.
    pub async fn connect_ws(url: &str) -> Result<Client> {
        Client::connect_ws_tapped(url, None).await
    }

    /// Like [`Client::connect_ws`], with a [`Tap`] on the reader.
    pub async fn connect_ws_tapped(url: &str, tap: Option<Tap>) -> Result<Client> {
        ws::connect(url, tap).await.map(Client::from)
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
        let endpoint = wt::wt_endpoint(cert_hash_hex, None)?;
        Client::connect_wt_on(&endpoint, url, encoding, tap).await
    }

    /// Like [`Client::connect_wt_tapped`], on an endpoint from [`wt::wt_endpoint`] that
    /// other clients may share (one UDP socket for all of them).
    pub async fn connect_wt_on(
        endpoint: &Endpoint<endpoint_side::Client>,
        url: &str,
        encoding: Encoding,
        tap: Option<Tap>,
    ) -> Result<Client> {
        wt::connect(endpoint, url, encoding, tap)
            .await
            .map(Client::from)
    }

    /// Connects over WebTransport using what `GET /connect` at `http_base` publishes.
    pub async fn connect_via(http_base: &str, encoding: Encoding) -> Result<Client> {
        let info = fetch_connect(http_base).await?;
        Client::connect_to(&info, Some(encoding)).await
    }

    /// Connects to what a `GET /connect` answer (or a `room_elsewhere` / `session:moved`
    /// `connect`) names: over WebTransport with `encoding`, or over WebSocket with `None`.
    pub async fn connect_to(info: &Value, encoding: Option<Encoding>) -> Result<Client> {
        let missing = |what: &'static str| ClientError::Invalid {
            what,
            why: "missing from /connect".into(),
        };
        let Some(encoding) = encoding else {
            let url = info["websocket"]["url"]
                .as_str()
                .ok_or_else(|| missing("websocket url"))?;
            return Client::connect_ws(url).await;
        };
        let wt = &info["webtransport"];
        let missing = |what: &'static str| ClientError::Invalid {
            what,
            why: "missing from /connect".into(),
        };
        let url = wt["url"]
            .as_str()
            .ok_or_else(|| missing("webtransport url"))?;
        let hash = wt["certificateHashes"][0]["value"]
            .as_str()
            .ok_or_else(|| missing("certificate hash"))?;
        Client::connect_wt(url, hash, encoding).await
    }

    /// Joins room `room` on whichever node holds it (docs/protocol.md §12): looks it up with
    /// `GET /connect?room=` at `http_base`, connects there (WebTransport with `encoding`,
    /// WebSocket with `None`), and follows one `room_elsewhere`.
    pub async fn join_via(
        http_base: &str,
        room: &str,
        name: &str,
        instrument: &str,
        encoding: Option<Encoding>,
    ) -> Result<(Client, SessionInfo)> {
        let info = fetch_connect_for(http_base, room).await?;
        let data = json!({ "roomCode": room, "name": name, "instrument": instrument });
        Client::seat_at(&info, encoding, event::JOIN, data).await
    }

    /// Takes a held seat back on whichever node holds its room (docs/protocol.md §12): as
    /// [`Client::join_via`], with [`Client::resume`]. After `session:moved`, pass its
    /// `connect` to [`Client::resume_at`] instead.
    pub async fn resume_via(
        http_base: &str,
        room: &str,
        token: &str,
        last_seq: Option<u64>,
        encoding: Option<Encoding>,
    ) -> Result<(Client, SessionInfo)> {
        let info = fetch_connect_for(http_base, room).await?;
        Client::resume_at(&info, room, token, last_seq, encoding).await
    }

    /// Takes a held seat back at the node a `/connect` answer names, following one
    /// `room_elsewhere`.
    pub async fn resume_at(
        info: &Value,
        room: &str,
        token: &str,
        last_seq: Option<u64>,
        encoding: Option<Encoding>,
    ) -> Result<(Client, SessionInfo)> {
        let data = json!({ "roomCode": room, "resumeToken": token, "lastSeq": last_seq });
        Client::seat_at(info, encoding, event::RESUME, data).await
    }

    /// Connects to the node `info` names and asks for a seat there (`session:join` or
    /// `session:resume` with `data`), following one `room_elsewhere` to the owner.
    async fn seat_at(
        info: &Value,
        encoding: Option<Encoding>,
        event_name: &'static str,
        data: Value,
    ) -> Result<(Client, SessionInfo)> {
        let mut client = Client::connect_to(info, encoding).await?;
        match client.seat(event_name, data.clone()).await {
            Err(ClientError::Refused {
                code: ErrorCode::RoomElsewhere,
                connect: Some(owner),
                ..
            }) => {
                let mut client = Client::connect_to(&owner, encoding).await?;
                let info = client.seat(event_name, data).await?;
                Ok((client, info))
            }
            answer => answer.map(|info| (client, info)),
        }
    }

    /// Sends a seat request and reads its answer (`session:joined` / `resumed`).
    async fn seat(&mut self, event_name: &'static str, data: Value) -> Result<SessionInfo> {
        let answer = self.request(event_name, data).await?;
        let expected = match event_name {
            event::JOIN => event::JOINED,
            _ => event::RESUMED,
        };
        match answer.event {
            ServerEvent::Joined(info) | ServerEvent::Resumed(info) => Ok(info),
            other => Err(unexpected(expected, other)),
        }
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
            Sender::Ws(_) => Err(ClientError::NeedsWebTransport("a datagram")),
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
        let got = self
            .wait_for(DEFAULT_TIMEOUT, |r| r.message.id == Some(json!(id)))
            .await?;
        Ok(got.message)
    }

    /// Sets where creates, joins and [`Client::refresh_token`] get the app's sign-in token,
    /// for a server with sign-in on (docs/protocol.md §13).
    pub fn set_token_provider(&mut self, tokens: TokenProvider) {
        self.tokens = Some(tokens);
    }

    /// `data` with the provider's token as `token`, when there is one.
    fn signed(&self, mut data: Value) -> Value {
        if let Some(token) = self.tokens.as_ref().and_then(|t| t()) {
            data["token"] = Value::String(token);
        }
        data
    }

    /// Replaces the seat's sign-in token with a fresh one from the provider
    /// (`auth:refresh`): when the new token expires, seconds since the Unix epoch.
    pub async fn refresh_token(&mut self) -> Result<u64> {
        let data = self.signed(json!({}));
        let answer = self.request(event::AUTH_REFRESH, data).await?;
        match answer.event {
            ServerEvent::AuthRefreshed { exp } => Ok(exp),
            other => Err(unexpected(event::AUTH_REFRESHED, other)),
        }
    }

    /// Creates a room; an `error` answer is [`ClientError::Refused`].
    pub async fn create(&mut self, name: &str, instrument: &str) -> Result<SessionInfo> {
        let data = self.signed(json!({ "name": name, "instrument": instrument }));
        let answer = self.request(event::CREATE, data).await?;
        match answer.event {
            ServerEvent::Created(info) => Ok(info),
            other => Err(unexpected(event::CREATED, other)),
        }
    }

    /// Joins a room; an `error` answer is [`ClientError::Refused`].
    pub async fn join(&mut self, room: &str, name: &str, instrument: &str) -> Result<SessionInfo> {
        let data = self.signed(json!({ "roomCode": room, "name": name, "instrument": instrument }));
        let answer = self.request(event::JOIN, data).await?;
        match answer.event {
            ServerEvent::Joined(info) => Ok(info),
            other => Err(unexpected(event::JOINED, other)),
        }
    }

    /// Takes a held seat back (docs/protocol.md §6) with the token of its last
    /// `session:created` / `joined` / `resumed`; `last_seq` is the last room `seq` seen
    /// (see [`Client::last_seq`]), so the server replays what came after it. An `error`
    /// answer (`resume_failed`, …) is [`ClientError::Refused`].
    pub async fn resume(
        &mut self,
        room: &str,
        token: &str,
        last_seq: Option<u64>,
    ) -> Result<SessionInfo> {
        let answer = self
            .request(
                event::RESUME,
                json!({ "roomCode": room, "resumeToken": token, "lastSeq": last_seq }),
            )
            .await?;
        match answer.event {
            ServerEvent::Resumed(info) => Ok(info),
            other => Err(unexpected(event::RESUMED, other)),
        }
    }

    /// Sends `clock:ping {t0}` on the reliable channel and waits for its `clock:pong`:
    /// the server's time then, ms.
    pub async fn ping(&mut self, t0: f64) -> Result<f64> {
        let answer = self.request(event::CLOCK_PING, json!({ "t0": t0 })).await?;
        match answer.event {
            ServerEvent::Pong { server_time, .. } => Ok(server_time),
            other => Err(unexpected(event::CLOCK_PONG, other)),
        }
    }

    /// Pings the server `n` times on the reliable channel and feeds `clock` (docs/protocol.md
    /// §7): afterwards `clock` holds the estimate of the server clock's offset.
    pub async fn sync_clock(&mut self, clock: &mut ClockEstimator, n: usize) -> Result<()> {
        for _ in 0..n {
            let t0 = local_now_ms();
            let server_time = self.ping(t0).await?;
            clock.add(t0, server_time, local_now_ms());
        }
        Ok(())
    }

    /// The highest room `seq` among the messages taken from this client so far (or given
    /// in a session answer): what to pass to [`Client::resume`] on a new connection.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Notes the room sequence a message carries.
    fn saw(&mut self, r: &Received) {
        let seq = match &r.message.event {
            ServerEvent::Created(i) | ServerEvent::Joined(i) | ServerEvent::Resumed(i) => {
                Some(i.seq)
            }
            _ => r.message.seq,
        };
        if let Some(seq) = seq {
            self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
        }
    }

    /// Leaves the room; the answer (`session:left` or an `error`) as it came.
    pub async fn leave(&mut self, room: &str) -> Result<ServerMessage> {
        self.request(event::LEAVE, json!({ "roomCode": room }))
            .await
    }

    /// The next message, or `None` once the connection is closed and drained.
    pub async fn recv(&mut self) -> Option<Received> {
        let r = self.rx.recv().await?;
        self.saw(&r);
        Some(r)
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Received> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ClientError::Closed(self.closed())),
            Err(_) => Err(ClientError::Timeout(timeout)),
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
            let got = match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => return Err(ClientError::Closed(self.closed())),
                Err(_) => return Err(ClientError::Timeout(timeout)),
            };
            if pred(&got) {
                return Ok(got);
            }
        }
    }

    /// The room's round trips as the last `session:latency` gave them (docs/protocol.md §8);
    /// empty until one came. These messages are state, so they are kept here rather than
    /// queued for [`Client::recv`].
    pub fn latency(&self) -> Rtts {
        self.latency.borrow().clone()
    }

    /// Waits, at most `timeout`, until the room's round trips satisfy `pred`.
    pub async fn wait_latency(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Rtts) -> bool,
    ) -> Result<Rtts> {
        let wait = async {
            self.latency
                .wait_for(|r| pred(r))
                .await
                .map(|rtts| rtts.clone())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(rtts)) => Ok(rtts),
            Ok(Err(_)) => Err(ClientError::Closed(self.closed())),
            Err(_) => Err(ClientError::Timeout(timeout)),
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

/// The answer to a request: an `error` is a refusal, anything else unexpected.
fn unexpected(expected: &'static str, got: ServerEvent) -> ClientError {
    match got {
        ServerEvent::Error {
            code,
            message,
            connect,
        } => ClientError::Refused {
            code,
            message,
            connect,
        },
        other => ClientError::Unexpected {
            expected,
            got: Box::new(other),
        },
    }
}
