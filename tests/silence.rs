//! Silent seats (docs/protocol.md §11), over WebSocket and WebTransport: a heartbeating
//! connection that stops sending while it stays open turns its seat away with `reason:
//! "silent"` after the silence limit and back on the first thing heard; a connection that
//! ends while silent keeps its seat away without a second notice, its resume window
//! starting then; a connection that does not heartbeat never goes silent-away.
//!
//! "Stops sending" is a relay that holds everything the client sends (WebSocket: the bytes
//! wait in the relay; WebTransport: the packets are dropped and QUIC sends them again
//! later), so the client's socket stays open and nothing of it reaches the server.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create, TestServer, KINDS, T};
use jam_client::{Client, Received};
use jam_protocol::{AwayReason, ServerEvent, Status};
use jam_server::Config;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The silence limit of these tests (shorter than the default 3 s, to keep them quick).
const LIMIT: Duration = Duration::from_millis(800);

/// A server with the test's silence limit, and WebSocket pings and the peer timeout far
/// beyond the tests' length: only the client's own messages are heard.
fn quiet_pings(limit: Duration) -> impl FnOnce(&mut Config) {
    move |c| {
        c.silence_limit = limit;
        c.ping_interval = Duration::from_secs(60);
        c.peer_timeout = Duration::from_secs(120);
    }
}

/// A link that can be held: while held, nothing the client sends reaches the server.
enum Link {
    /// A TCP relay that stops forwarding (both ways) and forwards what waited when let go.
    Tcp(watch::Sender<bool>),
    /// A UDP relay that drops every packet (both ways) while dark.
    Udp(Arc<AtomicBool>),
}

impl Link {
    fn hold(&self, held: bool) {
        match self {
            Link::Tcp(tx) => {
                let _ = tx.send(held);
            }
            Link::Udp(dark) => dark.store(held, Ordering::Relaxed),
        }
    }
}

/// Copies `from` to `to`, waiting before each write while the link is held.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || held.wait_for(|h| !h).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A client of `kind` behind a link that can be held.
async fn held_client(s: &TestServer, kind: &str) -> (Client, Link) {
    match kind {
        "ws" => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = watch::channel(false);
            let server = s.server.http_addr();
            tokio::spawn(async move {
                let Ok((front, _)) = listener.accept().await else {
                    return;
                };
                let back = tokio::net::TcpStream::connect(server).await.unwrap();
                let (fr, fw) = front.into_split();
                let (br, bw) = back.into_split();
                tokio::spawn(forward(fr, bw, rx.clone()));
                forward(br, fw, rx).await;
            });
            let c = Client::connect_ws(&format!("ws://{addr}/ws"))
                .await
                .expect("ws connects through the relay");
            (c, Link::Tcp(tx))
        }
        _ => {
            let (c, dark) = s.silenceable(kind).await;
            (c, Link::Udp(dark))
        }
    }
}

fn away_of(r: &Received) -> Option<(&str, Option<AwayReason>)> {
    match r.event() {
        ServerEvent::UserAway { user_id, reason } => Some((user_id, *reason)),
        _ => None,
    }
}

/// The next presence notice (away or back) or relayed event `c` hears.
async fn next_notice(c: &mut Client) -> Received {
    c.wait_for(T, |r| {
        matches!(
            r.event(),
            ServerEvent::UserAway { .. }
                | ServerEvent::UserBack { .. }
                | ServerEvent::Broadcast { .. }
        )
    })
    .await
    .unwrap()
}

/// Three `clock:ping`s: the connection is heartbeating. Returns when the last was sent.
async fn heartbeat(c: &mut Client) -> Instant {
    let mut sent = Instant::now();
    for i in 0..3 {
        sent = Instant::now();
        c.ping(f64::from(i)).await.expect("pong");
    }
    sent
}

#[tokio::test]
async fn a_heartbeating_seat_that_goes_quiet_is_away_silent_and_back_on_the_first_thing_heard() {
    for kind in KINDS {
        let s = TestServer::start_with(quiet_pings(LIMIT)).await;
        let mut a = s.ws().await;
        let room = create(&mut a, "A").await;
        let code = room.room_code.clone();
        let (mut b, link) = held_client(&s, kind).await;
        let joined = b.join(&code, "B", "").await.expect("b joins");
        a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
            .await
            .unwrap();

        let last_ping = heartbeat(&mut b).await;
        link.hold(true);
        let away = a.wait_for(T, |r| away_of(r).is_some()).await.unwrap();
        assert_eq!(
            away_of(&away),
            Some((joined.user_id.as_str(), Some(AwayReason::Silent))),
            "{kind}"
        );
        assert!(away.message.seq.is_some(), "{kind}: a room message");
        assert!(
            last_ping.elapsed() >= LIMIT,
            "{kind}: away {:?} after the last ping, before the limit",
            last_ping.elapsed()
        );
        // A newcomer sees the seat away.
        let mut c = s.ws().await;
        let seen = c.join(&code, "C", "").await.expect("c joins");
        let b_seen = seen.participants.iter().find(|p| p.id == joined.user_id);
        assert_eq!(b_seen.map(|p| p.status), Some(Status::Away), "{kind}");
        // The silent seat still receives: what A says meanwhile reaches B once the link
        // lets it through.
        a.broadcast(&code, "chat", &json!({"text": "still there?"}))
            .await
            .unwrap();
        link.hold(false);
        let chat = b
            .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
            .await
            .unwrap();
        assert!(chat.message.seq.is_some(), "{kind}");

        // The first thing heard turns it back, before the note itself is relayed.
        b.broadcast(&code, "note", &json!({"n": 1})).await.unwrap();
        let back = next_notice(&mut a).await;
        assert_eq!(
            back.event(),
            &ServerEvent::UserBack {
                user_id: joined.user_id.clone()
            },
            "{kind}"
        );
        assert!(back.message.seq.is_some(), "{kind}");
        let note = a
            .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
            .await
            .unwrap();
        assert!(
            matches!(note.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == joined.user_id),
            "{kind}"
        );
        // Nothing was replayed to B: its connection never ended.
        c.broadcast(&code, "marker", &json!({})).await.unwrap();
        let next = b
            .wait_for(T, |r| {
                matches!(
                    r.event(),
                    ServerEvent::Broadcast { .. } | ServerEvent::Resumed(_)
                )
            })
            .await
            .unwrap();
        assert!(
            matches!(next.event(), ServerEvent::Broadcast { event_name, .. } if event_name == "marker"),
            "{kind}: {:?}",
            next.event()
        );
        // It can fall silent again: the rule holds for every silence.
        heartbeat(&mut b).await;
        link.hold(true);
        let again = a.wait_for(T, |r| away_of(r).is_some()).await.unwrap();
        assert_eq!(
            away_of(&again).map(|(_, reason)| reason),
            Some(Some(AwayReason::Silent)),
            "{kind}"
        );
        link.hold(false);
    }
}

#[tokio::test]
async fn a_silent_seat_whose_connection_ends_stays_away_unannounced_and_its_window_starts_then() {
    // The resume window is shorter than the silence before the connection ends: the seat
    // is still held afterwards only if its window started at the end, not at the silence.
    let window = Duration::from_millis(1500);
    for kind in KINDS {
        let s = TestServer::start_with(|c| {
            quiet_pings(LIMIT)(c);
            c.resume_window = window;
        })
        .await;
        let mut a = s.ws().await;
        let room = create(&mut a, "A").await;
        let code = room.room_code.clone();
        let mut b = s.client(kind).await;
        let joined = b.join(&code, "B", "").await.expect("b joins");
        a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
            .await
            .unwrap();
        heartbeat(&mut b).await;
        // B sends nothing more (its socket open, nothing to send).
        let away = a.wait_for(T, |r| away_of(r).is_some()).await.unwrap();
        assert_eq!(
            away_of(&away).map(|(_, reason)| reason),
            Some(Some(AwayReason::Silent)),
            "{kind}"
        );
        // Time passes beyond the resume window while the seat is silent.
        tokio::time::sleep(window + Duration::from_millis(300)).await;
        let open = s.server.stats().open_connections();
        let last_seq = b.last_seq();
        b.abort();
        let deadline = Instant::now() + T;
        while s.server.stats().open_connections() >= open {
            assert!(Instant::now() < deadline, "{kind}: the connection ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The seat is held from now on: a resume takes it back, and A hears only that.
        let mut b2 = s.client(kind).await;
        let resumed = b2
            .resume(&code, &joined.resume_token, last_seq)
            .await
            .expect("the seat is held: its window started when the connection ended");
        assert_eq!(resumed.user_id, joined.user_id);
        let next = next_notice(&mut a).await;
        assert_eq!(
            next.event(),
            &ServerEvent::UserBack {
                user_id: joined.user_id.clone()
            },
            "{kind}: no second user-away"
        );
    }
}

#[tokio::test]
async fn a_connection_that_does_not_heartbeat_never_goes_silent_away() {
    for kind in KINDS {
        let s = TestServer::start_with(quiet_pings(LIMIT)).await;
        let mut a = s.ws().await;
        let room = create(&mut a, "A").await;
        let code = room.room_code.clone();
        let (mut b, link) = held_client(&s, kind).await;
        b.join(&code, "B", "").await.expect("b joins");
        a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
            .await
            .unwrap();
        // Two pings are no heartbeat.
        b.ping(0.0).await.unwrap();
        b.ping(1.0).await.unwrap();
        link.hold(true);
        let heard = a.recv_timeout(LIMIT * 3).await;
        assert!(
            heard.is_err(),
            "{kind}: nothing is said of a seat that does not heartbeat: {:?}",
            heard.map(|r| r.message.event)
        );
        link.hold(false);
    }
}

#[tokio::test]
async fn a_zero_silence_limit_turns_the_rule_off() {
    let s = TestServer::start_with(quiet_pings(Duration::ZERO)).await;
    let mut a = s.ws().await;
    let room = create(&mut a, "A").await;
    let (mut b, link) = held_client(&s, "ws").await;
    b.join(&room.room_code, "B", "").await.expect("b joins");
    a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
        .await
        .unwrap();
    heartbeat(&mut b).await;
    link.hold(true);
    let heard = a.recv_timeout(LIMIT * 3).await;
    assert!(
        heard.is_err(),
        "no silence rule: {:?}",
        heard.map(|r| r.message.event)
    );
    link.hold(false);
}
