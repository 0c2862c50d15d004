//! Starts and stops the whole server: binds the TCP (HTTP + WebSocket) and UDP
//! (WebTransport) listeners, loads the certificate and keeps it renewed, and owns the one
//! shutdown token and task tracker every connection hangs off.
//!
//! Tests use [`RunningServer`] in-process on ephemeral ports; `main.rs` uses it too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::config::Config;
use crate::config::WtAddr;
use crate::conn::{Context, Refused};
use crate::credentials::{self, ResumeKey};
use crate::descriptors;
use crate::http::{self, loopback, Published};
use crate::room::Hub;
use crate::stall::StallLimit;
use crate::stats::Stats;
use crate::tls::{self, CertSource};
use crate::transport::sio::{self, EventCheck};
use crate::transport::wt::{self, WtConfig, WtServer};

/// A server that is up and serving.
pub struct RunningServer {
    ctx: Arc<Context>,
    published: Arc<Published>,
    /// `None` with `--wt-addr off`.
    wt: Option<Arc<WtServer>>,
    cert_source: CertSource,
    tasks: Vec<JoinHandle<()>>,
    admin_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Binds both listeners and starts serving.
    pub async fn start(config: Config) -> Result<RunningServer> {
        config.validate()?;
        let cert_source = match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ if config.ephemeral_cert => CertSource::Dev {
                dir: None,
                lifetime: config.dev_cert_lifetime,
            },
            _ => CertSource::Dev {
                dir: Some(config.cert_dir.clone()),
                lifetime: config.dev_cert_lifetime,
            },
        };
        let web_dir = match &config.web_dir {
            Some(dir) => {
                let dir = std::fs::canonicalize(dir)
                    .with_context(|| format!("--web-dir {}", dir.display()))?;
                anyhow::ensure!(
                    dir.is_dir(),
                    "--web-dir {} is not a directory",
                    dir.display()
                );
                Some(dir)
            }
            None => None,
        };
        let identity = cert_source.load().context("loading the certificate")?;
        let not_after = identity.not_after;

        let resume_key = match (&config.resume_key_file, &cert_source) {
            (Some(path), _) => Some(path.clone()),
            (None, CertSource::Dev { dir: None, .. }) => None,
            (None, _) => Some(config.cert_dir.join(credentials::RESUME_KEY_FILE)),
        };
        let resume_key = match resume_key {
            Some(path) => credentials::load_or_make_resume_key(&path)
                .with_context(|| format!("the resume key {}", path.display()))?,
            None => ResumeKey::generate(),
        };
        let store = config.store()?;
        let hub = Hub::with_store(config.room_limits(), resume_key, store.clone());
        let node = config.node_id.clone().unwrap_or_else(random_node_id);
        let cluster = store.redis().map(|conn| Cluster::new(conn, node.clone()));
        // With several nodes, rooms are claimed one by one as their players come back
        // (docs/protocol.md §12); alone, a node takes back every stored room at start.
        if store.durable() && cluster.is_none() {
            match store.load_all().await {
                Ok(records) => {
                    hub.restore(records);
                }
                Err(e) => {
                    warn!(
                        store = store.kind(),
                        error = %format!("{e:#}"),
                        "could not read the stored rooms; starting without them"
                    );
                    store.note_failure(&e);
                }
            }
        }
        let auth = config.auth()?.map(Arc::new);
        if let Some(auth) = &auth {
            info!(algorithm = ?auth.algorithm(), "sign-in with the app's JWTs is on");
        }
        let max_connections = connection_cap(config.max_connections);
        let ctx = Arc::new(
            Context::new(
                hub.clone(),
                config.session_limits(),
                config.outbox_capacity,
                config.ping_interval,
                config.peer_timeout,
                config.max_connections_per_address,
                config.origin_policy()?,
            )
            .with_connection_caps(max_connections, config.max_http_connections_per_address)
            .with_outbox_bytes(config.outbox_bytes)
            .with_cluster(cluster.clone())
            .with_auth(auth.clone())
            .with_proxies(config.proxies()?)
            .with_handshakes(
                config.quic_retry,
                config.max_handshakes_per_address,
                config.max_handshakes,
            ),
        );

        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("--http-addr {}: cannot listen there", config.http_addr))?;
        let http_addr = listener.local_addr()?;
        let wt = match &config.wt_addr {
            WtAddr::Off => None,
            WtAddr::At(at) => {
                // A host name (Fly.io's `fly-global-services`) is resolved once, here.
                let addr = tokio::net::lookup_host(at.as_str())
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .with_context(|| format!("--wt-addr {at}: cannot resolve it"))?;
                let wt = WtServer::bind(
                    WtConfig {
                        addr,
                        ping_interval: config.ping_interval,
                        peer_timeout: config.peer_timeout,
                    },
                    &identity,
                )
                .with_context(|| format!("--wt-addr {at} ({addr}): cannot listen there"))?;
                Some(Arc::new(wt))
            }
        };
        let wt_addr = wt.as_ref().map(|wt| wt.local_addr()).transpose()?;
        let mut tasks = Vec::new();
        let mut features = http::FEATURES.to_vec();
        if store.durable() {
            features.push("store");
        }
        if cluster.is_some() {
            features.push("nodes");
        }
        if auth.is_some() {
            features.push("auth");
        }
        let published = Arc::new(Published {
            http_addr,
            wt_addr,
            cert_hash: RwLock::new(identity.hash_hex.clone()),
            next_hash: RwLock::new(None),
            offer_hash: std::sync::atomic::AtomicBool::new(identity.hash_checkable),
            node: node.clone(),
            public_url: config.public_url.clone(),
            public_wt_url: config.public_wt_url.clone(),
            features,
            auth_required: auth.is_some(),
        });
        if let Some(cluster) = &cluster {
            if config.public_url.is_none() {
                warn!(
                    answer = %published.answer(),
                    "--public-url is not set: other nodes send clients to the bound address"
                );
            }
            let answer = {
                let published = published.clone();
                move || published.answer()
            };
            tasks.push(tokio::spawn(cluster.clone().run(
                hub.clone(),
                answer,
                ctx.shutdown.clone(),
            )));
        }

        let app = http::router(
            ctx.clone(),
            published.clone(),
            web_dir,
            config.admin_addr.is_some(),
        );
        let admin_addr = match config.admin_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("--admin-addr {addr}: cannot listen there"))?;
                let bound = listener.local_addr()?;
                let admin = http::admin_router(ctx.clone());
                let stop = ctx.shutdown.clone();
                tasks.push(tokio::spawn(async move {
                    let serving = axum::serve(listener, admin)
                        .with_graceful_shutdown(async move { stop.cancelled().await });
                    if let Err(e) = serving.await {
                        warn!(error = %e, "the admin listener failed");
                    }
                }));
                info!(admin = %bound, "/metrics and /stats only on the admin address");
                Some(bound)
            }
            None => None,
        };
        info!(allowed_origins = %ctx.origins, "origins");
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .max_buf_size(config.http_buffer_bytes);
        tasks.push(tokio::spawn(serve_http(listener, app, http1, ctx.clone())));
        if let Some(wt) = &wt {
            tasks.push(tokio::spawn(wt::run(wt.clone(), ctx.clone())));
        }
        tasks.push(tokio::spawn(hub.clone().run_expiry(ctx.shutdown.clone())));
        tasks.push(tokio::spawn(hub.clone().run_latency(ctx.shutdown.clone())));
        let resave = {
            let hub = hub.clone();
            move || hub.save_all()
        };
        tasks.push(tokio::spawn(
            store.clone().run(ctx.shutdown.clone(), resave),
        ));
        tasks.push(tokio::spawn(renew_certificates(
            cert_source.clone(),
            not_after,
            wt.clone(),
            published.clone(),
            ctx.shutdown.clone(),
        )));
        if let (CertSource::Files { cert, key }, Some(wt)) = (&cert_source, &wt) {
            if !identity.hash_checkable {
                info!("the certificate is checked by its name (it is not ECDSA P-256 of at most 14 days): /connect offers no hash");
            }
            tasks.push(tokio::spawn(reload_certificate_files(
                (cert.clone(), key.clone()),
                config.cert_check_interval,
                wt.clone(),
                published.clone(),
                ctx.shutdown.clone(),
            )));
        } else {
            // A SIGHUP (`systemctl reload`) finds nothing to reload, and must not stop the
            // server as it would by default.
            tasks.push(tokio::spawn(ignore_hangups(ctx.shutdown.clone())));
        }

        info!(
            max_connections,
            max_http_connections_per_address = config.max_http_connections_per_address,
            quic_retry = %config.quic_retry,
            max_handshakes_per_address = config.max_handshakes_per_address,
            max_handshakes = config.max_handshakes,
            "connection caps"
        );
        info!(store = store.kind(), node = %node, "room store");
        info!(
            http = %http_addr,
            webtransport = %wt_addr.map_or("off".to_string(), |a| a.to_string()),
            cert_sha256 = %identity.hash_hex,
            "listening"
        );
        Ok(RunningServer {
            ctx,
            published,
            wt,
            cert_source,
            tasks,
            admin_addr,
        })
    }

    /// The bound `--admin-addr`, when set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The bound HTTP/WebSocket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.published.http_addr
    }

    /// The bound WebTransport address.
    ///
    /// # Panics
    ///
    /// With `--wt-addr off` (see [`RunningServer::wt_bound`]).
    pub fn wt_addr(&self) -> SocketAddr {
        self.wt_bound()
            .expect("WebTransport is off (--wt-addr off)")
    }

    /// The bound WebTransport address; `None` with `--wt-addr off`.
    pub fn wt_bound(&self) -> Option<SocketAddr> {
        self.published.wt_addr
    }

    /// SHA-256 (hex) of the certificate WebTransport serves now.
    pub fn cert_hash(&self) -> String {
        self.published.cert_hash()
    }

    /// The server-wide counters.
    pub fn stats(&self) -> &Arc<Stats> {
        self.ctx.hub.stats()
    }

    /// `ws://` URL of the WebSocket endpoint on loopback.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", loopback(self.http_addr()))
    }

    /// `https://` URL of the WebTransport endpoint on loopback.
    pub fn wt_url(&self) -> String {
        format!("https://{}{}", loopback(self.wt_addr()), wt::PATH)
    }

    /// `http://` URL of the web demo: `localhost` when the listener takes every address.
    pub fn http_url(&self) -> String {
        let addr = self.http_addr();
        if addr.ip().is_unspecified() {
            format!("http://localhost:{}/", addr.port())
        } else {
            format!("http://{}/", addr)
        }
    }

    /// Makes and installs a fresh development certificate now (what the renewal task does
    /// before expiry). Returns the new hash, or `None` for real certificates.
    pub fn renew_certificate(&self) -> Result<Option<String>> {
        renew_once(&self.cert_source, self.wt.as_deref(), &self.published)
            .map(|r| r.map(|(h, _)| h))
    }

    /// Closes every connection (WebSocket close 1001, WebTransport close with a code and
    /// reason) and waits, at most a few seconds, for them to end.
    pub async fn shutdown(self) {
        info!("shutting down");
        if let Some(cluster) = &self.ctx.cluster {
            hand_over(cluster, &self.ctx.hub).await;
        }
        self.ctx.shutdown.cancel();
        self.ctx.tracker.close();
        if tokio::time::timeout(Duration::from_secs(3), self.ctx.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within 3 s");
        }
        if let Some(wt) = &self.wt {
            wt.close();
            let _ = tokio::time::timeout(Duration::from_secs(1), wt.wait_idle()).await;
        }
        // Every seat is away now; the rooms go to the store with their exact `seq`.
        let hub = &self.ctx.hub;
        hub.save_all_exact();
        if let Err(e) = hub.store().flush(Duration::from_secs(2)).await {
            warn!(error = %format!("{e:#}"), "could not write the rooms to the store");
        }
        if let Some(cluster) = &self.ctx.cluster {
            // Nobody took these rooms: free them for the first node their players reach.
            let codes: Vec<String> = hub.room_codes().iter().map(|c| c.to_string()).collect();
            let left = async {
                cluster.release(&codes).await?;
                cluster.leave().await
            };
            match tokio::time::timeout(Duration::from_secs(2), left).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %format!("{e:#}"), "could not leave the node directory")
                }
                Err(_) => warn!("the node directory did not answer at stop"),
            }
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        info!("stopped");
    }
}

/// A node id for a node started without `--node-id`: 64 random bits in hex.
fn random_node_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// At a stop with other nodes alive, hands every room to the live node with the fewest
/// seats (docs/protocol.md §12): the room's exact state goes to the store, the new owner is
/// written in the directory, and only then is each member told `session:moved` and
/// disconnected, so a client that follows at once finds its room there.
async fn hand_over(cluster: &Cluster, hub: &Arc<Hub>) {
    let others = match cluster.other_nodes().await {
        Ok(others) if !others.is_empty() => others,
        Ok(_) => return,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "cannot list the other nodes; rooms are not handed over");
            return;
        }
    };
    let rooms = hub.freeze_for_hand_over();
    if rooms.is_empty() {
        return;
    }
    if let Err(e) = hub.store().flush(Duration::from_secs(2)).await {
        warn!(error = %format!("{e:#}"), "could not store the rooms before handing them over");
    }
    let mut nodes: Vec<(String, serde_json::Value, usize)> = others
        .into_iter()
        .map(|(id, entry)| (id, entry.connect, entry.seats))
        .collect();
    let started = std::time::Instant::now();
    for (code, seats) in rooms {
        nodes.sort_by_key(|n| n.2);
        let (to, connect, load) = &mut nodes[0];
        if let Err(e) = cluster.give(code.as_str(), to).await {
            warn!(room = %code, error = %format!("{e:#}"), "could not hand the room over");
            continue;
        }
        *load += seats;
        hub.hand_over(&code, &jam_protocol::encode_moved(&code, connect));
        info!(room = %code, to = %to, "handed the room over");
    }
    info!(elapsed = ?started.elapsed(), "rooms handed over");
}

/// The server-wide connection cap: `--max-connections`, or by default the soft descriptor
/// limit less [`descriptors::HEADROOM`]; a value above that is lowered to it, with a
/// warning, so that `/healthz` and `/metrics` always have descriptors left.
fn connection_cap(asked: Option<usize>) -> usize {
    let room = match descriptors::soft_limit() {
        Ok(soft) => descriptors::connection_room(soft),
        Err(e) => {
            warn!(error = %e, "cannot read the descriptor limit");
            usize::MAX
        }
    };
    match asked {
        None => room,
        Some(max) if max > room => {
            warn!(
                max_connections = max,
                lowered_to = room,
                "--max-connections is above the descriptor limit less its headroom; lowered"
            );
            room
        }
        Some(max) => max,
    }
}

/// A static answer written to a refused socket before it is closed, without reading its
/// request: the quickest "no" that costs the server nothing.
fn refusal_bytes(refused: Refused) -> &'static [u8] {
    match refused {
        Refused::ServerFull => {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        }
        _ => b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    }
}

/// Serves HTTP/1.1 (with upgrades, for `/ws`) on `listener` until shutdown, then lets
/// the requests in flight finish (at most a few seconds).
///
/// Every accepted socket takes a place in the server's cap and in its address's count
/// before a byte is read; refused, it gets a static 429 or 503 and is closed at once.
/// Over the server's cap, a few sockets are still served for `/healthz` and `/metrics`
/// (one request each), so an operator can see why. `http1` bounds each connection: its
/// header-read timer closes one that has not sent a whole request head within the
/// header timeout, idle keep-alive included (a slowloris peer holds no socket for long),
/// and its buffer size bounds the requests read ahead of their answers; a socket whose
/// answers are not read for the peer timeout is closed ([`StallLimit`]).
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    http1: hyper::server::conn::http1::Builder,
    ctx: Arc<Context>,
) {
    let shutdown = ctx.shutdown.clone();
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (place, overflow) = match ctx.accept_tcp(peer) {
            Ok(place) => (Some(place), None),
            Err(Refused::ServerFull) => match ctx.overflow() {
                Some(overflow) => (None, Some(overflow)),
                None => {
                    let _ = tcp.try_write(refusal_bytes(Refused::ServerFull));
                    continue;
                }
            },
            Err(refused) => {
                let _ = tcp.try_write(refusal_bytes(refused));
                continue;
            }
        };
        // Nagle's algorithm would hold each small frame until the previous one is
        // acknowledged: tens of milliseconds on a jam. Browsers set TCP_NODELAY too.
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "could not set TCP_NODELAY");
        }
        let only_health = overflow.is_some();
        // Engine.IO over WebSocket has its malformed events answered, not fatal.
        let tcp = EventCheck::new(tcp);
        let socket_io_upgrade = tcp.switch();
        // The socket's places live as long as it does, through an upgrade too.
        let io = TokioIo::new(StallLimit::holding(
            tcp,
            ctx.peer_timeout,
            (place, overflow),
        ));
        // A socket upgraded to the WebSocket endpoint answers to its own slow-consumer
        // rule instead. Engine.IO over WebSocket keeps the deadline: engineioxide's
        // writer has none, and would wait on a peer that stopped reading for ever.
        let upgraded = io.inner().switch();
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            if request.headers().contains_key(hyper::header::UPGRADE) {
                if request
                    .uri()
                    .path()
                    .starts_with(sio::PATH.trim_end_matches('/'))
                {
                    socket_io_upgrade.store(true, std::sync::atomic::Ordering::Relaxed);
                } else {
                    upgraded.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let refuse = only_health && !is_health_path(request.uri().path());
            let app = app.clone();
            async move {
                if refuse {
                    return Ok(Refused::ServerFull.into_response());
                }
                app.oneshot(request.map(axum::body::Body::new)).await
            }
        });
        let mut builder = http1.clone();
        if only_health {
            // One quick request each, so that a few idle sockets cannot keep the places.
            builder
                .keep_alive(false)
                .header_read_timeout(OVERFLOW_HEADER_TIMEOUT);
        }
        let connection = builder.serve_connection(io, service).with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    connections.close();
    if tokio::time::timeout(Duration::from_secs(2), connections.wait())
        .await
        .is_err()
    {
        warn!("some HTTP requests were still running at shutdown");
    }
}

/// How long a connection over the server's cap may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// The paths a connection over the server's cap may still ask for.
fn is_health_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

fn renew_once(
    source: &CertSource,
    wt: Option<&WtServer>,
    published: &Published,
) -> Result<Option<(String, std::time::SystemTime)>> {
    let Some(identity) = source.renew()? else {
        return Ok(None);
    };
    if let Some(wt) = wt {
        wt.reload_identity(&identity)?;
    }
    published.serve(&identity);
    info!(cert_sha256 = %identity.hash_hex, "renewed the development certificate");
    Ok(Some((identity.hash_hex, identity.not_after)))
}

/// Takes SIGHUP without doing anything but saying so, for a server with no certificate
/// files to reload.
async fn ignore_hangups(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup.recv() => info!("SIGHUP: no certificate files to reload"),
            }
        }
    }
    #[cfg(not(unix))]
    shutdown.cancelled().await
}

/// When a file was last changed (`None` when it cannot be read).
fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads `--cert` and `--key` when either file changes (looked at every `every`, and at
/// once on SIGHUP), as a renewal (certbot, Caddy) leaves them: new WebTransport sessions
/// get the new certificate, sessions open on the old one carry on. A pair that does not
/// load (half written, a key that does not match) is reported once and the old one kept;
/// the next change is tried again.
async fn reload_certificate_files(
    (cert, key): (PathBuf, PathBuf),
    every: Duration,
    wt: Arc<WtServer>,
    published: Arc<Published>,
    shutdown: CancellationToken,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = (modified(&cert), modified(&key));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let asked = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => false,
            _ = hangup => true,
        };
        let now = (modified(&cert), modified(&key));
        if now == seen && !asked {
            continue;
        }
        seen = now;
        let source = CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        match source.load().and_then(|id| {
            wt.reload_identity(&id)?;
            Ok(id)
        }) {
            Ok(id) => {
                published.serve(&id);
                info!(cert_sha256 = %id.hash_hex, "reloaded the certificate files");
            }
            Err(e) => warn!(
                error = %format!("{e:#}"),
                "the certificate files changed but do not load; keeping the current certificate"
            ),
        }
    }
}

/// Rotates the development certificate (the managed self-signed mode): a quarter of its
/// lifetime (at most a day) before it expires the next one is made and its hash announced
/// in `/connect` beside the current one; an eighth of the lifetime (at most an hour) later
/// WebTransport serves it. A client that fetched `/connect` just before the switch holds
/// both hashes and connects either side of it; sessions open on the old certificate carry
/// on.
async fn renew_certificates(
    source: CertSource,
    mut not_after: std::time::SystemTime,
    wt: Option<Arc<WtServer>>,
    published: Arc<Published>,
    shutdown: CancellationToken,
) {
    let (CertSource::Dev { lifetime, .. }, Some(wt)) = (&source, wt) else {
        return;
    };
    let (renew_before, overlap) = tls::rotation(*lifetime);
    let until = |at: std::time::SystemTime| {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    loop {
        let switch_at = not_after - renew_before;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(until(switch_at - overlap)) => {}
        }
        let next = match source.renew() {
            Ok(Some(next)) => next,
            Ok(None) => return,
            Err(e) => {
                let retry = Duration::from_secs(60).min(overlap);
                warn!(error = %format!("{e:#}"), ?retry, "making the next development certificate failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        };
        published.announce_next(&next.hash_hex);
        info!(next_sha256 = %next.hash_hex, "announced the next development certificate");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(until(switch_at)) => {}
        }
        if let Err(e) = wt.reload_identity(&next) {
            warn!(error = %format!("{e:#}"), "could not serve the next development certificate");
            continue;
        }
        published.serve(&next);
        info!(cert_sha256 = %next.hash_hex, "renewed the development certificate");
        not_after = next.not_after;
    }
}
