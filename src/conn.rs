//! What every connection shares, whatever its transport: the room core, the limits, the
//! keep-alive timing and the shutdown machinery, and the factory that gives a new
//! connection its [`Session`] and [`Outbox`]. Transports depend on this module; it knows
//! none of them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jam_protocol::Encoding;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::addresses::AddressKey;
use crate::origins::OriginPolicy;
use crate::outbox::{DatagramSink, Outbox};
use crate::room::Hub;
use crate::session::{Session, SessionLimits};

/// What every connection needs: the hub, the limits, and the shutdown machinery.
pub struct Context {
    /// The room core.
    pub hub: Arc<Hub>,
    /// Per-connection limits.
    pub session_limits: SessionLimits,
    /// Outgoing queue length per connection.
    pub outbox_capacity: usize,
    /// Keep-alive / ping period.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped.
    pub peer_timeout: Duration,
    /// Cancelled on shutdown; every connection's token is a child of it.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Open connections per address (IPv4) or /64 (IPv6).
    addresses: Arc<AddressTable>,
    /// The web origins allowed to connect.
    pub origins: OriginPolicy,
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

/// Open connections per [`AddressKey`], so that one address cannot take every socket.
#[derive(Debug)]
struct AddressTable {
    max: usize,
    open: Mutex<HashMap<AddressKey, usize>>,
}

/// One admitted connection's place in its address's count; dropping it frees the place.
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<AddressTable>,
    key: AddressKey,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl Context {
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
            ping_interval,
            peer_timeout,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            addresses: Arc::new(AddressTable {
                max: max_per_address,
                open: Mutex::new(HashMap::new()),
            }),
            origins,
            next_conn: AtomicU64::new(0),
        }
    }

    /// A place for one more connection from `ip`, or `None` when its address (or /64)
    /// already has the most allowed.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        let key = AddressKey::of(ip);
        let mut open = self
            .addresses
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.addresses.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.addresses.clone(),
            key,
        })
    }

    /// Whether a connection from a page of `origin` may open (PROTOCOL.md §10); a refusal
    /// is counted by reason for `/metrics`. `None`: no `Origin` header (a native client).
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        let allowed = self.origins.allows(origin);
        if !allowed {
            self.hub
                .stats()
                .refused_origin
                .fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Counts a connection refused because its address has the most allowed (the
    /// transports refuse at different moments of their handshakes).
    pub fn count_refused_address(&self) {
        self.hub
            .stats()
            .refused_address
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh connection number for logs.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new session with its outbox and the receiving end of that outbox. `token` is
    /// cancelled when the server decides to end the connection.
    pub fn open_session(
        &self,
        peer: SocketAddr,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        token: CancellationToken,
    ) -> (Session, Outbox, mpsc::Receiver<Bytes>) {
        let (outbox, rx) = Outbox::new(
            self.outbox_capacity,
            datagrams,
            token,
            self.hub.stats().clone(),
        );
        let session = Session::new(
            self.hub.clone(),
            outbox.clone(),
            self.session_limits.clone(),
        )
        .with_peer(peer.ip());
        (session, outbox, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_places_back_when_its_connections_end() {
        let ctx = Context::new(
            Hub::new(crate::room::Limits::default()),
            SessionLimits::default(),
            16,
            Duration::from_secs(5),
            Duration::from_secs(15),
            2,
            OriginPolicy::any(),
        );
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let first = ctx.admit(a).unwrap();
        let _second = ctx.admit(same_64).unwrap();
        assert!(ctx.admit(a).is_none(), "the /64 is full");
        assert!(ctx.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
        drop(first);
        assert!(ctx.admit(same_64).is_some());
    }
}
