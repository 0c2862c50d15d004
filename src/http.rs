//! The HTTP side: the web demo at `/` (and the client library at `/jam-client.js`, its
//! modules at `/src/*.js`),
//! `GET /connect`, `GET /healthz`, `GET /stats`, and the routes to the WebSocket upgrade,
//! the Socket.IO endpoint and `GET /metrics` ([`crate::metrics`]).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jam_protocol::PROTOCOL_VERSION;
use rust_embed::RustEmbed;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::conn::Context;
use crate::proxies;
use crate::transport;

/// What `GET /connect` publishes, kept current across certificate renewals.
pub struct Published {
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The bound WebTransport address.
    /// `None` with `--wt-addr off`: `/connect` offers no WebTransport.
    pub wt_addr: Option<SocketAddr>,
    /// SHA-256 of the current WebTransport certificate.
    pub cert_hash: RwLock<String>,
    /// Whether `/connect` offers the hashes: only for certificates a browser can check by
    /// hash (ECDSA P-256, at most 14 days); others are checked by name.
    pub offer_hash: std::sync::atomic::AtomicBool,
    /// SHA-256 of the development certificate served next, while it is announced.
    pub next_hash: RwLock<Option<String>>,
    /// This node's id (docs/protocol.md §12).
    pub node: String,
    /// `--public-url`: the base URL clients reach this node's HTTP side at.
    pub public_url: Option<String>,
    /// `--public-wt-url`: this node's WebTransport URL as clients reach it.
    pub public_wt_url: Option<String>,
    /// What `features` lists.
    pub features: Vec<&'static str>,
    /// Sign-in is on: `/connect` says `"auth": "required"` (docs/protocol.md §13).
    pub auth_required: bool,
}

impl Published {
    /// This node's `GET /connect` answer in absolute URLs, for clients that other nodes
    /// send here (docs/protocol.md §12): from `--public-url` and `--public-wt-url`, or the
    /// bound addresses (loopback for an unspecified one).
    pub fn answer(&self) -> serde_json::Value {
        let base = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", loopback(self.http_addr)),
        };
        let ws = match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}/ws"),
            Some((_, rest)) => format!("ws://{rest}/ws"),
            None => format!("ws://{base}/ws"),
        };
        let wt = self.wt_addr.map(|wt_addr| match &self.public_wt_url {
            Some(url) => url.clone(),
            None => {
                let host = public_url(&base, &["http", "https"])
                    .and_then(|u| u.host().map(str::to_string))
                    .unwrap_or_else(|| loopback(wt_addr).ip().to_string());
                let host = match host.contains(':') && !host.starts_with('[') {
                    true => format!("[{host}]"),
                    false => host,
                };
                format!("https://{host}:{}{}", wt_addr.port(), transport::wt::PATH)
            }
        });
        let mut answer = json!({
            "webtransport": wt.map(|url| self.webtransport(url)),
            "websocket": { "url": ws },
            "protocol": PROTOCOL_VERSION,
            "features": self.features,
            "node": self.node,
        });
        self.mark_auth(&mut answer);
        answer
    }

    /// The `webtransport` entry of a `/connect` answer for `url`: the current certificate's
    /// hash, and the next one's while it is announced.
    fn webtransport(&self, url: String) -> serde_json::Value {
        let next = self
            .next_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let offer = self.offer_hash.load(std::sync::atomic::Ordering::Relaxed);
        let hashes: Vec<_> = std::iter::once(self.cert_hash())
            .chain(next)
            .filter(|_| offer)
            .map(|value| json!({ "algorithm": "sha-256", "value": value }))
            .collect();
        json!({ "url": url, "certificateHashes": hashes })
    }

    /// Adds `"auth": "required"` to a `/connect` answer when sign-in is on.
    fn mark_auth(&self, answer: &mut serde_json::Value) {
        if self.auth_required {
            answer["auth"] = json!("required");
        }
    }

    /// Publishes `id` as the certificate served now (its hash, whether to offer it) and
    /// drops any announced next one.
    pub fn serve(&self, id: &crate::tls::TlsIdentity) {
        *self.cert_hash.write().unwrap_or_else(|e| e.into_inner()) = id.hash_hex.clone();
        self.offer_hash
            .store(id.hash_checkable, std::sync::atomic::Ordering::Relaxed);
        *self.next_hash.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Announces the hash of the certificate served next, beside the current one.
    pub fn announce_next(&self, hash: &str) {
        *self.next_hash.write().unwrap_or_else(|e| e.into_inner()) = Some(hash.to_owned());
    }

    /// The current certificate hash.
    pub fn cert_hash(&self) -> String {
        self.cert_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The web demo. Release builds carry it inside the binary; debug builds read it from
/// the source tree, so page edits need no rebuild.
#[derive(RustEmbed)]
#[folder = "web-demo/"]
#[exclude = "e2e/*"]
#[exclude = "*.md"]
struct WebDemo;

/// The client library the page imports: the npm package's own files
/// (`clients/js/jam-client.js` and the modules it imports from `clients/js/src/`), so the
/// page and the package are one source. They are served at [`CLIENT_JS`] and under
/// [`CLIENT_MODULES`] whatever the page's folder, `--web-dir` included.
#[derive(RustEmbed)]
#[folder = "clients/js/"]
#[include = "jam-client.js"]
#[include = "src/*.js"]
struct ClientJs;

/// Where the page finds the client library (`import ... from './jam-client.js'`).
const CLIENT_JS: &str = "jam-client.js";

/// Where the library's own imports (`./src/client.js`, ...) resolve from the page's root.
const CLIENT_MODULES: &str = "src/";

/// Whether `path` names a file of the client library rather than of the page.
fn is_client_path(path: &str) -> bool {
    path == CLIENT_JS
        || path
            .strip_prefix(CLIENT_MODULES)
            .is_some_and(|m| m.ends_with(".js"))
}

#[derive(Clone)]
struct HttpState {
    published: Arc<Published>,
    /// The origin policy and the log of refused origins.
    ctx: Arc<Context>,
    web_dir: Option<Arc<PathBuf>>,
}

/// The 1.1 additions this server serves (docs/protocol.md §1), for clients to decide
/// whether to resume or ping.
pub const FEATURES: [&str; 5] = ["resume", "clock", "latency", "tempo", "origins"];

/// The operator's routes: `/metrics`, `/stats`, `/healthz` and `/readyz`, for
/// `--admin-addr` (then the public router leaves out the first two).
pub fn admin_router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/readyz", get(readyz))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(ctx.clone())
        .merge(crate::metrics::router(ctx))
}

/// All public routes; with `admin` (an `--admin-addr` serves [`admin_router`]), without
/// `/metrics` and `/stats`. `web_dir`, when given, must be canonical (the server resolves
/// it at start).
pub fn router(
    ctx: Arc<Context>,
    published: Arc<Published>,
    web_dir: Option<PathBuf>,
    admin: bool,
) -> Router {
    let state = HttpState {
        published,
        ctx: ctx.clone(),
        web_dir: web_dir.map(Arc::new),
    };
    let ws = Router::new()
        .route("/ws", get(transport::ws::upgrade))
        .route("/readyz", get(readyz))
        .with_state(ctx.clone());
    let public = Router::new()
        .route("/connect", get(connect).options(connect_preflight))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(index))
        .route("/{*path}", get(static_file))
        .with_state(state)
        .merge(ws)
        .merge(transport::sio::router(ctx.clone()));
    let all = match admin {
        true => public,
        false => public.merge(crate::metrics::router(ctx.clone())).merge(
            Router::new()
                .route("/stats", get(stats))
                .with_state(ctx.clone()),
        ),
    };
    all.layer(axum::middleware::from_fn_with_state(ctx, forwarded))
}

/// Who the client is (`--trusted-proxies`): a request from a trusted proxy takes the client
/// address its forwarding headers give, as the peer every route and limit sees; from
/// anyone else those headers are dropped before any route reads them.
async fn forwarded(
    State(ctx): State<Arc<Context>>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer.and_then(|p| Some((p, ctx.proxies.forwarded(p.ip(), req.headers())?))) {
        Some((peer, said)) => {
            proxies::normalize(req.headers_mut(), &said);
            let client = proxies::client_addr(&said, peer);
            req.extensions_mut().insert(ConnectInfo(client));
        }
        None => proxies::strip(req.headers_mut()),
    }
    next.run(req).await
}

/// The host name the request used (as a trusted proxy forwarded it, else its `Host`),
/// without its port (IPv6 stays in brackets).
fn request_host(headers: &HeaderMap) -> String {
    // `X-Forwarded-Host` reaches here only from a trusted proxy ([`forwarded`]).
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host[..=end].to_owned(),
            None => "localhost".to_owned(),
        }
    } else {
        host.split(':').next().unwrap_or("localhost").to_owned()
    }
}

/// The host and port the client asked for, as a trusted proxy forwarded them (else the
/// `Host` header): where the proxy takes WebSocket connections too.
fn request_authority(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .unwrap_or("localhost")
        .to_owned()
}

/// CORS for `/connect` (docs/protocol.md §10): an allowed `Origin` is echoed with `Vary:
/// Origin`; any other gets no CORS headers here (its `GET` is answered by
/// [`origin_refused`] instead).
fn cors(state: &HttpState, headers: &HeaderMap) -> Vec<(header::HeaderName, HeaderValue)> {
    let mut out = vec![(header::VARY, HeaderValue::from_static("Origin"))];
    if let Some(origin) = headers.get(header::ORIGIN) {
        if state
            .ctx
            .origins
            .allows(Some(origin.to_str().unwrap_or("?")))
        {
            out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
        }
    }
    out
}

/// `OPTIONS /connect`: the preflight, answered like the request itself, with 204.
async fn connect_preflight(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    for (k, v) in cors(&state, &headers) {
        h.insert(k, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The answer to `GET /connect` from a page whose origin may not connect: 403 with a
/// reason the page can read (CORS for that origin on this answer only), so a client
/// tells "this site is not allowed" from "the server is down".
fn origin_refused(state: &HttpState, headers: &HeaderMap, peer: SocketAddr) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().unwrap_or("?");
    if state.ctx.origins.allows(Some(text)) {
        return None;
    }
    state.ctx.refused_origins.note(text, peer, "connect");
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
        (header::VARY, HeaderValue::from_static("Origin")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    let body = Json(json!({ "error": "origin_not_allowed" }));
    Some((StatusCode::FORBIDDEN, headers, body).into_response())
}

/// The query of `GET /connect`.
#[derive(Debug, serde::Deserialize)]
struct ConnectQuery {
    /// A room to find (docs/protocol.md §12).
    room: Option<String>,
}

/// The owner's `GET /connect` answer for room `typed` when another live node holds it.
async fn owner_answer(ctx: &Context, typed: &str) -> Option<serde_json::Value> {
    let cluster = ctx.cluster.as_ref()?;
    let code = jam_protocol::RoomCode::normalize(typed)?;
    if ctx.hub.room(&code).is_some() {
        return None;
    }
    let owner = cluster.owner(code.as_str()).await.ok()??;
    if owner == cluster.node() {
        return None;
    }
    Some(cluster.node_entry(&owner).await.ok()??.connect)
}

async fn connect(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::extract::Query(query): axum::extract::Query<ConnectQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = origin_refused(&state, &headers, peer) {
        return refused;
    }
    let owner = match &query.room {
        Some(room) => owner_answer(&state.ctx, room).await,
        None => None,
    };
    let body = owner.unwrap_or_else(|| own_answer(&state, &headers));
    let mut response = ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
    for (k, v) in cors(&state, &headers) {
        response.headers_mut().insert(k, v);
    }
    response
}

/// This node's `GET /connect` answer: its public URLs when it has them, else the host the
/// request used.
fn own_answer(state: &HttpState, headers: &HeaderMap) -> serde_json::Value {
    let p = &state.published;
    if p.public_url.is_some() {
        return p.answer();
    }
    let host = request_host(headers);
    // Behind a trusted proxy (the only way `X-Forwarded-Proto` reaches here) the client
    // reaches the WebSocket where it reached this answer: the proxy's scheme, host and
    // port; an https page needs wss.
    let proxied = headers.get("x-forwarded-proto").map(|v| v.as_bytes());
    let ws_url = match proxied {
        Some(proto) => {
            let scheme = if proto == b"https" { "wss" } else { "ws" };
            format!("{scheme}://{}/ws", request_authority(headers))
        }
        None => format!("ws://{host}:{}/ws", p.http_addr.port()),
    };
    // `null` with `--wt-addr off`: clients go straight to the WebSocket.
    let wt = p
        .wt_addr
        .map(|a| format!("https://{host}:{}{}", a.port(), transport::wt::PATH));
    let mut answer = json!({
        "webtransport": wt.map(|url| p.webtransport(url)),
        "websocket": { "url": ws_url },
        "protocol": PROTOCOL_VERSION,
        "features": p.features,
        "node": p.node,
    });
    p.mark_auth(&mut answer);
    answer
}

/// `url` parsed, when it is absolute, with one of `schemes` and a host, and without a
/// query or fragment.
pub fn public_url(url: &str, schemes: &[&str]) -> Option<hyper::Uri> {
    let uri: hyper::Uri = url.parse().ok()?;
    let scheme_ok = uri.scheme_str().is_some_and(|s| schemes.contains(&s));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    let plain = uri.query().is_none() && !url.contains('#');
    (scheme_ok && host_ok && plain).then_some(uri)
}

/// The address to reach a listener bound to `addr` from this machine.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], a.port()))
        }
        other => other,
    }
}

/// `GET /readyz`: 200 while the room store answers, 503 while it does not (docs/protocol.md
/// §12); `/healthz` only says the process is up.
async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    let store = ctx.hub.store();
    let headers = [(header::CACHE_CONTROL, "no-store")];
    match store.is_ready() {
        true => (StatusCode::OK, headers, "ready").into_response(),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            headers,
            format!("the room store ({}) is unreachable", store.kind()),
        )
            .into_response(),
    }
}

async fn stats(State(ctx): State<Arc<Context>>) -> Response {
    let mut value = serde_json::to_value(ctx.hub.stats().snapshot()).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("rooms".into(), ctx.hub.room_count().into());
        obj.insert(
            "connections".into(),
            ctx.hub.stats().open_connections().into(),
        );
        // Tasks alive in the runtime: one or two per connection plus the server's own.
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        obj.insert("tasks".into(), tasks.into());
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

async fn index(state: State<HttpState>) -> Response {
    serve_file(&state, "index.html").await
}

async fn static_file(state: State<HttpState>, UrlPath(path): UrlPath<String>) -> Response {
    serve_file(&state, &path).await
}

async fn serve_file(state: &HttpState, path: &str) -> Response {
    let Some(relative) = demo_path(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = match &state.web_dir {
        _ if is_client_path(path) => match ClientJs::get(path) {
            Some(f) => Body::from(f.data.into_owned()).into_response(),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        Some(dir) => match open_inside(dir, relative).await {
            Some((file, len)) => {
                // Streamed, never more than the length checked (the file may grow).
                let stream = ReaderStream::new(file.take(len));
                let mut response = Body::from_stream(stream).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                response
            }
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        None => match WebDemo::get(path) {
            Some(f) => Body::from(f.data.into_owned()).into_response(),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let mime = mime_for(path);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        // Cross-origin isolation gives pages 5 µs performance.now() for latency readouts.
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::HeaderName::from_static("cross-origin-embedder-policy"),
            HeaderValue::from_static("require-corp"),
        ),
    ];
    (headers, body).into_response()
}

/// The request path as a path relative to the web demo, or `None` when it could name
/// anything else: every segment must be a plain, visible name (no empty segment, no `.` or
/// `..`, no hidden file, no backslash or NUL), and the whole must stay relative once the
/// operating system reads it (a decoded `/%2Fetc%2Fpasswd` is the absolute `/etc/passwd`,
/// which `Path::join` would put in place of the folder). The browser tests are not served.
fn demo_path(path: &str) -> Option<&Path> {
    let plain =
        |seg: &str| !seg.is_empty() && !seg.starts_with('.') && !seg.contains(['\\', '\0', ':']);
    if !path.split('/').all(plain) || path.starts_with("e2e/") {
        return None;
    }
    let relative = Path::new(path);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(relative)
}

/// The largest file `--web-dir` serves: the demo's files are a few KiB; this keeps a
/// stray large file (a log, a disk image) from being served to anyone who guesses it.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens `relative` under `dir` (canonical) with its length, refusing a file whose real
/// path is elsewhere (a symbolic link out of the folder), anything that is not a regular
/// file (a device, a pipe: `/dev/zero` would never end, opening a pipe would wait for a
/// writer), and files over [`MAX_FILE_BYTES`]. tower-http's `ServeDir` refuses the same
/// request paths but follows links out of its folder and opens pipes and devices, so
/// these checks would have to wrap it anyway.
async fn open_inside(dir: &Path, relative: &Path) -> Option<(tokio::fs::File, u64)> {
    let real = tokio::fs::canonicalize(dir.join(relative)).await.ok()?;
    if !real.starts_with(dir) {
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let file = tokio::fs::File::open(&real).await.ok()?;
    // What was opened is what was checked (the path may have changed in between).
    let opened = file.metadata().await.ok()?;
    if !opened.is_file() || opened.len() > MAX_FILE_BYTES {
        return None;
    }
    Some((file, opened.len()))
}

fn mime_for(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        request_host(&headers)
    }

    #[test]
    fn only_plain_relative_paths_name_demo_files() {
        for ok in ["index.html", "app.js", "icons/a.svg"] {
            assert_eq!(demo_path(ok), Some(Path::new(ok)), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "//etc/passwd",
            "../Cargo.toml",
            "a/../../x",
            "./index.html",
            ".git/config",
            "a//b",
            "a/",
            "",
            "..\\x",
            "C:\\x",
            "c:x",
            "a\0b",
            "e2e/package.json",
        ] {
            assert_eq!(demo_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_header_without_port() {
        assert_eq!(host("localhost:3001"), "localhost");
        assert_eq!(host("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host("[::1]:3001"), "[::1]");
        assert_eq!(host("[::1]"), "[::1]");
        assert_eq!(host("jam.example"), "jam.example");
        assert_eq!(request_host(&HeaderMap::new()), "localhost");
    }
}
