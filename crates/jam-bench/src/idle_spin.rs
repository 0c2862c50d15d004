//! The generator's idle spinning: time it spent yielding with nothing else to run (yields
//! that came back within [`IDLE_YIELD_NS`]), which is spinning, not work. `run` adds to
//! it; `monitor` reads it, and the report subtracts it from the bench's CPU time to tell
//! whether the bench itself was saturated. A leaf module, so neither imports the other.

use std::sync::atomic::{AtomicU64, Ordering};

/// A yield that returns sooner than this ran no other task worth counting.
pub const IDLE_YIELD_NS: u64 = 5_000;

static IDLE_SPIN_NS: AtomicU64 = AtomicU64::new(0);

/// Counts `ns` of idle spinning.
pub fn add(ns: u64) {
    IDLE_SPIN_NS.fetch_add(ns, Ordering::Relaxed);
}

/// Idle spinning so far, ns.
pub fn total_ns() -> u64 {
    IDLE_SPIN_NS.load(Ordering::Relaxed)
}
