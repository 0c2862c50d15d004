//! `GET /metrics` scraped from a real server while real clients use it: the counters move
//! with what happens (events, deliveries, datagrams, errors, refusals, the fan-out
//! histogram), and the gauges (connections, rooms, seats) follow the clients and return to
//! 0 once everyone has gone.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jam_protocol::ServerEvent;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The text of one scrape.
async fn scrape(s: &TestServer) -> String {
    let (status, body) = s.get("/metrics").await;
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// The value of the sample `series` (its name and labels exactly as written, e.g.
/// `jam_seats{state="away"}`), or a panic naming what the scrape held.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Scrapes until `series` has `want` (the gauges follow connections that end on their
/// own time), for at most [`T`].
async fn wait_value(s: &TestServer, series: &str, want: f64) -> String {
    let started = Instant::now();
    loop {
        let text = scrape(s).await;
        if value(&text, series) == want {
            return text;
        }
        assert!(
            started.elapsed() < T,
            "{series} stayed at {} (want {want})",
            value(&text, series)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_follow_what_happens_and_gauges_return_to_zero() {
    let s = TestServer::start_with(|c| {
        c.allowed_origins = "https://jam.example.com".into();
        c.max_connections_per_address = 3;
    })
    .await;
    let before = scrape(&s).await;
    for series in [
        "jam_rooms",
        "jam_connections{transport=\"websocket\"}",
        "jam_connections{transport=\"webtransport\"}",
        "jam_seats{state=\"active\"}",
        "jam_events_received_total{path=\"reliable\"}",
        "jam_deliveries_total",
        "jam_fanout_seconds_count",
        "jam_errors_total{code=\"invalid_message\"}",
        "jam_connections_refused_total{reason=\"origin\"}",
    ] {
        assert_eq!(value(&before, series), 0.0, "{series}");
    }
    assert!(before.contains("# TYPE jam_fanout_seconds histogram"));
    assert!(value(&before, "process_resident_memory_bytes") > 1e6);

    // Two WebTransport members and one WebSocket member.
    let mut a = s.wt().await;
    let room = create(&mut a, "A").await;
    let mut b = s.wt().await;
    b.join(&room.room_code, "B", "").await.unwrap();
    let mut c = s.ws().await;
    c.join(&room.room_code, "C", "").await.unwrap();
    // A fourth connection from this address, and a page from another origin: refused.
    assert!(jam_client::Client::connect_ws(&s.server.ws_url())
        .await
        .is_err());
    let mut request = s.server.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    // One reliable event and one datagram from A; each reaches B and C.
    a.broadcast(&room.room_code, "n", &json!(1)).await.unwrap();
    a.broadcast_datagram(&room.room_code, "n", &json!(2))
        .unwrap();
    for r in [&mut b, &mut c] {
        let mut got = 0;
        while got < 2 {
            if let ServerEvent::Broadcast { .. } = next_event(r).await {
                got += 1;
            }
        }
    }
    // An error answer.
    c.send_text("{").await.unwrap();
    expect_error(&mut c, jam_protocol::ErrorCode::InvalidMessage, "c").await;

    let during = scrape(&s).await;
    let v = |series: &str| value(&during, series);
    assert_eq!(v("jam_rooms"), 1.0);
    assert_eq!(v("jam_connections{transport=\"websocket\"}"), 1.0);
    assert_eq!(v("jam_connections{transport=\"webtransport\"}"), 2.0);
    assert_eq!(v("jam_seats{state=\"active\"}"), 3.0);
    assert_eq!(v("jam_events_received_total{path=\"reliable\"}"), 1.0);
    assert_eq!(v("jam_events_received_total{path=\"datagram\"}"), 1.0);
    assert_eq!(v("jam_deliveries_total"), 4.0);
    assert!(v("jam_datagrams_sent_total") >= 1.0, "B gets A's datagram");
    assert_eq!(v("jam_errors_total{code=\"invalid_message\"}"), 1.0);
    assert_eq!(v("jam_connections_refused_total{reason=\"origin\"}"), 1.0);
    assert_eq!(
        v("jam_connections_refused_total{reason=\"address_limit\"}"),
        1.0
    );
    assert_eq!(v("jam_fanout_seconds_count"), 2.0);
    assert_eq!(v("jam_fanout_seconds_bucket{le=\"+Inf\"}"), 2.0);
    assert!(v("jam_fanout_seconds_sum") > 0.0);

    // C vanishes without a leave: its seat is away, held for a resume.
    c.close().await.unwrap();
    drop(c);
    a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
        .await
        .unwrap();
    let away = wait_value(&s, "jam_connections{transport=\"websocket\"}", 0.0).await;
    assert_eq!(value(&away, "jam_seats{state=\"away\"}"), 1.0);
    assert_eq!(value(&away, "jam_seats{state=\"active\"}"), 2.0);

    // A and B leave and go: the room ends once C's window is over; for now it holds C.
    b.leave(&room.room_code).await.unwrap();
    a.leave(&room.room_code).await.unwrap();
    drop((a, b));
    let after = wait_value(&s, "jam_connections{transport=\"webtransport\"}", 0.0).await;
    assert_eq!(value(&after, "jam_seats{state=\"active\"}"), 0.0);
    assert_eq!(
        value(&after, "jam_connections{transport=\"websocket\"}"),
        0.0
    );
}

#[tokio::test]
async fn rooms_and_seats_return_to_zero_after_everyone_leaves() {
    let s = TestServer::start().await;
    let (mut a, mut b, room) = room_of_two(&s, "ws", "wt").await;
    let during = scrape(&s).await;
    assert_eq!(value(&during, "jam_rooms"), 1.0);
    assert_eq!(value(&during, "jam_seats{state=\"active\"}"), 2.0);
    a.leave(&room.room_code).await.unwrap();
    b.leave(&room.room_code).await.unwrap();
    let after = scrape(&s).await;
    assert_eq!(value(&after, "jam_rooms"), 0.0);
    assert_eq!(value(&after, "jam_seats{state=\"active\"}"), 0.0);
    assert_eq!(value(&after, "jam_seats{state=\"away\"}"), 0.0);
}

#[tokio::test]
async fn rate_limits_are_counted_by_budget() {
    let s = TestServer::start_with(|c| {
        c.control_rate = 1;
        c.control_burst = 1;
        c.rate_limit = 1;
        c.rate_burst = 1;
    })
    .await;
    let mut c = s.ws().await;
    let room = create(&mut c, "A").await;
    let err = c.create("B", "").await.unwrap_err();
    assert_eq!(err.code(), Some(jam_protocol::ErrorCode::RateLimited));
    for i in 0..3 {
        c.broadcast(&room.room_code, "n", &json!(i)).await.unwrap();
    }
    expect_error(&mut c, jam_protocol::ErrorCode::RateLimited, "events").await;
    let text = scrape(&s).await;
    assert_eq!(
        value(&text, "jam_rate_limited_total{limit=\"room_requests\"}"),
        1.0
    );
    assert!(value(&text, "jam_rate_limited_total{limit=\"events\"}") >= 1.0);
    assert!(value(&text, "jam_errors_total{code=\"rate_limited\"}") >= 2.0);
}
