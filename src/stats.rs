//! Server-wide counters: what `GET /stats`, `GET /metrics`, the tests and the benchmark
//! read. Relaxed atomics, touched once per event rather than once per receiver; the
//! metrics endpoint reads them when it is scraped, so nothing is counted twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jam_protocol::ErrorCode;
use serde::Serialize;

/// How many reasons a sign-in can be refused for (`auth::Refusal::ALL`).
pub const AUTH_REFUSAL_REASONS: usize = 12;

/// Counters for the whole server, read by `GET /stats`, tests and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    /// `event:broadcast` accepted from clients, all paths.
    pub events_in: AtomicU64,
    /// Of those, how many arrived as datagrams.
    pub datagrams_in: AtomicU64,
    /// Deliveries handed to a receiver's queue or datagram sink.
    pub deliveries: AtomicU64,
    /// Deliveries sent as datagrams.
    pub datagrams_out: AtomicU64,
    /// Datagram-class deliveries dropped (full queue or failed datagram send).
    pub dropped: AtomicU64,
    /// Members disconnected because their reliable queue overflowed.
    pub slow_consumers: AtomicU64,
    /// Connections refused because their `Origin` is not allowed.
    pub refused_origin: AtomicU64,
    /// Connections refused because their address (IPv6: /64) has the most allowed.
    pub refused_address: AtomicU64,
    /// Connections refused because the server has the most allowed (`--max-connections`).
    pub refused_server_full: AtomicU64,
    /// TCP connections on the HTTP port refused because their address (IPv6: /64) has
    /// the most allowed (`--max-http-connections-per-address`).
    pub refused_tcp_address: AtomicU64,
    /// `event:broadcast` and `tempo:set` dropped over a connection's event budget.
    pub rate_limited_events: AtomicU64,
    /// Room requests (create, join, leave, resume) refused over a connection's budget.
    pub rate_limited_room_requests: AtomicU64,
    /// Joins refused because the address used up its budget for unknown room codes.
    pub rate_limited_joins: AtomicU64,
    /// Error answers by code, indexed by `ErrorCode as usize`; those the per-connection
    /// error throttle then withholds are counted too.
    pub errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Sign-ins refused, by reason (docs/protocol.md §13), indexed as `auth::Refusal::ALL`.
    pub auth_refused: [AtomicU64; AUTH_REFUSAL_REASONS],
    /// Open connections by [`Transport`].
    connections: [AtomicU64; 3],
    /// Time to relay one event to its room (encode and hand to every receiver).
    pub fan_out: FanOutHistogram,
}

/// The transports, for the connection gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket (`GET /ws`).
    WebSocket = 0,
    /// WebTransport.
    WebTransport = 1,
    /// Socket.IO (`/socket.io/`), long-polling or upgraded.
    SocketIo = 2,
}

/// One open connection in [`Stats`]' gauge of its transport, until dropped.
#[derive(Debug)]
pub struct OpenConnection {
    stats: Arc<Stats>,
    transport: Transport,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.connections[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Upper bounds of the fan-out histogram's buckets, in ns (the last bucket is +Inf).
pub const FAN_OUT_BOUNDS_NS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    10_000_000,
];

/// A histogram of fan-out times: one relaxed add to a bucket and one to the sum per event.
#[derive(Debug, Default)]
pub struct FanOutHistogram {
    /// Events per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; FAN_OUT_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl FanOutHistogram {
    /// Counts one fan-out that took `took`.
    #[inline]
    pub fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = FAN_OUT_BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(FAN_OUT_BOUNDS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Events per bucket (not cumulative; the last above every bound) and the sum in ns.
    pub fn read(&self) -> ([u64; FAN_OUT_BOUNDS_NS.len() + 1], u64) {
        let buckets = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        (buckets, self.sum_ns.load(Ordering::Relaxed))
    }
}

impl Stats {
    /// Counts a connection of `transport` as open until the guard is dropped.
    pub fn open(self: &Arc<Self>, transport: Transport) -> OpenConnection {
        self.connections[transport as usize].fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            stats: self.clone(),
            transport,
        }
    }

    /// Open connections of `transport` now.
    pub fn connections(&self, transport: Transport) -> u64 {
        self.connections[transport as usize].load(Ordering::Relaxed)
    }

    /// Open connections now, all transports (`GET /stats`).
    pub fn open_connections(&self) -> u64 {
        self.connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts a refused sign-in, by the index of its reason in `auth::Refusal::ALL`.
    pub fn auth_refused(&self, reason: usize) {
        if let Some(c) = self.auth_refused.get(reason) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an error answer (or one the throttle withheld) of `code`.
    pub fn error(&self, code: ErrorCode) {
        self.errors[code as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            events_in: g(&self.events_in),
            datagrams_in: g(&self.datagrams_in),
            deliveries: g(&self.deliveries),
            datagrams_out: g(&self.datagrams_out),
            dropped: g(&self.dropped),
            slow_consumers: g(&self.slow_consumers),
        }
    }
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub events_in: u64,
    pub datagrams_in: u64,
    pub deliveries: u64,
    pub datagrams_out: u64,
    pub dropped: u64,
    pub slow_consumers: u64,
}
