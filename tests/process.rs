//! The real binary: it starts on ephemeral ports, logs what it bound, and on SIGTERM closes
//! its clients properly and exits within a few seconds; a port already taken stops the
//! start with an error naming the flag and the address.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use common::{ClientExt, T};
use jam_client::{Client, Closed};
use jam_protocol::Encoding;

/// Reads log lines until `listening` and returns (http address, webtransport address, hash).
fn read_listening(lines: &mut impl Iterator<Item = String>) -> (String, String, String) {
    for line in lines {
        if line.contains("listening") {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
                    .to_owned()
            };
            return (field("http"), field("webtransport"), field("cert_sha256"));
        }
    }
    panic!("the server exited before listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, (http, wt, hash), rx) =
        spawn_server(dir.path(), "127.0.0.1:0", "127.0.0.1:0").await;
    let mut lines = std::iter::from_fn(|| rx.recv_timeout(T).ok());
    assert!(
        dir.path().join("dev-cert.pem").exists(),
        "dev certificate stored"
    );

    let mut ws = Client::connect_ws(&format!("ws://{http}/ws"))
        .await
        .unwrap();
    let mut quic = Client::connect_wt(&format!("https://{wt}/jam"), &hash, Encoding::Json)
        .await
        .unwrap();
    let room = ws.create("A", "").await.unwrap();
    quic.join(&room.room_code, "B", "").await.unwrap();
    // Connections are logged with their transport.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = lines.next().expect("connection log lines");
        if line.contains("connected") {
            seen.push(line);
        }
    }
    assert!(seen
        .iter()
        .any(|l| l.contains("transport=\"ws\"") || l.contains("transport=ws")));
    assert!(seen
        .iter()
        .any(|l| l.contains("transport=\"wt\"") || l.contains("transport=wt")));

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        ws.wait_closed(T).await.unwrap(),
        Closed::WebSocket {
            code: 1001,
            reason: "server shutting down".into()
        }
    );
    assert!(matches!(
        quic.wait_closed(T).await.unwrap(),
        Closed::WebTransport { code: 1, .. }
    ));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within a few seconds")
        .unwrap();
    assert!(status.success(), "clean exit, got {status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The real binary on `http` / `wt` (`127.0.0.1:0` for any port) with its certificate and
/// resume key in `dir`; returns the child and its (http, webtransport, hash) once
/// listening, and the receiver of its further log lines.
async fn spawn_server(
    dir: &std::path::Path,
    http: &str,
    wt: &str,
) -> (
    tokio::process::Child,
    (String, String, String),
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--http-addr", http, "--wt-addr", wt, "--cert-dir"])
        .arg(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap().into_owned_fd().unwrap();
    let stdout = std::fs::File::from(stdout);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = std::iter::from_fn(|| rx.recv_timeout(T).ok());
    let bound = tokio::task::block_in_place(|| read_listening(&mut lines));
    (child, bound, rx)
}

/// How the server process ends in a restart test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// A deploy: SIGTERM, a clean exit.
    Term,
    /// A crash: SIGKILL, once the room store has written what it was handed.
    Kill,
}

/// Ends `child` the way `stop` says.
async fn stop_server(child: &mut tokio::process::Child, http: &str, stop: Stop) {
    let pid = child.id().unwrap().to_string();
    if stop == Stop::Kill {
        wait_store_written(http).await;
    }
    let signal = match stop {
        Stop::Term => "-TERM",
        Stop::Kill => "-KILL",
    };
    let status = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within a few seconds")
        .unwrap();
    assert_eq!(status.success(), stop == Stop::Term, "{status}");
}

/// Waits (bounded) until `/metrics` says the room store holds every change handed to it.
async fn wait_store_written(http: &str) {
    let deadline = Instant::now() + T;
    loop {
        let body = reqwest::get(format!("http://{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.lines().any(|l| l == "jam_store_unsaved 0") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store never caught up:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three players (Ana hosts, on WebSocket; Bo on WebTransport; Cy on WebSocket) set the
/// tempo to 90 in 3/4; the server stops (`stop`) and starts again on the same ports and
/// folder; every seat resumes. The room comes back from the store (docs/protocol.md §12):
/// its tempo, host, join order and `seq` kept, every seat away until it resumes, and each
/// one announced as back, never as joined.
async fn a_restart_keeps_the_room(stop: Stop) {
    use jam_protocol::{ServerEvent, Status};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, (http, wt, hash), _log) =
        spawn_server(dir.path(), "127.0.0.1:0", "127.0.0.1:0").await;
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("resume.key")).expect("resume.key made");
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    assert!(
        dir.path().join("data").join("rooms.redb").exists(),
        "the room store's file is made in --data-dir"
    );
    let ws_url = format!("ws://{http}/ws");
    let wt_url = format!("https://{wt}/jam");
    let mut ana = Client::connect_ws(&ws_url).await.unwrap();
    let a = ana.create("Ana", "piano").await.unwrap();
    let mut bo = Client::connect_wt(&wt_url, &hash, Encoding::Json)
        .await
        .unwrap();
    let b = bo.join(&a.room_code, "Bo", "bass").await.unwrap();
    let mut cy = Client::connect_ws(&ws_url).await.unwrap();
    let c = cy.join(&a.room_code, "Cy", "drums").await.unwrap();
    let set = ana
        .request(
            "tempo:set",
            serde_json::json!({"roomCode": a.room_code, "bpm": 90, "beatsPerBar": 3}),
        )
        .await
        .unwrap();
    assert!(matches!(set.event, ServerEvent::TempoChanged(_)));
    for m in [&mut bo, &mut cy] {
        m.wait_for(T, |r| matches!(r.event(), ServerEvent::TempoChanged(_)))
            .await
            .unwrap();
    }
    let seq_before = cy.last_seq().expect("room messages were numbered");

    let stopped = Instant::now();
    stop_server(&mut child, &http, stop).await;
    let (_child, (http2, wt2, hash2), _log) = spawn_server(dir.path(), &http, &wt).await;
    assert_eq!((http2.as_str(), wt2.as_str()), (http.as_str(), wt.as_str()));
    assert_eq!(hash2, hash, "the stored certificate is reused");

    // Cy comes back first: the whole room is there, Ana still hosts, the others away.
    let mut cy2 = Client::connect_ws(&ws_url).await.unwrap();
    let rc = cy2
        .resume(&a.room_code, &c.resume_token, cy.last_seq())
        .await
        .unwrap();
    let roster = |info: &jam_protocol::SessionInfo| -> Vec<(String, String, String, Status)> {
        info.participants
            .iter()
            .map(|p| (p.id.clone(), p.name.clone(), p.instrument.clone(), p.status))
            .collect()
    };
    let seat = |id: &str, name: &str, inst: &str, status| {
        (id.to_string(), name.to_string(), inst.to_string(), status)
    };
    assert_eq!(
        roster(&rc),
        [
            seat(&a.user_id, "Ana", "piano", Status::Away),
            seat(&b.user_id, "Bo", "bass", Status::Away),
            seat(&c.user_id, "Cy", "drums", Status::Active),
        ],
        "ids, names, instruments and join order survive, the others away"
    );
    assert_eq!(rc.host_id, a.user_id, "the stored host");
    let tempo = rc.tempo.clone().expect("a tempo");
    assert_eq!(
        (tempo.bpm, tempo.beats_per_bar),
        (90.0, 3),
        "the stored tempo"
    );
    assert!(
        rc.seq >= seq_before,
        "seq never goes backwards: {} after {seq_before}",
        rc.seq
    );
    assert_eq!(rc.replayed, Some(false));

    let mut ana2 = Client::connect_ws(&ws_url).await.unwrap();
    let ra = ana2
        .resume(&a.room_code, &a.resume_token, ana.last_seq())
        .await
        .unwrap();
    assert_eq!(ra.host_id, a.user_id);
    let mut bo2 = Client::connect_wt(&wt_url, &hash2, Encoding::Json)
        .await
        .unwrap();
    let rb = bo2
        .resume(&a.room_code, &b.resume_token, bo.last_seq())
        .await
        .unwrap();
    assert!(rb.participants.iter().all(|p| p.status == Status::Active));
    let downtime = stopped.elapsed();
    // What Cy saw while the others came back: each is back, nobody joined, no host change.
    for who in [&a.user_id, &b.user_id] {
        let got = next(&mut cy2).await;
        assert_eq!(
            got,
            ServerEvent::UserBack {
                user_id: who.clone()
            }
        );
    }
    assert!(cy2.last_seq().unwrap() > rc.seq, "numbering goes on");
    // And the jam goes on.
    bo2.broadcast(&a.room_code, "note", &serde_json::json!({"n": 60}))
        .await
        .unwrap();
    for c in [&mut ana2, &mut cy2] {
        let got = c
            .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
            .await
            .unwrap();
        assert!(
            matches!(got.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == b.user_id)
        );
    }
    eprintln!("restart ({stop:?}): every seat resumed in {downtime:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_sigterm_keeps_tempo_host_order_and_seq() {
    a_restart_keeps_the_room(Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_sigkill_keeps_tempo_host_order_and_seq() {
    a_restart_keeps_the_room(Stop::Kill).await;
}

/// Tokens stay single-use across a crash, and what ended stays ended: after SIGKILL and a
/// start, a token already used gets `resume_failed` (and the current one still works),
/// and a room whose seats all left does not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_used_tokens_and_ended_rooms_stay_gone() {
    use jam_protocol::ErrorCode;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, (http, _wt, _), _log) =
        spawn_server(dir.path(), "127.0.0.1:0", "127.0.0.1:0").await;
    let ws_url = format!("ws://{http}/ws");
    let mut ana = Client::connect_ws(&ws_url).await.unwrap();
    let a = ana.create("Ana", "piano").await.unwrap();
    let mut bo = Client::connect_ws(&ws_url).await.unwrap();
    bo.join(&a.room_code, "Bo", "").await.unwrap();
    // Ana's connection drops and she resumes: her first token is used up.
    ana.abort();
    bo.wait_for(T, |r| {
        matches!(r.event(), jam_protocol::ServerEvent::UserAway { .. })
    })
    .await
    .unwrap();
    let mut ana = Client::connect_ws(&ws_url).await.unwrap();
    let again = ana
        .resume(&a.room_code, &a.resume_token, None)
        .await
        .unwrap();
    // A second room, whose only seat leaves: it ends.
    let mut cy = Client::connect_ws(&ws_url).await.unwrap();
    let ended = cy.create("Cy", "").await.unwrap();
    cy.leave(&ended.room_code).await.unwrap();

    stop_server(&mut child, &http, Stop::Kill).await;
    let (_child, _, _log) = spawn_server(dir.path(), &http, "127.0.0.1:0").await;

    let refused = |r: Result<jam_protocol::SessionInfo, jam_client::ClientError>| match r {
        Err(jam_client::ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut old = Client::connect_ws(&ws_url).await.unwrap();
    assert_eq!(
        refused(old.resume(&a.room_code, &a.resume_token, None).await),
        ErrorCode::ResumeFailed,
        "a used token never beats the current one"
    );
    assert_eq!(
        refused(
            old.resume(&ended.room_code, &ended.resume_token, None)
                .await
        ),
        ErrorCode::ResumeFailed,
        "a room that ended does not come back"
    );
    let back = old
        .resume(&a.room_code, &again.resume_token, None)
        .await
        .expect("the current token still works");
    assert_eq!(back.user_id, a.user_id);
}

async fn next(c: &mut Client) -> jam_protocol::ServerEvent {
    c.next().await.expect("a message").message.event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_named_by_its_flag_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, (http, wt, _), _log) =
        spawn_server(dir.path(), "127.0.0.1:0", "127.0.0.1:0").await;
    for (flag, taken, args) in [
        ("--http-addr", &http, [http.as_str(), "127.0.0.1:0"]),
        ("--wt-addr", &wt, ["127.0.0.1:0", wt.as_str()]),
    ] {
        let second = tempfile::tempdir().unwrap();
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_jam-server"))
            .args(["--http-addr", args[0], "--wt-addr", args[1], "--cert-dir"])
            .arg(second.path())
            .arg("--data-dir")
            .arg(second.path().join("data"))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(T, run)
            .await
            .expect("the second server gives up at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {taken}")),
            "{flag}: the error names the flag and the address: {stderr}"
        );
        assert!(stderr.contains("in use"), "{flag}: and why: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_limit_is_raised_and_the_connection_cap_kept_below_it() {
    let hard: u64 = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .unwrap_or(0);
    if hard < 512 {
        eprintln!("the hard descriptor limit is {hard}; this test needs 512");
        return;
    }
    // Started with a soft limit of 256 under a hard one of 512, and asked for more
    // connections than that allows.
    let mut child = tokio::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -Sn 256 && ulimit -Hn 512 && exec \"$0\" \"$@\"",
        ])
        .arg(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--http-addr", "127.0.0.1:0", "--wt-addr", "127.0.0.1:0"])
        .args(["--ephemeral-cert", "--max-connections", "5000"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = std::fs::File::from(child.stdout.take().unwrap().into_owned_fd().unwrap());
    let log = tokio::task::spawn_blocking(move || {
        let mut log = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("listening");
            log.push(line);
            if done {
                break;
            }
        }
        log
    });
    let log = tokio::time::timeout(T, log)
        .await
        .expect("starts in time")
        .unwrap();
    let line = |what: &str| {
        log.iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {log:#?}"))
    };
    let limits = line("descriptor limit");
    assert!(
        limits.contains("was=256") && limits.contains("soft=512") && limits.contains("hard=512"),
        "{limits}"
    );
    let lowered = line("--max-connections");
    assert!(
        lowered.contains("WARN") && lowered.contains("lowered_to=448"),
        "{lowered}"
    );
    assert!(line("connection caps").contains("max_connections=448"));
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["512", "512"],
        "{files}"
    );
    child.kill().await.unwrap();
}

/// A platform's `PORT` gives the HTTP port when no HTTP address is given, and
/// `--log-format json` writes one JSON object a line, every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_from_the_platform_and_json_log_lines() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args([
            "--wt-addr",
            "127.0.0.1:0",
            "--ephemeral-cert",
            "--log-format",
            "json",
        ])
        .env("PORT", port.to_string())
        .env_remove("JAM_HTTP_ADDR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut listening = None;
    let mut lines = Vec::new();
    while listening.is_none() {
        let line = rx.recv_timeout(T).expect("log lines until listening");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["message"] == "listening" {
            listening = Some(v);
        }
        lines.push(line);
    }
    let http = listening.unwrap()["http"].as_str().unwrap().to_string();
    assert!(
        http.ends_with(&format!(":{port}")),
        "bound {http}, PORT {port}"
    );
    let (status, body) = jam_client::http_get(&format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + T;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    for line in rx.try_iter() {
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }

    // A PORT that is no port stops the start, naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--wt-addr", "127.0.0.1:0", "--ephemeral-cert"])
        .env("PORT", "http")
        .env_remove("JAM_HTTP_ADDR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT is \"http\""));
}
