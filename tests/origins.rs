//! Origins and cross-site use (docs/protocol.md §10): `--allowed-origins` on the WebSocket
//! upgrade, the WebTransport session and `/connect` (CORS, with its preflight; a refused
//! page reads why), and the rate-limited log of refusals.

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
        if method == reqwest::Method::GET {
            // The page may read why it was refused (see below), so CORS names it.
            assert_eq!(status, 403);
            assert_eq!(allow.as_deref(), Some("https://evil.example"));
        } else {
            assert_eq!(status, ok, "{method}");
            assert_eq!(allow, None, "{method}: no CORS for another origin");
        }
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

/// `GET /connect` with `origin` (or none): status, content type, CORS origin and body.
async fn connect_answer(
    s: &TestServer,
    origin: Option<&str>,
) -> (u16, String, Option<String>, serde_json::Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(format!("{}/connect", s.http_base()));
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let kind = header("content-type").unwrap_or_default();
    let allow = header("access-control-allow-origin");
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, kind, allow, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_refused_page_learns_why_from_connect_and_allowed_ones_see_no_change() {
    let s = TestServer::start_with(|c| c.allowed_origins = POLICY.into()).await;
    let (status, kind, allow, body) = connect_answer(&s, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    assert_eq!(kind, "application/json");
    assert_eq!(allow.as_deref(), Some("https://evil.example"));
    assert_eq!(body, serde_json::json!({ "error": "origin_not_allowed" }));
    for origin in [Some("https://jam.example.com"), None] {
        let (status, kind, allow, body) = connect_answer(&s, origin).await;
        assert_eq!(status, 200, "{origin:?}");
        assert_eq!(kind, "application/json", "{origin:?}");
        assert_eq!(allow.as_deref(), origin, "{origin:?}");
        assert!(body["websocket"]["url"].is_string(), "{origin:?}: {body}");
        assert!(body.get("error").is_none(), "{origin:?}: {body}");
    }
}

/// What one thread logs (the tests below run the server on their own thread).
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn refused_origins_are_logged_at_most_once_a_second_with_a_count() {
    let log = Lines::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("jam_server=warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: the server's tasks log on this thread.
    let _default = tracing::subscriber::set_default(subscriber);
    let s = TestServer::start_with(|c| c.allowed_origins = POLICY.into()).await;
    let started = std::time::Instant::now();
    let refusals = 30;
    for i in 0..refusals {
        let origin = format!("https://evil{i}.example");
        if i % 2 == 0 {
            ws_with_origin(&s, Some(&origin))
                .await
                .expect_err("refused");
        } else {
            let (status, ..) = connect_answer(&s, Some(&origin)).await;
            assert_eq!(status, 403);
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("origin not allowed"))
        .collect();
    assert!(!lines.is_empty(), "a refusal is logged: {text}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains("https://evil0.example"), "{}", lines[0]);
    assert!(lines[0].contains("via=\"ws\""), "{}", lines[0]);
    assert!(
        lines.len() as u64 <= elapsed.as_secs() + 1,
        "{} lines in {elapsed:?}: {text}",
        lines.len()
    );
    // Every line after the first says how many went unlogged before it.
    let counted: u64 = lines
        .iter()
        .filter_map(|l| {
            l.split("suppressed=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(counted + lines.len() as u64 <= refusals, "{text}");
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
