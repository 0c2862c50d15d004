//! Per-address token buckets, for the hub's two budgets by address: failed joins (an
//! unknown room code: room codes have about 30 bits, and this budget, not their length, is
//! what makes guessing them hopeless) and rooms created (docs/protocol.md §2).
//!
//! It owns the table of addresses and when to forget them; the bucket arithmetic is
//! `rate.rs`'s, and what a refused join or create answers is the hub's (`hub.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::addresses::AddressKey;
use crate::rate::{Bucket, Refill};

/// Addresses a generation of the table remembers.
const GENERATION: usize = 32_768;

/// A per-address budget: a token bucket per [`AddressKey`] (so every
/// address of one IPv6 /64 shares one), in two generations: when the current one is full,
/// it becomes the previous one and the previous one is dropped, so the table stays bounded
/// without a scan, and an address keeps its spent budget for at least one generation.
#[derive(Debug)]
pub(super) struct AddressBudget {
    refill: Refill,
    table: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<AddressKey, Bucket>,
    previous: HashMap<AddressKey, Bucket>,
}

impl AddressBudget {
    /// `burst` per address, then `per_minute`.
    pub(super) fn new(per_minute: u32, burst: u32) -> Self {
        AddressBudget {
            refill: Refill::per_minute(per_minute, burst),
            table: Mutex::new(Generations::default()),
        }
    }

    fn table(&self) -> MutexGuard<'_, Generations> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget left to `key` at `now`.
    fn tokens(&self, key: AddressKey, now: Instant) -> f64 {
        self.table()
            .bucket(key, self.refill, now)
            .level(self.refill, now)
    }

    /// Whether `ip` has budget left now.
    pub(super) fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        self.tokens(AddressKey::of(ip), now) >= 1.0
    }

    /// Spends one of `ip`'s tokens, whether or not it had one (a failed join: a cost
    /// already incurred).
    pub(super) fn record(&self, ip: IpAddr, now: Instant) {
        let dropped = self.table().record(AddressKey::of(ip), self.refill, now);
        // A dropped generation is freed here, after the lock.
        drop(dropped);
    }

    /// Takes one of `ip`'s tokens if it has one; whether it had.
    pub(super) fn take(&self, ip: IpAddr, now: Instant) -> bool {
        let key = AddressKey::of(ip);
        let mut table = self.table();
        if table.bucket(key, self.refill, now).level(self.refill, now) < 1.0 {
            return false;
        }
        let dropped = table.record(key, self.refill, now);
        drop(table);
        drop(dropped);
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let table = self.table();
        table.current.len() + table.previous.len()
    }
}

impl Generations {
    /// `key`'s bucket as last stored, or a full one for an address not seen lately.
    fn bucket(&self, key: AddressKey, refill: Refill, now: Instant) -> Bucket {
        match self.current.get(&key).or_else(|| self.previous.get(&key)) {
            Some(bucket) => *bucket,
            None => Bucket::full(refill, now),
        }
    }

    /// Spends one of `key`'s tokens; returns the generation dropped, if one was, for the
    /// caller to free outside the lock.
    fn record(
        &mut self,
        key: AddressKey,
        refill: Refill,
        now: Instant,
    ) -> Option<HashMap<AddressKey, Bucket>> {
        let mut bucket = self.bucket(key, refill, now);
        bucket.spend(refill, now);
        let mut dropped = None;
        if self.current.len() >= GENERATION && !self.current.contains_key(&key) {
            let old = std::mem::take(&mut self.current);
            dropped = Some(std::mem::replace(&mut self.previous, old));
        }
        self.current.insert(key, bucket);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use jam_protocol::ErrorCode;

    use super::*;
    use crate::room::testing::{member, name};
    use crate::room::{Hub, Limits};

    #[test]
    fn an_ipv6_64_shares_one_guessing_budget_and_the_table_stays_bounded() {
        let limits = Limits {
            join_failure_burst: 3,
            join_failures_per_minute: 1,
            ..Limits::default()
        };
        let now = Instant::now();
        let f = AddressBudget::new(limits.join_failures_per_minute, limits.join_failure_burst);
        // Three failures from three addresses of one /64 spend its whole burst.
        for i in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, i]);
            assert!(f.allowed(ip, now));
            f.record(ip, now);
        }
        let fresh_in_the_64: IpAddr = "2001:db8:0:7::99".parse().unwrap();
        assert!(
            !f.allowed(fresh_in_the_64, now),
            "rotating addresses gains nothing"
        );
        assert!(f.allowed("2001:db8:0:8::1".parse().unwrap(), now));
        // Many addresses: two generations at most, and a spent budget survives a swap.
        for i in 0..(3 * GENERATION as u32) {
            f.record(IpAddr::from(i.to_be_bytes()), now);
            assert!(f.len() <= 2 * GENERATION);
        }
        let last = IpAddr::from((3 * GENERATION as u32 - 1).to_be_bytes());
        assert!(f.tokens(AddressKey::of(last), now) < 3.0);
    }

    #[test]
    fn failed_joins_are_limited_per_address() {
        let hub = Hub::new(Limits {
            join_failure_burst: 3,
            join_failures_per_minute: 60,
            ..Limits::default()
        });
        let a = member(&hub, 64);
        let room = hub
            .create(name("A"), "".into(), &a.outbox, None, None)
            .unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let join = |code: &str, who: &str, ip| {
            hub.join(code, name(who), "".into(), &a.outbox, None, Some(ip))
                .map(|m| m.leave())
                .map_err(|e| e.code)
        };
        assert_eq!(join(room.room_code().as_str(), "ok", ip), Ok(()));
        for _ in 0..3 {
            assert_eq!(join("ZZZZZZ", "B", ip), Err(ErrorCode::RoomNotFound));
        }
        // Over budget: every join from that address is refused, good codes included, so a
        // guesser learns nothing.
        assert_eq!(join("ZZZZZZ", "B", ip), Err(ErrorCode::RateLimited));
        assert_eq!(
            join(room.room_code().as_str(), "B", ip),
            Err(ErrorCode::RateLimited)
        );
        assert_eq!(join(room.room_code().as_str(), "B", other), Ok(()));
        // Successful joins cost nothing.
        for _ in 0..5 {
            assert_eq!(join(room.room_code().as_str(), "C", other), Ok(()));
        }
    }
}
