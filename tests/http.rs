//! The HTTP side with `--web-dir`: files are served from that folder and from nowhere
//! else, whatever the request path decodes to; a folder that does not exist stops the
//! server at start.

mod common;

use common::{TestServer, T};
use jam_client::http_get;

/// A web folder with one page, next to a secret the server must never serve.
fn web_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let web = root.path().join("web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("index.html"), "<p>demo</p>").unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), web.join("link.txt")).unwrap();
    (root, web)
}

#[tokio::test]
async fn web_dir_serves_its_files_and_nothing_outside_it() {
    let (_root, web) = web_dir();
    let s = TestServer::start_with(|c| c.web_dir = Some(web.clone())).await;
    let base = s.http_base();
    let (status, body) = http_get(&format!("{base}/index.html")).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"<p>demo</p>"[..]));
    let (status, _) = http_get(&format!("{base}/")).await.unwrap();
    assert_eq!(status, 200);

    let secret = web.parent().unwrap().join("secret.txt");
    let absolute = secret.to_str().unwrap().replace('/', "%2F");
    for path in [
        // Decodes to an absolute path: `dir.join` used to serve it.
        "/%2Fetc%2Fpasswd".to_owned(),
        format!("/{absolute}"),
        "/..%2Fsecret.txt".to_owned(),
        "/%2E%2E/secret.txt".to_owned(),
        "/x/..%2F..%2Fsecret.txt".to_owned(),
        "/..%5Csecret.txt".to_owned(),
        "/index.html%00".to_owned(),
        // A symbolic link that points out of the folder.
        "/link.txt".to_owned(),
    ] {
        let (status, body) = http_get(&format!("{base}{path}")).await.unwrap();
        assert_eq!(status, 404, "{path}");
        assert!(!body.windows(6).any(|w| w == b"secret"), "{path}");
        assert!(!body.windows(5).any(|w| w == b"root:"), "{path}");
    }
}

/// Sends `GET <target>` exactly as written (no client normalises it, like `curl
/// --path-as-is`), with `headers` (each `\r\nName: value`) after `Connection: close`, and
/// returns the whole answer once the server has closed the connection.
async fn raw_request(addr: std::net::SocketAddr, target: &str, headers: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close{headers}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    answer
}

/// [`raw_request`] with no more headers: the status and body.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let answer = raw_request(addr, target, "").await;
    let status = std::str::from_utf8(&answer[9..12])
        .unwrap()
        .parse()
        .unwrap();
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| answer[at + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn paths_sent_as_is_cannot_leave_the_folder() {
    let (_root, web) = web_dir();
    let with_dir = TestServer::start_with(|c| c.web_dir = Some(web.clone())).await;
    let built_in = TestServer::start().await;
    let secret = web.parent().unwrap().join("secret.txt");
    let absolute = format!("/{}", secret.display());
    for s in [&with_dir, &built_in] {
        let addr = s.server.http_addr();
        for target in [
            "//etc/passwd",
            absolute.as_str(),
            "/../secret.txt",
            "/../../../../etc/passwd",
            "/./../secret.txt",
            "/%2F%2Fetc%2Fpasswd",
            "/..%2f..%2f..%2fetc%2fpasswd",
            "/%252e%252e/secret.txt",
            "/.%2e/secret.txt",
            "/x/%2e%2e/%2e%2e/secret.txt",
        ] {
            let (status, body) = raw_get(addr, target).await;
            assert!(status == 404 || status == 400, "{target}: {status}");
            assert!(!body.windows(6).any(|w| w == b"secret"), "{target}");
            assert!(!body.windows(5).any(|w| w == b"root:"), "{target}");
        }
    }
    let (status, body) = raw_get(with_dir.server.http_addr(), "/index.html").await;
    assert_eq!((status, body.as_slice()), (200, &b"<p>demo</p>"[..]));
}

#[tokio::test]
async fn web_dir_serves_regular_files_of_a_bounded_size_only() {
    let (_root, web) = web_dir();
    // Inside the folder, but not files to serve: a pipe (a read would never end), devices
    // through links, a directory, and a file over the 16 MiB cap.
    let fifo = web.join("pipe.js");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir(web.join("dir.js")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", web.join("zero.js")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", web.join("random.js")).unwrap();
    let big = std::fs::File::create(web.join("big.js")).unwrap();
    big.set_len(17 * 1024 * 1024).unwrap();
    std::fs::write(web.join("ok.js"), "export {}").unwrap();
    let s = TestServer::start_with(|c| c.web_dir = Some(web.clone())).await;
    let base = s.http_base();
    for path in ["/pipe.js", "/dir.js", "/big.js", "/zero.js", "/random.js"] {
        let got = tokio::time::timeout(T, http_get(&format!("{base}{path}"))).await;
        let (status, _) = got.expect("answered at once").unwrap();
        assert_eq!(status, 404, "{path}");
    }
    let (status, body) = http_get(&format!("{base}/ok.js")).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"export {}"[..]));
}

#[tokio::test]
async fn the_built_in_demo_refuses_encoded_absolute_paths() {
    let s = TestServer::start().await;
    let (status, _) = s.get("/%2Fetc%2Fpasswd").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_web_dir_stops_the_server_at_start() {
    let root = tempfile::tempdir().unwrap();
    let mut config = jam_server::Config::loopback();
    config.web_dir = Some(root.path().join("nope"));
    let err = jam_server::RunningServer::start(config)
        .await
        .err()
        .expect("the server refuses to start");
    assert!(format!("{err:#}").contains("--web-dir"), "{err:#}");
}

#[tokio::test]
async fn requests_to_ws_that_are_no_handshake_are_refused_with_the_rfc_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let addr = s.server.http_addr();
    let ask = |headers: &'static str| async move {
        String::from_utf8_lossy(&raw_request(addr, "/ws", headers).await).into_owned()
    };
    let plain = ask("").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    let old = ask("\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==").await;
    assert!(old.starts_with("HTTP/1.1 426"), "{old}");
    assert!(
        old.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{old}"
    );
    let keyless =
        ask("\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13").await;
    assert!(keyless.starts_with("HTTP/1.1 400"), "{keyless}");
    // The RFC's own example key gets the RFC's accept value and our subprotocol.
    let mut tcp = tokio::net::TcpStream::connect(s.server.http_addr())
        .await
        .unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Protocol: other, jam.v1\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tokio::time::timeout(T, tcp.read(&mut head))
        .await
        .expect("answered")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("sec-websocket-protocol: jam.v1"), "{head}");
}

#[tokio::test]
async fn with_an_admin_address_metrics_and_stats_are_served_only_there() {
    let s = common::TestServer::start_with(|c| c.admin_addr = Some("127.0.0.1:0".parse().unwrap()))
        .await;
    let admin = s.server.admin_addr().expect("the admin address is bound");
    for path in ["/metrics", "/stats"] {
        let (status, _) = s.get(path).await;
        assert_eq!(status, 404, "{path} is not on the public port");
        let (status, body) = jam_client::http_get(&format!("http://{admin}{path}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{path} on the admin address");
        assert!(!body.is_empty());
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(s.get(path).await.0, 200, "{path} public");
        let (status, _) = jam_client::http_get(&format!("http://{admin}{path}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{path} on the admin address");
    }
    // Without one, both are public as before.
    let plain = common::TestServer::start().await;
    assert_eq!(plain.get("/metrics").await.0, 200);
    assert_eq!(plain.get("/stats").await.0, 200);
}

#[tokio::test]
async fn webtransport_off_is_announced_and_a_host_name_is_resolved_at_start() {
    use jam_server::config::WtAddr;
    // Off: no UDP, `/connect` says so, and WebSocket plays.
    let off = TestServer::start_with(|c| c.wt_addr = WtAddr::Off).await;
    assert_eq!(off.server.wt_bound(), None);
    let (status, body) = off.get("/connect").await;
    assert_eq!(status, 200);
    let connect: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(connect["webtransport"], serde_json::Value::Null);
    assert!(connect["websocket"]["url"].is_string());
    let mut ws = off.ws().await;
    ws.create("Ana", "")
        .await
        .expect("WebSocket plays without WebTransport");

    // A host name and port, as on Fly.io (`fly-global-services:443`), resolved at start.
    let named = TestServer::start_with(|c| c.wt_addr = WtAddr::At("localhost:0".into())).await;
    let bound = named.server.wt_bound().expect("bound");
    assert!(bound.ip().is_loopback(), "{bound}");
    let mut wt = named.wt().await;
    wt.create("Ben", "")
        .await
        .expect("WebTransport on the resolved address");

    // Anything else is refused at start, naming the flag.
    for bad in ["nowhere", "host:notaport", "[::1]:", "a/b:80"] {
        let err = bad.parse::<WtAddr>().unwrap_err();
        assert!(err.contains("not `off`"), "{bad}: {err}");
    }
}
