//! Close codes and the log lines that name them on the open internet: a slow
//! consumer gets the 1008 close frame docs/protocol.md promises, not a reset; a client
//! that was killed is logged as gone, not as a protocol violation; a WebTransport peer
//! that went silent is logged as timed out, not as closed by its peer.
//!
//! The tests of this file share one log capture, so they run one at a time.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jam_protocol::ServerEvent;
use serde_json::json;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// Everything the server logs, and a wake-up for each line.
struct Capture {
    text: Mutex<Vec<u8>>,
    written: Notify,
}

fn capture() -> &'static Arc<Capture> {
    static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Arc::new(Capture {
            text: Mutex::new(Vec::new()),
            written: Notify::new(),
        });
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter("jam_server=info")
            .with_ansi(false)
            .with_writer(move || Writer(writer.clone()))
            .init();
        capture
    })
}

struct Writer(Arc<Capture>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.text.lock().unwrap().extend_from_slice(buf);
        self.0.written.notify_waiters();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One test at a time, each with an empty capture.
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = ONE.lock().await;
    capture().text.lock().unwrap().clear();
    guard
}

/// Waits (at most [`T`]) for a logged line that holds every one of `parts`.
async fn logged(parts: &[&str]) -> String {
    let capture = capture();
    let find = || {
        let text = capture.text.lock().unwrap();
        String::from_utf8_lossy(&text)
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
    };
    let wait = async {
        loop {
            let written = capture.written.notified();
            if let Some(line) = find() {
                return line;
            }
            written.await;
        }
    };
    match tokio::time::timeout(T, wait).await {
        Ok(line) => line,
        Err(_) => {
            let text = capture.text.lock().unwrap();
            panic!(
                "no line with {parts:?} in\n{}",
                String::from_utf8_lossy(&text)
            )
        }
    }
}

fn all_logged() -> String {
    String::from_utf8_lossy(&capture().text.lock().unwrap()).into_owned()
}

/// A WebSocket client on a raw socket we can reset, joined to `room`.
async fn raw_member(
    s: &TestServer,
    room: &str,
    name: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    std::net::SocketAddr,
) {
    let tcp = tokio::net::TcpStream::connect(s.server.http_addr())
        .await
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(s.server.ws_url(), tcp)
        .await
        .unwrap();
    let join = json!({"event":"session:join","data":{"roomCode": room, "name": name}});
    ws.send(Message::text(join.to_string())).await.unwrap();
    (ws, local)
}

#[tokio::test]
async fn a_killed_websocket_client_is_logged_as_gone_not_as_a_protocol_violation() {
    let _one = exclusive().await;
    let s = TestServer::start().await;
    let mut host = s.wt().await;
    let room = create(&mut host, "H").await;
    // Killed with its socket reset (SO_LINGER 0, or unread bytes at exit), and killed
    // with a plain FIN: neither sent a close frame.
    for (name, reset) in [("Reset", true), ("Fin", false)] {
        let (ws, local) = raw_member(&s, &room.room_code, name).await;
        host.wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
            .await
            .unwrap();
        let tcp = ws.into_inner();
        if reset {
            // Deprecated because a linger blocks the thread on drop; a zero linger does
            // not wait, it resets.
            #[allow(deprecated)]
            tcp.set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(tcp);
        host.wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
            .await
            .unwrap();
        let peer = format!("peer={local}");
        let line = logged(&[&peer, "disconnected"]).await;
        assert!(line.contains("reason=\"closed by peer\""), "{line}");
    }
    assert!(!all_logged().contains("protocol violation"));
}

#[tokio::test]
async fn a_silent_webtransport_peer_is_logged_as_timed_out() {
    let _one = exclusive().await;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(1)).await;
    let mut host = s.ws().await;
    let room = create(&mut host, "H").await;
    let (mut ghost, dark) = s.silenceable("wt").await;
    ghost.join(&room.room_code, "Ghost", "").await.unwrap();
    dark.store(true, std::sync::atomic::Ordering::Relaxed);
    host.wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
        .await
        .expect("the silent peer is dropped");
    let line = logged(&["transport=\"wt\"", "disconnected"]).await;
    assert!(line.contains("reason=\"peer timed out\""), "{line}");
    drop(ghost);
}

#[tokio::test]
async fn a_slow_consumer_gets_the_1008_close_frame_once_it_reads_again() {
    let _one = exclusive().await;
    let s = TestServer::start_with(|c| {
        c.outbox_capacity = 16;
        c.peer_timeout = Duration::from_secs(5);
        c.ping_interval = Duration::from_secs(1);
    })
    .await;
    // The watcher reads on WebSocket: a WebTransport watcher's 16-message queue behind a
    // 512 KiB QUIC send window can overflow first under this flood of 8 KB events, and
    // then the slow consumer counted below would be the watcher, not the stalled member.
    let (sender, mut watcher, room) = room_of_two(&s, "ws", "ws").await;
    // A member that stops reading: a small receive buffer fills fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(s.server.http_addr()).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(s.server.ws_url(), tcp)
        .await
        .unwrap();
    let join = json!({"event":"session:join","data":{"roomCode": room.room_code, "name": "Slow"}});
    stalled.send(Message::text(join.to_string())).await.unwrap();
    watcher
        .wait_for(T, |r| matches!(r.event(), ServerEvent::UserJoined(_)))
        .await
        .unwrap();
    // Reliable events until the server gives up on it.
    let pad = "p".repeat(8_000);
    let flood = async {
        for i in 0.. {
            sender
                .broadcast(&room.room_code, "n", &json!({"i": i, "pad": pad}))
                .await
                .unwrap();
            if s.server.stats().snapshot().slow_consumers > 0 {
                break;
            }
            if i % 16 == 15 {
                // Keep the watcher's own queue short.
                while watcher.recv_timeout(Duration::from_millis(1)).await.is_ok() {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("cut off as a slow consumer");
    // Reading again, it finds what was already on its way, then the close frame.
    expect_overflow_close(&mut stalled).await;
    // Reading on sends our answer to the close, and the server ends the connection.
    let end = tokio::time::timeout(T, async { while let Some(Ok(_)) = stalled.next().await {} });
    end.await
        .expect("the connection ends after the close handshake");
    let line = logged(&[&format!("peer={local}"), "disconnected"]).await;
    assert!(
        line.contains("reason=\"outgoing queue overflowed\""),
        "{line}"
    );
}
