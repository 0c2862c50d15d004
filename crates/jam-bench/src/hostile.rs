//! The hostile-neighbour scenario (`--hostile`): while the rooms play from 127.0.0.1,
//! attackers on other loopback addresses go at the same server, each from an address of
//! its own so that the server's per-address limits see them as other hosts:
//!
//! - `127.0.0.2` opens as many WebSocket connections as the default per-address cap
//!   allows (64) and holds them;
//! - `127.0.0.3` creates rooms and fills each one's history with 1 MiB of 8 KiB messages
//!   (16 connections, 4 rooms each, 100 messages a second each);
//! - `127.0.0.4` makes 8 slow readers: a member that stops reading while another member
//!   of its room sends it 8 KiB messages (200 a second, 8 MiB at most);
//! - `127.0.0.5` floods `clock:ping` requests (2,000 a second per connection);
//! - `127.0.0.6` sends QUIC client Initials (each with its own connection id, caught from
//!   the client) and never finishes a handshake (1,000 a second).
//!
//! Every attack is bounded in count and ends with the measured window. They run on a
//! thread of their own with its own runtime, so the generator's event loop is not theirs
//! (they share its CPU when the bench is pinned to one).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::procfs::{self, Proc};

/// WebSocket connections the flood holds: the server's default per-address cap (the
/// bench lifts the caps for its players, who all come from 127.0.0.1).
const FLOOD_CONNECTIONS: usize = 64;
/// Connections that fill room histories, and rooms each fills in turn.
const HISTORY_CONNECTIONS: usize = 16;
const HISTORY_ROOMS_EACH: usize = 4;
/// Messages of [`BIG_PAYLOAD`] bytes that fill one history (1 MiB, the default
/// `--history-bytes`), one every 10 ms from each connection.
const HISTORY_MESSAGES: usize = 128;
/// Payload of the history and slow-reader messages.
const BIG_PAYLOAD: usize = 8 * 1024;
/// Slow readers, what is sent to each at most (8 MiB, twice the default outbox), and how
/// many every 10 ms.
const SLOW_READERS: usize = 8;
const SLOW_MESSAGES: usize = 1024;
const SLOW_PER_TICK: usize = 2;
/// `clock:ping` flooders, and what each sends per 10 ms tick and at most.
const PING_CONNECTIONS: usize = 4;
const PINGS_PER_TICK: usize = 20;
const PINGS_EACH: u64 = 40_000;
/// Distinct QUIC Initials caught (twice the server's default `--max-handshakes`, so that
/// without Retry they fill it), sent per 10 ms tick, and sent at most.
const QUIC_INITIALS: usize = 2048;
const QUIC_PER_TICK: usize = 10;
const QUIC_MAX: u64 = 30_000;

fn attacker(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Where the attacks go.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ws://…/ws`.
    pub ws_url: String,
    /// The WebTransport UDP address, when the target has one.
    pub wt_addr: Option<SocketAddr>,
    /// `http://HOST:PORT` serving `/metrics`.
    pub http_base: Option<String>,
}

/// What the attackers did and what the server counted meanwhile.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttackReport {
    /// WebSocket connections the flood opened and held (127.0.0.2).
    pub flood_connections: u64,
    /// Rooms created and filled (127.0.0.3).
    pub history_rooms: u64,
    /// Bytes of messages sent into those rooms' histories.
    pub history_bytes: u64,
    /// Members that stopped reading (127.0.0.4).
    pub slow_readers: u64,
    /// Bytes sent towards them.
    pub slow_bytes: u64,
    /// `clock:ping` requests sent (127.0.0.5).
    pub pings: u64,
    /// QUIC Initials sent (127.0.0.6).
    pub quic_initials: u64,
    /// QUIC Retry packets that came back to them.
    pub quic_retries_received: u64,
    /// The server's `/metrics` at the end: `jam_quic_retries_total`.
    pub server_quic_retries: Option<u64>,
    /// `jam_quic_handshakes` (in progress) at the end.
    pub server_quic_handshakes: Option<u64>,
    /// `jam_slow_consumers_total` at the end.
    pub server_slow_consumers: Option<u64>,
    /// `jam_connections_refused_total`, every reason, at the end.
    pub server_connections_refused: Option<u64>,
    /// CPU time of the attackers' thread, µs (it shares the bench's CPUs).
    pub attacker_cpu_us: Option<u64>,
    /// The first few errors the attackers met (refusals included).
    pub errors: Vec<String>,
}

/// Counters the attack tasks share.
#[derive(Default)]
struct Tally {
    flood_connections: AtomicU64,
    history_rooms: AtomicU64,
    history_bytes: AtomicU64,
    slow_readers: AtomicU64,
    slow_bytes: AtomicU64,
    pings: AtomicU64,
    quic_initials: AtomicU64,
    quic_retries: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 8 {
            errors.push(format!("{what}: {e}"));
        }
    }
}

/// The attacks running on their own thread; [`Attacks::finish`] waits for them.
pub struct Attacks {
    thread: std::thread::JoinHandle<AttackReport>,
}

impl Attacks {
    /// Starts every attack now; they end at `until`.
    pub fn spawn(plan: Plan, until: Instant) -> Result<Attacks> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the attackers' runtime")?;
        let thread = std::thread::Builder::new()
            .name("hostile".into())
            .spawn(move || runtime.block_on(run(plan, until)))
            .context("the attackers' thread")?;
        Ok(Attacks { thread })
    }

    /// Waits for the attacks to end (they stop at their deadline) and reports them.
    pub async fn finish(self) -> Result<AttackReport> {
        tokio::task::spawn_blocking(move || self.thread.join())
            .await?
            .map_err(|_| anyhow!("the attackers' thread panicked"))
    }
}

async fn run(plan: Plan, until: Instant) -> AttackReport {
    let tally = Arc::new(Tally::default());
    let deadline = tokio::time::Instant::from_std(until);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(flood(plan.ws_url.clone(), deadline, tally.clone()));
    for i in 0..HISTORY_CONNECTIONS {
        tasks.spawn(history(plan.ws_url.clone(), i, deadline, tally.clone()));
    }
    for _ in 0..SLOW_READERS {
        tasks.spawn(slow_reader(plan.ws_url.clone(), deadline, tally.clone()));
    }
    for _ in 0..PING_CONNECTIONS {
        tasks.spawn(pings(plan.ws_url.clone(), deadline, tally.clone()));
    }
    if let Some(wt) = plan.wt_addr {
        tasks.spawn(quic(wt, deadline, tally.clone()));
    }
    // Every task ends at the deadline; a little grace for the last writes.
    let grace = deadline + Duration::from_secs(3);
    while let Ok(Some(_)) = tokio::time::timeout_at(grace, tasks.join_next()).await {}
    tasks.abort_all();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut report = AttackReport {
        flood_connections: get(&tally.flood_connections),
        history_rooms: get(&tally.history_rooms),
        history_bytes: get(&tally.history_bytes),
        slow_readers: get(&tally.slow_readers),
        slow_bytes: get(&tally.slow_bytes),
        pings: get(&tally.pings),
        quic_initials: get(&tally.quic_initials),
        quic_retries_received: get(&tally.quic_retries),
        attacker_cpu_us: procfs::cpu_us(Proc::Thread),
        errors: tally
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        ..AttackReport::default()
    };
    if let Some(base) = &plan.http_base {
        if let Ok((200, body)) = jam_client::http_get(&format!("{base}/metrics")).await {
            let text = String::from_utf8_lossy(&body);
            report.server_quic_retries = metric(&text, "jam_quic_retries_total");
            report.server_quic_handshakes = metric(&text, "jam_quic_handshakes");
            report.server_slow_consumers = metric(&text, "jam_slow_consumers_total");
            report.server_connections_refused = sum(&text, "jam_connections_refused_total");
        }
    }
    report
}

/// The value of the metric line `name value` (no labels).
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The sum of every labelled line of `name`.
fn sum(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("{name}{{");
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

type Ws = WebSocketStream<TcpStream>;

/// A WebSocket to `url` from `ip`.
async fn ws_from(ip: IpAddr, url: &str) -> Result<Ws> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(jam_protocol::SUBPROTOCOL),
    );
    let authority = request
        .uri()
        .authority()
        .ok_or_else(|| anyhow!("no host in {url}"))?
        .as_str()
        .to_owned();
    let server = tokio::net::lookup_host(&authority)
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| anyhow!("{authority} has no IPv4 address"))?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

/// Sends `envelope` and reads until the answer whose event is `want`; its `data`.
async fn request(ws: &mut Ws, envelope: Value, want: &str) -> Result<Value> {
    ws.send(Message::text(envelope.to_string())).await?;
    let within = Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout(within, ws.next())
            .await
            .map_err(|_| anyhow!("no {want} within {within:?}"))?
            .ok_or_else(|| anyhow!("closed before {want}"))??;
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(text.as_str())?;
            if v["event"] == want {
                return Ok(v["data"].clone());
            }
            if v["event"] == "error" {
                return Err(anyhow!("answered {}", v["data"]));
            }
        }
    }
}

async fn create(ws: &mut Ws, name: &str) -> Result<String> {
    let data = request(
        ws,
        json!({"event": "session:create", "data": {"name": name, "instrument": "noise"}}),
        "session:created",
    )
    .await?;
    data["roomCode"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no roomCode in {data}"))
}

/// Reads and drops everything `ws`'s reading half receives until `deadline`.
fn drain(
    mut stream: futures_util::stream::SplitStream<Ws>,
    deadline: tokio::time::Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, stream.next()).await {}
    })
}

fn big_message(room: &str, pad: &str) -> Message {
    let envelope = jam_client::broadcast_envelope(room, "noise", &json!({ "pad": pad }));
    Message::text(envelope.to_string())
}

/// Opens [`FLOOD_CONNECTIONS`] WebSockets from 127.0.0.2 and holds them (reading, so that
/// they answer the server's pings) until the deadline.
async fn flood(url: String, deadline: tokio::time::Instant, tally: Arc<Tally>) {
    let mut held = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        match ws_from(attacker(2), &url).await {
            Ok(ws) => {
                Tally::add(&tally.flood_connections, 1);
                let (sink, stream) = ws.split();
                held.push((sink, drain(stream, deadline)));
            }
            Err(e) => tally.error("connection flood", e),
        }
    }
    tokio::time::sleep_until(deadline).await;
    drop(held);
}

/// From 127.0.0.3: creates a room, fills its history with [`HISTORY_MESSAGES`] of
/// [`BIG_PAYLOAD`] bytes, leaves it (the room and its history stay for the resume window)
/// and does it again, [`HISTORY_ROOMS_EACH`] times at most.
async fn history(url: String, i: usize, deadline: tokio::time::Instant, tally: Arc<Tally>) {
    let pad = "h".repeat(BIG_PAYLOAD);
    for _ in 0..HISTORY_ROOMS_EACH {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        let r = async {
            let mut ws = ws_from(attacker(3), &url).await?;
            let code = create(&mut ws, &format!("h{i}")).await?;
            Tally::add(&tally.history_rooms, 1);
            let (mut sink, stream) = ws.split();
            let reader = drain(stream, deadline);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for _ in 0..HISTORY_MESSAGES {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tick.tick().await;
                sink.send(big_message(&code, &pad)).await?;
                Tally::add(&tally.history_bytes, BIG_PAYLOAD as u64);
            }
            // Dropped without a leave: the seat is away and the history kept.
            reader.abort();
            Ok::<_, anyhow::Error>(())
        };
        if let Err(e) = tokio::time::timeout_at(deadline, r).await.unwrap_or(Ok(())) {
            tally.error("history fill", e);
            return;
        }
    }
}

/// From 127.0.0.4: a member creates a room, reads its answer and then nothing more; a
/// second member joins and sends it [`SLOW_MESSAGES`] of [`BIG_PAYLOAD`] bytes at most,
/// [`SLOW_PER_TICK`] every 10 ms, until the deadline.
async fn slow_reader(url: String, deadline: tokio::time::Instant, tally: Arc<Tally>) {
    let r = async {
        let mut stalled = ws_from(attacker(4), &url).await?;
        let code = create(&mut stalled, "stalled").await?;
        Tally::add(&tally.slow_readers, 1);
        let mut sender = ws_from(attacker(4), &url).await?;
        request(
            &mut sender,
            json!({"event": "session:join",
                   "data": {"roomCode": code, "name": "sender", "instrument": "noise"}}),
            "session:joined",
        )
        .await?;
        let (mut sink, stream) = sender.split();
        let _reader = drain(stream, deadline);
        let pad = "s".repeat(BIG_PAYLOAD);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0;
        while sent < SLOW_MESSAGES && tokio::time::Instant::now() < deadline {
            tick.tick().await;
            for _ in 0..SLOW_PER_TICK {
                sink.send(big_message(&code, &pad)).await?;
                Tally::add(&tally.slow_bytes, BIG_PAYLOAD as u64);
                sent += 1;
            }
        }
        // Held, unread, until the end.
        tokio::time::sleep_until(deadline).await;
        drop(stalled);
        Ok::<_, anyhow::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, r).await {
        tally.error("slow reader", e);
    }
}

/// From 127.0.0.5: [`PINGS_PER_TICK`] `clock:ping` requests every 10 ms (the answers read
/// and dropped), [`PINGS_EACH`] at most.
async fn pings(url: String, deadline: tokio::time::Instant, tally: Arc<Tally>) {
    let r = async {
        let ws = ws_from(attacker(5), &url).await?;
        let (mut sink, stream) = ws.split();
        let _reader = drain(stream, deadline);
        let ping = json!({"event": "clock:ping", "data": {"t0": 1.0}, "id": 1}).to_string();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0;
        while sent < PINGS_EACH && tokio::time::Instant::now() < deadline {
            tick.tick().await;
            for _ in 0..PINGS_PER_TICK {
                sink.feed(Message::text(ping.clone())).await?;
            }
            sink.flush().await?;
            sent += PINGS_PER_TICK as u64;
            Tally::add(&tally.pings, PINGS_PER_TICK as u64);
        }
        Ok::<_, anyhow::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, r).await {
        tally.error("ping flood", e);
    }
}

/// From 127.0.0.6: QUIC client Initials, each with a connection id of its own (the same
/// [`QUIC_INITIALS`] over and over), [`QUIC_PER_TICK`] every 10 ms, never answered; the
/// Retry packets that come back are counted.
async fn quic(server: SocketAddr, deadline: tokio::time::Instant, tally: Arc<Tally>) {
    let r = async {
        let caught = Instant::now();
        let initials = jam_client::client_initials(QUIC_INITIALS, Duration::from_secs(5)).await?;
        tracing::info!(n = initials.len(), took = ?caught.elapsed(), "QUIC Initials caught");
        anyhow::ensure!(!initials.is_empty(), "no Initial caught");
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(attacker(6), 0)).await?);
        let counter = {
            let (socket, tally) = (socket.clone(), tally.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok(Ok(n)) = tokio::time::timeout_at(
                    deadline + Duration::from_secs(1),
                    socket.recv(&mut buf),
                )
                .await
                {
                    if jam_client::is_retry(&buf[..n]) {
                        Tally::add(&tally.quic_retries, 1);
                    }
                }
            })
        };
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0u64;
        let mut next = initials.iter().cycle();
        while sent < QUIC_MAX && tokio::time::Instant::now() < deadline {
            tick.tick().await;
            for initial in next.by_ref().take(QUIC_PER_TICK) {
                // A full socket buffer drops one; that is the attacker's loss.
                if socket.send_to(initial, server).await.is_ok() {
                    sent += 1;
                    Tally::add(&tally.quic_initials, 1);
                }
            }
        }
        let _ = counter.await;
        Ok::<_, anyhow::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline + Duration::from_secs(2), r).await {
        tally.error("QUIC Initials", e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_name_and_summed_over_labels() {
        let text = "jam_quic_retries_total 42\njam_quic_handshakes 1\n\
                    jam_connections_refused_total{reason=\"origin\"} 2\n\
                    jam_connections_refused_total{reason=\"handshake_limit\"} 3\n";
        assert_eq!(metric(text, "jam_quic_retries_total"), Some(42));
        assert_eq!(metric(text, "jam_quic_handshakes"), Some(1));
        assert_eq!(metric(text, "jam_quic"), None);
        assert_eq!(sum(text, "jam_connections_refused_total"), Some(5));
    }
}
