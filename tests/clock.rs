//! `clock:ping` → `clock:pong` (docs/protocol.md §7): on each path, in and out of rooms, the
//! per-connection budget, and malformed pings.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jam_client::{to_msgpack, Encoding, Via};
use jam_protocol::{ErrorCode, ServerEvent};
use serde_json::json;

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[tokio::test]
async fn a_ping_is_answered_with_the_server_clock_in_and_out_of_rooms() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut c = s.client(kind).await;
        for in_room in [false, true] {
            let before = unix_ms();
            let server_time = c.ping(-12.5).await.unwrap();
            let after = unix_ms();
            // Anchored to Unix time at start: close to this machine's clock.
            assert!(
                server_time > before - 1000.0 && server_time < after + 1000.0,
                "{kind}: {server_time} not near {before}..{after}"
            );
            if !in_room {
                create(&mut c, "Ana").await;
            }
        }
        // t0 and the id come back as sent.
        c.send_text(r#"{"event":"clock:ping","data":{"t0":1.25e3},"id":"p"}"#)
            .await
            .unwrap();
        let r = c.next().await.unwrap();
        assert_eq!(wire_id(&r), Some(json!("p")));
        assert!(matches!(r.event(), ServerEvent::Pong { t0, .. } if *t0 == json!(1250.0)));
        let raw = String::from_utf8_lossy(&r.raw);
        assert!(
            raw.contains(r#""t0":1.25e3"#),
            "{kind}: t0 as written: {raw}"
        );
    }
}

#[tokio::test]
async fn a_datagram_ping_gets_a_datagram_pong_in_the_session_encoding() {
    let s = TestServer::start().await;
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let mut c = s.wt_with(encoding).await;
        // The server learns of the control stream from its first bytes; datagrams before
        // that are dropped (docs/protocol.md §4).
        c.ping(0.0).await.unwrap();
        let ping = json!({"event": "clock:ping", "data": {"t0": 7}, "id": 3});
        let bytes = match encoding {
            Encoding::Json => ping.to_string().into_bytes(),
            Encoding::MsgPack => to_msgpack(&ping),
        };
        c.send_datagram(&bytes).unwrap();
        let r = c.next().await.unwrap();
        assert_eq!(r.via, Via::Datagram, "{encoding:?}");
        assert_eq!(r.raw.first() == Some(&b'{'), encoding == Encoding::Json);
        assert_eq!(r.message.id, Some(json!(3)));
        assert!(matches!(r.event(), ServerEvent::Pong { t0, .. } if *t0 == json!(7)));
    }
}

#[tokio::test]
async fn at_most_twenty_pings_a_second_are_answered_and_malformed_ones_do_not_count() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut c = s.client(kind).await;
        // Malformed pings are answered invalid_message and leave the budget alone.
        for bad in [json!({"t0": "1"}), json!({}), json!({"t0": null})] {
            c.send(&json!({"event": "clock:ping", "data": bad}))
                .await
                .unwrap();
            expect_error(&mut c, ErrorCode::InvalidMessage, kind).await;
        }
        for i in 0..25 {
            c.send(&json!({"event": "clock:ping", "data": {"t0": i}, "id": i}))
                .await
                .unwrap();
        }
        for i in 0..20 {
            let r = c.next().await.unwrap();
            assert!(matches!(r.event(), ServerEvent::Pong { .. }), "{kind}");
            assert_eq!(r.message.id, Some(json!(i)), "{kind}");
        }
        // The other five were dropped without an answer.
        barrier(&mut c, kind).await;
    }
}

#[tokio::test]
async fn the_clock_estimate_is_within_a_millisecond_on_loopback_and_within_its_bound_through_skew()
{
    use jam_client::{Client, ClockEstimator};
    use std::time::Duration;
    let s = TestServer::start().await;
    // One machine: the server's clock is this one (anchored to Unix time at its start),
    // so the true offset is 0.
    for kind in KINDS {
        let mut c = s.client(kind).await;
        let mut clock = ClockEstimator::new();
        c.sync_clock(&mut clock, 10).await.unwrap();
        let offset = clock.offset_ms().unwrap();
        assert!(offset.abs() <= 1.0, "{kind}: {offset} ms");
        assert!(offset.abs() <= clock.error_ms().unwrap() + 1.0);
    }
    // 30 ms up, nothing down: the estimate is off by about 15 ms, and says so.
    let relay = tcp_asymmetric_relay(
        s.server.http_addr(),
        Duration::from_millis(30),
        Duration::ZERO,
    )
    .await;
    let mut c = Client::connect_ws(&format!("ws://{relay}/ws"))
        .await
        .unwrap();
    let mut clock = ClockEstimator::new();
    c.sync_clock(&mut clock, 5).await.unwrap();
    let (offset, error) = (clock.offset_ms().unwrap(), clock.error_ms().unwrap());
    assert!(offset.abs() > 5.0, "the skew shows: {offset}");
    assert!(offset.abs() <= error + 1.0, "{offset} within ±{error}");
}
