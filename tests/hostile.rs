//! Hostile peers (the open-internet issue): a WebSocket peer that floods pings and never
//! reads is cut off as a slow consumer instead of growing the server's memory with pongs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_ping_flooding_peer_that_never_reads_is_cut_off() {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.peer_timeout = Duration::from_secs(1);
    })
    .await;
    // A small receive buffer, so the server's pongs back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(s.server.http_addr()).await.unwrap();
    let url = format!("ws://{}/ws", s.server.http_addr());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let started = Instant::now();
    let mut sent_bytes = 0usize;
    let cut_off = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still connected after sending {sent_bytes} bytes of pings"
        );
        // Never read: only ping, 125 bytes at a time.
        let ping = Message::Ping(vec![7u8; 125].into());
        match tokio::time::timeout(T, ws.send(ping)).await {
            Ok(Ok(())) => sent_bytes += 125,
            Ok(Err(_)) => break started.elapsed(),
            Err(_) => break started.elapsed(), // the server stopped reading us too
        }
    };
    eprintln!("cut off after {cut_off:?} and {sent_bytes} bytes of pings");
    let stats = s.server.stats().snapshot();
    assert!(stats.slow_consumers >= 1, "{stats:?}");
}
