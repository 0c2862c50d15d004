//! QUIC handshakes in progress, and what to do with a new one (`--quic-retry`,
//! `--max-handshakes-per-address`, `--max-handshakes`).
//!
//! A QUIC Initial packet's source address is not proven: anyone can send one with a
//! forged address, and a server that accepts it does handshake work and keeps handshake
//! state for whoever it names. A Retry answers such a packet with a token and keeps
//! nothing; only a client that receives at its address can come back with the token, and
//! its second Initial is *validated*. So a handshake counts against an address only once
//! the address is validated, or when the server is idle enough to take the first one on
//! trust ([`RetryPolicy::Auto`]).
//!
//! This module knows no QUIC library: the transport asks [`HandshakeGate::decide`] with
//! the source address and whether it is validated, and does what the [`Decision`] says.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::addresses::{AddressCounts, AddressKey};

/// Handshakes in progress from one address (IPv6: /64), by default
/// (`--max-handshakes-per-address`).
pub const DEFAULT_PER_ADDRESS: usize = 32;
/// Handshakes in progress on the whole server, by default (`--max-handshakes`).
pub const DEFAULT_TOTAL: usize = 1024;

/// When an Initial from an unvalidated source is answered with a Retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryPolicy {
    /// When its address (or /64) already has a handshake in progress, or when a quarter
    /// of `--max-handshakes` are in progress on the whole server (or more).
    #[default]
    Auto,
    /// Every time (one more round trip for every new connection).
    Always,
    /// Never: unvalidated handshakes count against their address's cap, and are refused
    /// over it.
    Never,
}

impl RetryPolicy {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryPolicy::Auto => "auto",
            RetryPolicy::Always => "always",
            RetryPolicy::Never => "never",
        }
    }
}

impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--quic-retry` value that is none of `auto`, `always`, `never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--quic-retry is {0:?}; it must be auto, always or never")]
pub struct BadRetryPolicy(pub String);

impl FromStr for RetryPolicy {
    type Err = BadRetryPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(RetryPolicy::Auto),
            "always" => Ok(RetryPolicy::Always),
            "never" => Ok(RetryPolicy::Never),
            other => Err(BadRetryPolicy(other.to_owned())),
        }
    }
}

/// What to do with a new Initial.
#[derive(Debug)]
pub enum Decision {
    /// Go on with the handshake, holding this place until it is over.
    Accept(HandshakePlace),
    /// Answer with a Retry (stateless: nothing is kept).
    Retry,
    /// Refuse the connection (a validated source over its cap, or any over it with
    /// [`RetryPolicy::Never`]).
    Refuse,
}

/// The handshakes in progress, per address (IPv6: /64) and on the whole server, and the
/// counts `/metrics` shows.
#[derive(Debug)]
pub struct HandshakeGate {
    policy: RetryPolicy,
    max_total: usize,
    per_address: Arc<AddressCounts>,
    in_progress: Arc<AtomicUsize>,
    retries: AtomicU64,
    refused: AtomicU64,
}

impl HandshakeGate {
    /// At most `per_address` handshakes in progress from one address (IPv6: /64) and
    /// `total` on the whole server.
    pub fn new(policy: RetryPolicy, per_address: usize, total: usize) -> Self {
        HandshakeGate {
            policy,
            max_total: total,
            per_address: Arc::new(AddressCounts::new(per_address)),
            in_progress: Arc::new(AtomicUsize::new(0)),
            retries: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Handshakes in progress on the whole server.
    pub fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Acquire)
    }

    /// Initials answered with a Retry.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Initials refused over a cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// In-progress count at which [`RetryPolicy::Auto`] retries every unvalidated source.
    fn auto_threshold(&self) -> usize {
        (self.max_total / 4).max(1)
    }

    /// What to do with an Initial from `ip`; `validated` when the source has proven it
    /// receives at that address (a Retry token came back).
    pub fn decide(&self, ip: IpAddr, validated: bool) -> Decision {
        let key = AddressKey::of(ip);
        if !validated {
            let retry = match self.policy {
                RetryPolicy::Always => true,
                RetryPolicy::Auto => {
                    self.per_address.held(key) > 0 || self.in_progress() >= self.auto_threshold()
                }
                RetryPolicy::Never => false,
            };
            if retry {
                return self.retry();
            }
        }
        match self.take(key) {
            Some(place) => Decision::Accept(place),
            // Over a cap, an unproven source is only sent a Retry (which costs nothing
            // to keep), unless Retry is off.
            None if !validated && self.policy != RetryPolicy::Never => self.retry(),
            None => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Decision::Refuse
            }
        }
    }

    fn retry(&self) -> Decision {
        self.retries.fetch_add(1, Ordering::Relaxed);
        Decision::Retry
    }

    fn take(&self, key: AddressKey) -> Option<HandshakePlace> {
        let taken = self.in_progress.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max_total {
            self.in_progress.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if !self.per_address.add(key) {
            self.in_progress.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(HandshakePlace {
            per_address: self.per_address.clone(),
            in_progress: self.in_progress.clone(),
            key,
        })
    }
}

/// One handshake in progress; dropping it (the handshake finished, failed or timed out)
/// frees its place.
#[derive(Debug)]
pub struct HandshakePlace {
    per_address: Arc<AddressCounts>,
    in_progress: Arc<AtomicUsize>,
    key: AddressKey,
}

impl Drop for HandshakePlace {
    fn drop(&mut self) {
        self.per_address.remove(self.key);
        self.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn policies_parse_and_anything_else_names_the_flag() {
        assert_eq!("auto".parse(), Ok(RetryPolicy::Auto));
        assert_eq!("always".parse(), Ok(RetryPolicy::Always));
        assert_eq!("never".parse(), Ok(RetryPolicy::Never));
        let e = "sometimes".parse::<RetryPolicy>().unwrap_err();
        assert!(e.to_string().starts_with("--quic-retry"), "{e}");
    }

    #[test]
    fn auto_trusts_the_first_handshake_of_an_idle_address_and_retries_the_next() {
        let gate = HandshakeGate::new(RetryPolicy::Auto, 4, 100);
        let a = ip("192.0.2.1");
        let Decision::Accept(first) = gate.decide(a, false) else {
            panic!("an idle address's first Initial is taken on trust");
        };
        assert!(matches!(gate.decide(a, false), Decision::Retry));
        assert!(matches!(
            gate.decide(ip("192.0.2.2"), false),
            Decision::Accept(_)
        ));
        // Validated, the same address gets its own places up to the cap.
        let held: Vec<_> = (0..3)
            .map(|_| match gate.decide(a, true) {
                Decision::Accept(p) => p,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(gate.decide(a, true), Decision::Refuse));
        assert!(matches!(gate.decide(a, false), Decision::Retry));
        assert_eq!((gate.retries(), gate.refused()), (2, 1));
        drop((first, held));
        assert!(matches!(gate.decide(a, false), Decision::Accept(_)));
        assert_eq!(gate.in_progress(), 0, "every place came back");
    }

    #[test]
    fn auto_retries_everyone_unproven_under_load_and_always_retries_everyone() {
        let gate = HandshakeGate::new(RetryPolicy::Auto, 4, 8);
        let held: Vec<_> = (1..=2)
            .map(|i| gate.decide(ip(&format!("192.0.2.{i}")), false))
            .collect();
        assert!(held.iter().all(|d| matches!(d, Decision::Accept(_))));
        assert!(matches!(
            gate.decide(ip("192.0.2.9"), false),
            Decision::Retry
        ));
        assert!(matches!(
            gate.decide(ip("192.0.2.9"), true),
            Decision::Accept(_)
        ));

        let always = HandshakeGate::new(RetryPolicy::Always, 4, 8);
        assert!(matches!(
            always.decide(ip("192.0.2.1"), false),
            Decision::Retry
        ));
        assert!(matches!(
            always.decide(ip("192.0.2.1"), true),
            Decision::Accept(_)
        ));
    }

    #[test]
    fn never_counts_unproven_handshakes_and_refuses_over_the_caps() {
        let gate = HandshakeGate::new(RetryPolicy::Never, 2, 3);
        let a = ip("2001:db8::1");
        let same_64 = ip("2001:db8::2");
        let _one = gate.decide(a, false);
        let _two = gate.decide(same_64, false);
        assert!(
            matches!(gate.decide(a, false), Decision::Refuse),
            "the /64's cap"
        );
        let _three = gate.decide(ip("192.0.2.1"), true);
        assert!(
            matches!(gate.decide(ip("192.0.2.2"), true), Decision::Refuse),
            "the server's cap"
        );
        assert_eq!(
            (gate.retries(), gate.refused(), gate.in_progress()),
            (0, 2, 3)
        );
    }
}
