//! What every connection shares, whatever its transport, and the one path it is admitted
//! by: the origin check (refusals counted by reason and logged, rate-limited), the
//! server-wide connection cap and the per-address slots (a TCP socket on the HTTP port is
//! counted when accepted, a session when admitted, after its handshake), the connection
//! id and tracing span, the per-transport gauge, the session with its outbox, and the close logged once with its reason ([`Arrival`],
//! [`Admission`]), and the gate QUIC Initials pass before any of that
//! ([`Context::handshakes`], `crate::handshakes`). Transports keep their handshakes,
//! framing and close codes; they decide *when* to check, never *what* is counted. This
//! module knows none of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use jam_protocol::Encoding;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, Span};

use crate::addresses::{AddressCounts, AddressKey};
use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::handshakes::{self, HandshakeGate, RetryPolicy};
use crate::origins::{OriginPolicy, RefusedOrigins};
use crate::outbox::{
    Bounds, CloseReason, DatagramSink, Inbox, Outbox, Queued, DEFAULT_BUDGET_BYTES,
};
use crate::proxies::TrustedProxies;
use crate::room::Hub;
use crate::session::{Session, SessionLimits};
use crate::stats::{OpenConnection, Transport};

/// What every connection needs: the hub, the limits, and the shutdown machinery.
pub struct Context {
    /// The room core.
    pub hub: Arc<Hub>,
    /// Per-connection limits.
    pub session_limits: SessionLimits,
    /// Outgoing queue length per connection.
    pub outbox_capacity: usize,
    /// Outgoing queue bytes per connection ([`Context::with_outbox_bytes`]).
    pub outbox_bytes: usize,
    /// Keep-alive / ping period.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped.
    pub peer_timeout: Duration,
    /// Cancelled on shutdown; every connection's token is a child of it.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Open connections per address (IPv4) or /64 (IPv6).
    addresses: Arc<AddressCounts>,
    /// Open TCP connections on the HTTP port per address (IPv4) or /64 (IPv6).
    tcp_addresses: Arc<AddressCounts>,
    /// Open connections of every kind on the whole server.
    open: Arc<Budget>,
    /// Connections accepted over [`Context::open`]'s cap to answer `/healthz` and
    /// `/metrics` only.
    overflow: Arc<Budget>,
    /// QUIC handshakes in progress, and whether a new one is retried.
    handshakes: HandshakeGate,
    /// The web origins allowed to connect.
    pub origins: OriginPolicy,
    /// The rate-limited log of refused origins (connections and `/connect`).
    pub refused_origins: RefusedOrigins,
    /// The node directory, with several nodes on one Redis (docs/protocol.md §12).
    pub cluster: Option<Arc<Cluster>>,
    /// Sign-in with the app's JWTs, when on (docs/protocol.md §13).
    pub auth: Option<Arc<Auth>>,
    /// The reverse proxies whose forwarding headers are believed.
    pub proxies: TrustedProxies,
    next_conn: AtomicU64,
}

/// Waits until `deadline`, or for ever without one (for a `select!` arm that only some
/// connections need).
pub async fn until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A count of open things against a cap, without a lock.
#[derive(Debug)]
struct Budget {
    max: usize,
    open: AtomicUsize,
}

impl Budget {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Budget {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// One more place, or `None` when all are taken.
    fn take(self: &Arc<Self>) -> Option<Place> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(self.clone()))
    }
}

/// One place in a [`Budget`]; dropping it frees the place.
#[derive(Debug)]
struct Place(Arc<Budget>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP connection's places on the HTTP port (in the server's cap and its address's
/// count), held for as long as the socket is open, upgraded or not.
#[derive(Debug)]
pub struct TcpPlace {
    _open: Place,
    _address: Option<AddressSlot>,
}

/// A TCP connection accepted over the server's cap: it may ask for `/healthz` and
/// `/metrics` only, and holds one of the few places kept for that.
#[derive(Debug)]
pub struct OverflowPlace {
    _place: Place,
}

/// Connections accepted over the cap at once, to answer `/healthz` and `/metrics`: well
/// within the descriptors [`crate::descriptors::HEADROOM`] keeps free.
pub const OVERFLOW_CONNECTIONS: usize = 16;

/// One admitted connection's place in its address's count; dropping it frees the place.
#[derive(Debug)]
struct AddressSlot {
    table: Arc<AddressCounts>,
    key: AddressKey,
}

impl AddressSlot {
    /// A place for one more connection from `ip`, or `None` when its address (or /64)
    /// already has the most `table` allows.
    fn take(table: &Arc<AddressCounts>, ip: IpAddr) -> Option<AddressSlot> {
        let key = AddressKey::of(ip);
        table.add(key).then(|| AddressSlot {
            table: table.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.table.remove(self.key);
    }
}

impl Context {
    /// The same context with `bytes` as every connection's outgoing byte budget
    /// (`--outbox-bytes`).
    pub fn with_outbox_bytes(mut self, bytes: usize) -> Self {
        self.outbox_bytes = bytes;
        self
    }

    /// Sets the reverse proxies whose forwarding headers are believed.
    pub fn with_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Turns sign-in on for every session (docs/protocol.md §13).
    pub fn with_auth(mut self, auth: Option<Arc<Auth>>) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the node directory the sessions ask about rooms this node does not hold.
    pub fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// How much each connection's outgoing queue holds.
    pub fn outbox_bounds(&self) -> Bounds {
        Bounds {
            messages: self.outbox_capacity,
            bytes: self.outbox_bytes,
        }
    }

    /// A context with a fresh shutdown token and task tracker, admitting at most
    /// `max_per_address` connections from one address (IPv6: one /64).
    pub fn new(
        hub: Arc<Hub>,
        session_limits: SessionLimits,
        outbox_capacity: usize,
        ping_interval: Duration,
        peer_timeout: Duration,
        max_per_address: usize,
        origins: OriginPolicy,
    ) -> Self {
        Context {
            hub,
            session_limits,
            outbox_capacity,
            outbox_bytes: DEFAULT_BUDGET_BYTES,
            ping_interval,
            peer_timeout,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            addresses: Arc::new(AddressCounts::new(max_per_address)),
            tcp_addresses: Arc::new(AddressCounts::new(usize::MAX)),
            open: Budget::new(usize::MAX),
            overflow: Budget::new(OVERFLOW_CONNECTIONS),
            handshakes: HandshakeGate::new(
                RetryPolicy::Auto,
                handshakes::DEFAULT_PER_ADDRESS,
                handshakes::DEFAULT_TOTAL,
            ),
            origins,
            refused_origins: RefusedOrigins::default(),
            cluster: None,
            auth: None,
            proxies: TrustedProxies::default(),
            next_conn: AtomicU64::new(0),
        }
    }

    /// Caps the connections of every kind on the whole server at `max`, and the TCP
    /// connections on the HTTP port from one address (IPv6: one /64) at `max_tcp_per_address`.
    pub fn with_connection_caps(mut self, max: usize, max_tcp_per_address: usize) -> Self {
        self.open = Budget::new(max);
        self.tcp_addresses = Arc::new(AddressCounts::new(max_tcp_per_address));
        self
    }

    /// QUIC handshakes: `policy` for unproven sources, at most `per_address` in progress
    /// from one address (IPv6: /64) and `total` on the whole server.
    pub fn with_handshakes(
        mut self,
        policy: RetryPolicy,
        per_address: usize,
        total: usize,
    ) -> Self {
        self.handshakes = HandshakeGate::new(policy, per_address, total);
        self
    }

    /// The QUIC handshakes in progress, and what to do with a new one.
    pub fn handshakes(&self) -> &HandshakeGate {
        &self.handshakes
    }

    /// A place for one more connection from `ip`, or `None` when its address (or /64)
    /// already has the most allowed.
    fn take_slot(&self, ip: IpAddr) -> Option<AddressSlot> {
        AddressSlot::take(&self.addresses, ip)
    }

    /// Admits a TCP connection just accepted on the HTTP port, before a byte is read, or
    /// refuses it (counted) when the server or its address has the most allowed.
    pub fn accept_tcp(&self, peer: SocketAddr) -> Result<TcpPlace, Refused> {
        let stats = self.hub.stats();
        let Some(open) = self.open.take() else {
            stats.refused_server_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::ServerFull);
        };
        // A trusted proxy carries every client: its sockets count against the server's
        // cap only, and each client's connections against its own address once its
        // request says who it is.
        if self.proxies.trusts(peer.ip()) {
            return Ok(TcpPlace {
                _open: open,
                _address: None,
            });
        }
        let Some(address) = AddressSlot::take(&self.tcp_addresses, peer.ip()) else {
            stats.refused_tcp_address.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::TooManyFromAddress);
        };
        Ok(TcpPlace {
            _open: open,
            _address: Some(address),
        })
    }

    /// One of the few places for a connection accepted over the server's cap that may
    /// still ask for `/healthz` or `/metrics`; `None` when they are taken too.
    pub fn overflow(&self) -> Option<OverflowPlace> {
        self.overflow.take().map(|p| OverflowPlace { _place: p })
    }

    /// Whether a connection from a page of `origin` may open (docs/protocol.md §10). A refusal
    /// is counted by reason for `/metrics` and logged (rate-limited). `origin` is `None`
    /// without an `Origin` header (a native client).
    pub fn check_origin(
        &self,
        origin: Option<&str>,
        peer: SocketAddr,
        transport: Transport,
    ) -> Result<(), Refused> {
        if self.origins.allows(origin) {
            return Ok(());
        }
        self.hub
            .stats()
            .refused_origin
            .fetch_add(1, Ordering::Relaxed);
        self.refused_origins
            .note(origin.unwrap_or(""), peer, label(transport));
        Err(Refused::Origin)
    }

    /// The first moment a transport sees a connection from `peer`: it gets its id and
    /// span. It takes no place yet: that waits for [`Arrival::admit`].
    pub fn arrive(self: &Arc<Self>, peer: SocketAddr, transport: Transport) -> Arrival {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let span = info_span!(
            "conn",
            conn = id,
            transport = label(transport),
            %peer,
            room = tracing::field::Empty
        );
        Arrival {
            conn: Conn {
                ctx: self.clone(),
                peer,
                transport,
                span,
            },
        }
    }
}

/// The name of `transport` in logs.
fn label(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "ws",
        Transport::WebTransport => "wt",
        Transport::SocketIo => "sio",
    }
}

/// Why a connection was refused before it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Its `Origin` is not allowed (docs/protocol.md §10).
    #[error("{}", self.as_str())]
    Origin,
    /// Its address (IPv6: /64) has the most connections allowed.
    #[error("{}", self.as_str())]
    TooManyFromAddress,
    /// The server has the most connections allowed (`--max-connections`).
    #[error("{}", self.as_str())]
    ServerFull,
}

impl Refused {
    /// The text a refusal answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Origin => "this origin may not connect",
            Refused::TooManyFromAddress => "too many connections from your address",
            Refused::ServerFull => "the server is full; try again later",
        }
    }

    /// The HTTP status a refusal answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Refused::Origin => StatusCode::FORBIDDEN,
            Refused::TooManyFromAddress => StatusCode::TOO_MANY_REQUESTS,
            Refused::ServerFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.status(), self.as_str()).into_response()
    }
}

/// What every stage of a connection knows about it.
struct Conn {
    ctx: Arc<Context>,
    peer: SocketAddr,
    transport: Transport,
    span: Span,
}

/// A connection a transport has seen but not yet admitted (see [`Context::arrive`]).
pub struct Arrival {
    conn: Conn,
}

impl Arrival {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The connection's span (`conn`, `transport`, `peer`, and `room` once joined).
    pub fn span(&self) -> &Span {
        &self.conn.span
    }

    /// Admits the connection, or refuses it (counted) when the server or its address has
    /// no place left.
    ///
    /// The places are taken here, when the transport's handshake is done, not on
    /// arrival: a WebTransport session is admitted once QUIC has completed its handshake,
    /// which proves the peer receives at its address, so Initial packets with a forged
    /// source address take no one's place.
    pub fn admit(self) -> Result<Admission, Refused> {
        let Conn {
            ctx,
            span,
            peer,
            transport,
        } = &self.conn;
        // TCP transports hold the place their socket took when it was accepted.
        let open = match transport {
            Transport::WebSocket | Transport::SocketIo => None,
            Transport::WebTransport => match ctx.open.take() {
                Some(place) => Some(place),
                None => {
                    span.in_scope(|| debug!("the server is full"));
                    ctx.hub
                        .stats()
                        .refused_server_full
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Refused::ServerFull);
                }
            },
        };
        let Some(slot) = ctx.take_slot(peer.ip()) else {
            span.in_scope(|| debug!("too many connections from this address"));
            ctx.hub
                .stats()
                .refused_address
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refused::TooManyFromAddress);
        };
        let token = ctx.shutdown.child_token();
        Ok(Admission {
            conn: self.conn,
            _open: open,
            _slot: slot,
            open: None,
            token,
        })
    }
}

/// An admitted connection: it holds its address's place, and once
/// [`connected`](Admission::connected) its place in its transport's gauge, until it is
/// dropped, however the connection ends.
pub struct Admission {
    conn: Conn,
    _open: Option<Place>,
    _slot: AddressSlot,
    open: Option<OpenConnection>,
    token: CancellationToken,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("peer", &self.conn.peer)
            .field("transport", &self.conn.transport)
            .field("connected", &self.open.is_some())
            .finish()
    }
}

impl Admission {
    /// The connection's span (`conn`, `transport`, `peer`, and `room` once joined).
    pub fn span(&self) -> &Span {
        &self.conn.span
    }

    /// The shared context.
    pub fn context(&self) -> &Arc<Context> {
        &self.conn.ctx
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// Cancelled when the server decides to end the connection (a child of the server's
    /// shutdown token).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The transport's handshake is done: the connection counts in its transport's gauge
    /// from now until dropped, and is logged as connected.
    pub fn connected(&mut self) {
        if self.open.is_none() {
            self.open = Some(self.conn.ctx.hub.stats().open(self.conn.transport));
            self.conn.span.in_scope(|| info!("connected"));
        }
    }

    /// A new session with its outbox (a queue of envelopes) and the receiving end of
    /// that queue; `datagrams` for a transport that has them.
    pub fn open_session(
        &self,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
    ) -> (Session, Outbox, Inbox<Bytes>) {
        let ctx = &self.conn.ctx;
        let (outbox, rx) = Outbox::new(
            ctx.outbox_bounds(),
            datagrams,
            self.token.clone(),
            ctx.hub.stats().clone(),
        );
        (self.session_on(&outbox), outbox, rx)
    }

    /// A new session whose outbox queues [`Queued`] items (relayed events as parts) for a
    /// transport that sends an envelope's parts separately.
    pub fn open_session_with_parts(&self) -> (Session, Outbox, Inbox<Queued>) {
        let ctx = &self.conn.ctx;
        let (outbox, rx) = Outbox::with_parts(
            ctx.outbox_bounds(),
            self.token.clone(),
            ctx.hub.stats().clone(),
        );
        (self.session_on(&outbox), outbox, rx)
    }

    fn session_on(&self, outbox: &Outbox) -> Session {
        let ctx = &self.conn.ctx;
        Session::new(ctx.hub.clone(), outbox.clone(), ctx.session_limits.clone())
            .with_peer(self.conn.peer.ip())
            .with_cluster(ctx.cluster.clone())
            .with_auth(ctx.auth.clone())
    }

    /// Ends the connection: logs why (once, for a connection that was connected) and
    /// frees its places. Dropping an admission without it frees them too, silently.
    pub fn finish(self, reason: CloseReason) {
        if self.open.is_some() {
            let reason = reason.as_str();
            self.conn.span.in_scope(|| info!(reason, "disconnected"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context admitting `per_address` connections from one address.
    fn context(per_address: usize) -> Context {
        Context::new(
            Hub::new(crate::room::Limits::default()),
            SessionLimits::default(),
            16,
            Duration::from_secs(5),
            Duration::from_secs(15),
            per_address,
            OriginPolicy::any(),
        )
    }

    #[test]
    fn an_address_gets_its_places_back_when_its_connections_end() {
        let ctx = context(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let first = ctx.take_slot(a).unwrap();
        let _second = ctx.take_slot(same_64).unwrap();
        assert!(ctx.take_slot(a).is_none(), "the /64 is full");
        assert!(ctx.take_slot("2001:db8:0:1::1".parse().unwrap()).is_some());
        drop(first);
        assert!(ctx.take_slot(same_64).is_some());
    }

    #[test]
    fn the_server_cap_counts_tcp_sockets_and_webtransport_sessions_together() {
        let ctx = Arc::new(context(8).with_connection_caps(2, 1));
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let tcp = ctx.accept_tcp(a).unwrap();
        assert_eq!(ctx.accept_tcp(a).unwrap_err(), Refused::TooManyFromAddress);
        let wt = ctx.arrive(b, Transport::WebTransport).admit().unwrap();
        assert_eq!(ctx.accept_tcp(b).unwrap_err(), Refused::ServerFull);
        assert_eq!(
            ctx.arrive(b, Transport::WebTransport).admit().unwrap_err(),
            Refused::ServerFull
        );
        // A WebSocket rides on its accepted socket's place.
        assert!(ctx.arrive(a, Transport::WebSocket).admit().is_ok());
        drop(wt);
        let _b = ctx.accept_tcp(b).unwrap();
        drop(tcp);
        assert!(ctx.accept_tcp(a).is_ok());
        let overflow: Vec<_> = std::iter::from_fn(|| ctx.overflow()).take(100).collect();
        assert_eq!(overflow.len(), OVERFLOW_CONNECTIONS);
    }
}
