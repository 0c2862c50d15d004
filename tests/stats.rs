//! `GET /stats` counts what the soak (`bench/soak.sh`) watches come back to zero: open
//! connections of both transports and the runtime's live tasks, beside the rooms.

mod common;

use std::time::Duration;

use common::*;
use jam_client::http_get;
use serde_json::Value;

async fn stats(s: &TestServer) -> Value {
    let (status, body) = http_get(&format!("{}/stats", s.http_base()))
        .await
        .expect("GET /stats");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("JSON")
}

/// Polls `/stats` until `field` is `want`, for at most [`T`].
async fn wait_for(s: &TestServer, field: &str, want: u64) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let v = stats(s).await;
        if v[field].as_u64() == Some(want) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{field} stayed {} (want {want})",
            v[field]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One round: a WebSocket and a WebTransport client in a room, then both gone; returns
/// the tasks alive once `/stats` shows no connection again.
async fn round(s: &TestServer) -> u64 {
    let mut ws = s.ws().await;
    let mut wt = s.wt().await;
    let room = create(&mut ws, "A").await;
    wt.join(&room.room_code, "B", "").await.expect("joins");
    let busy = wait_for(s, "connections", 2).await;
    assert_eq!(busy["rooms"], 1);
    ws.leave(&room.room_code).await.expect("leaves");
    wt.leave(&room.room_code).await.expect("leaves");
    drop(ws);
    drop(wt);
    let done = wait_for(s, "connections", 0).await;
    assert_eq!(done["rooms"], 0);
    done["tasks"].as_u64().expect("tasks is a number")
}

#[tokio::test]
async fn stats_counts_connections_and_tasks_and_they_return_to_zero() {
    let s = TestServer::start().await;
    let idle = wait_for(&s, "connections", 0).await;
    assert!(idle["tasks"].as_u64().is_some_and(|t| t > 0), "{idle}");
    // The first round may start tasks that live as long as the server (the client's and
    // the server's endpoints share this test's runtime); after it, every round must give
    // its connection tasks back.
    let baseline = round(&s).await;
    for i in 1..=3 {
        let deadline = tokio::time::Instant::now() + T;
        let mut tasks = round(&s).await;
        while tasks > baseline {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {i}: {tasks} tasks alive, {baseline} after the first round"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            tasks = stats(&s).await["tasks"].as_u64().expect("tasks");
        }
    }
}
