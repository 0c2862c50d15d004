//! Shared helpers for the integration tests: a real server on loopback ports chosen by
//! the OS, and real clients connected to it.

#![allow(dead_code)]

use std::time::Duration;

use jam_client::{Client, Closed, Received};
use jam_protocol::Encoding;
use jam_protocol::{ErrorCode, ServerEvent, SessionInfo};
use jam_server::{Config, RunningServer};
use serde_json::{json, Value};

pub mod redis;

/// Every single wait in the tests is bounded by this.
pub const T: Duration = Duration::from_secs(5);

/// A server started in-process on `127.0.0.1:0` with an in-memory certificate.
pub struct TestServer {
    pub server: RunningServer,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let mut config = Config::loopback();
        tweak(&mut config);
        let server = RunningServer::start(config).await.expect("server starts");
        TestServer { server }
    }

    /// A server that pings every 200 ms and drops a peer silent for `peer_timeout`, so a
    /// vanished or stalled peer is noticed within a test.
    pub async fn start_with_peer_timeout(peer_timeout: Duration) -> Self {
        Self::start_with(|c| {
            c.ping_interval = Duration::from_millis(200);
            c.peer_timeout = peer_timeout;
        })
        .await
    }

    pub fn http_base(&self) -> String {
        format!("http://{}", self.server.http_addr())
    }

    /// `GET path` from the server's HTTP port: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        jam_client::http_get(&format!("{}{path}", self.http_base()))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
    }

    pub async fn ws(&self) -> Client {
        Client::connect_ws(&self.server.ws_url())
            .await
            .expect("ws connects")
    }

    pub async fn wt(&self) -> Client {
        self.wt_with(Encoding::Json).await
    }

    pub async fn wt_with(&self, encoding: Encoding) -> Client {
        Client::connect_wt(&self.server.wt_url(), &self.server.cert_hash(), encoding)
            .await
            .expect("wt connects")
    }

    /// A client of `kind`, "ws" or "wt", that reaches the server through a relay that can
    /// go dark ([`tcp_relay`], [`udp_relay`]): storing `true` in the flag silences it in
    /// both directions with no close at all, as when its network vanishes.
    pub async fn silenceable(
        &self,
        kind: &str,
    ) -> (Client, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        match kind {
            "ws" => {
                let (relay, dark) = tcp_relay(self.server.http_addr()).await;
                let c = Client::connect_ws(&format!("ws://{relay}/ws"))
                    .await
                    .expect("ws connects through the relay");
                (c, dark)
            }
            "wt" => {
                let (relay, dark) = udp_relay(self.server.wt_addr()).await;
                let url = format!("https://{relay}/jam");
                let c = Client::connect_wt(&url, &self.server.cert_hash(), Encoding::Json)
                    .await
                    .expect("wt connects through the relay");
                (c, dark)
            }
            other => panic!("unknown client kind {other}"),
        }
    }

    /// A client of the given kind: "ws", "wt" or "wt-msgpack".
    pub async fn client(&self, kind: &str) -> Client {
        match kind {
            "ws" => self.ws().await,
            "wt" => self.wt().await,
            "wt-msgpack" => self.wt_with(Encoding::MsgPack).await,
            other => panic!("unknown client kind {other}"),
        }
    }
}

/// The transports every acceptance test runs on.
pub const KINDS: [&str; 2] = ["ws", "wt"];

/// The `id` key of a received envelope as it was on the wire (`Some(Null)` would be an
/// `"id": null`, which the decoded `ServerMessage` cannot tell from no key at all).
pub fn wire_id(r: &Received) -> Option<Value> {
    let v: Value = serde_json::from_slice(&r.raw).expect("reliable paths carry JSON");
    v.get("id").cloned()
}

/// An `error` answer as received.
#[derive(Debug)]
pub struct ErrorAnswer {
    pub code: ErrorCode,
    /// The `id` key exactly as it was on the wire; `None` only when the key is absent.
    pub id: Option<Value>,
}

/// The next message, which must be an `error` with a non-empty `message`.
pub async fn next_error(c: &mut Client, ctx: &str) -> ErrorAnswer {
    let r = c
        .next()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no answer: {e}"));
    let id = wire_id(&r);
    match r.message.event {
        ServerEvent::Error { code, message, .. } => {
            assert!(!message.trim().is_empty(), "{ctx}: error without a message");
            ErrorAnswer { code, id }
        }
        other => panic!("{ctx}: expected an error, got {other:?}"),
    }
}

/// The next message must be an `error` with code `want`; returns its wire `id`.
pub async fn expect_error(c: &mut Client, want: ErrorCode, ctx: &str) -> Option<Value> {
    let e = next_error(c, ctx).await;
    assert_eq!(e.code, want, "{ctx}");
    e.id
}

/// Waits for the next message and returns its event.
pub async fn next_event(c: &mut Client) -> ServerEvent {
    c.next().await.expect("a message").message.event
}

/// Waits for the next `event:broadcast`, skipping presence messages.
pub async fn next_broadcast(c: &mut Client) -> Received {
    c.wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
        .await
        .expect("a broadcast")
}

/// Messages up to (not including) the first one that satisfies `stop`, and that one.
pub async fn collect_until(
    c: &mut Client,
    ctx: &str,
    mut stop: impl FnMut(&ServerEvent) -> bool,
) -> (Vec<Received>, Received) {
    let mut before = Vec::new();
    loop {
        let r = c
            .next()
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {e} after {} messages", before.len()));
        if stop(r.event()) {
            return (before, r);
        }
        before.push(r);
    }
}

/// Whether `e` is `session:left`.
pub fn is_left(e: &ServerEvent) -> bool {
    matches!(e, ServerEvent::Left { .. })
}

/// Creates a room as `name` and returns its info (messages before the answer are skipped).
pub async fn create(c: &mut Client, name: &str) -> SessionInfo {
    c.create(name, "piano").await.expect("room created")
}

/// Sends `session:create` with `data` and `id` "c"; the very next message must be
/// `session:created` echoing that `id`.
pub async fn create_with(c: &mut Client, data: Value, ctx: &str) -> SessionInfo {
    c.send(&json!({"event": "session:create", "data": data, "id": "c"}))
        .await
        .unwrap();
    let r = c
        .next()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no answer: {e}"));
    assert_eq!(wire_id(&r), Some(json!("c")), "{ctx}");
    match r.message.event {
        ServerEvent::Created(info) => info,
        other => panic!("{ctx}: expected session:created, got {other:?}"),
    }
}

/// Proves a connection that is in no room still works, and that nothing was pending for
/// it: its very next message is the `session:created` of a new room.
pub async fn assert_usable(c: &mut Client, ctx: &str) {
    let info = create_with(c, json!({"name": "After"}), ctx).await;
    assert_eq!(info.participants.len(), 1, "{ctx}");
}

/// A client of kind `a` creates a room as "A", one of kind `b` joins it as "B", and
/// `a`'s `session:user-joined` is drained. Returns both and `b`'s `session:joined`:
/// its `host_id` is `a`, its `user_id` is `b`.
pub async fn room_of_two(s: &TestServer, a: &str, b: &str) -> (Client, Client, SessionInfo) {
    let mut ca = s.client(a).await;
    let mut cb = s.client(b).await;
    let room = create(&mut ca, "A").await;
    let joined = cb.join(&room.room_code, "B", "").await.expect("b joins");
    match next_event(&mut ca).await {
        ServerEvent::UserJoined(p) => assert_eq!(p.id, joined.user_id),
        other => panic!("expected user-joined, got {other:?}"),
    }
    (ca, cb, joined)
}

/// What a raw WebSocket receives: a tokio-tungstenite `WebSocketStream`, or the stream half
/// of its `split()`.
pub trait WsIncoming:
    futures_util::Stream<
        Item = Result<
            tokio_tungstenite::tungstenite::Message,
            tokio_tungstenite::tungstenite::Error,
        >,
    > + Unpin
{
}

impl<S> WsIncoming for S where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin
{
}

/// The first Close frame a raw WebSocket receives, past any other message; panics if the
/// stream fails or ends first. Unbounded: wrap it in a timeout.
pub async fn close_frame(
    ws: &mut impl WsIncoming,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// Reads on (within [`T`]) until the Close frame the server sends a slow consumer: 1008,
/// "outgoing queue overflowed".
pub async fn expect_overflow_close(ws: &mut impl WsIncoming) {
    let frame = tokio::time::timeout(T, close_frame(ws))
        .await
        .expect("a close frame in time")
        .expect("with a code");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "outgoing queue overflowed");
}

/// The `id` of every [`barrier`] request.
pub const BARRIER_ID: &str = "barrier";

/// An ordered barrier: proves nothing is pending for `c`. It sends `session:leave` for a
/// room code no room can have and asserts that the very next message is the answer,
/// `not_in_session` echoing [`BARRIER_ID`]. The server handles a connection's messages in
/// order and sends what it produces for a connection in order, so anything produced for
/// `c` before the barrier was handled (by `c`'s own earlier messages, or by other
/// connections whose answers the test has already received) would arrive first.
///
/// It changes nothing but costs one of the connection's 10 `error`s a second.
pub async fn barrier(c: &mut Client, ctx: &str) {
    c.send(&json!({"event": "session:leave", "data": {"roomCode": "!barrier"}, "id": BARRIER_ID}))
        .await
        .unwrap_or_else(|e| panic!("{ctx}: barrier not sent: {e}"));
    let r = c
        .next()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no answer to the barrier: {e}"));
    let is_barrier = matches!(
        r.event(),
        ServerEvent::Error {
            code: ErrorCode::NotInSession,
            ..
        }
    ) && wire_id(&r) == Some(json!(BARRIER_ID));
    assert!(
        is_barrier,
        "{ctx}: expected nothing before the barrier, got {:?}",
        r.message
    );
}

/// Test-only waits on a [`Client`], kept out of the client library.
#[allow(async_fn_in_trait)]
pub trait ClientExt {
    /// Waits until the connection is closed (messages before it are discarded) and tells
    /// how.
    async fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, String>;
}

impl ClientExt for Client {
    async fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Err(_) => return Err(format!("still open after {timeout:?}")),
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return self
                        .closed()
                        .ok_or_else(|| "closed without a reason".into())
                }
            }
        }
    }
}

/// A UDP relay between a client and the server that can go dark, so the client vanishes
/// without a word (no CONNECTION_CLOSE, nothing at all).
pub async fn udp_relay(
    server: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let dark = Arc::new(AtomicBool::new(false));
    let client: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> = Default::default();
    {
        let (front, back, dark, client) =
            (front.clone(), back.clone(), dark.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                if !dark.load(Ordering::Relaxed) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let dark = dark.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let (false, Some(to)) = (dark.load(Ordering::Relaxed), to) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    (addr, dark)
}

/// A TCP relay between one client and the server that can go dark: it stops forwarding
/// in both directions but keeps both sockets open, so the client goes silent without a
/// close or a reset (a half-open connection after a network switch).
pub async fn tcp_relay(
    server: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dark = Arc::new(AtomicBool::new(false));
    let dark2 = dark.clone();
    tokio::spawn(async move {
        let Ok((front, _)) = listener.accept().await else {
            return;
        };
        let back = tokio::net::TcpStream::connect(server).await.unwrap();
        let (mut fr, mut fw) = front.into_split();
        let (mut br, mut bw) = back.into_split();
        let d = dark2.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = fr.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                if !d.load(Ordering::Relaxed) {
                    let _ = bw.write_all(&buf[..n]).await;
                }
            }
        });
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = br.read(&mut buf).await {
            if n == 0 {
                // Held open: a dark link never tells the client anything.
                std::future::pending::<()>().await;
            }
            if !dark2.load(Ordering::Relaxed) {
                let _ = fw.write_all(&buf[..n]).await;
            }
        }
    });
    (addr, dark)
}

/// A TCP relay to `server` that delays every byte by `delay` in each direction (order
/// kept), as a long network path would: one client's round trip grows by twice `delay`.
pub async fn tcp_delay_relay(
    server: std::net::SocketAddr,
    delay: Duration,
) -> std::net::SocketAddr {
    tcp_asymmetric_relay(server, delay, delay).await
}

/// Like [`tcp_delay_relay`], with `up` (client to server) and `down` delays apart.
pub async fn tcp_asymmetric_relay(
    server: std::net::SocketAddr,
    up: Duration,
    down: Duration,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((front, _)) = listener.accept().await {
            let back = tokio::net::TcpStream::connect(server).await.unwrap();
            front.set_nodelay(true).unwrap();
            back.set_nodelay(true).unwrap();
            let (fr, fw) = front.into_split();
            let (br, bw) = back.into_split();
            for (mut from, mut to, delay) in [
                (
                    Box::new(fr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Box::new(bw) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    up,
                ),
                (Box::new(br), Box::new(fw), down),
            ] {
                let (tx, mut rx) =
                    tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = from.read(&mut buf).await {
                        if n == 0
                            || tx
                                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                                .is_err()
                        {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    while let Some((due, bytes)) = rx.recv().await {
                        tokio::time::sleep_until(due).await;
                        if to.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    addr
}

/// A UDP relay between one client and `server` that delays every datagram by `delay` in
/// each direction.
pub async fn udp_delay_relay(
    server: std::net::SocketAddr,
    delay: Duration,
) -> std::net::SocketAddr {
    use std::sync::Arc;
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> = Default::default();
    {
        let (front, back, client) = (front.clone(), back.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                let (back, bytes) = (back.clone(), buf[..n].to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = back.send(&bytes).await;
                });
            }
        });
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let Some(to) = *client.lock().unwrap() else {
                continue;
            };
            let (front, bytes) = (front.clone(), buf[..n].to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = front.send_to(&bytes, to).await;
            });
        }
    });
    addr
}
