//! Clients behind a reverse proxy (`--trusted-proxies`): from a trusted peer the client's
//! address, scheme and host come from the forwarding headers, and every per-address limit
//! (WebSocket and Socket.IO connections, the join-guess budget) counts the client; from
//! any other peer the same headers change nothing. The "proxy" here is the test itself on
//! 127.0.0.1, writing the headers a proxy would.

mod common;

use common::{create, TestServer, T};
use futures_util::StreamExt;
use jam_protocol::ErrorCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// A WebSocket to `s` whose upgrade request carries `headers`: the upgrade's HTTP status
/// (101 when admitted) and, admitted, the socket.
async fn ws_with(
    s: &TestServer,
    headers: &[(&str, &str)],
) -> (
    u16,
    Option<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
) {
    let mut req = s.server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        jam_protocol::SUBPROTOCOL.parse().unwrap(),
    );
    for (k, v) in headers {
        req.headers_mut().insert(http_name(k), v.parse().unwrap());
    }
    match tokio::time::timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .expect("answers in time")
    {
        Ok((ws, res)) => (res.status().as_u16(), Some(ws)),
        Err(WsError::Http(res)) => (res.status().as_u16(), None),
        Err(e) => panic!("{e}"),
    }
}

fn http_name(k: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    k.parse().unwrap()
}

/// A server trusting `trusted` (a `--trusted-proxies` list), with 2 connections an
/// address and a join-guess budget of 2.
async fn server(trusted: &str) -> TestServer {
    let trusted = trusted.to_string();
    TestServer::start_with(move |c| {
        c.trusted_proxies = trusted;
        c.max_connections_per_address = 2;
        c.join_failure_burst = 2;
        c.join_failures_per_minute = 1;
    })
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_connection_budget() {
    let s = server("127.0.0.1").await;
    // 100 clients through one proxy address: every one is admitted.
    let mut open = Vec::new();
    for i in 0..100 {
        let ip = format!("203.0.113.{}", i + 1);
        let (status, ws) = ws_with(&s, &[("x-forwarded-for", &ip)]).await;
        assert_eq!(status, 101, "client {ip}");
        open.push(ws.unwrap());
    }
    // One client's third connection is refused: the cap counts the client.
    let same = [("x-forwarded-for", "198.51.100.7")];
    let (a, _wa) = ws_with(&s, &same).await;
    let (b, _wb) = ws_with(&s, &same).await;
    let (c, _) = ws_with(&s, &same).await;
    assert_eq!((a, b, c), (101, 101, 429));
    // A client that wrote its own X-Forwarded-For entry is still the proxy's last hop.
    let forged = [("x-forwarded-for", "203.0.113.1, 198.51.100.7")];
    assert_eq!(
        ws_with(&s, &forged).await.0,
        429,
        "the right-most untrusted hop counts"
    );
    // `Forwarded` and `Fly-Client-IP` say it too.
    let (status, _w1) = ws_with(
        &s,
        &[("forwarded", "for=\"[2001:db8::1]:1234\";proto=https")],
    )
    .await;
    assert_eq!(status, 101);
    let (status, _w2) = ws_with(&s, &[("fly-client-ip", "192.0.2.9")]).await;
    assert_eq!(status, 101);
    drop(open);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_change_nothing() {
    // Trusts another network only: 127.0.0.1 is just a client.
    let s = server("10.0.0.0/8").await;
    let (a, _wa) = ws_with(&s, &[("x-forwarded-for", "203.0.113.1")]).await;
    let (b, _wb) = ws_with(&s, &[("x-forwarded-for", "203.0.113.2")]).await;
    let (c, _) = ws_with(&s, &[("fly-client-ip", "203.0.113.3")]).await;
    assert_eq!((a, b, c), (101, 101, 429), "all three are 127.0.0.1");
    // `/connect` ignores the scheme and host it is told.
    let base = s.http_base();
    let connect = get_json(
        &format!("{base}/connect"),
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ],
    )
    .await;
    let url = connect["websocket"]["url"].as_str().unwrap();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_connect_answers_with_the_clients_scheme_and_host() {
    let s = server("127.0.0.1").await;
    let base = s.http_base();
    let connect = get_json(
        &format!("{base}/connect"),
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "jam.example.com"),
        ],
    )
    .await;
    assert_eq!(connect["websocket"]["url"], "wss://jam.example.com/ws");
    let connect = get_json(
        &format!("{base}/connect"),
        &[(
            "forwarded",
            "for=203.0.113.4;proto=https;host=jam.example.org:8443",
        )],
    )
    .await;
    assert_eq!(connect["websocket"]["url"], "wss://jam.example.org:8443/ws");
}

#[tokio::test]
async fn the_join_guess_budget_is_each_clients_own_behind_a_trusted_proxy() {
    let s = server("127.0.0.1").await;
    let mut host = s.ws().await;
    let room = create(&mut host, "Host").await;
    // Client A guesses until the budget refuses it.
    let (_, a) = ws_with(&s, &[("x-forwarded-for", "203.0.113.50")]).await;
    let mut a = a.unwrap();
    let mut codes = Vec::new();
    for _ in 0..4 {
        guess(&mut a, "ZZZZZZ").await;
        codes.push(next_error_code(&mut a).await);
    }
    assert_eq!(codes.last(), Some(&ErrorCode::RateLimited), "{codes:?}");
    // Client B, through the same proxy, still joins: its budget is its own.
    let (_, b) = ws_with(&s, &[("x-forwarded-for", "203.0.113.51")]).await;
    let mut b = b.unwrap();
    guess(&mut b, "ZZZZZZ").await;
    assert_eq!(next_error_code(&mut b).await, ErrorCode::RoomNotFound);
    let join = json!({"event": "session:join", "data": {"roomCode": room.room_code, "name": "B"}, "id": 2});
    send_text(&mut b, join.to_string()).await;
    let answer = next_event_name(&mut b).await;
    assert_eq!(answer, "session:joined");
}

/// A `session:join` of `code`, whose answer has `id` 1.
async fn guess(ws: &mut Ws, code: &str) {
    let msg = json!({"event": "session:join", "data": {"roomCode": code, "name": "G"}, "id": 1});
    send_text(ws, msg.to_string()).await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_text(ws: &mut Ws, text: String) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
        .await
        .unwrap();
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(T, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn next_error_code(ws: &mut Ws) -> ErrorCode {
    loop {
        let v = next_json(ws).await;
        if v["event"] == "error" {
            return v["data"]["code"].as_str().unwrap().parse().unwrap();
        }
    }
}

async fn next_event_name(ws: &mut Ws) -> String {
    loop {
        let v = next_json(ws).await;
        if v["id"] == 2 {
            return v["event"].as_str().unwrap().to_string();
        }
    }
}

async fn get_json(url: &str, headers: &[(&str, &str)]) -> Value {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(T, req.send()).await.unwrap().unwrap();
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn socket_io_sessions_count_the_client_behind_a_trusted_proxy() {
    let s = server("127.0.0.1").await;
    let url = format!("{}/socket.io/?EIO=4&transport=polling", s.http_base());
    let open = |ip: &'static str| {
        let url = url.clone();
        async move {
            let res = reqwest::Client::new()
                .get(&url)
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    };
    // Three clients through one proxy address, with 2 sessions an address: all admitted.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(open(ip).await, 200, "{ip}");
    }
    // One client's third Engine.IO session is refused.
    assert_eq!(open("198.51.100.1").await, 200);
    assert_eq!(open("198.51.100.1").await, 200);
    assert_eq!(open("198.51.100.1").await, 429);
}
