//! Hostile peers on the open internet: a WebSocket peer that floods pings and never
//! reads is cut off as a slow consumer instead of growing the server's memory with pongs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_ping_flooding_peer_that_never_reads_is_cut_off() {
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(2)).await;
    // A small receive buffer, so the server's pongs back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(s.server.http_addr()).await.unwrap();
    let url = format!("ws://{}/ws", s.server.http_addr());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    let started = Instant::now();
    let mut sent_bytes = 0usize;
    // Never read: only ping, 125 bytes at a time, until the server has given up on us.
    while s.server.stats().snapshot().slow_consumers == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still connected after sending {sent_bytes} bytes of pings"
        );
        let ping = Message::Ping(vec![7u8; 125].into());
        match tokio::time::timeout(T, ws.send(ping)).await {
            Ok(Ok(())) => sent_bytes += 125,
            other => {
                panic!("the socket ended before the server counted a slow consumer: {other:?}")
            }
        }
    }
    let cut_off = started.elapsed();
    let rss_growth = jam_server::metrics::resident_bytes()
        .unwrap()
        .saturating_sub(rss_before);
    eprintln!(
        "cut off after {cut_off:?} and {sent_bytes} bytes of pings; RSS grew {rss_growth} bytes"
    );
    // Memory stays flat: the pongs waiting for us are bounded (256 KiB write buffer).
    assert!(
        rss_growth < 32 * 1024 * 1024,
        "RSS grew {rss_growth} bytes while {sent_bytes} bytes of pings came"
    );
    // Reading now, we find the pongs that fitted, then the documented close frame.
    expect_overflow_close(&mut ws).await;
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_connections_on_both_transports() {
    let s = TestServer::start_with(|c| c.max_connections_per_address = 2).await;
    let a = s.ws().await;
    let b = s.wt().await;
    // A third from 127.0.0.1, on either transport, is refused before any message.
    let err = jam_client::Client::connect_ws(&s.server.ws_url())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("429"), "{err}");
    let wt = jam_client::Client::connect_wt(
        &s.server.wt_url(),
        &s.server.cert_hash(),
        jam_client::Encoding::Json,
    )
    .await;
    assert!(wt.is_err(), "a WebTransport session is refused too");
    // A connection that ends gives its place back (once the server has seen it end).
    a.close().await.unwrap();
    drop(a);
    let started = Instant::now();
    let mut again = loop {
        match jam_client::Client::connect_ws(&s.server.ws_url()).await {
            Ok(c) => break c,
            Err(_) if started.elapsed() < T => tokio::task::yield_now().await,
            Err(e) => panic!("the place never came back: {e}"),
        }
    };
    create(&mut again, "Again").await;
    drop(b);
}

#[tokio::test]
async fn a_connection_that_joins_no_room_is_closed_after_the_deadline() {
    let s = TestServer::start_with(|c| c.join_deadline = Duration::from_millis(300)).await;
    let mut player = s.ws().await;
    let room = create(&mut player, "Player").await;
    for kind in KINDS {
        let mut idle = s.client(kind).await;
        let closed = idle.wait_closed(T).await.expect("closed");
        let want = match kind {
            "ws" => jam_client::Closed::WebSocket {
                code: 1008,
                reason: "no room joined in time".into(),
            },
            _ => jam_client::Closed::WebTransport {
                code: 3,
                reason: "no room joined in time".into(),
            },
        };
        assert_eq!(closed, want, "{kind}");
    }
    // Who is in a room stays (well past the deadline by now), and after a leave the
    // clock starts again.
    barrier(&mut player, "player").await;
    player.leave(&room.room_code).await.unwrap();
    let closed = player.wait_closed(T).await.expect("closed after the leave");
    assert!(matches!(
        closed,
        jam_client::Closed::WebSocket { code: 1008, .. }
    ));
}

#[tokio::test]
async fn room_requests_have_a_budget_per_connection() {
    let s = TestServer::start_with(|c| {
        c.control_rate = 1;
        c.control_burst = 3;
    })
    .await;
    for kind in KINDS {
        let mut c = s.client(kind).await;
        let room = create(&mut c, "A").await; // 1
        c.leave(&room.room_code).await.unwrap(); // 2
        create(&mut c, "A").await; // 3
        let err = c.create("B", "").await.unwrap_err(); // 4: over
        assert_eq!(
            err.code(),
            Some(jam_protocol::ErrorCode::RateLimited),
            "{kind}"
        );
        // Broadcasts have their own budget.
        c.broadcast(&room.room_code, "n", &serde_json::json!(1))
            .await
            .unwrap();
        expect_error(&mut c, jam_protocol::ErrorCode::NotInSession, kind).await;
    }
}

#[tokio::test]
async fn look_alike_and_invisible_names_cannot_impersonate() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut ana = s.client(kind).await;
        let room = create(&mut ana, "Ana").await;
        let mut fake = s.client(kind).await;
        for (name, want) in [
            ("\u{410}na", jam_protocol::ErrorCode::NameTaken), // Cyrillic А
            ("A\u{200B}na", jam_protocol::ErrorCode::NameTaken),
            ("\u{200E}\u{200F}", jam_protocol::ErrorCode::InvalidMessage),
            ("\u{391}na", jam_protocol::ErrorCode::NameTaken), // Greek capital Alpha
            ("\u{1D00}na", jam_protocol::ErrorCode::NameTaken), // small capital A
            ("Ana\u{2800}", jam_protocol::ErrorCode::NameTaken), // a Braille blank
            ("\u{202E}anA", jam_protocol::ErrorCode::InvalidMessage), // right-to-left override
            ("\u{2800}\u{3164}", jam_protocol::ErrorCode::InvalidMessage), // nothing visible
        ] {
            let err = fake.join(&room.room_code, name, "").await.unwrap_err();
            assert_eq!(err.code(), Some(want), "{kind}: {name:?}");
        }
        fake.join(&room.room_code, "Bea", "")
            .await
            .expect("a different name joins");
    }
}

/// Reads until the server closes the connection; whatever it sent first (a 408, say).
async fn read_to_close(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start_with(|c| c.header_timeout = Duration::from_millis(500)).await;
    let addr = s.server.http_addr();
    // Slowloris: a request line and a header, a byte now and then, never the blank line.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(700), trickle).await;
    let closed = tokio::time::timeout(T, read_to_close(&mut slow)).await;
    assert!(closed.is_ok(), "the slow request is still open");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "closed early: {took:?}");
    // A connection that sends nothing at all goes the same way.
    tokio::time::timeout(T, read_to_close(&mut silent))
        .await
        .expect("the silent connection is still open");
    // So does a kept-alive connection that starts no second request.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(T, read_to_close(&mut idle))
        .await
        .expect("the idle kept-alive connection is still open");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // Whole requests are answered as before.
    let (status, body) = s.get("/healthz").await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
}

/// A raw fragment of a text message (the first with `first`, the last with `last`).
fn fragment(first: bool, last: bool, data: &[u8]) -> Message {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let opcode = OpCode::Data(if first { Data::Text } else { Data::Continue });
    Message::Frame(Frame::message(data.to_vec(), opcode, last))
}

#[tokio::test]
async fn a_message_trickled_in_fragments_is_cut_off_after_the_peer_timeout() {
    use futures_util::StreamExt;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(1)).await;
    let (ws, _) = tokio_tungstenite::connect_async(s.server.ws_url())
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    // A message in fragments, with pings between them, is read once whole.
    let create = br#"{"event":"session:create","data":{"name":"F"}}"#;
    tx.send(fragment(true, false, &create[..10])).await.unwrap();
    tx.send(Message::Ping(vec![1].into())).await.unwrap();
    tx.send(fragment(false, true, &create[10..])).await.unwrap();
    let created = loop {
        match tokio::time::timeout(T, rx.next()).await.expect("answered") {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(created.contains("session:created"), "{created}");

    // Now one that never ends: a fragment and a ping every 100 ms, for ever.
    let started = Instant::now();
    tx.send(fragment(true, false, &[b' '; 1000])).await.unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let more = tx.send(fragment(false, false, &[b' '; 1000])).await;
            if more.is_err() || tx.send(Message::Ping(vec![2].into())).await.is_err() {
                break;
            }
        }
    };
    let close = close_frame(&mut rx);
    let frame = tokio::select! {
        frame = tokio::time::timeout(T, close) => frame.expect("still connected while trickling"),
        _ = trickle => panic!("the writes failed before a close frame came"),
    };
    let frame = frame.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "message not finished in time");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "cut off early: {took:?}");
}

/// Reads text frames until one contains `needle` (bounded by [`T`]).
async fn read_text_with(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    needle: &str,
) -> String {
    use futures_util::StreamExt;
    tokio::time::timeout(T, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains(needle) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("the socket ended before {needle:?}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in time"))
}

#[tokio::test]
async fn made_up_pongs_do_not_set_a_round_trip() {
    let s = TestServer::start().await;
    let mut ana = s.client("ws").await;
    let room = create(&mut ana, "Ana").await;
    let (mut forger, _) = tokio_tungstenite::connect_async(s.server.ws_url())
        .await
        .unwrap();
    let join = serde_json::json!({"event": "session:join", "data": {"roomCode": room.room_code, "name": "Mallory"}});
    forger.send(Message::text(join.to_string())).await.unwrap();
    let joined = read_text_with(&mut forger, "session:joined").await;
    let me: serde_json::Value = serde_json::from_str(&joined).unwrap();
    let my_id = me["data"]["userId"].as_str().unwrap().to_owned();
    // Messages are handled in order: once the answer to a probe comes, everything sent
    // before it was read, the answer to the server's first ping included.
    let probe = serde_json::json!({"event": "session:leave", "data": {"roomCode": "!probe"}, "id": "probe"});
    forger.send(Message::text(probe.to_string())).await.unwrap();
    read_text_with(&mut forger, "\"probe\"").await;
    // Pongs nobody asked for: one from the future (a round trip of 0) and send times of 1
    // and 0 (a round trip of decades), the last thing before the next probe.
    for stamp in [u64::MAX, 0u64, 1] {
        forger
            .send(Message::Pong(stamp.to_be_bytes().to_vec().into()))
            .await
            .unwrap();
    }
    forger.send(Message::text(probe.to_string())).await.unwrap();
    read_text_with(&mut forger, "\"probe\"").await;
    // A newcomer sees the forger's round trip: unmeasured, or a real one on loopback.
    let mut ben = s.client("ws").await;
    let seen = ben
        .join(&room.room_code, "Ben", "")
        .await
        .expect("ben joins");
    let mallory = seen
        .participants
        .iter()
        .find(|p| p.id.as_str() == my_id)
        .expect("the forger is in the room");
    assert!(
        mallory.rtt_ms.is_none_or(|ms| ms < 1_000),
        "a made-up pong set the round trip: {mallory:?}"
    );
}
