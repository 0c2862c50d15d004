//! A mixed room: a WebTransport member (the Rust client), a WebSocket member and a
//! Socket.IO member (the real `socket.io-client` in Node, tests/socketio/mixed-room.mjs)
//! share one room and hear each other. Needs Node 20+ and npm: the first run installs
//! tests/socketio's locked packages (`npm ci`) when they are missing.

mod common;

use std::process::Stdio;

use common::*;
use jam_protocol::ServerEvent;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

/// The Socket.IO member's next report.
async fn report(lines: &mut Lines<BufReader<ChildStdout>>, ctx: &str) -> Value {
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{ctx}: the Socket.IO member said nothing within {T:?}"))
        .expect("read the child's stdout")
        .unwrap_or_else(|| panic!("{ctx}: the Socket.IO member exited"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{ctx}: {e}: {line}"))
}

/// The next broadcast's payload and sender.
async fn heard(c: &mut jam_client::Client) -> (Value, String) {
    match next_broadcast(c).await.message.event {
        ServerEvent::Broadcast {
            payload, sender_id, ..
        } => (payload, sender_id),
        other => panic!("expected a broadcast, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_websocket_and_webtransport_members_share_a_room() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socketio");
    if !dir.join("node_modules/socket.io-client").is_dir() {
        let installed = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            Command::new("npm")
                .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status(),
        )
        .await
        .expect("npm ci in tests/socketio finished within 5 minutes")
        .expect("npm runs (Node 20+ and npm are needed for this test)");
        assert!(installed.success(), "npm ci in {} failed", dir.display());
    }
    let s = TestServer::start().await;
    let mut wt = s.wt().await;
    let mut ws = s.ws().await;
    let room = create(&mut wt, "Wt").await;
    let code = room.room_code.to_string();
    let ws_info = ws.join(&code, "Ws", "bass").await.expect("ws joins");
    assert!(matches!(
        next_event(&mut wt).await,
        ServerEvent::UserJoined(_)
    ));

    let mut child = Command::new("node")
        .arg("mixed-room.mjs")
        .arg(s.http_base())
        .arg(&code)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdin = child.stdin.take().unwrap();

    let joined = report(&mut lines, "join").await;
    assert_eq!(joined["joined"], json!(["Wt", "Ws", "Sio"]), "{joined}");
    // One connection of each transport in /metrics' gauge.
    let (status, metrics) = s.get("/metrics").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    for transport in ["websocket", "webtransport", "socketio"] {
        let series = format!("jam_connections{{transport=\"{transport}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == series),
            "no {series} in\n{metrics}"
        );
    }
    let sio_id = joined["userId"].as_str().expect("a user id").to_owned();
    for (who, c) in [("wt", &mut wt), ("ws", &mut ws)] {
        match next_event(c).await {
            ServerEvent::UserJoined(p) => assert_eq!(
                (p.id.as_str(), p.name.as_str()),
                (sio_id.as_str(), "Sio"),
                "{who}"
            ),
            other => panic!("{who}: expected user-joined, got {other:?}"),
        }
        // The Socket.IO member's broadcast reaches both.
        assert_eq!(
            heard(c).await,
            (json!({"from": "sio"}), sio_id.clone()),
            "{who}"
        );
    }

    // Each of the others plays; the Socket.IO member hears every one, the WebTransport
    // datagram included (on its reliable socket, as a WebSocket member would).
    wt.broadcast(&code, "note", &json!({"from": "wt"}))
        .await
        .unwrap();
    wt.broadcast_datagram(&code, "note", &json!({"from": "wt-datagram"}))
        .unwrap();
    ws.broadcast(&code, "note", &json!({"from": "ws"}))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let r = report(&mut lines, "broadcasts").await;
        let from = r["heard"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a broadcast, got {r}"));
        let sender = r["senderId"].as_str().unwrap();
        let want = if from == "ws" {
            ws_info.user_id.as_str()
        } else {
            room.user_id.as_str()
        };
        assert_eq!(sender, want, "{r}");
        // Reliable events carry their room sequence number; datagram-class ones none.
        assert_eq!(r["seq"].is_null(), from == "wt-datagram", "{r}");
        got.push(from.to_owned());
    }
    got.sort();
    assert_eq!(got, ["ws", "wt", "wt-datagram"]);
    // Nobody heard their own: the next broadcast wt and ws see is from the other.
    ws.broadcast(&code, "note", &json!({"from": "ws-2"}))
        .await
        .unwrap();
    assert_eq!(
        heard(&mut wt).await,
        (json!({"from": "ws"}), ws_info.user_id.clone())
    );
    assert_eq!(
        heard(&mut wt).await,
        (json!({"from": "ws-2"}), ws_info.user_id.clone())
    );
    wt.broadcast(&code, "note", &json!({"from": "wt-2"}))
        .await
        .unwrap();
    let (p, _) = heard(&mut ws).await;
    assert_eq!(p, json!({"from": "wt"}));

    // The Socket.IO member leaves with `socket.disconnect()`: the others hear it at once.
    stdin.write_all(b"bye\n").await.unwrap();
    for (who, c) in [("wt", &mut wt), ("ws", &mut ws)] {
        let left = c
            .wait_for(T, |r| matches!(r.event(), ServerEvent::UserLeft { .. }))
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(
            left.message.event,
            ServerEvent::UserLeft {
                user_id: sio_id.clone()
            },
            "{who}"
        );
    }
    let status = tokio::time::timeout(T, child.wait())
        .await
        .expect("node exits")
        .unwrap();
    assert!(status.success(), "node: {status}");
}
