//! Playing in time (docs/protocol.md §7-9) on real sockets: `serverTime` on every relayed
//! event, round trips per player (`rttMs`, `session:latency`) with a delay injected by a
//! relay, and the shared tempo with its bar-aligned changes, over both transports.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jam_client::{Client, Encoding, Via};
use jam_protocol::{ErrorCode, ServerEvent, Tempo};
use serde_json::json;

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn server_time(r: &jam_client::Received) -> f64 {
    match r.event() {
        ServerEvent::Broadcast { server_time, .. } => server_time.expect("serverTime"),
        other => panic!("not a broadcast: {other:?}"),
    }
}

#[tokio::test]
async fn every_relayed_event_carries_the_server_time_it_arrived() {
    let s = TestServer::start().await;
    let mut ana = s.wt().await;
    let room = create(&mut ana, "Ana").await;
    let mut ws = s.ws().await;
    ws.join(&room.room_code, "Ws", "").await.unwrap();
    let mut mp = s.wt_with(Encoding::MsgPack).await;
    mp.join(&room.room_code, "Mp", "").await.unwrap();
    let mut last = [0.0f64; 2];
    for i in 0..10 {
        let before = unix_ms();
        if i % 2 == 0 {
            ana.broadcast(&room.room_code, "n", &json!(i))
                .await
                .unwrap();
        } else {
            ana.broadcast_datagram(&room.room_code, "n", &json!(i))
                .unwrap();
        }
        for (k, c) in [&mut ws, &mut mp].into_iter().enumerate() {
            let r = next_broadcast(c).await;
            let t = server_time(&r);
            let after = unix_ms();
            assert!(
                t >= before - 5.0 && t <= after + 5.0,
                "{t} not in {before}..{after}"
            );
            assert!(t >= last[k], "monotonic: {t} after {}", last[k]);
            last[k] = t;
            if k == 1 && i % 2 == 1 {
                assert_eq!(r.via, Via::Datagram);
                assert_ne!(r.raw.first(), Some(&b'{'), "MessagePack carries it too");
            }
        }
    }
}

/// Connects `kind` through a relay that adds `one_way` in each direction.
async fn delayed(s: &TestServer, kind: &str, one_way: Duration) -> Client {
    match kind {
        "ws" => {
            let relay = tcp_delay_relay(s.server.http_addr(), one_way).await;
            Client::connect_ws(&format!("ws://{relay}/ws"))
                .await
                .unwrap()
        }
        _ => {
            let relay = udp_delay_relay(s.server.wt_addr(), one_way).await;
            Client::connect_wt(
                &format!("https://{relay}/jam"),
                &s.server.cert_hash(),
                Encoding::Json,
            )
            .await
            .unwrap()
        }
    }
}

#[tokio::test]
async fn round_trips_show_an_injected_delay_in_rtt_ms_and_session_latency() {
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(5)).await;
    for kind in KINDS {
        let mut ana = s.client(kind).await;
        let room = create(&mut ana, "Ana").await;
        let mut far = delayed(&s, kind, Duration::from_millis(40)).await;
        let f = far.join(&room.room_code, "Far", "").await.unwrap();
        // Near Ana is measured small; far away, 2 × 40 ms more.
        let rtts = ana
            .wait_latency(T, |r| {
                r.get(&room.user_id).copied().flatten().is_some()
                    && r.get(&f.user_id)
                        .copied()
                        .flatten()
                        .is_some_and(|ms| ms >= 80)
            })
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}: {:?}", ana.latency()));
        let near = rtts[&room.user_id].unwrap();
        let far_ms = rtts[&f.user_id].unwrap();
        // The relay adds 2 × 40 ms to the far player's round trip; how fast loopback is
        // on a loaded machine is the benchmark's business, not this test's.
        assert!(
            far_ms >= near + 60,
            "{kind}: near {near} ms, far {far_ms} ms"
        );
        // Far sees the same map; a newcomer sees it in its snapshot's rttMs.
        far.wait_latency(T, |r| {
            r.get(&f.user_id)
                .copied()
                .flatten()
                .is_some_and(|ms| ms >= 80)
        })
        .await
        .unwrap();
        let mut cy = s.ws().await;
        let c = cy.join(&room.room_code, "Cy", "").await.unwrap();
        let seen = c.participants.iter().find(|p| p.id == f.user_id).unwrap();
        assert!(seen.rtt_ms.is_some_and(|ms| ms >= 80), "{kind}: {seen:?}");
    }
}

/// The next `tempo:changed`, with its seq.
async fn next_tempo(c: &mut Client) -> (Tempo, Option<u64>, Option<serde_json::Value>) {
    let r = c
        .wait_for(T, |r| matches!(r.event(), ServerEvent::TempoChanged(_)))
        .await
        .unwrap();
    match r.message.event {
        ServerEvent::TempoChanged(t) => (t, r.message.seq, r.message.id),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_tempo_change_reaches_everyone_on_the_next_bar_line_at_least_250_ms_ahead() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut ana = s.client(kind).await;
        let room = create(&mut ana, "Ana").await;
        let first = room.tempo.clone().expect("a tempo from the start");
        assert_eq!(
            (first.bpm, first.beats_per_bar, first.origin_beat),
            (120.0, 4, 0.0)
        );
        assert!((first.origin_time - room.server_time).abs() < 1000.0);
        let mut bo = s.client(kind).await;
        let b = bo.join(&room.room_code, "Bo", "").await.unwrap();
        next_event(&mut ana).await;

        let sent = unix_ms();
        bo.send(&json!({"event": "tempo:set", "id": "t",
            "data": {"roomCode": room.room_code, "bpm": 90, "beatsPerBar": 3}}))
            .await
            .unwrap();
        let (mine, seq, id) = next_tempo(&mut bo).await;
        let answered = unix_ms();
        assert_eq!(
            id,
            Some(json!("t")),
            "{kind}: the setter's copy echoes its id"
        );
        let (theirs, their_seq, their_id) = next_tempo(&mut ana).await;
        assert_eq!(
            (theirs.clone(), their_seq, their_id),
            (mine.clone(), seq, None)
        );
        assert!(seq.is_some(), "{kind}: a reliable room message");
        assert_eq!((mine.bpm, mine.beats_per_bar), (90.0, 3));
        assert_eq!(
            mine.set_by.as_deref(),
            Some(b.user_id.as_str()),
            "{kind}: who set it"
        );
        // On a bar line of the old tempo, at least 250 ms after the request, and the first
        // such bar line.
        let bars = (mine.origin_time - first.origin_time) / first.bar_ms();
        assert!((bars - bars.round()).abs() < 1e-6, "{kind}: on a bar line");
        assert_eq!(mine.origin_beat, first.origin_beat + bars.round() * 4.0);
        assert!(
            mine.origin_time >= sent + 250.0 - 2.0,
            "{kind}: far enough ahead"
        );
        assert!(
            mine.origin_time < answered + 250.0 + first.bar_ms() + 2.0,
            "{kind}: the first one"
        );
        // A newcomer gets the new tempo in its snapshot.
        let mut cy = s.client(kind).await;
        let c = cy.join(&room.room_code, "Cy", "").await.unwrap();
        assert_eq!(c.tempo, Some(mine));
    }
}

#[tokio::test]
async fn bad_tempo_values_and_strangers_are_refused_and_tempo_shares_the_send_budget() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = 1;
        c.rate_burst = 3;
    })
    .await;
    for kind in KINDS {
        let mut ana = s.client(kind).await;
        let room = create(&mut ana, "Ana").await;
        let set = |data: serde_json::Value| json!({"event": "tempo:set", "data": data});
        for bad in [
            json!({"roomCode": room.room_code, "bpm": 19}),
            json!({"roomCode": room.room_code, "bpm": 301}),
            json!({"roomCode": room.room_code, "bpm": "120"}),
        ] {
            ana.send(&set(bad)).await.unwrap();
            expect_error(&mut ana, ErrorCode::InvalidMessage, kind).await;
        }
        // The three bad ones spent the burst of 3: the next is over budget.
        ana.send(&set(json!({"roomCode": room.room_code, "bpm": 100})))
            .await
            .unwrap();
        expect_error(&mut ana, ErrorCode::RateLimited, kind).await;
        let mut stranger = s.client(kind).await;
        stranger
            .send(&set(json!({"roomCode": room.room_code, "bpm": 100})))
            .await
            .unwrap();
        expect_error(&mut stranger, ErrorCode::NotInSession, kind).await;
    }
}
