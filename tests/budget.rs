//! The server's room and history budgets against real clients on loopback: the global room
//! cap, the per-address creation budget, the history budget that trims the least recently
//! written histories first (a resume then answers `replayed: false`), the bound on resuming
//! and dropping a seat again, and an attack from one address that creates rooms, fills
//! their histories and drops its connections while a player from another address (127.0.0.2:
//! IPv4 loopback is a /8) still creates a room and plays.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use jam_protocol::{ErrorCode, ServerEvent};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The tests of this file run one at a time: the attack reads the process's resident
/// memory, which the others would add to.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of the gauge `name` in a scrape of `/metrics`.
async fn gauge(s: &TestServer, name: &str) -> f64 {
    let (status, body) = s.get("/metrics").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A WebSocket to the server from the loopback address `source`, e.g. `127.0.0.2`.
async fn ws_from(s: &TestServer, source: &str) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(s.server.http_addr()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(s.server.ws_url(), tcp)
        .await
        .unwrap();
    ws
}

/// Sends `envelope` and returns the next message.
async fn ask(ws: &mut WebSocketStream<TcpStream>, envelope: Value) -> Value {
    ws.send(Message::text(envelope.to_string())).await.unwrap();
    next_json(ws).await
}

/// The next text message, parsed, within [`T`].
async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    loop {
        let msg = tokio::time::timeout(T, ws.next())
            .await
            .expect("an answer in time")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn create_msg(name: &str) -> Value {
    json!({"event": "session:create", "data": {"name": name}})
}

/// The `error` code of `answer`, or its event.
fn outcome(answer: &Value) -> String {
    match answer["event"].as_str() {
        Some("error") => answer["data"]["code"].as_str().unwrap().to_owned(),
        other => other.unwrap_or_default().to_owned(),
    }
}

#[tokio::test]
async fn rooms_have_a_global_cap_and_each_address_a_creation_budget() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with(|c| {
        c.max_rooms = 3;
        c.room_create_burst = 2;
        c.room_creates_per_minute = 1;
    })
    .await;
    // Two rooms from 127.0.0.1, on separate connections; the third is over its budget.
    let mut a = s.ws().await;
    let mut b = s.ws().await;
    let mut c = s.ws().await;
    let room_a = create(&mut a, "A").await;
    create(&mut b, "B").await;
    let err = c.create("C", "").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited), "{err}");
    // Another address still has its own.
    let mut d = ws_from(&s, "127.0.0.2").await;
    assert_eq!(
        outcome(&ask(&mut d, create_msg("D")).await),
        "session:created"
    );
    // The server is full now, for every address.
    let mut e = ws_from(&s, "127.0.0.3").await;
    assert_eq!(outcome(&ask(&mut e, create_msg("E")).await), "rate_limited");
    assert_eq!(gauge(&s, "jam_rooms").await, 3.0);
    // A room that ends gives its place back.
    a.leave(&room_a.room_code).await.unwrap();
    assert_eq!(
        outcome(&ask(&mut e, create_msg("E")).await),
        "session:created"
    );
}

#[tokio::test]
async fn the_history_budget_trims_the_least_recently_written_first() {
    let _serial = SERIAL.lock().await;
    const BUDGET: u64 = 64 * 1024;
    let s = TestServer::start_with(|c| {
        c.history_budget = BUDGET;
        c.history_bytes = 60_000;
    })
    .await;
    let payload = json!("x".repeat(14_000));
    // Bo's seat is away, with a history to catch up on.
    let (mut a, b, room) = room_of_two(&s, "ws", "ws").await;
    let token = room.resume_token.clone();
    let last = b.last_seq();
    drop(b);
    let away = a.next().await.unwrap();
    assert!(matches!(away.message.event, ServerEvent::UserAway { .. }));
    for _ in 0..2 {
        a.broadcast(&room.room_code, "n", &payload).await.unwrap();
    }
    a.ping(0.0).await.unwrap();
    let ana_room = gauge(&s, "jam_history_bytes").await;
    // Another room writes more since: together they pass the budget.
    let mut c = s.ws().await;
    let other = create(&mut c, "Cy").await;
    for _ in 0..3 {
        c.broadcast(&other.room_code, "n", &payload).await.unwrap();
    }
    c.ping(0.0).await.unwrap();
    let started = Instant::now();
    loop {
        let kept = gauge(&s, "jam_history_bytes").await;
        if kept <= (BUDGET / 8 * 7) as f64 {
            assert!(kept > 0.0, "the newest history is kept");
            break;
        }
        assert!(started.elapsed() < T, "{kept} bytes of history kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ana_room > 28_000.0, "{ana_room}");
    // Ana's room was written first: its history went, so Bo gets the snapshot only.
    let mut b = s.ws().await;
    let back = b.resume(&room.room_code, &token, last).await.unwrap();
    assert_eq!(back.replayed, Some(false));
    assert_eq!(back.participants.len(), 2);
}

#[tokio::test]
async fn resuming_and_dropping_a_seat_renews_its_hold_a_bounded_number_of_times() {
    let _serial = SERIAL.lock().await;
    const WINDOW: Duration = Duration::from_millis(1000);
    let s = TestServer::start_with(|c| c.resume_window = WINDOW).await;
    // The restart window (one resume window from the start) would recreate the room.
    let mut a = s.ws().await;
    let room = create(&mut a, "A").await;
    let mut token = room.resume_token.clone();
    a.close().await.unwrap();
    drop(a);
    let first_drop = Instant::now();
    let mut returns = 0;
    let gone = loop {
        let mut c = s.ws().await;
        match c.resume(&room.room_code, &token, None).await {
            Ok(info) => {
                token = info.resume_token;
                returns += 1;
                c.close().await.unwrap();
            }
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::ResumeFailed), "{e}");
                break first_drop.elapsed();
            }
        }
        assert!(
            first_drop.elapsed() < 8 * WINDOW,
            "resume and drop kept the room alive ({returns} returns)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Three fresh windows at most (docs/protocol.md §6), all within the first second.
    assert!(gone < 3 * WINDOW, "gone after {gone:?}, {returns} returns");
    assert_eq!(gauge(&s, "jam_rooms").await, 0.0);
}

/// Creates a room, fills its history with about 1 MiB, and drops the connection, over and
/// over until `until`; returns the rooms created.
async fn fill_and_drop(s: &TestServer, until: Instant) -> usize {
    let payload = json!("x".repeat(15_000));
    let mut rooms = 0;
    while Instant::now() < until {
        let mut c = s.ws().await;
        let Ok(room) = c.create("Flood", "").await else {
            continue;
        };
        rooms += 1;
        for _ in 0..70 {
            if c.broadcast(&room.room_code, "n", &payload).await.is_err() {
                break;
            }
        }
        // A round trip, so the server has read every broadcast before the drop.
        let _ = c.ping(0.0).await;
        c.abort();
    }
    rooms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_filled_and_dropped_from_one_address_stay_within_the_memory_budget() {
    let _serial = SERIAL.lock().await;
    const HISTORY: u64 = 16 * 1024 * 1024;
    // The per-address budgets (creations, away seats) are raised so that the global caps
    // are what hold: the same as many addresses attacking at once.
    let s = TestServer::start_with(|c| {
        c.history_budget = HISTORY;
        c.max_away_seats_per_address = 1_000_000;
        c.max_rooms = 1000;
        c.room_create_burst = 100_000;
        c.room_creates_per_minute = 100_000;
    })
    .await;
    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    let until = Instant::now() + Duration::from_secs(6);
    let attackers: Vec<_> = (0..16)
        .map(|_| {
            let s = &s;
            async move { fill_and_drop(s, until).await }
        })
        .collect();
    let attack = futures_util::future::join_all(attackers);
    tokio::pin!(attack);
    // Halfway through, a player from another address creates a room, a second joins,
    // and an event goes from one to the other.
    let player = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        let mut p = ws_from(&s, "127.0.0.2").await;
        let created = ask(&mut p, create_msg("Player")).await;
        assert_eq!(outcome(&created), "session:created");
        let code = created["data"]["roomCode"].as_str().unwrap().to_owned();
        let mut q = ws_from(&s, "127.0.0.2").await;
        let join = json!({"event": "session:join", "data": {"roomCode": code, "name": "Q"}});
        assert_eq!(outcome(&ask(&mut q, join).await), "session:joined");
        let note = json!({"event": "event:broadcast",
            "data": {"roomCode": code, "eventName": "note", "payload": {"n": 60}}});
        q.send(Message::text(note.to_string())).await.unwrap();
        loop {
            let got = next_json(&mut p).await;
            if got["event"] == "event:broadcast" {
                break;
            }
        }
        started.elapsed()
    };
    let (rooms, played) = tokio::join!(attack, player);
    let rooms: usize = rooms.into_iter().sum();
    let rss_growth = jam_server::metrics::resident_bytes()
        .unwrap()
        .saturating_sub(rss_before);
    let kept = gauge(&s, "jam_history_bytes").await;
    let live = gauge(&s, "jam_rooms").await;
    eprintln!(
        "{rooms} rooms filled and dropped; {live} live; history {kept} bytes; RSS grew {} MiB; \
         the other address played in {played:?}",
        rss_growth >> 20
    );
    assert!(rooms > 40, "the attack created {rooms} rooms");
    assert!(
        kept <= (HISTORY + HISTORY / 8) as f64,
        "{kept} bytes of history"
    );
    // The stated budget: the history budget and 48 MiB for everything else. Without the
    // history budget, the same run kept 140 MiB of history and RSS grew 139 MiB.
    assert!(
        rss_growth < HISTORY + 48 * 1024 * 1024,
        "RSS grew {rss_growth} bytes for {rooms} rooms of 1 MiB"
    );
    assert!(
        played < T,
        "the other address took {played:?} to create and play"
    );
}
