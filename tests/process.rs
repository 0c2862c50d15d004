//! The real binary: it starts on ephemeral ports, logs what it bound, and on SIGTERM closes
//! its clients properly and exits within a few seconds.

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

#[tokio::test]
async fn sigterm_closes_clients_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--wt-addr",
            "127.0.0.1:0",
            "--cert-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
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
    let (http, wt, hash) = read_listening(&mut lines);
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
