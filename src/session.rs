//! One connection's protocol state machine, whatever its transport: a message in becomes
//! hub calls and messages out (queued on the connection's own [`Outbox`], so answers and
//! room events reach the client in the order the server produced them).
//!
//! It owns the per-connection rules of PROTOCOL.md: the order of checks, the
//! `event:broadcast` send-rate budget, the error throttle and `id` echo. Transports own
//! framing and hand over complete messages.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tracing::{debug, info};

use jam_protocol::{
    self as protocol, ClientMessage, Encoding, Envelope, ErrorCode, ProtocolError, RoomCode,
};

use crate::outbox::{Outbox, Path, Relayed};
use crate::room::{Hub, Membership};

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest message, in bytes of JSON (without framing).
    pub max_message_bytes: usize,
    /// Sustained `event:broadcast` rate per connection, per second.
    pub rate_limit: u32,
    /// Burst of `event:broadcast` above the rate.
    pub rate_burst: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_bytes: 16 * 1024,
            rate_limit: 1000,
            rate_burst: 2000,
        }
    }
}

/// At most this many `error` messages in any one-second window.
const ERRORS_PER_SECOND: usize = 10;

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Remembers when the last errors went out, for the "10 in any second" rule.
#[derive(Debug, Default)]
struct ErrorThrottle {
    sent: VecDeque<Instant>,
    last_rate_limited: Option<Instant>,
}

impl ErrorThrottle {
    fn allow(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.sent.front() {
            if now.saturating_duration_since(t) >= Duration::from_secs(1) {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() >= ERRORS_PER_SECOND {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

/// One connection's protocol state.
pub struct Session {
    hub: Arc<Hub>,
    outbox: Outbox,
    limits: SessionLimits,
    membership: Option<Membership>,
    bucket: TokenBucket,
    errors: ErrorThrottle,
    peer: Option<IpAddr>,
}

impl Session {
    /// A session that answers on `outbox`.
    pub fn new(hub: Arc<Hub>, outbox: Outbox, limits: SessionLimits) -> Self {
        let bucket = TokenBucket::new(limits.rate_limit, limits.rate_burst, Instant::now());
        Session {
            hub,
            outbox,
            limits,
            membership: None,
            bucket,
            errors: ErrorThrottle::default(),
            peer: None,
        }
    }

    /// Sets the peer's IP address, whose failed joins the hub limits.
    pub fn with_peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The largest message this session accepts.
    pub fn max_message_bytes(&self) -> usize {
        self.limits.max_message_bytes
    }

    /// Handles one JSON message that arrived on `path`.
    pub fn handle_text(&mut self, text: &str, path: Path) {
        if text.len() > self.limits.max_message_bytes {
            self.too_large();
            return;
        }
        let env = match Envelope::parse(text) {
            Ok(env) => env,
            Err(rejection) => {
                self.send_error(&rejection.error, rejection.id);
                return;
            }
        };
        if env.is_broadcast() && !self.bucket.take(Instant::now()) {
            self.rate_limited(env.id);
            return;
        }
        if path == Path::Datagram && !env.is_broadcast() {
            self.send_error(
                &ProtocolError::invalid("a datagram must carry an event:broadcast envelope"),
                env.id,
            );
            return;
        }
        match env.message() {
            Ok(msg) => {
                if let Err(e) = self.handle_message(msg, env.id, path) {
                    self.send_error(&e, env.id);
                }
            }
            Err(e) => self.send_error(&e, env.id),
        }
    }

    /// Handles one incoming datagram, in whichever [`Encoding`] it sniffs as.
    pub fn handle_datagram(&mut self, bytes: &[u8]) {
        match Encoding::sniff(bytes) {
            Encoding::Json => match std::str::from_utf8(bytes) {
                Ok(text) => self.handle_text(text, Path::Datagram),
                Err(_) => {
                    self.send_error(&ProtocolError::invalid("datagram is not valid UTF-8"), None);
                }
            },
            Encoding::MsgPack => match protocol::msgpack_to_json(bytes) {
                Ok(text) => self.handle_text(&text, Path::Datagram),
                Err(e) => {
                    self.send_error(&e, None);
                }
            },
        }
    }

    /// Answers a message that was too large to read.
    pub fn too_large(&mut self) {
        let e = ProtocolError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "message is larger than {} bytes",
                self.limits.max_message_bytes
            ),
        );
        self.send_error(&e, None);
    }

    /// Answers a message the transport could not take as text (a WebSocket binary frame).
    pub fn invalid(&mut self, why: &'static str) {
        self.send_error(&ProtocolError::invalid(why), None);
    }

    fn handle_message(
        &mut self,
        msg: ClientMessage<'_>,
        id: Option<&RawValue>,
        path: Path,
    ) -> Result<(), ProtocolError> {
        let already = || {
            ProtocolError::new(
                ErrorCode::AlreadyInSession,
                "this connection is already in a room; leave it first",
            )
        };
        match msg {
            ClientMessage::Create { name, instrument } => {
                if self.membership.is_some() {
                    return Err(already());
                }
                let m = self.hub.create(name, instrument, &self.outbox, id);
                tracing::Span::current().record("room", m.room_code().as_str());
                info!(user = %m.user(), "created room");
                self.membership = Some(m);
            }
            ClientMessage::Join {
                room_code,
                name,
                instrument,
            } => {
                if self.membership.is_some() {
                    return Err(already());
                }
                let m = self
                    .hub
                    .join(&room_code, name, instrument, &self.outbox, id, self.peer)?;
                tracing::Span::current().record("room", m.room_code().as_str());
                info!(user = %m.user(), "joined room");
                self.membership = Some(m);
            }
            ClientMessage::Leave { room_code } => {
                let m = self.take_membership_of(&room_code)?;
                let code = m.room_code().clone();
                m.leave();
                info!(room = %code, "left room");
                self.outbox.push_reliable(protocol::encode_left(&code, id));
            }
            ClientMessage::Broadcast(b) => {
                let m = self.membership_of(&b.room_code)?;
                let stats = self.hub.stats();
                stats.events_in.fetch_add(1, Ordering::Relaxed);
                if path == Path::Datagram {
                    stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                }
                let relayed = Relayed::new(protocol::encode_broadcast(
                    &b.event_name,
                    b.payload,
                    m.user(),
                ));
                m.broadcast(&relayed, path);
            }
        }
        Ok(())
    }

    fn membership_of(&self, room_code: &str) -> Result<&Membership, ProtocolError> {
        // Clients echo the canonical code they were given (a normalised code is its own
        // normal form); normalising is for codes typed by hand.
        let names = |m: &Membership| {
            room_code == m.room_code().as_str()
                || RoomCode::normalize(room_code).as_ref() == Some(m.room_code())
        };
        match &self.membership {
            Some(m) if names(m) => Ok(m),
            _ => Err(not_in_session()),
        }
    }

    fn take_membership_of(&mut self, room_code: &str) -> Result<Membership, ProtocolError> {
        self.membership_of(room_code)?;
        self.membership.take().ok_or_else(not_in_session)
    }

    fn rate_limited(&mut self, id: Option<&RawValue>) {
        let now = Instant::now();
        let recent = self
            .errors
            .last_rate_limited
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        if recent {
            return;
        }
        self.errors.last_rate_limited = Some(now);
        let e = ProtocolError::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} events a second; the excess is dropped",
                self.limits.rate_limit
            ),
        );
        self.send_error(&e, id);
    }

    fn send_error(&mut self, error: &ProtocolError, id: Option<&RawValue>) {
        if !self.errors.allow(Instant::now()) {
            return;
        }
        debug!(code = %error.code, "error answer");
        self.outbox.push_reliable(protocol::encode_error(error, id));
    }

    /// Leaves the room, if any (the same happens on drop).
    pub fn leave(&mut self) {
        if let Some(m) = self.membership.take() {
            m.leave();
        }
    }
}

fn not_in_session() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotInSession,
        "this connection is not in that room",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 2000, t0);
        assert_eq!((0..2500).filter(|_| b.take(t0)).count(), 2000);
        assert!(!b.take(t0));
        // 10 ms later, 10 more tokens.
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!((0..50).filter(|_| b.take(t1)).count(), 10);
    }

    #[test]
    fn error_throttle_is_ten_per_sliding_second() {
        let t0 = Instant::now();
        let mut e = ErrorThrottle::default();
        assert_eq!((0..20).filter(|_| e.allow(t0)).count(), 10);
        assert!(!e.allow(t0 + Duration::from_millis(999)));
        assert!(e.allow(t0 + Duration::from_millis(1000)));
    }
}
