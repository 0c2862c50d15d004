//! Server-wide counters: what `GET /stats`, the tests and the benchmark read. Relaxed
//! atomics, touched once per event rather than once per receiver.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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
}

impl Stats {
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
