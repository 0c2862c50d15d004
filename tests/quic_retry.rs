//! QUIC address validation on the WebTransport port: a Retry for sources not yet proven
//! (`--quic-retry`), and the caps on handshakes in progress. The flood is real QUIC client
//! Initials (caught from this workspace's client, each with a connection id of its own)
//! sent again from a plain UDP socket that never finishes a handshake. Every client is on
//! loopback; `127.0.0.2` stands for another address.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use jam_client::{Client, Encoding};
use jam_protocol::ServerEvent;
use jam_server::handshakes::RetryPolicy;
use serde_json::json;
use tokio::net::UdpSocket;

/// Initials in a flood: bounded, and far over the per-address cap.
const FLOOD: usize = 200;

/// The value of the metric line that starts with `key` followed by a space.
fn metric(metrics: &str, key: &str) -> u64 {
    let key = format!("{key} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key}in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

async fn scrape(s: &TestServer) -> String {
    let (status, body) = s.get("/metrics").await;
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// Scrapes `/metrics` until `ok` holds of it (within [`T`]); the last scrape.
async fn metrics_until(s: &TestServer, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        let m = scrape(s).await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}: not within {T:?}\n{m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WebTransport client of `s` whose socket is bound to `from`.
async fn wt_from(s: &TestServer, from: &str) -> anyhow::Result<Client> {
    let bind: SocketAddr = format!("{from}:0").parse()?;
    let endpoint = jam_client::wt_endpoint_bound(&s.server.cert_hash(), bind)?;
    let c = tokio::time::timeout(
        T,
        Client::connect_wt_on(&endpoint, &s.server.wt_url(), Encoding::Json, None),
    )
    .await??;
    Ok(c)
}

/// `host` creates a room, `guest` joins it and a note from `guest` reaches `host`.
async fn plays(host: &mut Client, guest: &mut Client, ctx: &str) {
    let room = create(host, "Host").await;
    guest
        .join(&room.room_code, "Guest", "drums")
        .await
        .unwrap_or_else(|e| panic!("{ctx}: join: {e}"));
    guest
        .broadcast(&room.room_code, "note", &json!({"n": 60}))
        .await
        .unwrap();
    let got = next_broadcast(host).await;
    assert!(
        matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({"n": 60})),
        "{ctx}: {got:?}"
    );
}

/// Sends every Initial of `flood` to the server from `socket`, each once the server has
/// answered the one before (or [`T`] passed: a refusal or a kept handshake may be
/// answered late), so none is lost to a full socket buffer; counts the Retry packets
/// that come back.
async fn send_flood(socket: &UdpSocket, server: SocketAddr, flood: &[Vec<u8>]) -> usize {
    let mut retries = 0;
    let mut buf = vec![0u8; 2048];
    let mut count = |n: usize, buf: &[u8]| retries += usize::from(jam_client::is_retry(&buf[..n]));
    for initial in flood {
        socket.send_to(initial, server).await.unwrap();
        if let Ok(Ok((n, _))) = tokio::time::timeout(T, socket.recv_from(&mut buf)).await {
            count(n, &buf);
        }
    }
    // Whatever is still on its way.
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
    {
        count(n, &buf);
    }
    retries
}

#[tokio::test]
async fn with_retry_always_a_webtransport_client_is_retried_and_still_connects_and_plays() {
    let s = TestServer::start_with(|c| c.quic_retry = RetryPolicy::Always).await;
    let mut host = s.wt().await;
    let mut guest = s.wt().await;
    plays(&mut host, &mut guest, "always").await;
    let m = scrape(&s).await;
    assert!(
        metric(&m, "jam_quic_retries_total") >= 2,
        "each client was sent a Retry first\n{m}"
    );
    assert_eq!(metric(&m, "jam_connections{transport=\"webtransport\"}"), 2);
    assert_eq!(
        metric(&m, "jam_quic_handshakes"),
        0,
        "no handshake left open"
    );
}

#[tokio::test]
async fn a_flood_of_unfinished_handshakes_is_retried_and_its_address_and_others_still_connect() {
    let s = TestServer::start().await;
    let flood = jam_client::client_initials(FLOOD, T).await.unwrap();
    assert_eq!(flood.len(), FLOOD, "every attempt's Initial was caught");
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let retried = send_flood(&spoofer, s.server.wt_addr(), &flood).await;

    // The first Initial of an idle address is taken on trust; the rest were retried, and
    // nothing was kept for them.
    let m = metrics_until(&s, "every Initial answered", |m| {
        metric(m, "jam_quic_retries_total") >= (FLOOD - 1) as u64
    })
    .await;
    assert!(retried >= FLOOD - 1, "{retried} Retry packets came back");
    let in_progress = metric(&m, "jam_quic_handshakes");
    assert!(
        in_progress <= 1,
        "{in_progress} handshakes in progress\n{m}"
    );

    // The same address still connects, over WebSocket and over WebTransport (retried,
    // as its address has a handshake in progress, and then admitted), and so does another.
    let retries_before = metric(&m, "jam_quic_retries_total");
    let mut ws = s.ws().await;
    let mut here = wt_from(&s, "127.0.0.1")
        .await
        .expect("wt from the same address");
    plays(&mut ws, &mut here, "same address").await;
    let mut elsewhere = wt_from(&s, "127.0.0.2").await.expect("wt from 127.0.0.2");
    let mut ws2 = s.ws().await;
    plays(&mut elsewhere, &mut ws2, "another address").await;
    let m = scrape(&s).await;
    assert!(metric(&m, "jam_quic_retries_total") > retries_before, "{m}");
    assert!(metric(&m, "jam_quic_handshakes") <= 1, "{m}");
    assert_eq!(metric(&m, "jam_connections{transport=\"webtransport\"}"), 2);
}

#[tokio::test]
async fn without_retry_a_flood_is_held_to_the_per_address_cap_and_the_rest_refused() {
    const CAP: usize = 4;
    let s = TestServer::start_with(|c| {
        c.quic_retry = RetryPolicy::Never;
        c.max_handshakes_per_address = CAP;
    })
    .await;
    let flood = jam_client::client_initials(50, T).await.unwrap();
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let retried = send_flood(&spoofer, s.server.wt_addr(), &flood).await;
    assert_eq!(retried, 0, "no Retry with --quic-retry never");
    let m = metrics_until(&s, "every Initial refused or taken", |m| {
        metric(
            m,
            "jam_connections_refused_total{reason=\"handshake_limit\"}",
        ) >= (flood.len() - CAP) as u64
    })
    .await;
    assert_eq!(metric(&m, "jam_quic_handshakes"), CAP as u64, "{m}");
    // Another address is not held up by it.
    let mut a = wt_from(&s, "127.0.0.2").await.expect("wt from 127.0.0.2");
    let mut b = wt_from(&s, "127.0.0.2").await.expect("a second one");
    plays(&mut a, &mut b, "another address").await;
    assert_eq!(metric(&scrape(&s).await, "jam_quic_retries_total"), 0);
}
