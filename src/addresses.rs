//! How the server counts addresses for its per-address limits: an IPv4 address, or the
//! /64 of an IPv6 one (a subscriber's whole prefix, so rotating through it gains nothing),
//! IPv4-mapped addresses as IPv4; and the one count behind every "at most so many per
//! address" cap ([`AddressCounts`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

/// What an address is counted as: an IPv4 address, or the /64 of an IPv6 one (one
/// subscriber's whole prefix), IPv4-mapped addresses as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl AddressKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    AddressKey::V6Prefix(prefix)
                }
            },
        }
    }
}

/// How many of something each address holds (open connections, away seats), against one
/// most for every address. An address that holds none takes no room in the table.
#[derive(Debug)]
pub struct AddressCounts {
    max: usize,
    held: Mutex<HashMap<AddressKey, usize>>,
}

impl AddressCounts {
    /// At most `max` for each address.
    pub fn new(max: usize) -> Self {
        AddressCounts {
            max,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<AddressKey, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more for `key` if it holds fewer than the most; whether it did.
    pub fn add(&self, key: AddressKey) -> bool {
        let mut table = self.table();
        let held = table.entry(key).or_insert(0);
        if *held >= self.max {
            return false;
        }
        *held += 1;
        true
    }

    /// Counts one fewer for `key`.
    pub fn remove(&self, key: AddressKey) {
        let mut table = self.table();
        if let Some(held) = table.get_mut(&key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                table.remove(&key);
            }
        }
    }

    /// How many `key` holds now.
    pub fn held(&self, key: AddressKey) -> usize {
        self.table().get(&key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ones_as_ipv4() {
        let key = |s: &str| AddressKey::of(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn an_address_holds_a_bounded_number() {
        let seats = AddressCounts::new(2);
        let a = AddressKey::of("192.0.2.1".parse().unwrap());
        let b = AddressKey::of("192.0.2.2".parse().unwrap());
        assert!(seats.add(a) && seats.add(a));
        assert!(!seats.add(a));
        assert!(seats.add(b));
        seats.remove(a);
        assert!(seats.add(a));
        assert_eq!(seats.held(a), 2);
        seats.remove(b);
        assert_eq!(seats.held(b), 0);
        assert!(
            seats.table().get(&b).is_none(),
            "an address that holds none is forgotten"
        );
    }
}
