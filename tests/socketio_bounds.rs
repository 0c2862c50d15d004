//! Bounds on Socket.IO's HTTP requests (Engine.IO long polling): a POST body has a size
//! limit and a deadline, and one that is large or slow to come takes a place of its
//! address while it is read. Raw HTTP/1.1 on loopback, as an attacker sends it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends `head` (and `body`) on a fresh connection.
async fn send(s: &TestServer, head: &str, body: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(s.server.http_addr()).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    tcp
}

/// Everything the server sends until it closes (bounded by [`T`]).
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens an Engine.IO session by long polling; its `sid`.
async fn handshake(s: &TestServer) -> String {
    let mut tcp = send(
        s,
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let sid = answer
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no sid in {answer}"));
    sid.to_owned()
}

/// A POST of packets to session `sid` that declares `length` bytes.
fn post_head(sid: &str, length: usize) -> String {
    format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_unfinished_post_body_is_cut_off_and_an_oversize_one_refused() {
    let s = TestServer::start_with_peer_timeout(PEER_TIMEOUT).await;
    let sid = handshake(&s).await;

    // One byte short, and then nothing: the deadline answers 408 and closes.
    let began = Instant::now();
    let mut short = send(&s, &post_head(&sid, 100), &[b'x'; 99]).await;
    let answer = read_to_close(&mut short).await;
    let took = began.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= PEER_TIMEOUT && took < PEER_TIMEOUT + Duration::from_secs(2),
        "cut off after {took:?}"
    );

    // A body larger than the Engine.IO payload limit is refused before it is read.
    let mut big = send(&s, &post_head(&sid, 2 * 1024 * 1024), b"4").await;
    let answer = read_to_close(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn unfinished_bodies_take_places_of_their_address() {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.peer_timeout = Duration::from_secs(3);
        c.max_connections_per_address = 4;
    })
    .await;
    // The session holds one place; of five unfinished POSTs to it, three take the
    // others once their free second is over, and two are refused.
    let sid = handshake(&s).await;
    let mut posts = Vec::new();
    for _ in 0..5 {
        posts.push(send(&s, &post_head(&sid, 100), b"4").await);
    }
    let answers = futures_util::future::join_all(posts.iter_mut().map(read_to_close)).await;
    let status = |code: &str| {
        answers
            .iter()
            .filter(|a| a.starts_with(&format!("HTTP/1.1 {code}")))
            .count()
    };
    assert_eq!((status("429"), status("408")), (2, 3), "{answers:?}");
    // A small body that comes at once takes no place: a polling client's POSTs (to a
    // new session: the first one, never polled, missed its heartbeat meanwhile).
    let sid = handshake(&s).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(send(&s, &post_head(&sid, 100), b"4").await);
    }
    let mut post = send(&s, &post_head(&sid, 1), b"3").await;
    let answer = read_to_close(&mut post).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}
