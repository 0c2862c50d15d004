//! Origins and cross-site use (PROTOCOL.md §10): `--allowed-origins` on the WebSocket
//! upgrade, the WebTransport session and `/connect` (CORS, with its preflight).

mod common;

use common::*;
use jam_client::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wtransport::endpoint::ConnectOptions;

const POLICY: &str = "https://jam.example.com, https://*.example.org, null";

async fn ws_with_origin(s: &TestServer, origin: Option<&str>) -> Result<(), String> {
    let mut request = s.server.ws_url().into_client_request().unwrap();
    if let Some(o) = origin {
        request.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn wt_with_origin(s: &TestServer, origin: Option<&str>) -> Result<(), String> {
    let endpoint = jam_client::wt_endpoint(&s.server.cert_hash(), None).unwrap();
    let mut options = ConnectOptions::builder(s.server.wt_url());
    if let Some(o) = origin {
        options = options.add_header("origin", o);
    }
    endpoint
        .connect(options.build())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `/connect` (GET or OPTIONS) with an `Origin`: status, `Access-Control-Allow-Origin`,
/// `Vary`.
async fn connect_cors(
    s: &TestServer,
    method: reqwest::Method,
    origin: &str,
) -> (u16, Option<String>, Option<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .request(method, format!("{}/connect", s.http_base()))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("access-control-allow-origin"),
        header("vary"),
    )
}

#[tokio::test]
async fn only_allowed_origins_reach_a_room_and_native_clients_always_do() {
    let s = TestServer::start_with(|c| c.allowed_origins = POLICY.into()).await;
    for origin in [
        None,
        Some("https://jam.example.com"),
        Some("https://a.b.example.org"),
        Some("null"),
    ] {
        ws_with_origin(&s, origin)
            .await
            .unwrap_or_else(|e| panic!("ws {origin:?}: {e}"));
        wt_with_origin(&s, origin)
            .await
            .unwrap_or_else(|e| panic!("wt {origin:?}: {e}"));
    }
    for origin in [
        "https://evil.example",
        "https://example.org",
        "http://jam.example.com",
        "https://jam.example.com:8443",
    ] {
        let err = ws_with_origin(&s, Some(origin)).await.expect_err(origin);
        assert!(err.contains("403"), "ws {origin}: {err}");
        let err = wt_with_origin(&s, Some(origin)).await.expect_err(origin);
        // wtransport reports a refused session without its status code.
        assert!(err.contains("rejected"), "wt {origin}: {err}");
    }
    // The refused ones never got a session: the server has no connection left over.
    let mut c = Client::connect_ws(&s.server.ws_url()).await.unwrap();
    create(&mut c, "Native").await;
}

#[tokio::test]
async fn connect_answers_cors_for_allowed_origins_and_its_preflight() {
    let s = TestServer::start_with(|c| c.allowed_origins = POLICY.into()).await;
    for method in [reqwest::Method::GET, reqwest::Method::OPTIONS] {
        let ok = if method == reqwest::Method::GET {
            200
        } else {
            204
        };
        let (status, allow, vary) = connect_cors(&s, method.clone(), "https://x.example.org").await;
        assert_eq!(status, ok, "{method}");
        assert_eq!(allow.as_deref(), Some("https://x.example.org"), "{method}");
        assert_eq!(vary.as_deref(), Some("Origin"), "{method}");
        let (status, allow, vary) = connect_cors(&s, method.clone(), "https://evil.example").await;
        assert_eq!(status, ok, "{method}");
        assert_eq!(allow, None, "{method}: no CORS for another origin");
        assert_eq!(vary.as_deref(), Some("Origin"), "{method}");
    }
    // The default allows every origin.
    let open = TestServer::start().await;
    let (_, allow, _) = connect_cors(&open, reqwest::Method::GET, "https://anything.example").await;
    assert_eq!(allow.as_deref(), Some("https://anything.example"));
    ws_with_origin(&open, Some("https://anything.example"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_malformed_origin_list_stops_the_start() {
    let mut config = jam_server::Config::loopback();
    config.allowed_origins = "jam.example.com".into();
    let err = jam_server::RunningServer::start(config)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("--allowed-origins"), "{err:#}");
}
