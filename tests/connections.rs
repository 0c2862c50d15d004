//! The budgets of the HTTP port on the open internet: a server-wide cap on open
//! connections (the next one refused at once, `/healthz` still answered from another
//! address), a per-address cap on TCP connections, and requests pipelined by a peer that
//! never reads its answers (closed, with bounded memory). Idle keep-alive connections are
//! in `hostile.rs`. Every client is on loopback; `127.0.0.2` stands for another address.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HERE: [u8; 4] = [127, 0, 0, 1];
const ELSEWHERE: [u8; 4] = [127, 0, 0, 2];

/// A TCP connection to `server` from `from`.
async fn connect(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    tokio::time::timeout(T, socket.connect(server))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// Everything the server sends until it closes (a reset ends it too).
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {T:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// `GET path` from `from` on a connection of its own: the status line and the whole answer.
async fn get(from: [u8; 4], server: SocketAddr, path: &str) -> String {
    let mut tcp = connect(from, server).await;
    let request = format!("GET {path} HTTP/1.1\r\nhost: jam\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    String::from_utf8_lossy(&read_to_close(&mut tcp).await).into_owned()
}

/// A connection the server has accepted and counted: it answered a keep-alive request.
async fn held(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let mut tcp = connect(from, server).await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: jam\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(T, tcp.read(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    tcp
}

fn refused_count(metrics: &str, reason: &str) -> u64 {
    let key = format!("jam_connections_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn over_the_server_cap_the_next_connection_is_refused_at_once_and_healthz_answers() {
    let s = TestServer::start_with(|c| c.max_connections = Some(4)).await;
    let addr = s.server.http_addr();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(held(HERE, addr).await);
    }
    let mut ws = s.ws().await;
    ws.create("Ann", "").await.unwrap();

    // Full: a page, a WebSocket and a WebTransport session are refused at once...
    let started = Instant::now();
    let page = get(ELSEWHERE, addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 503"), "{page}");
    assert!(
        jam_client::Client::connect_ws(&s.server.ws_url())
            .await
            .is_err(),
        "a WebSocket over the cap"
    );
    assert!(
        jam_client::Client::connect_wt(
            &s.server.wt_url(),
            &s.server.cert_hash(),
            jam_protocol::Encoding::Json
        )
        .await
        .is_err(),
        "a WebTransport session over the cap"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // ...while /healthz and /metrics still answer, from any address.
    let health = get(ELSEWHERE, addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = get(HERE, addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(refused_count(&metrics, "server_limit") >= 4, "{metrics}");

    // A closed connection's place is free again.
    drop(open.pop());
    let deadline = Instant::now() + T;
    loop {
        let page = get(ELSEWHERE, addr, "/").await;
        if page.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place never came back: {page}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_tcp_connections() {
    let s = TestServer::start_with(|c| c.max_http_connections_per_address = 4).await;
    let addr = s.server.http_addr();
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(held(HERE, addr).await);
    }
    // The fifth is answered 429 before it sends a byte, and closed.
    let started = Instant::now();
    let mut fifth = connect(HERE, addr).await;
    let answer = String::from_utf8_lossy(&read_to_close(&mut fifth).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Another address is not affected.
    let health = get(ELSEWHERE, addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = get(ELSEWHERE, addr, "/metrics").await;
    assert_eq!(
        refused_count(&metrics, "http_address_limit"),
        1,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pipelined_by_a_peer_that_never_reads_are_closed_with_bounded_memory() {
    const PEERS: usize = 32;
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(1)).await;
    let addr = s.server.http_addr();
    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    // Each peer pipelines requests for an 11 KiB file as fast as it can and reads none
    // of the answers, through small socket buffers.
    let requests: Vec<u8> = b"GET /audio.js HTTP/1.1\r\nhost: jam\r\n\r\n".repeat(1024);
    let started = Instant::now();
    let mut peers = tokio::task::JoinSet::new();
    for _ in 0..PEERS {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        let requests = requests.clone();
        peers.spawn(async move {
            let mut sent = 0usize;
            loop {
                match tokio::time::timeout(T, tcp.write_all(&requests)).await {
                    Ok(Ok(())) => sent += requests.len(),
                    Ok(Err(_)) => return (sent, started.elapsed()),
                    Err(_) => panic!("not closed {T:?} after its writes stopped ({sent} bytes)"),
                }
            }
        });
    }
    let mut rss_peak = 0;
    let mut closed_after = Duration::ZERO;
    let mut sent_total = 0;
    let mut sampler = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            joined = peers.join_next() => match joined {
                Some(done) => {
                    let (sent, after) = done.expect("a peer's task");
                    sent_total += sent;
                    closed_after = closed_after.max(after);
                }
                None => break,
            },
            _ = sampler.tick() => {
                rss_peak = rss_peak.max(jam_server::metrics::resident_bytes().unwrap());
            }
        }
    }
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!(
        "{PEERS} peers pipelined {sent_total} bytes of requests; all closed after {closed_after:?}; \
         RSS peak {growth} bytes above the start"
    );
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    assert!(growth < 48 * 1024 * 1024, "RSS grew {growth} bytes");
    // The server answers a well-behaved client afterwards.
    let health = get(ELSEWHERE, addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// A relay to `server` that passes what its client sends and drops every answer: the
/// server sees QUIC Initials from the relay's address, as from a forged source, and no
/// handshake ever completes. `sent` is notified when the first packet has gone through.
async fn one_way_relay(
    server: SocketAddr,
    sent: std::sync::Arc<tokio::sync::Notify>,
) -> SocketAddr {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = front.recv_from(&mut buf).await {
            if back.send(&buf[..n]).await.is_ok() {
                sent.notify_one();
            }
        }
    });
    addr
}

#[tokio::test]
async fn quic_handshakes_that_never_complete_take_no_place_of_their_address() {
    let s = TestServer::start_with(|c| {
        c.max_connections_per_address = 2;
        c.max_connections = Some(8);
    })
    .await;
    // Twelve handshakes from 127.0.0.1 whose answers never arrive: more than the
    // address's places, and more than the server's.
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let sent = std::sync::Arc::new(tokio::sync::Notify::new());
        let relay = one_way_relay(s.server.wt_addr(), sent.clone()).await;
        let hash = s.server.cert_hash();
        attackers.spawn(async move {
            let url = format!("https://{relay}/jam");
            let _ = jam_client::Client::connect_wt(&url, &hash, jam_protocol::Encoding::Json).await;
        });
        tokio::time::timeout(T, sent.notified())
            .await
            .expect("the Initial went through");
    }
    // Their Initials reached the server's socket before this client's: it still
    // connects from the same address and plays.
    let mut a = s.wt().await;
    let mut b = s.wt().await;
    let room = a.create("Ann", "").await.unwrap();
    b.join(&room.room_code, "Bob", "").await.unwrap();
    attackers.abort_all();
}
