//! Transport bindings: datagrams (JSON, MessagePack, oversize fallback), control-stream
//! framing, WebSocket frame rules, stalled and silent peers, HTTP endpoints, the
//! certificate, and graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jam_client::{http_get, http_get_with_host, to_msgpack, wt_endpoint, Client, Closed, Via};
use jam_protocol::Encoding;
use jam_protocol::{ErrorCode, ServerEvent};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

fn broadcast(room: &str, payload: Value) -> Value {
    jam_client::broadcast_envelope(room, "note", &payload)
}

#[tokio::test]
async fn datagrams_follow_their_path_in_json_and_msgpack() {
    let s = TestServer::start().await;
    let mut sender = s.wt().await;
    let mut json_rx = s.wt().await;
    let mut mp_rx = s.wt_with(Encoding::MsgPack).await;
    let mut ws_rx = s.ws().await;
    let room = create(&mut sender, "S").await;
    for (c, n) in [(&mut json_rx, "J"), (&mut mp_rx, "M"), (&mut ws_rx, "W")] {
        c.join(&room.room_code, n, "").await.unwrap();
        // The sender sees each join before anything else.
        assert!(matches!(
            next_event(&mut sender).await,
            ServerEvent::UserJoined(_)
        ));
    }

    // A JSON datagram in: datagrams out to WebTransport, the socket for WebSocket.
    sender
        .send_datagram(
            broadcast(&room.room_code, json!({"n": 60}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let got = next_broadcast(&mut json_rx).await;
    assert_eq!(got.via, Via::Datagram);
    assert_eq!(got.raw.first(), Some(&b'{'));
    let got = next_broadcast(&mut mp_rx).await;
    assert_eq!(got.via, Via::Datagram);
    assert_ne!(
        got.raw.first(),
        Some(&b'{'),
        "MessagePack session gets MessagePack"
    );
    assert!(
        matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({"n": 60}))
    );
    let got = next_broadcast(&mut ws_rx).await;
    assert_eq!(got.via, Via::WebSocket);

    // A MessagePack datagram in: converted for JSON receivers.
    sender
        .send_datagram(&to_msgpack(&broadcast(
            &room.room_code,
            json!({"n": 61, "v": [1.5, null]}),
        )))
        .unwrap();
    for c in [&mut json_rx, &mut mp_rx, &mut ws_rx] {
        let got = next_broadcast(c).await;
        assert!(
            matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({"n": 61, "v": [1.5, null]}))
        );
    }

    // An event sent on the control stream reaches WebTransport receivers on their stream.
    sender
        .broadcast(&room.room_code, "note", &json!({"n": 62}))
        .await
        .unwrap();
    assert_eq!(next_broadcast(&mut json_rx).await.via, Via::Stream);
    assert_eq!(next_broadcast(&mut mp_rx).await.via, Via::Stream);
    // The sender hears none of its own events: its next message is its barrier's answer.
    // (Had the server echoed a datagram event, the copy would have left with the ones the
    // receivers got above, long before this round trip.)
    barrier(&mut sender, "sender").await;
    assert!(s.server.stats().snapshot().datagrams_out >= 4);
}

#[tokio::test]
async fn oversized_relays_fall_back_to_the_control_stream() {
    let s = TestServer::start().await;
    let mut sender = s.wt().await;
    let mut rx = s.wt().await;
    let room = create(&mut sender, "S").await;
    rx.join(&room.room_code, "R", "").await.unwrap();
    let max = sender.max_datagram_size().expect("datagrams supported");
    // The relayed envelope adds `senderId` and drops `roomCode`: about 25 bytes more.
    let empty = broadcast(&room.room_code, json!("")).to_string().len();
    let pad = "x".repeat(max - 10 - empty);
    let text = broadcast(&room.room_code, json!(pad)).to_string();
    assert_eq!(text.len(), max - 10);
    sender.send_datagram(text.as_bytes()).unwrap();
    let got = next_broadcast(&mut rx).await;
    assert_eq!(
        got.via,
        Via::Stream,
        "too large for a datagram: sent on the stream"
    );
    assert!(
        matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!(pad))
    );
}

#[tokio::test]
async fn bad_datagrams_answer_on_the_control_stream() {
    let s = TestServer::start().await;
    let mut a = s.wt().await;
    let room = create(&mut a, "A").await;
    let bad: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        json!({"event":"session:create","data":{"name":"x"}})
            .to_string()
            .into_bytes(),
        // MessagePack binary has no JSON form.
        {
            let mut v = Vec::new();
            rmpv::encode::write_value(&mut v, &rmpv::Value::Binary(vec![1, 2])).unwrap();
            v
        },
        vec![0xc1],
    ];
    for (i, d) in bad.iter().enumerate() {
        a.send_datagram(d).unwrap();
        expect_error(
            &mut a,
            ErrorCode::InvalidMessage,
            &format!("bad datagram {i}"),
        )
        .await;
    }
    // A valid datagram for another room is not_in_session.
    a.send_datagram(broadcast("ZZZZZZ", json!(1)).to_string().as_bytes())
        .unwrap();
    expect_error(&mut a, ErrorCode::NotInSession, "another room").await;
    // The session still works.
    a.leave(&room.room_code).await.unwrap();
}

#[tokio::test]
async fn sessions_sharing_one_udp_socket_each_get_their_own_datagrams() {
    let s = TestServer::start().await;
    let endpoint = wt_endpoint(&s.server.cert_hash(), Some(1 << 20)).unwrap();
    let url = s.server.wt_url();
    let mut members = Vec::new();
    for encoding in [Encoding::Json, Encoding::MsgPack, Encoding::Json] {
        members.push(
            Client::connect_wt_on(&endpoint, &url, encoding, None)
                .await
                .unwrap(),
        );
    }
    let room = create(&mut members[0], "A").await;
    for (i, m) in members.iter_mut().enumerate().skip(1) {
        m.join(&room.room_code, &format!("M{i}"), "").await.unwrap();
    }
    // Each member sends one note; the other two get exactly it, as a datagram in their
    // own encoding, and nobody gets their own.
    for from in 0..members.len() {
        let note = broadcast(&room.room_code, json!({ "from": from }));
        members[from]
            .send_datagram(note.to_string().as_bytes())
            .unwrap();
        for (i, m) in members.iter_mut().enumerate() {
            if i == from {
                continue;
            }
            let got = next_broadcast(m).await;
            assert_eq!(got.via, Via::Datagram);
            assert_eq!(
                got.raw.first() == Some(&b'{'),
                i != 1,
                "member {i}'s encoding"
            );
            assert!(
                matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({ "from": from })),
                "{got:?}"
            );
        }
    }
}

#[tokio::test]
async fn datagrams_with_a_foreign_or_broken_session_header_are_dropped() {
    let s = TestServer::start().await;
    let (mut a, mut b, room) = room_of_two(&s, "wt", "wt").await;
    let note = |n: u32| {
        broadcast(&room.room_code, json!({ "n": n }))
            .to_string()
            .into_bytes()
    };
    // Raw QUIC datagrams, below wtransport: a valid event behind another session's
    // quarter stream id, then a truncated header. The server must drop both.
    let conn = a.wt_connection().unwrap();
    let quarter = conn.session_id().into_u64() / 4;
    let mut foreign = vec![(quarter + 1) as u8];
    foreign.extend_from_slice(&note(1));
    conn.quic_connection()
        .send_datagram(foreign.into())
        .unwrap();
    conn.quic_connection()
        .send_datagram(vec![0x7b].into())
        .unwrap();
    // A proper datagram after them is the first (and only) one B sees.
    a.send_datagram(&note(2)).unwrap();
    let got = next_broadcast(&mut b).await;
    assert!(
        matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({"n": 2})),
        "{got:?}"
    );
    // A's session carries on.
    a.leave(&room.room_code).await.unwrap();
}

#[tokio::test]
async fn control_stream_framing_edge_cases() {
    let s = TestServer::start_with(|c| c.max_message_bytes = 256).await;
    let mut a = s.wt().await;
    // Blank lines are ignored, CRLF accepted, a message split across writes is reassembled.
    a.send_raw(b"\n\r\n  \n").await.unwrap();
    a.send_raw(b"{\"event\":\"session:create\",").await.unwrap();
    a.send_raw(b"\"data\":{\"name\":\"A\"},\"id\":1}\r\n")
        .await
        .unwrap();
    let r = a.next().await.unwrap();
    assert!(matches!(r.event(), ServerEvent::Created(_)), "{r:?}");
    assert_eq!(r.message.id, Some(json!(1)));
    // A line over the limit answers payload_too_large; the next line is read normally.
    let long = format!(
        "{{\"event\":\"x\",\"data\":{{\"pad\":\"{}\"}}}}\n",
        "y".repeat(400)
    );
    a.send_raw(long.as_bytes()).await.unwrap();
    a.send_raw(b"{\"event\":\"nope\",\"data\":{}}\n")
        .await
        .unwrap();
    expect_error(&mut a, ErrorCode::PayloadTooLarge, "the long line").await;
    expect_error(&mut a, ErrorCode::InvalidMessage, "the line after it").await;
    // Exactly at the limit is fine (the newline does not count).
    let base = json!({"event":"nope","data":{"p":""}}).to_string().len();
    let exact = json!({"event":"nope","data":{"p": "z".repeat(256 - base)}}).to_string();
    assert_eq!(exact.len(), 256);
    a.send_text(&exact).await.unwrap();
    expect_error(&mut a, ErrorCode::InvalidMessage, "a line at the limit").await;
    // Invalid UTF-8 on a line answers invalid_message.
    a.send_raw(b"{\"event\":\"\xff\"}\n").await.unwrap();
    expect_error(&mut a, ErrorCode::InvalidMessage, "invalid UTF-8").await;
}

#[tokio::test]
async fn a_second_bidirectional_stream_is_refused() {
    let s = TestServer::start().await;
    let mut a = s.wt().await;
    let conn = a.wt_connection().unwrap().clone();
    let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
    let _ = send
        .write_all(b"{\"event\":\"session:create\",\"data\":{\"name\":\"X\"}}\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(T, recv.read(&mut buf))
        .await
        .expect("answered in time");
    assert!(read.is_err(), "the second stream is reset, got {read:?}");
    // The control stream still works.
    create(&mut a, "A").await;
}

#[tokio::test]
async fn finishing_the_control_stream_leaves_and_closes_the_session() {
    let s = TestServer::start().await;
    let (mut b, mut a, aj) = room_of_two(&s, "ws", "wt").await;
    a.close().await.unwrap();
    assert_eq!(
        next_event(&mut b).await,
        ServerEvent::UserLeft {
            user_id: aj.user_id
        }
    );
    let closed = a.wait_closed(T).await.unwrap();
    assert_eq!(
        closed,
        Closed::WebTransport {
            code: 0,
            reason: "closed by peer".into()
        }
    );
}

#[tokio::test]
async fn unknown_path_and_unknown_encoding_are_refused() {
    let s = TestServer::start().await;
    let base = s.server.wt_url();
    let other = base.replace("/jam", "/nope");
    let hash = s.server.cert_hash();
    assert!(Client::connect_wt(&other, &hash, Encoding::Json)
        .await
        .is_err());
    let bad_enc = format!("{base}?encoding=xml");
    assert!(Client::connect_wt(&bad_enc, &hash, Encoding::Json)
        .await
        .is_err());
    let wrong_hash = "00".repeat(32);
    assert!(Client::connect_wt(&base, &wrong_hash, Encoding::Json)
        .await
        .is_err());
    // Via /connect, the published hash works.
    let mut c = Client::connect_via(&s.http_base(), Encoding::Json)
        .await
        .unwrap();
    create(&mut c, "ok").await;
}

#[tokio::test]
async fn websocket_frame_rules() {
    let s = TestServer::start().await;
    let mut watcher = s.ws().await;
    let room = create(&mut watcher, "W").await;

    // The subprotocol is accepted when offered.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        s.server.ws_url(),
    )
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "jam.v1".parse().unwrap());
    let (mut raw, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "jam.v1"
    );

    // Invalid UTF-8 in a text frame closes with 1007. Write the frame by hand (masked).
    let frame = [0x81u8, 0x82, 0, 0, 0, 0, 0xff, 0xfe];
    match raw.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(&frame).await.unwrap(),
        _ => unreachable!(),
    }
    let code = close_code(&mut raw).await;
    assert_eq!(code, Some(1007));

    // A frame over 1 MiB closes with 1009 (when the close frame gets through).
    let (mut big, _) = tokio_tungstenite::connect_async(s.server.ws_url())
        .await
        .unwrap();
    let _ = big.send(Message::text("x".repeat(1_100_000))).await;
    let code = close_code(&mut big).await;
    assert!(matches!(code, Some(1009) | None), "got {code:?}");

    // Nobody else was harmed.
    let mut other = s.ws().await;
    other.join(&room.room_code, "O", "").await.unwrap();
    other
        .broadcast(&room.room_code, "note", &json!(1))
        .await
        .unwrap();
    next_broadcast(&mut watcher).await;
}

/// A raw WebSocket that joins `room` as `name` and is then never read again (no pongs,
/// no draining of its socket).
async fn join_without_reading(
    s: &TestServer,
    room: &str,
    name: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.server.ws_url())
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"event":"session:join","data":{"roomCode": room, "name": name}}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    loop {
        match tokio::time::timeout(T, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_is_cut_off_and_the_room_carries_on() {
    let s = TestServer::start_with(|c| {
        c.outbox_capacity = 64;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut sender = s.ws().await;
    let mut reader = s.wt().await;
    let room = create(&mut sender, "S").await;
    reader.join(&room.room_code, "R", "").await.unwrap();
    // The stalled member: a WebSocket that joins and then never reads again.
    let stalled = join_without_reading(&s, &room.room_code, "Stall").await;
    let joined = reader
        .wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
        .await
        .unwrap();
    let ServerEvent::UserJoined(stalled_user) = joined.message.event else {
        unreachable!()
    };

    // Send ~32 MB of reliable events, far more than socket buffers hold, in windows of 16
    // that the healthy reader must receive before the next window goes out: its queue never
    // holds more than 16, while the stalled member's queue overflows.
    let pad = "p".repeat(15_000);
    let n = 2_000;
    let mut received = 0;
    let mut cut_off = false;
    let run = async {
        for window in 0..n / 16 {
            for i in window * 16..(window + 1) * 16 {
                sender
                    .broadcast(&room.room_code, "note", &json!({"i": i, "pad": pad}))
                    .await
                    .unwrap();
            }
            while received < (window + 1) * 16 {
                let r = reader.next().await.expect("reader keeps receiving");
                match r.event() {
                    ServerEvent::Broadcast { payload, .. } => {
                        assert_eq!(payload["i"], json!(received), "in order, none lost");
                        received += 1;
                    }
                    ServerEvent::UserAway { user_id, .. } if *user_id == stalled_user.id => {
                        cut_off = true
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        if !cut_off {
            let left = reader
                .wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
                .await
                .expect("the stalled member is cut off");
            assert_eq!(
                left.message.event,
                ServerEvent::UserAway {
                    user_id: stalled_user.id.clone(),
                    reason: Some(jam_protocol::AwayReason::Disconnected),
                }
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the room carries on while one member stalls");
    assert_eq!(received, n);
    assert!(s.server.stats().snapshot().slow_consumers >= 1);
    drop(stalled);
}

#[tokio::test]
async fn silent_and_vanished_peers_are_dropped() {
    let s = TestServer::start_with_peer_timeout(Duration::from_millis(800)).await;
    let mut host = s.wt().await;
    let room = create(&mut host, "H").await;
    // A WebSocket peer that never reads, so never answers pings: silent.
    let _silent = join_without_reading(&s, &room.room_code, "Quiet").await;
    let ServerEvent::UserJoined(quiet) = next_event(&mut host).await else {
        panic!()
    };
    let left = host
        .wait_for(Duration::from_secs(5), |r| {
            matches!(r.event(), ServerEvent::UserAway { .. })
        })
        .await
        .expect("the silent peer is dropped");
    assert_eq!(
        left.message.event,
        ServerEvent::UserAway {
            user_id: quiet.id,
            reason: Some(jam_protocol::AwayReason::Disconnected)
        }
    );

    // A WebSocket peer whose TCP connection vanishes without a close frame.
    let mut gone = s.ws().await;
    let gj = gone.join(&room.room_code, "Gone", "").await.unwrap();
    next_event(&mut host).await;
    drop(gone);
    assert_eq!(
        next_event(&mut host).await,
        ServerEvent::UserAway {
            user_id: gj.user_id,
            reason: Some(jam_protocol::AwayReason::Disconnected),
        }
    );

    // A live client with keep-alives is not dropped. This is about time itself: no
    // message can mark the moment a peer would have been dropped, so the test waits out
    // the timeout (a bounded wait). Then the barrier: what alive sends now is the next
    // thing the host hears, so no user-left came before it, and alive is still in the room.
    let mut alive = s.ws().await;
    alive.join(&room.room_code, "Alive", "").await.unwrap();
    next_event(&mut host).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alive
        .broadcast(&room.room_code, "still here", &json!(1))
        .await
        .unwrap();
    assert!(
        matches!(next_event(&mut host).await, ServerEvent::Broadcast { event_name, .. } if event_name == "still here"),
        "the live client is still in the room"
    );
}

#[tokio::test]
async fn http_endpoints() {
    let s = TestServer::start().await;
    let base = s.http_base();
    let (status, body) = http_get(&format!("{base}/healthz")).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()));

    let wt_port = s.server.wt_addr().port();
    let ws_port = s.server.http_addr().port();
    for host in ["localhost", "127.0.0.1", "[::1]"] {
        let (status, body) = http_get_with_host(
            &format!("{base}/connect"),
            Some(&format!("{host}:{ws_port}")),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        // The node id (docs/protocol.md §12): random for a server started without one.
        let node = v.as_object_mut().unwrap().remove("node");
        assert!(
            node.as_ref()
                .and_then(Value::as_str)
                .is_some_and(|n| n.len() == 16),
            "{node:?}"
        );
        assert_eq!(
            v,
            json!({
                "webtransport": {
                    "url": format!("https://{host}:{wt_port}/jam"),
                    "certificateHashes": [{"algorithm": "sha-256", "value": s.server.cert_hash()}],
                },
                "features": ["resume", "clock", "latency", "tempo", "origins"],
                "websocket": {"url": format!("ws://{host}:{ws_port}/ws")},
                "protocol": 1,
            })
        );
        let hash = v["webtransport"]["certificateHashes"][0]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    let (status, body) = http_get(&format!("{base}/")).await.unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body)
        .to_lowercase()
        .contains("<html"));
    let (status, _) = http_get(&format!("{base}/no-such-file.js")).await.unwrap();
    assert_eq!(status, 404);
    let (status, _) = http_get(&format!("{base}/e2e/package.json")).await.unwrap();
    assert_eq!(status, 404, "test files are not served");
    let (status, body) = http_get(&format!("{base}/stats")).await.unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["deliveries"].is_u64() && v["rooms"].is_u64());
}

#[tokio::test]
async fn certificate_renewal_changes_the_published_hash_for_new_sessions() {
    let s = TestServer::start().await;
    let old = s.server.cert_hash();
    let mut before = s.wt().await;
    let room = create(&mut before, "Before").await;
    let new = s
        .server
        .renew_certificate()
        .unwrap()
        .expect("dev certificate renews");
    assert_ne!(old, new);
    new_certificate_takes_over(&s, &old, &new, &room.room_code, &mut before).await;
}

/// After a switch from the certificate `old` to `new`: `/connect` lists `new`, a new
/// session with the old hash is refused and one with the new joins `room`, and `before`,
/// opened on the old certificate, carries on (it hears the join).
async fn new_certificate_takes_over(
    s: &TestServer,
    old: &str,
    new: &str,
    room: &str,
    before: &mut Client,
) {
    let (_, body) = s.get("/connect").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["webtransport"]["certificateHashes"][0]["value"],
        json!(new)
    );
    // New sessions get the new certificate: the old hash no longer matches.
    assert!(Client::connect_wt(&s.server.wt_url(), old, Encoding::Json)
        .await
        .is_err());
    let mut after = Client::connect_wt(&s.server.wt_url(), new, Encoding::Json)
        .await
        .unwrap();
    after.join(room, "After", "").await.unwrap();
    // The session opened before the switch carries on.
    assert!(matches!(
        next_event(before).await,
        ServerEvent::UserJoined(_)
    ));
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_of_both_transports() {
    let s = TestServer::start().await;
    let mut ws = s.ws().await;
    let mut wt = s.wt().await;
    let room = create(&mut ws, "W").await;
    wt.join(&room.room_code, "T", "").await.unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(6), s.server.shutdown())
        .await
        .expect("shutdown finishes in time");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        ws.wait_closed(T).await.unwrap(),
        Closed::WebSocket {
            code: 1001,
            reason: "server shutting down".into()
        }
    );
    assert_eq!(
        wt.wait_closed(T).await.unwrap(),
        Closed::WebTransport {
            code: 1,
            reason: "server shutting down".into()
        }
    );
}

#[tokio::test]
async fn a_vanished_webtransport_peer_is_dropped_after_the_timeout() {
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(1)).await;
    let mut host = s.ws().await;
    let room = create(&mut host, "H").await;
    let (mut ghost, dark) = s.silenceable("wt").await;
    let gj = ghost.join(&room.room_code, "Ghost", "").await.unwrap();
    assert!(matches!(
        next_event(&mut host).await,
        ServerEvent::UserJoined(_)
    ));
    dark.store(true, std::sync::atomic::Ordering::Relaxed);
    let started = std::time::Instant::now();
    let left = host
        .wait_for(Duration::from_secs(5), |r| {
            matches!(r.event(), ServerEvent::UserAway { .. })
        })
        .await
        .expect("the vanished peer is dropped");
    assert_eq!(
        left.message.event,
        ServerEvent::UserAway {
            user_id: gj.user_id,
            reason: Some(jam_protocol::AwayReason::Disconnected),
        }
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the timeout"
    );
    drop(ghost);
}

#[tokio::test]
async fn the_development_certificate_is_stored_and_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let first = TestServer::start_with(|c| {
        c.ephemeral_cert = false;
        c.cert_dir = path.clone();
    })
    .await;
    let hash = first.server.cert_hash();
    first.server.shutdown().await;
    assert!(dir.path().join("dev-cert.pem").exists());
    let second = TestServer::start_with(|c| {
        c.ephemeral_cert = false;
        c.cert_dir = path.clone();
    })
    .await;
    assert_eq!(second.server.cert_hash(), hash);
    let mut c = second.wt().await;
    create(&mut c, "Again").await;
}

#[tokio::test]
async fn certificate_files_are_reloaded_when_they_change_and_open_sessions_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write = |pair: &(String, String)| {
        std::fs::write(&key, &pair.1).unwrap();
        std::fs::write(&cert, &pair.0).unwrap();
    };
    let (first_id, first_cert, first_key) = jam_server::tls::make_dev().unwrap();
    write(&(first_cert, first_key));
    let (c, k) = (cert.clone(), key.clone());
    let s = TestServer::start_with(move |cfg| {
        cfg.cert = Some(c);
        cfg.key = Some(k);
        cfg.cert_check_interval = Duration::from_millis(100);
    })
    .await;
    let old = first_id.hash_hex.clone();
    assert_eq!(s.server.cert_hash(), old);
    let mut before = Client::connect_wt(&s.server.wt_url(), &old, Encoding::Json)
        .await
        .unwrap();
    let room = create(&mut before, "Before").await;

    // A renewal writes new files: the server takes them without a restart.
    let (second_id, second_cert, second_key) = jam_server::tls::make_dev().unwrap();
    write(&(second_cert, second_key));
    let new = second_id.hash_hex.clone();
    let deadline = std::time::Instant::now() + T;
    while s.server.cert_hash() != new {
        assert!(std::time::Instant::now() < deadline, "reloaded in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    new_certificate_takes_over(&s, &old, &new, &room.room_code, &mut before).await;

    // A half-written file is not taken: the current certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot yet\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.server.cert_hash(), new);
    Client::connect_wt(&s.server.wt_url(), &new, Encoding::Json)
        .await
        .expect("still served");
}

/// The hashes `/connect` lists now.
async fn advertised(s: &TestServer) -> Vec<String> {
    let (_, body) = s.get("/connect").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["webtransport"]["certificateHashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["value"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `/connect` until `done` holds of its hashes (bounded).
async fn advertised_until(s: &TestServer, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let hashes = advertised(s).await;
        if done(&hashes) {
            return hashes;
        }
        assert!(std::time::Instant::now() < deadline, "{hashes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn managed_certificates_rotate_announcing_the_next_hash_first() {
    // Certificates of 8 s: the next is announced 5 s in, served from 6 s.
    let s = TestServer::start_with(|c| c.dev_cert_lifetime = Duration::from_secs(8)).await;
    let first = s.server.cert_hash();
    assert_eq!(advertised(&s).await, vec![first.clone()]);
    let mut before = Client::connect_wt(&s.server.wt_url(), &first, Encoding::Json)
        .await
        .unwrap();
    let room = create(&mut before, "Before").await;

    // The overlap: both hashes listed, the first still served.
    let both = advertised_until(&s, |h| h.len() == 2).await;
    assert_eq!(both[0], first);
    let next = both[1].clone();
    assert_ne!(next, first);
    // The switch: only the next is listed, and served.
    advertised_until(&s, |h| h == std::slice::from_ref(&next)).await;
    assert_eq!(s.server.cert_hash(), next);
    let mut after = Client::connect_wt(&s.server.wt_url(), &next, Encoding::Json)
        .await
        .unwrap();
    after.join(&room.room_code, "After", "").await.unwrap();
    // The session opened on the first certificate carries on.
    assert!(matches!(
        next_event(&mut before).await,
        ServerEvent::UserJoined(_)
    ));
}

#[tokio::test]
async fn a_certificate_checked_by_name_is_offered_without_a_hash() {
    // A 90-day certificate, as Let's Encrypt gives: a browser given its hash would refuse
    // it (hashes are for ECDSA P-256 of at most 14 days), so /connect offers none and the
    // browser checks it by name.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(90);
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let s = TestServer::start_with(move |cfg| {
        cfg.cert = Some(c);
        cfg.key = Some(k);
    })
    .await;
    let hashes = advertised(&s).await;
    assert!(hashes.is_empty(), "{hashes:?}");
    // The development certificate (13 days, P-256) is offered by hash.
    let dev = TestServer::start().await;
    assert_eq!(advertised(&dev).await, vec![dev.server.cert_hash()]);
}
