//! Bounds on Socket.IO's HTTP requests (Engine.IO long polling): a POST body has a size
//! limit and a deadline, and one that is large or slow to come takes a place of its
//! address while it is read. Malformed Socket.IO packets, on either Engine.IO transport,
//! answer `invalid_message` and leave the session usable. Raw HTTP/1.1 and raw Engine.IO
//! over WebSocket on loopback, as an attacker sends them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// The tests of this file run one at a time: two of them read the process's resident
/// memory, which the others would add to.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends `head` (and `body`) on a fresh connection.
async fn send(s: &TestServer, head: &str, body: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(s.server.http_addr()).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    tcp
}

/// Everything the server sends until it closes (bounded by [`T`]).
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens an Engine.IO session by long polling; its `sid`.
async fn handshake(s: &TestServer) -> String {
    let mut tcp = send(
        s,
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let sid = answer
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no sid in {answer}"));
    sid.to_owned()
}

/// A POST of packets to session `sid` that declares `length` bytes.
fn post_head(sid: &str, length: usize) -> String {
    format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_unfinished_post_body_is_cut_off_and_an_oversize_one_refused() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with_peer_timeout(PEER_TIMEOUT).await;
    let sid = handshake(&s).await;

    // One byte short, and then nothing: the deadline answers 408 and closes.
    let began = Instant::now();
    let mut short = send(&s, &post_head(&sid, 100), &[b'x'; 99]).await;
    let answer = read_to_close(&mut short).await;
    let took = began.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= PEER_TIMEOUT && took < PEER_TIMEOUT + Duration::from_secs(2),
        "cut off after {took:?}"
    );

    // A body larger than the Engine.IO payload limit is refused before it is read.
    let mut big = send(&s, &post_head(&sid, 2 * 1024 * 1024), b"4").await;
    let answer = read_to_close(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn unfinished_bodies_take_places_of_their_address() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.peer_timeout = Duration::from_secs(3);
        c.max_connections_per_address = 4;
    })
    .await;
    // The session holds one place; of five unfinished POSTs to it, three take the
    // others and are cut off by the deadline, and two are refused at once.
    let sid = handshake(&s).await;
    let mut posts = Vec::new();
    for _ in 0..5 {
        posts.push(send(&s, &post_head(&sid, 100), b"4").await);
    }
    let answers = futures_util::future::join_all(posts.iter_mut().map(read_to_close)).await;
    let status = |code: &str| {
        answers
            .iter()
            .filter(|a| a.starts_with(&format!("HTTP/1.1 {code}")))
            .count()
    };
    assert_eq!((status("429"), status("408")), (2, 3), "{answers:?}");
    // Once they are answered, their places are free again: a small POST goes through
    // (to a new session: the first one, never polled, missed its heartbeat meanwhile).
    let sid = handshake(&s).await;
    let mut post = send(&s, &post_head(&sid, 1), b"3").await;
    let answer = read_to_close(&mut post).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A long poll of session `sid`.
fn poll_head(sid: &str) -> String {
    format!(
        "GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n\
         Host: x\r\nConnection: close\r\n\r\n"
    )
}

/// A connection to the server from the loopback address `source`, e.g. `127.0.0.2`.
async fn tcp_from(s: &TestServer, source: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(s.server.http_addr()).await.unwrap()
}

#[tokio::test]
async fn every_long_poll_holds_a_place_of_its_address() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with(|c| {
        // No ping for a while, so a long poll stays open.
        c.ping_interval = Duration::from_secs(3);
        c.peer_timeout = Duration::from_secs(6);
        c.max_connections_per_address = 4;
    })
    .await;
    // Three sessions hold three places; of their three long polls, one takes the last
    // place and waits (answered by the first ping), and two are refused at once.
    let mut sids = Vec::new();
    for _ in 0..3 {
        let sid = handshake(&s).await;
        // The first ping comes at once: read it and answer it.
        let (status, body) = request(s.server.http_addr(), &poll_head(&sid), b"").await;
        assert!(
            status.starts_with("HTTP/1.1 200") && body == "2",
            "{status} {body}"
        );
        let (status, _) = request(s.server.http_addr(), &post_head(&sid, 1), b"3").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        sids.push(sid);
    }
    let began = Instant::now();
    let mut polls = Vec::new();
    for sid in &sids {
        polls.push(send(&s, &poll_head(sid), b"").await);
    }
    // While they wait, another address has places of its own.
    let mut other = tcp_from(&s, "127.0.0.2").await;
    other
        .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut other).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"sid\""),
        "{answer}"
    );
    let answers = futures_util::future::join_all(polls.iter_mut().map(|tcp| async {
        let answer = read_to_close(tcp).await;
        (answer, began.elapsed())
    }))
    .await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(a, _)| a.starts_with("HTTP/1.1 429"))
        .collect();
    let polled: Vec<_> = answers
        .iter()
        .filter(|(a, _)| a.starts_with("HTTP/1.1 200"))
        .collect();
    assert_eq!((refused.len(), polled.len()), (2, 1), "{answers:?}");
    assert!(
        refused.iter().all(|(_, t)| *t < Duration::from_secs(1)),
        "refused at once: {answers:?}"
    );
    // The poll that waited was answered by a ping: it held its place until then.
    assert!(polled[0].0.ends_with("2"), "{answers:?}");
    // And with the polls answered, a fourth session fits again.
    handshake(&s).await;
}

/// A raw Engine.IO v4 client of the namespace `/`, on either transport; it answers the
/// server's pings and nothing else on its own.
enum Eio {
    Polling {
        addr: std::net::SocketAddr,
        sid: String,
        got: std::collections::VecDeque<String>,
    },
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>>),
}

/// The body of an HTTP/1.1 answer (the connection closes after it), and its status line.
async fn request(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let answer = read_to_close(&mut tcp).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

impl Eio {
    /// A polling session, connected to `/`.
    async fn polling(s: &TestServer) -> Eio {
        let sid = handshake(s).await;
        let mut eio = Eio::Polling {
            addr: s.server.http_addr(),
            sid,
            got: Default::default(),
        };
        eio.connect().await;
        eio
    }

    /// A WebSocket session, connected to `/`.
    async fn ws(s: &TestServer) -> Eio {
        let url = format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            s.server.http_addr()
        );
        let (ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(url))
            .await
            .expect("ws handshake in time")
            .expect("ws connects");
        let mut eio = Eio::Ws(Box::new(ws));
        let open = eio.recv().await;
        assert!(open.starts_with("0{"), "{open}");
        eio.connect().await;
        eio
    }

    async fn connect(&mut self) {
        self.send("40").await;
        let ack = self.recv().await;
        assert!(ack.starts_with("40{"), "{ack}");
    }

    async fn send(&mut self, packet: &str) {
        match self {
            Eio::Polling { addr, sid, .. } => {
                let (status, body) =
                    request(*addr, &post_head(sid, packet.len()), packet.as_bytes()).await;
                assert!(
                    status.starts_with("HTTP/1.1 200"),
                    "POST {packet}: {status} {body}"
                );
            }
            Eio::Ws(ws) => tokio::time::timeout(T, ws.send(Message::text(packet)))
                .await
                .expect("sent in time")
                .expect("sent"),
        }
    }

    /// The next packet from the server other than a ping (which it answers).
    async fn recv(&mut self) -> String {
        loop {
            let packet = match self {
                Eio::Polling { addr, sid, got } => match got.pop_front() {
                    Some(p) => p,
                    None => {
                        let (status, body) = request(*addr, &poll_head(sid), b"").await;
                        assert!(status.starts_with("HTTP/1.1 200"), "poll: {status} {body}");
                        got.extend(body.split('\u{1e}').map(str::to_owned));
                        continue;
                    }
                },
                Eio::Ws(ws) => match tokio::time::timeout(T, ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
                    Ok(Some(Ok(_))) => continue,
                    other => panic!("the WebSocket ended: {other:?}"),
                },
            };
            if packet == "2" {
                self.send("3").await;
                continue;
            }
            return packet;
        }
    }

    /// The next packet that starts with `prefix`, within [`T`]; fails on a close or a
    /// Socket.IO disconnect.
    async fn recv_starting(&mut self, prefix: &str) -> String {
        tokio::time::timeout(T, async {
            loop {
                let packet = self.recv().await;
                assert!(
                    packet != "1" && packet != "41",
                    "disconnected waiting for {prefix}"
                );
                if packet.starts_with(prefix) {
                    return packet;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {prefix} in time"))
    }
}

/// Every kind of malformed EVENT packet answers `invalid_message` (to its
/// acknowledgement, and as an `error` event), and the session stays usable.
async fn malformed_events_answer_invalid_message(mut eio: Eio) {
    // Data that does not start an array or object carries no acknowledgement id; the
    // last three are no Socket.IO packet at all.
    for bad in [r#"2"hello""#, "27", "2", "", "9", "x"] {
        eio.send(&format!("4{bad}")).await;
        let error = eio.recv_starting(r#"42["error""#).await;
        assert!(error.contains("invalid_message"), "{bad}: {error}");
    }
    for (n, bad) in ["{}", "[]", "[1,2]", "[", r#"["x","#, r#"["a\"b",1]"#]
        .into_iter()
        .enumerate()
    {
        eio.send(&format!("42/,{n}{bad}")).await;
        let ack = eio.recv_starting(&format!("43{n}[")).await;
        assert!(
            ack.contains(r#""event":"error""#) && ack.contains("invalid_message"),
            "{bad}: {ack}"
        );
    }
    eio.send(r#"4299["session:create",{"name":"A"}]"#).await;
    let created = eio.recv_starting("4399[").await;
    assert!(created.contains("session:created"), "{created}");
}

#[tokio::test]
async fn malformed_events_answer_invalid_message_over_polling() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(3)).await;
    malformed_events_answer_invalid_message(Eio::polling(&s).await).await;
}

#[tokio::test]
async fn malformed_events_answer_invalid_message_over_websocket() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(3)).await;
    malformed_events_answer_invalid_message(Eio::ws(&s).await).await;
}

/// A relayed event reaches every Socket.IO receiver as the same packet, whichever
/// Engine.IO transport it rides: `42["event:broadcast",data,{"seq":n}]` for a numbered
/// event, `42["event:broadcast",data]` for an ephemeral one, with the payload as sent.
#[tokio::test]
async fn a_relayed_event_reaches_every_socket_io_receiver_as_one_packet() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(3)).await;
    let mut sender = s.wt().await;
    let room = create(&mut sender, "S").await;
    let mut receivers = [Eio::ws(&s).await, Eio::polling(&s).await];
    for (i, eio) in receivers.iter_mut().enumerate() {
        eio.send(&format!(
            r#"42["session:join",{{"roomCode":"{}","name":"R{i}"}}]"#,
            room.room_code
        ))
        .await;
        eio.recv_starting(r#"42["session:joined""#).await;
        next_event(&mut sender).await;
    }
    let payload = serde_json::json!({"text": "a \"quote\", é and \u{1f3b8}", "n": [1, 2.5]});
    sender
        .broadcast(&room.room_code, "chat", &payload)
        .await
        .unwrap();
    sender
        .broadcast_datagram(&room.room_code, "note", &payload)
        .unwrap();
    for (name, numbered) in [("chat", true), ("note", false)] {
        let mut got = Vec::new();
        for eio in receivers.iter_mut() {
            got.push(eio.recv_starting(r#"42["event:broadcast""#).await);
        }
        assert_eq!(got[0], got[1], "{name}");
        let packet = &got[0];
        let args: Vec<serde_json::Value> = serde_json::from_str(&packet[2..]).unwrap();
        assert_eq!(args[1]["eventName"], name, "{packet}");
        assert_eq!(args[1]["payload"], payload, "{packet}");
        if numbered {
            assert_eq!(args.len(), 3, "{packet}");
            let seq = args[2]["seq"].as_u64().expect("a seq");
            assert!(
                packet.ends_with(&format!(r#"}},{{"seq":{seq}}}]"#)),
                "{packet}"
            );
        } else {
            assert_eq!(args.len(), 2, "{packet}");
            assert_eq!(args[1]["ephemeral"], true, "{packet}");
        }
    }
}

/// The state of the TCP socket on `local` connected to `remote`, as `/proc/net/tcp`
/// writes it (`01` established, `04` FIN-WAIT-1, ...); `None` once it is gone.
fn tcp_state(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<String> {
    let hex = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => {
            format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port())
        }
        std::net::IpAddr::V6(_) => unreachable!("loopback IPv4"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
            .then(|| f[3].to_owned())
    })
}

/// A raw Engine.IO WebSocket session from a socket with a small receive buffer (so that
/// it fills soon once not read), joined to `room` as `name`.
async fn small_window_ws(s: &TestServer, room: &str, name: &str) -> (Eio, std::net::SocketAddr) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.server.http_addr()).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        s.server.http_addr()
    );
    let (ws, _) = tokio::time::timeout(
        T,
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp)),
    )
    .await
    .expect("ws handshake in time")
    .expect("ws connects");
    let mut eio = Eio::Ws(Box::new(ws));
    let open = eio.recv().await;
    assert!(open.starts_with("0{"), "{open}");
    eio.connect().await;
    eio.send(&format!(
        r#"42["session:join",{{"roomCode":"{room}","name":"{name}"}}]"#
    ))
    .await;
    eio.recv_starting(r#"42["session:joined""#).await;
    (eio, local)
}

/// The `eventName` of a relayed event.
fn broadcast_name(r: &jam_client::Received) -> &str {
    match r.event() {
        jam_protocol::ServerEvent::Broadcast { event_name, .. } => event_name,
        _ => "",
    }
}

#[tokio::test]
async fn a_websocket_receiver_that_stops_reading_but_sends_pongs_is_cut_off_and_closed() {
    let _serial = SERIAL.lock().await;
    const STALL_TIMEOUT: Duration = Duration::from_secs(2);
    const BURST: usize = 200;
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.peer_timeout = STALL_TIMEOUT;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut sender = s.ws().await;
    let room = create(&mut sender, "S").await;
    let mut bystander = s.ws().await;
    bystander.join(&room.room_code, "B", "keys").await.unwrap();
    next_event(&mut sender).await;

    let (eio, local) = small_window_ws(&s, &room.room_code, "Stall").await;
    let jam_protocol::ServerEvent::UserJoined(stalled) = next_event(&mut sender).await else {
        panic!("the stalled member joins")
    };
    next_event(&mut bystander).await;
    // From now on it never reads, and sends a pong every 100 ms (for at most 30 s), so
    // Engine.IO's heartbeat alone would keep it.
    let Eio::Ws(ws) = eio else { unreachable!() };
    let (mut write, _never_read) = (*ws).split();
    let pongs = tokio::spawn(async move {
        for _ in 0..300 {
            if write.send(Message::text("3")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    let pad = "p".repeat(15_000);
    for i in 0..BURST {
        sender
            .broadcast(
                &room.room_code,
                "note",
                &serde_json::json!({"i": i, "pad": pad}),
            )
            .await
            .unwrap();
    }
    let burst_sent = Instant::now();
    let away = sender
        .wait_for(STALL_TIMEOUT + T, |r| {
            matches!(r.event(), jam_protocol::ServerEvent::UserAway { .. })
        })
        .await
        .expect("the stalled member is cut off");
    assert_eq!(
        away.message.event,
        jam_protocol::ServerEvent::UserAway {
            user_id: stalled.id,
            reason: Some(jam_protocol::AwayReason::Disconnected),
        }
    );
    let away_after = burst_sent.elapsed();
    // The server lets its socket go (it stays established for ever otherwise).
    let server = s.server.http_addr();
    let closed_after = tokio::time::timeout(STALL_TIMEOUT + T, async {
        while tcp_state(server, local).as_deref() == Some("01") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        burst_sent.elapsed()
    })
    .await
    .expect("the server closes the stalled socket");
    let rss_growth = jam_server::metrics::resident_bytes()
        .unwrap()
        .saturating_sub(rss_before);
    eprintln!(
        "away {away_after:?} and socket closed {closed_after:?} after the burst \
         (now {:?}); RSS grew {rss_growth} bytes",
        tcp_state(server, local)
    );
    assert!(
        closed_after < STALL_TIMEOUT + Duration::from_secs(2),
        "closed only after {closed_after:?}"
    );
    assert!(
        rss_growth < 32 * 1024 * 1024,
        "RSS grew {rss_growth} bytes for one stalled member"
    );
    // The bystander got the whole burst, and still gets what comes next.
    let mut got = 0;
    while got < BURST {
        let r = next_broadcast(&mut bystander).await;
        if broadcast_name(&r) == "note" {
            got += 1;
        }
    }
    sender
        .broadcast(&room.room_code, "after", &serde_json::json!({}))
        .await
        .unwrap();
    loop {
        let r = next_broadcast(&mut bystander).await;
        if broadcast_name(&r) == "after" {
            break;
        }
    }
    pongs.abort();
}

/// Peak resident memory of this process while `body` runs, sampled every 10 ms.
async fn peak_rss_during<F: std::future::Future>(body: F) -> (F::Output, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(jam_server::metrics::resident_bytes().unwrap());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        }
    });
    let out = body.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    (
        out,
        peak.max(jam_server::metrics::resident_bytes().unwrap()),
    )
}

#[tokio::test]
async fn many_long_polling_receivers_that_stop_polling_are_cut_off_within_bounded_memory() {
    let _serial = SERIAL.lock().await;
    const N: usize = 40;
    const BURST: usize = 200;
    const PEER: Duration = Duration::from_secs(3);
    const OUTBOX_BYTES: usize = 512 * 1024;
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_secs(1);
        c.peer_timeout = PEER;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
        c.max_connections_per_address = 1_000;
        c.max_room_size = 64;
        c.max_message_bytes = 16 * 1024;
        c.history_bytes = 256 * 1024;
        c.outbox_bytes = OUTBOX_BYTES;
    })
    .await;
    let mut sender = s.ws().await;
    let room = create(&mut sender, "S").await;
    let mut bystander = s.ws().await;
    bystander.join(&room.room_code, "B", "keys").await.unwrap();
    next_event(&mut sender).await;

    // N polling members; each keeps polling (and answering pings) until told to stop,
    // then only posts a pong every 300 ms (for at most 30 s) and never polls again.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut receivers = tokio::task::JoinSet::new();
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::channel::<()>(N);
    for i in 0..N {
        let mut eio = Eio::polling(&s).await;
        eio.send(&format!(
            r#"42["session:join",{{"roomCode":"{}","name":"P{i}"}}]"#,
            room.room_code
        ))
        .await;
        eio.recv_starting(r#"42["session:joined""#).await;
        let Eio::Polling { addr, sid, .. } = &eio else {
            unreachable!()
        };
        let (addr, sid) = (*addr, sid.clone());
        let stop = stop.clone();
        let stopped = stopped_tx.clone();
        receivers.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = eio.recv() => {}
                }
            }
            let _ = stopped.send(()).await;
            for _ in 0..100 {
                let (status, _) = request(addr, &post_head(&sid, 1), b"3").await;
                if !status.starts_with("HTTP/1.1 200") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    }
    let mut ids = std::collections::HashSet::new();
    while ids.len() < N {
        if let jam_protocol::ServerEvent::UserJoined(u) = next_event(&mut sender).await {
            ids.insert(u.id);
        }
    }
    stop.cancel();
    for _ in 0..N {
        tokio::time::timeout(T, stopped_rx.recv())
            .await
            .expect("every receiver stops polling in time");
    }

    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    let pad = "p".repeat(15_000);
    let (cut_off, peak) = peak_rss_during(async {
        // In steps of 20 that the bystander has read before the next: it keeps up, the
        // receivers that stopped polling do not.
        let mut got = 0;
        let burst_began = Instant::now();
        for i in 0..BURST {
            sender
                .broadcast(
                    &room.room_code,
                    "note",
                    &serde_json::json!({"i": i, "pad": pad}),
                )
                .await
                .unwrap();
            while (i + 1) % 20 == 0 && got <= i {
                if broadcast_name(&next_broadcast(&mut bystander).await) == "note" {
                    got += 1;
                }
            }
        }
        let mut away = std::collections::HashSet::new();
        while away.len() < N {
            let r = sender
                .wait_for(PEER + T, |r| {
                    matches!(r.event(), jam_protocol::ServerEvent::UserAway { .. })
                })
                .await
                .unwrap_or_else(|_| panic!("{} of {N} cut off", away.len()));
            if let jam_protocol::ServerEvent::UserAway { user_id, .. } = r.event() {
                assert!(ids.contains(user_id), "only polling members go away");
                away.insert(user_id.clone());
            }
        }
        burst_began.elapsed()
    })
    .await;
    let growth = peak.saturating_sub(rss_before);
    // What the server may hold for them: each one's outbox and Engine.IO buffer hold about
    // the byte budget each; the rest is headroom.
    let budget = (N * 2 * OUTBOX_BYTES) as u64 + 32 * 1024 * 1024;
    eprintln!(
        "{N} polling receivers cut off {cut_off:?} after the burst began; peak RSS grew {growth} \
         bytes (budget {budget})"
    );
    assert!(cut_off < PEER, "cut off only after {cut_off:?}");
    assert!(growth < budget, "RSS grew {growth} bytes, over {budget}");
    // The bystander, which got the whole burst, still gets what comes next.
    sender
        .broadcast(&room.room_code, "after", &serde_json::json!({}))
        .await
        .unwrap();
    while broadcast_name(&next_broadcast(&mut bystander).await) != "after" {}
    receivers.abort_all();
}
