//! Several nodes on one real `redis-server` (docs/protocol.md §12): a room lives on one node
//! and every node sends its players there; room codes are unique across nodes; a stopped
//! node hands its rooms over; a killed node's rooms are claimed by the first resume
//! elsewhere (exactly one node wins), with the same players and tempo.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{ClientExt, TestServer, T};
use jam_client::{Client, ClientError, Closed};
use jam_protocol::{Encoding, ErrorCode, ServerEvent, Status};
use serde_json::{json, Value};

/// Node `id` on the Redis at `url`, its resume key shared in `dir`.
async fn node(url: &str, dir: &Path, id: &str) -> TestServer {
    let (url, key, id) = (url.to_string(), dir.join("resume.key"), id.to_string());
    TestServer::start_with(move |c| {
        c.memory_store = false;
        c.redis_url = Some(url);
        c.resume_key_file = Some(key);
        c.node_id = Some(id);
        c.control_rate = 1_000_000;
        c.control_burst = 1_000_000;
    })
    .await
}

async fn connect_json(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.get(path).await;
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).unwrap()
}

fn refusal(r: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, Option<Value>) {
    match r {
        Err(ClientError::Refused { code, connect, .. }) => (code, connect),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_sends_players_to_the_room_s_owner_and_notes_flow_there_only() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await;
    let a = node(&redis.url(), dir.path(), "a").await;
    let b = node(&redis.url(), dir.path(), "b").await;
    let c = node(&redis.url(), dir.path(), "c").await;
    let own = connect_json(&a, "/connect").await;
    assert_eq!(own["node"], "a");
    let features = own["features"].as_array().unwrap();
    assert!(features.contains(&json!("store")) && features.contains(&json!("nodes")));

    let mut ana = a.ws().await;
    let room = ana.create("Ana", "piano").await.unwrap();
    // Found from every node.
    for s in [&a, &b, &c] {
        let found = connect_json(s, &format!("/connect?room={}", room.room_code)).await;
        assert_eq!(found["node"], "a", "{found}");
        assert_eq!(
            found["websocket"]["url"],
            format!("ws://{}/ws", a.server.http_addr()),
            "{found}"
        );
    }
    // A code nobody holds: the node's own answer.
    let none = connect_json(&b, "/connect?room=ZZZZZZ").await;
    assert_eq!(none["node"], "b");

    // A join sent to B answers room_elsewhere with A's answer; the connection stays usable.
    let mut bo_at_b = b.ws().await;
    let (code, connect) = refusal(bo_at_b.join(&room.room_code, "Bo", "bass").await);
    assert_eq!(code, ErrorCode::RoomElsewhere);
    let connect = connect.expect("room_elsewhere carries the owner's /connect answer");
    assert_eq!(connect["node"], "a");
    common::assert_usable(&mut bo_at_b, "after room_elsewhere").await;
    // The client library follows it once, here over WebTransport.
    let (mut bo, joined) = Client::join_via(
        &c.http_base(),
        &room.room_code,
        "Cy",
        "drums",
        Some(Encoding::Json),
    )
    .await
    .expect("followed to the owner");
    assert_eq!(joined.participants.len(), 2);
    let b_metrics = String::from_utf8(b.get("/metrics").await.1).unwrap();
    ana.broadcast(&room.room_code, "note", &json!({"n": 60}))
        .await
        .unwrap();
    let got = bo
        .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
        .await
        .unwrap();
    assert!(matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload["n"] == 60));
    // Notes never cross nodes: B and C relayed nothing.
    for s in [&b, &c] {
        let m = String::from_utf8(s.get("/metrics").await.1).unwrap();
        assert!(m.contains("jam_deliveries_total 0"), "{m}");
    }
    drop(b_metrics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_rooms_created_at_once_on_three_nodes_get_a_thousand_codes() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await;
    let nodes = [
        node(&redis.url(), dir.path(), "a").await,
        node(&redis.url(), dir.path(), "b").await,
        node(&redis.url(), dir.path(), "c").await,
    ];
    // 30 connections (10 a node), each creating 34 rooms one after another (leaving each
    // to create the next), all at once.
    let mut tasks = Vec::new();
    for (i, s) in nodes.iter().enumerate() {
        for _ in 0..10 {
            let mut client = s.ws().await;
            tasks.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..34 {
                    let created = client.create("P", "").await.expect("created");
                    codes.push((created.room_code.clone(), i));
                    client.leave(&created.room_code).await.unwrap();
                }
                codes
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(all.len(), 1020);
    let distinct: std::collections::BTreeSet<_> = all.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "every code is unique across nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_node_hands_its_room_over_and_the_players_follow() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await;
    let a = node(&redis.url(), dir.path(), "a").await;
    let b = node(&redis.url(), dir.path(), "b").await;
    let b_base = b.http_base();
    let mut ana = a.ws().await;
    let room = ana.create("Ana", "piano").await.unwrap();
    let mut bo = a.wt().await;
    let joined = bo.join(&room.room_code, "Bo", "bass").await.unwrap();
    ana.request(
        "tempo:set",
        json!({"roomCode": room.room_code, "bpm": 90, "beatsPerBar": 3}),
    )
    .await
    .unwrap();
    bo.wait_for(T, |r| matches!(r.event(), ServerEvent::TempoChanged(_)))
        .await
        .unwrap();
    let mut cy = a.ws().await;
    let drums = cy.join(&room.room_code, "Cy", "drums").await.unwrap();
    let stop_drums = tokio_util::sync::CancellationToken::new();
    let drumming = tokio::spawn(drummer(
        cy,
        room.room_code.clone(),
        drums.resume_token.clone(),
        vec![b_base.clone()],
        Duration::from_millis(5),
        stop_drums.clone(),
    ));
    ana.wait_for(T, is_note).await.expect("Cy plays");
    // B must be in the directory before A stops.
    let deadline = Instant::now() + T;
    while !redis_command(&redis, "GET jam:node:b")
        .await
        .contains("connect")
    {
        assert!(Instant::now() < deadline, "node b never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stopped = Instant::now();
    let stop = tokio::spawn(a.server.shutdown());
    let mut moved_to = Vec::new();
    let mut last_note = Instant::now();
    for c in [&mut ana, &mut bo] {
        let got = c
            .wait_for(T, |r| {
                if is_note(r) {
                    last_note = Instant::now();
                }
                matches!(r.event(), ServerEvent::Moved { .. })
            })
            .await
            .expect("session:moved");
        let ServerEvent::Moved { room_code, connect } = got.event().clone() else {
            unreachable!()
        };
        assert_eq!(room_code, room.room_code);
        assert_eq!(connect["node"], "b");
        moved_to.push(connect);
    }
    assert_eq!(
        ana.wait_closed(T).await.unwrap(),
        Closed::WebSocket {
            code: 4001,
            reason: "moved".into()
        }
    );
    assert!(matches!(
        bo.wait_closed(T).await.unwrap(),
        Closed::WebTransport { code: 6, .. }
    ));
    let (mut ana2, ra) = Client::resume_at(
        &moved_to[0],
        &room.room_code,
        &room.resume_token,
        ana.last_seq(),
        None,
    )
    .await
    .expect("Ana resumes on b");
    let (bo2, rb) = Client::resume_at(
        &moved_to[1],
        &room.room_code,
        &joined.resume_token,
        bo.last_seq(),
        Some(Encoding::Json),
    )
    .await
    .expect("Bo resumes on b");
    let gap = stopped.elapsed();
    assert_eq!(
        (ra.user_id.as_str(), rb.user_id.as_str()),
        (room.user_id.as_str(), joined.user_id.as_str())
    );
    assert_eq!(rb.host_id, room.user_id);
    let tempo = rb.tempo.clone().unwrap();
    assert_eq!((tempo.bpm, tempo.beats_per_bar), (90.0, 3));
    assert!(rb
        .participants
        .iter()
        .filter(|p| p.name != "Cy")
        .all(|p| p.status == Status::Active));
    // The gap Ana hears: her last note from the drummer on a, her first on b.
    ana2.wait_for(T, is_note)
        .await
        .expect("the jam goes on at b");
    let heard = last_note.elapsed();
    bo2.broadcast(&room.room_code, "note", &json!({"n": 1}))
        .await
        .unwrap();
    ana2.wait_for(T, |r| {
        matches!(r.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == joined.user_id)
    })
    .await
    .expect("Bo plays at b too");
    stop_drums.cancel();
    drumming.await.unwrap();
    stop.await.unwrap();
    eprintln!(
        "hand-over: stop to both players back in {gap:?}; note gap {} ms",
        heard.as_millis()
    );
}

/// A third player who plays a note every `every` until `stop`, follows its room when it is
/// moved or its node dies (resuming through `bases`), and goes on playing: the source of
/// the notes whose gap a listener hears.
async fn drummer(
    mut c: Client,
    room: String,
    mut token: String,
    bases: Vec<String>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = c.recv() => match got {
                Some(r) => {
                    if let ServerEvent::Moved { connect, .. } = r.event() {
                        let (c2, info) = Client::resume_at(connect, &room, &token, c.last_seq(), None)
                            .await
                            .expect("the drummer follows the move");
                        (c, token) = (c2, info.resume_token);
                    }
                }
                None => {
                    let (c2, info) = resume_somewhere(&bases, &room, &token, c.last_seq(), None).await;
                    (c, token) = (c2, info.resume_token);
                }
            },
            _ = tick.tick() => {
                n += 1;
                let _ = c.broadcast(&room, "note", &json!({ "n": n })).await;
            }
        }
    }
}

/// Whether `r` is a note.
fn is_note(r: &jam_client::Received) -> bool {
    matches!(r.event(), ServerEvent::Broadcast { .. })
}

/// A node as its own process, to be killed: (child, http base).
async fn spawn_node(redis: &Redis, dir: &Path, id: &str) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--http-addr", "127.0.0.1:0", "--wt-addr", "127.0.0.1:0"])
        .args([
            "--ephemeral-cert",
            "--redis-url",
            &redis.url(),
            "--node-id",
            id,
        ])
        .arg("--resume-key-file")
        .arg(dir.join("resume.key"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = std::fs::File::from(child.stdout.take().unwrap().into_owned_fd().unwrap());
    let http = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let line = lines.find(|l| l.contains("listening")).expect("it listens");
        std::thread::spawn(move || lines.for_each(drop));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .expect("the http address")
            .to_string()
    });
    let http = tokio::time::timeout(T, http).await.unwrap().unwrap();
    (child, format!("http://{http}"))
}

/// Resumes at whichever node `bases[i]` sends it to, retrying (bounded) while the dead
/// owner's entry has not lapsed yet.
async fn resume_somewhere(
    bases: &[String],
    room: &str,
    token: &str,
    last_seq: Option<u64>,
    encoding: Option<Encoding>,
) -> (Client, jam_protocol::SessionInfo) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    loop {
        let base = &bases[i % bases.len()];
        i += 1;
        // A node that died does not answer; a client gives each try a second.
        let attempt = Client::resume_via(base, room, token, last_seq, encoding);
        let attempt = tokio::time::timeout(Duration::from_secs(1), attempt).await;
        match attempt.unwrap_or_else(|_| Err(ClientError::Timeout(Duration::from_secs(1)))) {
            Ok(done) => return done,
            Err(e) => {
                assert!(Instant::now() < deadline, "no node took the room back: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_room_is_claimed_by_one_node_with_the_same_players_and_tempo() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await;
    let (mut a, base_a) = spawn_node(&redis, dir.path(), "a").await;
    let (_b, base_b) = spawn_node(&redis, dir.path(), "b").await;
    let (_c, base_c) = spawn_node(&redis, dir.path(), "c").await;
    let (mut ana, room) = {
        let info = jam_client::fetch_connect(&base_a).await.unwrap();
        let mut ana = Client::connect_to(&info, None).await.unwrap();
        let room = ana.create("Ana", "piano").await.unwrap();
        (ana, room)
    };
    let (mut bo, joined) =
        Client::join_via(&base_b, &room.room_code, "Bo", "bass", Some(Encoding::Json))
            .await
            .unwrap();
    ana.request(
        "tempo:set",
        json!({"roomCode": room.room_code, "bpm": 90, "beatsPerBar": 3}),
    )
    .await
    .unwrap();
    bo.wait_for(T, |r| matches!(r.event(), ServerEvent::TempoChanged(_)))
        .await
        .unwrap();
    let (cy, drums) = Client::join_via(&base_a, &room.room_code, "Cy", "drums", None)
        .await
        .unwrap();
    let stop_drums = tokio_util::sync::CancellationToken::new();
    let drumming = tokio::spawn(drummer(
        cy,
        room.room_code.clone(),
        drums.resume_token.clone(),
        vec![base_b.clone(), base_c.clone()],
        // Slower: the players' queues fill while the test waits for both to be back.
        Duration::from_millis(20),
        stop_drums.clone(),
    ));
    ana.wait_for(T, is_note).await.expect("Cy plays");
    // The room's record is in Redis before the crash.
    let deadline = Instant::now() + T;
    while !redis_command(&redis, &format!("GET jam:room:{}", room.room_code))
        .await
        .contains("\"bpm\":90")
    {
        assert!(Instant::now() < deadline, "the tempo never reached Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let killed = Instant::now();
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let mut last_note = killed;
    let _ = ana
        .wait_for(T, |r| {
            if is_note(r) {
                last_note = Instant::now();
            }
            false
        })
        .await;
    // Ana comes back through B, Bo through C, at the same time: two nodes race to claim.
    let bases_ana = [base_b.clone(), base_c.clone()];
    let bases_bo = [base_c.clone(), base_b.clone()];
    let (ra, rb) = tokio::join!(
        resume_somewhere(
            &bases_ana,
            &room.room_code,
            &room.resume_token,
            ana.last_seq(),
            None
        ),
        resume_somewhere(
            &bases_bo,
            &room.room_code,
            &joined.resume_token,
            bo.last_seq(),
            Some(Encoding::Json)
        ),
    );
    let gap = killed.elapsed();
    let ((mut ana2, ia), (bo2, ib)) = (ra, rb);
    assert_eq!(
        (ia.user_id.as_str(), ib.user_id.as_str()),
        (room.user_id.as_str(), joined.user_id.as_str())
    );
    let tempo = ib.tempo.clone().unwrap();
    assert_eq!((tempo.bpm, tempo.beats_per_bar), (90.0, 3));
    // One room on one node: each sees the other.
    let seen_by_bo: Vec<_> = ib.participants.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(seen_by_bo, ["Ana", "Bo", "Cy"]);
    let owner = redis_command(&redis, &format!("GET jam:owner:{}", room.room_code)).await;
    assert!(owner.contains('b') || owner.contains('c'), "{owner}");
    ana2.wait_for(Duration::from_secs(15), is_note)
        .await
        .expect("the drummer plays on the node that won");
    let heard = last_note.elapsed();
    bo2.broadcast(&room.room_code, "note", &json!({"n": 2}))
        .await
        .unwrap();
    ana2.wait_for(T, |r| {
        matches!(r.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == joined.user_id)
    })
    .await
    .expect("the jam goes on on the node that won");
    stop_drums.cancel();
    drumming.await.unwrap();
    let _ = bo.wait_closed(Duration::from_millis(10)).await;
    eprintln!(
        "kill -9 of the owner: both players back in {gap:?}; note gap {} ms",
        heard.as_millis()
    );
}

/// Sends one command to `redis` (RESP inline form) and returns its raw answer.
async fn redis_command(redis: &Redis, command: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .unwrap();
    tcp.write_all(format!("{command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(T, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_room_was_claimed_elsewhere_sends_its_players_there() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await;
    let a = node(&redis.url(), dir.path(), "a").await;
    let _b = node(&redis.url(), dir.path(), "b").await;
    let mut ana = a.ws().await;
    let room = ana.create("Ana", "piano").await.unwrap();
    // As if node a had been cut off from Redis past the lapse time and node b had
    // claimed the room meanwhile.
    let set = format!("SET jam:owner:{} b PX 6000", room.room_code);
    assert!(redis_command(&redis, &set).await.starts_with("+OK"));
    let got = ana
        .wait_for(T, |r| matches!(r.event(), ServerEvent::Moved { .. }))
        .await
        .expect("a's next refresh sends its players to b");
    let ServerEvent::Moved { connect, .. } = got.event().clone() else {
        unreachable!()
    };
    assert_eq!(connect["node"], "b");
    let (_ana2, back) = Client::resume_at(
        &connect,
        &room.room_code,
        &room.resume_token,
        ana.last_seq(),
        None,
    )
    .await
    .expect("the seat is taken back on b");
    assert_eq!(back.user_id, room.user_id);
    let metrics = String::from_utf8(a.get("/metrics").await.1).unwrap();
    assert!(
        metrics.contains("\njam_rooms 0\n"),
        "a no longer holds it:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_jam_three_nodes_keep_playing_refuse_new_rooms_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start().await;
    let nodes = [
        node(&redis.url(), dir.path(), "a").await,
        node(&redis.url(), dir.path(), "b").await,
        node(&redis.url(), dir.path(), "c").await,
    ];
    let [a, b, c] = &nodes;
    let mut ana = a.ws().await;
    let room = ana.create("Ana", "piano").await.unwrap();
    let mut bo = a.wt().await;
    bo.join(&room.room_code, "Bo", "bass").await.unwrap();

    redis.stop().await;
    for s in &nodes {
        wait_readyz(s, 503).await;
    }
    for n in 0..5 {
        ana.broadcast(&room.room_code, "note", &json!({ "n": n }))
            .await
            .unwrap();
        let got = bo
            .wait_for(T, is_note)
            .await
            .expect("notes flow without Redis");
        assert!(matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload["n"] == n));
    }
    let mut cy = b.ws().await;
    let (code, _) = refusal(cy.create("Cy", "").await);
    assert_eq!(code, ErrorCode::Unavailable);
    let mut dee = c.ws().await;
    let (code, _) = refusal(dee.join(&room.room_code, "Dee", "").await);
    assert_eq!(code, ErrorCode::Unavailable, "c cannot look the room up");

    redis.start_again().await;
    for s in &nodes {
        wait_readyz(s, 200).await;
    }
    cy.create("Cy", "").await.expect("rooms are created again");
    // Redis came back empty: a wrote its room and its owner entry again, so c sends a
    // joiner there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = connect_json(c, &format!("/connect?room={}", room.room_code)).await;
        if found["node"] == "a" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the room never reappeared in the directory"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut dee, joined) = Client::join_via(&c.http_base(), &room.room_code, "Dee", "", None)
        .await
        .expect("followed to a");
    assert_eq!(joined.participants.len(), 3);
    bo.broadcast_datagram(&room.room_code, "note", &json!({ "n": 99 }))
        .unwrap();
    dee.wait_for(T, is_note).await.expect("the jam goes on");
}

/// Waits (bounded) until `GET /readyz` of `s` answers `status`.
async fn wait_readyz(s: &TestServer, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("/readyz").await.0 != status {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
