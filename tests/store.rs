//! The room store (docs/protocol.md §12) with real parts: a real `redis-server` started by
//! the test, and the database file in a temporary data directory. Writes happen on state
//! changes only, never per note; a store that fails refuses new rooms (`unavailable`,
//! `/readyz` 503) while the rooms already open keep playing, and everything recovers when
//! it is back.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{TestServer, T};
use jam_client::ClientError;
use jam_protocol::{ErrorCode, ServerEvent, Status};
use serde_json::json;

/// A server whose rooms live in Redis at `url`, its resume key in `dir`.
async fn on_redis(url: &str, dir: &Path) -> TestServer {
    let url = url.to_string();
    let key = dir.join("resume.key");
    TestServer::start_with(move |c| {
        c.memory_store = false;
        c.redis_url = Some(url);
        c.resume_key_file = Some(key);
    })
    .await
}

/// The value of the metric line that starts with `prefix` (e.g. `jam_store_ops_total{op="put"}`).
async fn metric(s: &TestServer, prefix: &str) -> u64 {
    let (_, body) = s.get("/metrics").await;
    let body = String::from_utf8(body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{body}"))
}

/// Waits (bounded by `within`) until `GET /readyz` answers `status`.
async fn wait_ready(s: &TestServer, status: u16, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = s.get("/readyz").await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {got}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refused(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_rooms_playing_refuses_new_ones_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start().await;
    let s = on_redis(&redis.url(), dir.path()).await;
    let (_, connect) = s.get("/connect").await;
    let connect: serde_json::Value = serde_json::from_slice(&connect).unwrap();
    assert!(
        connect["features"]
            .as_array()
            .unwrap()
            .contains(&json!("store")),
        "{connect}"
    );
    wait_ready(&s, 200, T).await;

    let mut ana = s.ws().await;
    let a = ana.create("Ana", "piano").await.unwrap();
    let mut bo = s.wt().await;
    bo.join(&a.room_code, "Bo", "bass").await.unwrap();
    ana.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
        .await
        .unwrap();

    redis.stop().await;
    let why = wait_ready(&s, 503, T).await;
    assert!(
        String::from_utf8_lossy(&why).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&why)
    );
    assert_eq!(metric(&s, "jam_store_ready ").await, 0);
    // The room already open keeps playing, on both paths.
    for n in 0..5 {
        ana.broadcast(&a.room_code, "note", &json!({ "n": n }))
            .await
            .unwrap();
        let got = bo
            .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
            .await
            .expect("notes flow while the store is down");
        assert!(matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload["n"] == n));
    }
    bo.broadcast_datagram(&a.room_code, "note", &json!({ "n": 99 }))
        .unwrap();
    ana.wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
        .await
        .expect("datagrams flow too");
    // A new room is refused, in plain words, and the connection stays usable.
    let mut cy = s.ws().await;
    assert_eq!(refused(cy.create("Cy", "").await), ErrorCode::Unavailable);
    // A tempo change meanwhile waits for the store.
    ana.request(
        "tempo:set",
        json!({"roomCode": a.room_code, "bpm": 90, "beatsPerBar": 3}),
    )
    .await
    .unwrap();

    redis.start_again().await;
    // The backoff tops out at 5 s.
    wait_ready(&s, 200, Duration::from_secs(10)).await;
    cy.create("Cy", "").await.expect("rooms are created again");

    // Redis came back empty: the server handed it every room again, with the tempo set
    // during the outage. A clean restart on the same Redis brings the room back.
    let first = s.server;
    first.shutdown().await;
    let s = on_redis(&redis.url(), dir.path()).await;
    let mut ana2 = s.ws().await;
    let back = ana2
        .resume(&a.room_code, &a.resume_token, ana.last_seq())
        .await
        .expect("the room came back from Redis");
    let tempo = back.tempo.expect("a tempo");
    assert_eq!((tempo.bpm, tempo.beats_per_bar), (90.0, 3));
    assert_eq!(back.host_id, a.user_id);
    let statuses: Vec<_> = back
        .participants
        .iter()
        .map(|p| (p.name.as_str(), p.status))
        .collect();
    assert_eq!(statuses, [("Ana", Status::Active), ("Bo", Status::Away)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_written_on_state_changes_never_per_note() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = TestServer::start_with(|c| {
        c.memory_store = false;
        c.data_dir = Some(data);
    })
    .await;
    assert!(dir.path().join("data").join("rooms.redb").exists());
    let put = r#"jam_store_ops_total{op="put"} "#;
    assert_eq!(metric(&s, put).await, 0);

    let mut ana = s.ws().await;
    let a = ana.create("Ana", "piano").await.unwrap();
    let mut bo = s.client("wt").await;
    bo.join(&a.room_code, "Bo", "").await.unwrap();
    ana.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
        .await
        .unwrap();
    // Both state changes are written (perhaps as one batch of puts).
    let deadline = Instant::now() + T;
    while metric(&s, "jam_store_unsaved ").await > 0 {
        assert!(Instant::now() < deadline, "the store never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = metric(&s, put).await;
    assert!(before >= 1, "create and join were written");

    // 300 notes on the reliable path and 300 datagrams: no store operation at all.
    for n in 0..300 {
        ana.broadcast(&a.room_code, "note", &json!({ "n": n }))
            .await
            .unwrap();
        bo.broadcast_datagram(&a.room_code, "note", &json!({ "n": n }))
            .unwrap();
    }
    bo.wait_for(
        T,
        |r| matches!(r.event(), ServerEvent::Broadcast { payload, .. } if payload["n"] == 299),
    )
    .await
    .unwrap();
    let notes = metric(&s, r#"jam_events_received_total{path="reliable"} "#).await;
    assert!(notes >= 300, "{notes}");
    assert_eq!(metric(&s, put).await, before, "no write per note");
    assert_eq!(metric(&s, r#"jam_store_ops_total{op="delete"} "#).await, 0);

    // A tempo change is a state change: one more write.
    ana.request("tempo:set", json!({"roomCode": a.room_code, "bpm": 100}))
        .await
        .unwrap();
    let deadline = Instant::now() + T;
    while metric(&s, put).await == before {
        assert!(
            Instant::now() < deadline,
            "the tempo change was not written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The room ends: it is deleted from the store.
    ana.leave(&a.room_code).await.unwrap();
    bo.leave(&a.room_code).await.unwrap();
    let deadline = Instant::now() + T;
    while metric(&s, r#"jam_store_ops_total{op="delete"} "#).await == 0 {
        assert!(Instant::now() < deadline, "the ended room was not deleted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_makes_the_server_not_ready_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start().await;
    redis.stop().await;
    let s = on_redis(&redis.url(), dir.path()).await;
    wait_ready(&s, 503, T).await;
    let (health, _) = s.get("/healthz").await;
    assert_eq!(health, 200, "/healthz stays liveness");
    let mut ana = s.ws().await;
    assert_eq!(refused(ana.create("Ana", "").await), ErrorCode::Unavailable);
    redis.start_again().await;
    wait_ready(&s, 200, Duration::from_secs(10)).await;
    ana.create("Ana", "")
        .await
        .expect("created once Redis answers");
}
