//! What every connection shares, whatever its transport: the room core, the limits, the
//! keep-alive timing and the shutdown machinery, and the factory that gives a new
//! connection its [`Session`] and [`Outbox`]. Transports depend on this module; it knows
//! none of them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jam_protocol::Encoding;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    next_conn: AtomicU64,
}

impl Context {
    /// A context with a fresh shutdown token and task tracker.
    pub fn new(
        hub: Arc<Hub>,
        session_limits: SessionLimits,
        outbox_capacity: usize,
        ping_interval: Duration,
        peer_timeout: Duration,
    ) -> Self {
        Context {
            hub,
            session_limits,
            outbox_capacity,
            ping_interval,
            peer_timeout,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_conn: AtomicU64::new(0),
        }
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
