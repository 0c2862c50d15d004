//! One connection's protocol state machine, whatever its transport: a message in becomes
//! hub calls and messages out (queued on the connection's own [`Outbox`], so answers and
//! room events reach the client in the order the server produced them).
//!
//! It owns the per-connection rules of docs/protocol.md: the order of checks, the
//! `event:broadcast` send-rate budget, the error throttle and `id` echo. Transports own
//! framing and hand over complete messages.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tracing::{debug, info};

use jam_protocol::{
    self as protocol, ClientMessage, Encoding, Envelope, ErrorCode, ProtocolError, RoomCode,
};

use crate::auth::{Auth, Refusal, SeatSignIn};
use crate::cluster::Cluster;
use crate::followup::{Followup, Outcome, Request, Settled};
use crate::outbox::{CloseReason, Outbox, Path};
use crate::rate::{TokenBucket, Window};
use crate::room::{Asked, Hub, Membership};
use crate::silence::Silence;

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest message, in bytes of JSON (without framing).
    pub max_message_bytes: usize,
    /// Sustained `event:broadcast` rate per connection, per second.
    pub rate_limit: u32,
    /// Burst of `event:broadcast` above the rate.
    pub rate_burst: u32,
    /// Sustained room requests (create, join, leave, resume) per second.
    pub control_rate: u32,
    /// Burst of room requests above that rate.
    pub control_burst: u32,
    /// How long a connection may stay in no room; zero: for ever.
    pub join_deadline: Duration,
    /// How long a heartbeating connection may send nothing before its seat turns away
    /// (docs/protocol.md §11); zero turns the rule off.
    pub silence_limit: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_bytes: 16 * 1024,
            rate_limit: 1000,
            rate_burst: 2000,
            control_rate: 5,
            control_burst: 20,
            join_deadline: Duration::from_secs(300),
            silence_limit: Duration::from_secs(3),
        }
    }
}

/// At most this many `error` messages in any one-second window.
const ERRORS_PER_SECOND: usize = 10;
/// At most this many `clock:ping`s answered in any one-second window (docs/protocol.md §7).
const PINGS_PER_SECOND: usize = 20;

/// Remembers when the last errors went out, for the "10 in any second" rule.
#[derive(Debug)]
struct ErrorThrottle {
    sent: Window,
    last_rate_limited: Option<Instant>,
}

impl Default for ErrorThrottle {
    fn default() -> Self {
        ErrorThrottle {
            sent: Window::new(ERRORS_PER_SECOND),
            last_rate_limited: None,
        }
    }
}

impl ErrorThrottle {
    fn allow(&mut self, now: Instant) -> bool {
        self.sent.allow(now)
    }
}

/// One connection's protocol state.
pub struct Session {
    hub: Arc<Hub>,
    outbox: Outbox,
    limits: SessionLimits,
    membership: Option<Membership>,
    bucket: TokenBucket,
    /// The budget of room requests (create, join, leave, resume).
    control: TokenBucket,
    errors: ErrorThrottle,
    pings: Window,
    peer: Option<IpAddr>,
    /// Since when the connection has been in no room.
    lobby_since: Option<Instant>,
    /// The node directory, with several nodes on one Redis (docs/protocol.md §12).
    cluster: Option<Arc<Cluster>>,
    /// A room request waiting for the directory ([`Session::settle`]).
    followup: Option<Followup>,
    /// When the connection was last heard, and whether it is silent (§11).
    silence: Silence,
    /// Sign-in with the app's JWTs, when on (docs/protocol.md §13).
    auth: Option<Arc<Auth>>,
    /// When the seat's sign-in token runs out, with sign-in on.
    expires: Option<Instant>,
}

impl Session {
    /// A session that answers on `outbox`.
    pub fn new(hub: Arc<Hub>, outbox: Outbox, limits: SessionLimits) -> Self {
        let now = Instant::now();
        let bucket = TokenBucket::new(limits.rate_limit, limits.rate_burst, now);
        let control = TokenBucket::new(limits.control_rate, limits.control_burst, now);
        let silence = Silence::new(limits.silence_limit, now);
        Session {
            hub,
            outbox,
            limits,
            membership: None,
            bucket,
            control,
            errors: ErrorThrottle::default(),
            pings: Window::new(PINGS_PER_SECOND),
            peer: None,
            lobby_since: Some(now),
            cluster: None,
            followup: None,
            silence,
            auth: None,
            expires: None,
        }
    }

    /// Turns sign-in on: creates and joins need a valid token (docs/protocol.md §13).
    pub fn with_auth(mut self, auth: Option<Arc<Auth>>) -> Self {
        self.auth = auth;
        self
    }

    /// The seat a create (no `room`) or a join of `room` asks for, with its sign-in
    /// checked: `unauthorized` without a valid token, `forbidden` for a room outside its
    /// `rooms` or a create with `create: false` (docs/protocol.md §13). The token's `name`
    /// replaces the one asked for.
    fn sign_in(
        &self,
        name: protocol::Name,
        instrument: String,
        token: Option<&str>,
        room: Option<&str>,
    ) -> Result<Asked, ProtocolError> {
        let Some(auth) = &self.auth else {
            let sign_in = None;
            return Ok(Asked {
                name,
                instrument,
                sign_in,
            });
        };
        let signed = auth.verify(token).and_then(|signed| match room {
            None if !signed.create => Err(Refusal::Create),
            Some(room) if !signed.allows_room(room) => Err(Refusal::Room),
            _ => Ok(signed),
        });
        let signed = signed.map_err(|refusal| self.refused(refusal))?;
        Ok(Asked {
            name: signed.name.unwrap_or(name),
            instrument,
            sign_in: Some(SeatSignIn {
                sub: signed.sub,
                exp: signed.exp,
            }),
        })
    }

    /// Counts a refused sign-in and gives its error answer.
    fn refused(&self, refusal: Refusal) -> ProtocolError {
        self.hub.stats().auth_refused(refusal.index());
        refusal.error()
    }

    /// `auth:refresh`: the seat's new token, for the same `sub`, moves its expiry
    /// (docs/protocol.md §13).
    fn refresh(
        &mut self,
        token: &str,
        id: Option<&RawValue>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let Some(auth) = self.auth.clone() else {
            return Err(ProtocolError::invalid(
                "sign-in is off on this server: there is no token to refresh",
            ));
        };
        let Some(m) = &self.membership else {
            return Err(not_in_session());
        };
        let signed = auth
            .verify(Some(token))
            .map_err(|refusal| self.refused(refusal))?;
        let exp = m
            .refresh_sign_in(&signed)
            .map_err(|refusal| self.refused(refusal))?;
        self.expires = Some(now + auth.until_expiry(exp));
        self.outbox
            .push_reliable(protocol::encode_auth_refreshed(exp, id));
        Ok(())
    }

    /// When the seat's sign-in token runs out, if it does (transports wait for it beside
    /// their reads and then call [`Session::expire`]).
    pub fn expiry_deadline(&self) -> Option<Instant> {
        self.membership.as_ref()?;
        self.expires
    }

    /// Ends a seat whose sign-in token ran out without a refresh: `token_expired`, the
    /// seat leaves at once (no resume window), and the connection closes (WebSocket 4003,
    /// WebTransport 7; docs/protocol.md §13). Nothing happens before the deadline.
    pub fn expire(&mut self) {
        if self.expiry_deadline().is_none_or(|at| at > Instant::now()) {
            return;
        }
        let refusal = Refusal::SeatExpired;
        self.hub.stats().auth_refused(refusal.index());
        self.hub.stats().error(ErrorCode::TokenExpired);
        self.outbox
            .push_reliable(protocol::encode_error(&refusal.error(), None));
        if let Some(m) = self.membership.take() {
            info!(room = %m.room_code(), "sign-in expired");
            m.leave();
        }
        self.expires = None;
        self.outbox.close(CloseReason::TokenExpired);
    }

    /// Sets the node directory: room requests for rooms this node does not hold wait
    /// for it ([`Session::settle`]).
    pub fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Answers the room request that waits for the node directory, if any, once the
    /// directory has answered. Transports await this after each message they hand over.
    pub async fn settle(&mut self) {
        if let Some((followup, cluster)) = self.take_followup() {
            let settled = Box::pin(followup.run(&cluster, &self.hub)).await;
            self.apply(settled);
        }
    }

    /// The room request that waits for the node directory, to run elsewhere (Socket.IO
    /// runs it on its own task) and hand back to [`Session::apply`].
    pub fn take_followup(&mut self) -> Option<(Followup, Arc<Cluster>)> {
        let followup = self.followup.take()?;
        Some((followup, self.cluster.clone()?))
    }

    /// The hub, for running a followup.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Answers a room request the node directory has answered.
    pub fn apply(&mut self, settled: Settled) {
        let Settled { followup, outcome } = settled;
        let id = followup.id.as_deref();
        let result = match (outcome, followup.request) {
            _ if self.membership.is_some() => Err(already_in_session()),
            (Outcome::Failed(e), _) => Err(e),
            (Outcome::Elsewhere(connect), _) => {
                self.hub.stats().error(ErrorCode::RoomElsewhere);
                if self.errors.allow(Instant::now()) {
                    let message = "the room is on another server of this service";
                    let answer = protocol::encode_elsewhere(message, &connect, id);
                    self.outbox.push_reliable(answer);
                }
                Ok(())
            }
            (outcome, Request::Create { asked }) => {
                let code = match outcome {
                    Outcome::Code(code) => Some(code),
                    _ => None,
                };
                self.create(code, asked, id)
            }
            (_, Request::Join { typed, asked, .. }) => self.join(&typed, asked, id),
            (
                _,
                Request::Resume {
                    typed,
                    token,
                    last_seq,
                    ..
                },
            ) => self.resume(&typed, &token, last_seq, id),
        };
        if let Err(e) = result {
            self.send_error(&e, id);
        }
    }

    /// With a node directory, the canonical code of a room that `typed` names and this
    /// node does not hold: a request for it waits for the directory.
    fn not_here(&self, typed: &str) -> Option<RoomCode> {
        self.cluster.as_ref()?;
        RoomCode::normalize(typed).filter(|code| self.hub.room(code).is_none())
    }

    fn park(&mut self, request: Request, id: Option<&RawValue>) {
        self.followup = Some(Followup {
            request,
            id: id.map(RawValue::to_owned),
        });
    }

    /// The connection now holds a seat (`what` happened: created, joined, resumed).
    fn seated(&mut self, m: Membership, what: &'static str) {
        tracing::Span::current().record("room", m.room_code().as_str());
        info!(user = %m.user(), "{what}");
        // The seat keeps the expiry of the token it was created or joined with (§13).
        self.expires = match (&self.auth, m.sign_in_exp()) {
            (Some(auth), Some(exp)) => Some(Instant::now() + auth.until_expiry(exp)),
            _ => None,
        };
        self.membership = Some(m);
        self.lobby_since = None;
    }

    fn create(
        &mut self,
        code: Option<RoomCode>,
        asked: Asked,
        id: Option<&RawValue>,
    ) -> Result<(), ProtocolError> {
        let (outbox, peer) = (&self.outbox, self.peer);
        let m = self.hub.create_as(code, asked, outbox, id, peer)?;
        self.seated(m, "created room");
        Ok(())
    }

    fn join(
        &mut self,
        typed: &str,
        asked: Asked,
        id: Option<&RawValue>,
    ) -> Result<(), ProtocolError> {
        let (outbox, peer) = (&self.outbox, self.peer);
        let m = self.hub.join_as(typed, asked, outbox, id, peer)?;
        self.seated(m, "joined room");
        Ok(())
    }

    fn resume(
        &mut self,
        typed: &str,
        token: &str,
        last_seq: Option<u64>,
        id: Option<&RawValue>,
    ) -> Result<(), ProtocolError> {
        let (outbox, peer) = (&self.outbox, self.peer);
        let m = self.hub.resume(typed, token, last_seq, outbox, id, peer)?;
        self.seated(m, "resumed seat");
        Ok(())
    }

    /// Sets the peer's IP address, whose failed joins, room creations and away seats the
    /// hub limits.
    pub fn with_peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// When the connection must be closed for staying in no room (this server's choice,
    /// docs/protocol.md §1; a connection that never joins only holds resources): `None`
    /// while it is in a room, or when there is no deadline.
    pub fn lobby_deadline(&self) -> Option<Instant> {
        let deadline = self.limits.join_deadline;
        if deadline.is_zero() {
            return None;
        }
        self.lobby_since.map(|since| since + deadline)
    }

    /// Something arrived that reaches no `handle_*` call (a WebSocket ping or pong, part
    /// of a message): it counts against silence (docs/protocol.md §11).
    pub fn heard(&mut self) {
        self.heard_at(Instant::now());
    }

    #[inline]
    fn heard_at(&mut self, now: Instant) {
        if self.silence.heard(now) {
            if let Some(m) = &self.membership {
                if m.heard_again() {
                    info!("heard again");
                }
            }
        }
    }

    /// When anything last arrived.
    pub fn last_heard(&self) -> Instant {
        self.silence.last_heard()
    }

    /// When the seat turns away for silence if nothing arrives before (docs/protocol.md
    /// §11): `None` in no room, when not heartbeating, already silent, or with the rule
    /// off. Transports wait for it beside their reads and then call
    /// [`Session::check_silence`].
    pub fn silence_deadline(&self) -> Option<Instant> {
        self.membership.as_ref()?;
        self.silence.deadline()
    }

    /// Turns the seat away for silence if its deadline has passed (a deadline computed
    /// before a later arrival has not).
    pub fn check_silence(&mut self) {
        let Some(m) = &self.membership else { return };
        if self.silence.fall_silent(Instant::now()) && m.fall_silent() {
            info!("silent");
        }
    }

    /// The largest message this session accepts.
    pub fn max_message_bytes(&self) -> usize {
        self.limits.max_message_bytes
    }

    /// Handles one JSON message that arrived on `path`.
    pub fn handle_text(&mut self, text: &str, path: Path) {
        self.handle_text_at(text, path, Instant::now());
    }

    /// Handles one JSON message that arrived on `path` at `now`: the one clock reading of
    /// a message, for the silence rule, the budgets and the relayed `serverTime`.
    fn handle_text_at(&mut self, text: &str, path: Path, now: Instant) {
        self.heard_at(now);
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
        // `tempo:set` shares the broadcast budget (docs/protocol.md §9).
        if (env.is_broadcast() || env.is_tempo_set()) && !self.bucket.take(now) {
            self.rate_limited(env.id);
            return;
        }
        if path == Path::Datagram && !env.is_broadcast() && !env.is_clock_ping() {
            self.send_error(
                &ProtocolError::invalid(
                    "a datagram must carry an event:broadcast or clock:ping envelope",
                ),
                env.id,
            );
            return;
        }
        match env.message() {
            Ok(msg) => {
                if let Err(e) = self.handle_message(msg, env.id, path, now) {
                    self.send_error(&e, env.id);
                }
            }
            Err(e) => self.send_error(&e, env.id),
        }
    }

    /// Handles one incoming datagram, in whichever [`Encoding`] it sniffs as.
    pub fn handle_datagram(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.heard_at(now);
        match Encoding::sniff(bytes) {
            Encoding::Json => match std::str::from_utf8(bytes) {
                Ok(text) => self.handle_text_at(text, Path::Datagram, now),
                Err(_) => {
                    self.send_error(&ProtocolError::invalid("datagram is not valid UTF-8"), None);
                }
            },
            Encoding::MsgPack => match protocol::msgpack_to_json(bytes) {
                Ok(text) => self.handle_text_at(&text, Path::Datagram, now),
                Err(e) => {
                    self.send_error(&e, None);
                }
            },
        }
    }

    /// Answers a message that was too large to read.
    pub fn too_large(&mut self) {
        self.heard();
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
        self.heard();
        self.send_error(&ProtocolError::invalid(why), None);
    }

    fn handle_message(
        &mut self,
        msg: ClientMessage<'_>,
        id: Option<&RawValue>,
        path: Path,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let already = already_in_session;
        let room_request = matches!(
            msg,
            ClientMessage::Create { .. }
                | ClientMessage::Join { .. }
                | ClientMessage::Leave { .. }
                | ClientMessage::Resume { .. }
        );
        if room_request && !self.control.take(now) {
            let stats = self.hub.stats();
            stats
                .rate_limited_room_requests
                .fetch_add(1, Ordering::Relaxed);
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} room requests a second; wait a moment",
                    self.limits.control_rate
                ),
            ));
        }
        match msg {
            ClientMessage::Create {
                name,
                instrument,
                token,
            } => {
                let asked = self.sign_in(name, instrument, token.as_deref(), None)?;
                if self.membership.is_some() {
                    return Err(already());
                }
                if self.cluster.is_some() && self.hub.store().is_ready() {
                    // A code no node uses (docs/protocol.md §12).
                    self.park(Request::Create { asked }, id);
                    return Ok(());
                }
                self.create(None, asked, id)?;
            }
            ClientMessage::Join {
                room_code,
                name,
                instrument,
                token,
            } => {
                let asked = self.sign_in(name, instrument, token.as_deref(), Some(&room_code))?;
                if self.membership.is_some() {
                    return Err(already());
                }
                if let Some(code) = self.not_here(&room_code) {
                    let typed = room_code.into_owned();
                    let request = Request::Join { code, typed, asked };
                    self.park(request, id);
                    return Ok(());
                }
                self.join(&room_code, asked, id)?;
            }
            ClientMessage::AuthRefresh { token } => self.refresh(&token, id, now)?,
            ClientMessage::Leave { room_code } => {
                let m = self.take_membership_of(&room_code)?;
                let code = m.room_code().clone();
                m.leave();
                self.lobby_since = Some(Instant::now());
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
                let time = self.hub.clock().at_us(now);
                m.broadcast(&b.event_name, b.payload, time, path, b.ephemeral);
                stats.fan_out.record(now.elapsed());
            }
            ClientMessage::Resume {
                room_code,
                resume_token,
                last_seq,
            } => {
                if self.membership.is_some() {
                    return Err(already());
                }
                if let Some(code) = self.not_here(&room_code) {
                    let request = Request::Resume {
                        code,
                        typed: room_code.into_owned(),
                        token: resume_token.into_owned(),
                        last_seq,
                    };
                    self.park(request, id);
                    return Ok(());
                }
                self.resume(&room_code, &resume_token, last_seq, id)?;
            }
            ClientMessage::TempoSet {
                room_code,
                bpm,
                beats_per_bar,
            } => {
                let m = self.membership_of(&room_code)?;
                m.set_tempo(bpm, beats_per_bar, id);
            }
            ClientMessage::ClockPing { t0 } => {
                // Heartbeats count whether answered or not (docs/protocol.md §11).
                self.silence.ping(now);
                // Over budget: dropped without an error (docs/protocol.md §7).
                if self.pings.allow(now) {
                    let pong = protocol::encode_pong(t0, self.hub.clock().now_ms(), id);
                    match path {
                        Path::Datagram => self.outbox.answer_by_datagram(pong),
                        Path::Reliable => self.outbox.push_reliable(pong),
                    };
                }
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
        let stats = self.hub.stats();
        stats.rate_limited_events.fetch_add(1, Ordering::Relaxed);
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
        self.hub.stats().error(error.code);
        if !self.errors.allow(Instant::now()) {
            return;
        }
        debug!(code = %error.code, "error answer");
        self.outbox.push_reliable(protocol::encode_error(error, id));
    }

    /// Leaves the room, if any, freeing the seat at once (a WebTransport client that
    /// finishes its control stream). Dropping the session instead holds the seat for the
    /// resume window.
    pub fn leave(&mut self) {
        if let Some(m) = self.membership.take() {
            m.leave();
        }
    }
}

fn already_in_session() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::AlreadyInSession,
        "this connection is already in a room; leave it first",
    )
}

fn not_in_session() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotInSession,
        "this connection is not in that room",
    )
}

#[cfg(test)]
mod tests {
    //! The session without sockets: a message in, the answers it queues on the outbox out.
    //! Everything a session does happens inside `handle_*`, so an empty queue right after
    //! the call means "no answer", with no waiting. Only the passing of the error
    //! throttle's one-second window and of the rate limiter's refill needs time; those
    //! are covered with explicit `Instant`s on `ErrorThrottle` (the first test), on the
    //! token bucket in `rate.rs`, and end to end in `tests/errors.rs`.

    use super::*;
    use bytes::Bytes;
    use jam_protocol::{ServerEvent, ServerMessage, SessionInfo};
    use serde_json::{json, Value};
    use tokio_util::sync::CancellationToken;

    use crate::room::Limits;

    #[test]
    fn error_throttle_is_ten_per_sliding_second() {
        let t0 = Instant::now();
        let mut e = ErrorThrottle::default();
        assert_eq!((0..20).filter(|_| e.allow(t0)).count(), 10);
        assert!(!e.allow(t0 + Duration::from_millis(999)));
        assert!(e.allow(t0 + Duration::from_millis(1000)));
    }

    /// A send rate that in effect does not refill while a test runs: `burst` events, then
    /// one a second. A test takes microseconds; only a stall of a whole second between two
    /// of its messages could let one more event through.
    fn budget(burst: u32) -> SessionLimits {
        SessionLimits {
            rate_limit: 1,
            rate_burst: burst,
            ..SessionLimits::default()
        }
    }

    /// One message as queued: its event and its `id` key exactly as on the wire (`None`
    /// only when there is no key; `Some(Null)` would be an `"id": null`).
    #[derive(Debug)]
    struct Out {
        event: ServerEvent,
        id: Option<Value>,
        raw: Bytes,
    }

    impl Out {
        fn code(&self) -> Option<ErrorCode> {
            match &self.event {
                ServerEvent::Error { code, .. } => Some(*code),
                _ => None,
            }
        }
    }

    /// A connection without a transport: its session, and the queue its writer would drain.
    struct Conn {
        session: Session,
        rx: crate::outbox::Inbox<Bytes>,
    }

    impl Conn {
        fn new(hub: &Arc<Hub>, limits: SessionLimits) -> Conn {
            let (outbox, rx) =
                Outbox::new(256, None, CancellationToken::new(), hub.stats().clone());
            Conn {
                session: Session::new(hub.clone(), outbox, limits),
                rx,
            }
        }

        fn send(&mut self, envelope: Value) {
            self.send_text(&envelope.to_string());
        }

        fn send_text(&mut self, text: &str) {
            self.session.handle_text(text, Path::Reliable);
        }

        /// The next queued message; panics if there is none.
        fn next(&mut self) -> Out {
            let raw = self.rx.try_recv().expect("a queued message");
            let wire: Value = serde_json::from_slice(&raw).expect("the server writes JSON");
            let message = ServerMessage::from_json(&raw).expect("a server message");
            Out {
                event: message.event,
                id: wire.get("id").cloned(),
                raw,
            }
        }

        /// The next queued message, which must be an `error` with a non-empty `message`:
        /// its code and wire `id`.
        fn error(&mut self) -> (ErrorCode, Option<Value>) {
            let out = self.next();
            match out.event {
                ServerEvent::Error { code, message, .. } => {
                    assert!(!message.trim().is_empty(), "{code:?} without a message");
                    (code, out.id)
                }
                other => panic!("expected an error, got {other:?}"),
            }
        }

        /// The code of the next queued message, which must be an `error`.
        fn code(&mut self) -> ErrorCode {
            self.error().0
        }

        /// Everything queued so far.
        fn drain(&mut self) -> Vec<Out> {
            std::iter::from_fn(|| (!self.rx.is_empty()).then(|| self.next())).collect()
        }

        fn assert_nothing_queued(&mut self, ctx: &str) {
            let rest = self.drain();
            assert!(rest.is_empty(), "{ctx}: {rest:?}");
        }

        fn create(&mut self, name: &str) -> SessionInfo {
            self.send(json!({"event": "session:create", "data": {"name": name}}));
            match self.next().event {
                ServerEvent::Created(info) => info,
                other => panic!("expected session:created, got {other:?}"),
            }
        }

        fn join(&mut self, code: &str, name: &str) -> SessionInfo {
            self.send(json!({"event": "session:join", "data": {"roomCode": code, "name": name}}));
            match self.next().event {
                ServerEvent::Joined(info) => info,
                other => panic!("expected session:joined, got {other:?}"),
            }
        }

        fn broadcast(&mut self, code: &str, payload: Value) {
            self.send(broadcast(code, payload));
        }
    }

    fn broadcast(code: &str, payload: Value) -> Value {
        json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "note", "payload": payload}})
    }

    fn hub() -> Arc<Hub> {
        Hub::new(Limits::default())
    }

    /// `a` creates a room and `b` joins it; both queues are drained.
    fn room_of_two(hub: &Arc<Hub>, limits: SessionLimits) -> (Conn, Conn, SessionInfo) {
        let mut a = Conn::new(hub, limits.clone());
        let mut b = Conn::new(hub, limits);
        let room = a.create("A");
        b.join(&room.room_code, "B");
        assert!(matches!(a.next().event, ServerEvent::UserJoined(p) if p.name == "B"));
        (a, b, room)
    }

    /// `envelope` with an unknown top-level field that makes it exactly `size` bytes.
    fn padded(mut envelope: Value, size: usize) -> String {
        envelope["pad"] = json!("");
        let base = envelope.to_string().len();
        envelope["pad"] = json!("x".repeat(size - base));
        let text = envelope.to_string();
        assert_eq!(text.len(), size);
        text
    }

    #[test]
    fn size_is_checked_before_the_envelope() {
        let hub = hub();
        let limits = SessionLimits {
            max_message_bytes: 100,
            ..SessionLimits::default()
        };
        let mut c = Conn::new(&hub, limits);
        // Over the limit, a valid envelope is not read, so its id is not echoed either.
        let create = json!({"event": "session:create", "data": {"name": "A"}, "id": 1});
        c.send_text(&padded(create.clone(), 101));
        assert_eq!(c.error(), (ErrorCode::PayloadTooLarge, None));
        // Over the limit and not even JSON: still payload_too_large.
        c.send_text(&"x".repeat(101));
        assert_eq!(c.code(), ErrorCode::PayloadTooLarge);
        // At the limit, the envelope is checked.
        c.send_text(&"x".repeat(100));
        assert_eq!(c.code(), ErrorCode::InvalidMessage);
        c.send_text(&padded(create, 100));
        let out = c.next();
        assert!(matches!(out.event, ServerEvent::Created(_)), "{out:?}");
        assert_eq!(out.id, Some(json!(1)));
        // What a transport could not read answers the same, without an id.
        c.session.too_large();
        assert_eq!(c.error(), (ErrorCode::PayloadTooLarge, None));
        c.assert_nothing_queued("one answer per message");
    }

    #[test]
    fn the_envelope_is_checked_before_the_send_rate() {
        let hub = hub();
        let mut c = Conn::new(&hub, budget(1));
        c.broadcast("ZZZZZZ", json!(1));
        assert_eq!(c.code(), ErrorCode::NotInSession, "the one token is spent");
        // Over budget, but not a valid envelope: not known to be a broadcast.
        for (text, id) in [
            (
                r#"{"event":"event:broadcast","data":[],"id":1}"#,
                Some(json!(1)),
            ),
            (r#"{"event":"event:broadcast","id":"s"}"#, Some(json!("s"))),
            (r#"{"event":"event:broadcast","data":{}"#, None),
        ] {
            c.send_text(text);
            assert_eq!(c.error(), (ErrorCode::InvalidMessage, id), "{text}");
        }
        // A valid envelope is a broadcast, and over budget.
        c.send(json!({"event": "event:broadcast", "data": {}, "id": 2}));
        assert_eq!(c.error(), (ErrorCode::RateLimited, Some(json!(2))));
        c.assert_nothing_queued("nothing else");
    }

    #[test]
    fn the_send_rate_is_checked_before_fields_state_and_room() {
        let hub = hub();
        let (mut a, mut b, room) = room_of_two(&hub, budget(2));
        let code = room.room_code.as_str();
        a.broadcast(code, json!(0));
        a.broadcast(code, json!(1));
        a.assert_nothing_queued("broadcasts get no answer");
        // Over budget: missing fields, an empty eventName, another room, a datagram.
        a.send(json!({"event": "event:broadcast", "data": {"roomCode": code}, "id": "f"}));
        assert_eq!(a.error(), (ErrorCode::RateLimited, Some(json!("f"))));
        a.send(json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "", "payload": 1}}));
        a.broadcast("ZZZZZZ", json!(2));
        a.session
            .handle_datagram(broadcast(code, json!(3)).to_string().as_bytes());
        a.session
            .handle_datagram(broadcast("ZZZZZZ", json!(4)).to_string().as_bytes());
        a.assert_nothing_queued("rate_limited once, the excess dropped without an answer");
        // Only the two within budget were relayed.
        let got: Vec<Value> = b
            .drain()
            .into_iter()
            .map(|o| match o.event {
                ServerEvent::Broadcast { payload, .. } => payload,
                other => panic!("expected a broadcast, got {other:?}"),
            })
            .collect();
        assert_eq!(got, [json!(0), json!(1)]);
        // Other messages are not rate-limited.
        a.send(json!({"event": "session:create", "data": {"name": "A2"}, "id": 3}));
        assert_eq!(a.error(), (ErrorCode::AlreadyInSession, Some(json!(3))));
        a.send(json!({"event": "session:leave", "data": {"roomCode": code}, "id": 4}));
        let out = a.next();
        assert!(matches!(out.event, ServerEvent::Left { .. }), "{out:?}");
        assert_eq!(out.id, Some(json!(4)));
    }

    #[test]
    fn datagrams_carry_only_broadcasts_checked_before_fields_state_and_room() {
        let hub = hub();
        let (mut a, mut b, room) = room_of_two(&hub, SessionLimits::default());
        let code = room.room_code.as_str();
        let datagram = |c: &mut Conn, v: Value| c.session.handle_datagram(v.to_string().as_bytes());
        // Not a valid envelope at all: the envelope check answers, without an id.
        a.session.handle_datagram(b"{not json");
        assert_eq!(a.error(), (ErrorCode::InvalidMessage, None));
        a.session.handle_datagram(b"{\"event\":\"\xff\"}");
        assert_eq!(a.error(), (ErrorCode::InvalidMessage, None));
        // Valid messages other than broadcasts, each of which would answer something else
        // on the control stream (session:created, bad fields, already_in_session,
        // room_not_found, session:left).
        let cases = [
            json!({"event": "session:create", "data": {"name": "New"}, "id": 1}),
            json!({"event": "session:create", "data": {"name": ""}, "id": 2}),
            json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}, "id": 3}),
            json!({"event": "session:leave", "data": {"roomCode": code}, "id": 4}),
        ];
        for (i, msg) in cases.into_iter().enumerate() {
            datagram(&mut a, msg.clone());
            let out = a.next();
            let ServerEvent::Error { code, message, .. } = &out.event else {
                panic!("{msg}: expected an error, got {out:?}")
            };
            assert_eq!(*code, ErrorCode::InvalidMessage, "{msg}");
            assert!(message.contains("datagram"), "{msg}: {message}");
            assert_eq!(out.id, Some(json!(i + 1)), "{msg}: the id is echoed");
        }
        assert_eq!(hub.room_count(), 1, "no room was created");
        // Broadcasts pass, then meet the checks of any broadcast.
        datagram(
            &mut a,
            json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "", "payload": 1}, "id": 5}),
        );
        assert_eq!(a.error(), (ErrorCode::InvalidMessage, Some(json!(5))));
        datagram(
            &mut a,
            json!({"event": "event:broadcast", "data": {"roomCode": "ZZZZZZ", "eventName": "n", "payload": 1}, "id": 6}),
        );
        assert_eq!(a.error(), (ErrorCode::NotInSession, Some(json!(6))));
        a.assert_nothing_queued("one answer each");
        // a is still in the room, and b heard none of it.
        datagram(&mut a, broadcast(code, json!("ok")));
        let got = b.drain();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            matches!(&got[0].event, ServerEvent::Broadcast { payload, sender_id, .. } if payload == &json!("ok") && *sender_id == room.user_id),
            "{got:?}"
        );
    }

    #[test]
    fn fields_are_checked_before_state_and_state_before_the_room() {
        let hub = Hub::new(Limits {
            max_room_size: 2,
            ..Limits::default()
        });
        let (mut a, _b, room) = room_of_two(&hub, SessionLimits::default());
        let code = room.room_code.as_str();
        let mut o = Conn::new(&hub, SessionLimits::default());
        let other = o.create("O");
        let other = other.room_code.as_str();
        // In a room: bad fields answer invalid_message before already_in_session, and
        // already_in_session comes before any check of the room named.
        let cases = [
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": ""}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "B", "instrument": 1}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:create", "data": {"name": "A\u{7}"}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "New"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "b"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": other, "name": "o"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:create", "data": {"name": "A"}}),
                ErrorCode::AlreadyInSession,
            ),
        ];
        for (msg, want) in &cases {
            a.send(msg.clone());
            assert_eq!(a.code(), *want, "{msg}");
        }
        // In no room: fields, then not_in_session; for joins, fields, then the room:
        // unknown, then full before name_taken.
        let mut c = Conn::new(&hub, SessionLimits::default());
        let cases = [
            (
                json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "", "payload": 1}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "n"}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:leave", "data": {"roomCode": 5}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:leave", "data": {"roomCode": code}}),
                ErrorCode::NotInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": " "}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "C"}}),
                ErrorCode::RoomNotFound,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "a"}}),
                ErrorCode::RoomFull,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": other, "name": " o "}}),
                ErrorCode::NameTaken,
            ),
        ];
        for (msg, want) in &cases {
            c.send(msg.clone());
            assert_eq!(c.code(), *want, "{msg}");
        }
        c.assert_nothing_queued("one answer each");
        a.assert_nothing_queued("nobody joined a's room");
        o.assert_nothing_queued("nobody joined o's room");
    }

    #[test]
    fn numbers_and_strings_are_echoed_as_ids_on_answers_and_errors() {
        let hub = hub();
        let mut a = Conn::new(&hub, SessionLimits::default());
        let mut b = Conn::new(&hub, SessionLimits::default());
        // The value is echoed as the client wrote it, not the white space around it.
        a.send_text(r#"{ "event" : "session:create", "data" : { "name" : "A" }, "id" :  7 }"#);
        let out = a.next();
        let ServerEvent::Created(room) = out.event else {
            panic!("expected session:created, got {out:?}")
        };
        assert_eq!(out.id, Some(json!(7)));
        assert!(out.raw.ends_with(br#","id":7}"#), "{:?}", out.raw);
        let code = room.room_code.as_str();

        b.send(
            json!({"event": "session:join", "data": {"roomCode": code, "name": "B"}, "id": "j\"1"}),
        );
        let out = b.next();
        assert!(matches!(out.event, ServerEvent::Joined(_)), "{out:?}");
        assert_eq!(out.id, Some(json!("j\"1")));
        let out = a.next();
        assert!(matches!(out.event, ServerEvent::UserJoined(_)), "{out:?}");
        assert_eq!(out.id, None, "user-joined is not a's answer");

        let mut env = broadcast(code, json!(1));
        env["id"] = json!(5);
        a.send(env);
        a.assert_nothing_queued("a broadcast has no answer");
        let out = b.next();
        assert!(
            matches!(out.event, ServerEvent::Broadcast { .. }),
            "{out:?}"
        );
        assert_eq!(out.id, None, "a relayed event carries no id");

        // Errors echo number and string ids, whatever failed, once the message is an
        // object with such an id.
        let mut e = Conn::new(&hub, SessionLimits::default());
        for (text, id) in [
            (
                r#"{"event":"session:join","data":{"roomCode":"ZZZZZZ","name":"X"},"id":99}"#,
                json!(99),
            ),
            (r#"{"event":"nope","data":{},"id":"u"}"#, json!("u")),
            (r#"{"data":{},"id":4}"#, json!(4)),
            (r#"{"event":"session:create","id":-3}"#, json!(-3)),
            (
                r#"{"event":"session:create","data":{"name":""},"id":""}"#,
                json!(""),
            ),
            (
                r#"{"event":"session:leave","data":{"roomCode":"ZZZZZZ"},"id":1.5e3}"#,
                json!(1500.0),
            ),
            (
                r#"{"event":"session:leave","data":{"roomCode":"ZZZZZZ"},"id":"\u00e9"}"#,
                json!("é"),
            ),
        ] {
            e.send_text(text);
            let (_, got) = e.error();
            assert_eq!(got, Some(id), "{text}");
        }
        e.assert_nothing_queued("one answer each");

        b.send(json!({"event": "session:leave", "data": {"roomCode": code}, "id": 2.5}));
        let out = b.next();
        assert!(matches!(out.event, ServerEvent::Left { .. }), "{out:?}");
        assert_eq!(out.id, Some(json!(2.5)));
        let out = a.next();
        assert!(matches!(out.event, ServerEvent::UserLeft { .. }), "{out:?}");
        assert_eq!(out.id, None, "user-left is not a's answer");
    }

    #[test]
    fn other_ids_are_not_echoed_and_the_message_still_counts() {
        let hub = hub();
        let mut c = Conn::new(&hub, SessionLimits::default());
        for id in [
            json!({"n": 1}),
            json!([1]),
            json!(true),
            json!(false),
            Value::Null,
        ] {
            c.send(json!({"event": "session:create", "data": {"name": "A"}, "id": id}));
            let out = c.next();
            let ServerEvent::Created(room) = out.event else {
                panic!("{id}: expected session:created, got {out:?}")
            };
            assert_eq!(out.id, None, "{id}");
            c.send(
                json!({"event": "session:leave", "data": {"roomCode": room.room_code}, "id": id}),
            );
            let out = c.next();
            assert!(
                matches!(out.event, ServerEvent::Left { .. }),
                "{id}: {out:?}"
            );
            assert_eq!(out.id, None, "{id}");
            c.send(json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}, "id": id}));
            assert_eq!(c.error(), (ErrorCode::RoomNotFound, None), "{id}");
        }
        // Not an object, so no id can be read.
        let mut d = Conn::new(&hub, SessionLimits::default());
        for text in [
            r#"{"event":"nope","data":{},"id":1"#,
            r#"[{"event":"nope","data":{},"id":1}]"#,
        ] {
            d.send_text(text);
            assert_eq!(d.error(), (ErrorCode::InvalidMessage, None), "{text}");
        }
        // No id, no id.
        d.send(json!({"event": "session:create", "data": {"name": "A"}}));
        let out = d.next();
        assert!(matches!(out.event, ServerEvent::Created(_)), "{out:?}");
        assert_eq!(out.id, None);
    }

    #[test]
    fn at_most_ten_errors_in_a_burst_and_answers_are_not_throttled() {
        let hub = hub();
        let mut c = Conn::new(&hub, SessionLimits::default());
        for i in 0..20 {
            c.send_text(&format!(r#"{{"event":"nope","data":{{}},"id":{i}}}"#));
        }
        let errors = c.drain();
        let ids: Vec<_> = errors.iter().map(|o| o.id.clone()).collect();
        assert_eq!(ids, (0..10).map(|i| Some(json!(i))).collect::<Vec<_>>());
        assert!(errors
            .iter()
            .all(|o| o.code() == Some(ErrorCode::InvalidMessage)));
        // Answers that are not errors still flow; further errors do not.
        c.send(json!({"event": "session:create", "data": {"name": "A"}, "id": "c"}));
        let out = c.next();
        assert!(matches!(out.event, ServerEvent::Created(_)), "{out:?}");
        assert_eq!(out.id, Some(json!("c")));
        c.send(json!({"event": "session:create", "data": {"name": "A"}, "id": "again"}));
        c.assert_nothing_queued("already_in_session is an error too, and the window is full");
    }

    #[test]
    fn every_kind_of_error_counts_against_the_throttle() {
        let hub = hub();
        let mut c = Conn::new(&hub, budget(1));
        c.session.too_large(); // 1
        c.send_text("not json"); // 2
        c.session.invalid("binary frame"); // 3
        c.session.handle_datagram(&[0xc1]); // 4: not MessagePack
        c.session.handle_datagram(b"{\"event\""); // 5: not JSON
        c.broadcast("ZZZZZZ", json!(1)); // 6: not_in_session, and the only token
        c.broadcast("ZZZZZZ", json!(2)); // 7: rate_limited
        c.send(json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}})); // 8
        c.send(json!({"event": "session:leave", "data": {"roomCode": "ZZZZZZ"}})); // 9
        c.send(json!({"event": "session:create", "data": {"name": ""}})); // 10
                                                                          // An answer, not an error: it goes out. The two errors after it do not.
        c.send(json!({"event": "session:create", "data": {"name": "A"}}));
        c.send(json!({"event": "session:create", "data": {"name": "A"}}));
        c.send_text("not json either");
        let codes: Vec<_> = c.drain().iter().map(|o| o.code()).collect();
        use ErrorCode::*;
        let want = [
            PayloadTooLarge,
            InvalidMessage,
            InvalidMessage,
            InvalidMessage,
            InvalidMessage,
            NotInSession,
            RateLimited,
            RoomNotFound,
            NotInSession,
            InvalidMessage,
        ];
        let mut want: Vec<_> = want.into_iter().map(Some).collect();
        want.push(None); // session:created, not an error
        assert_eq!(codes, want);
    }

    #[test]
    fn rate_limited_is_answered_once_and_the_excess_dropped() {
        let hub = hub();
        let (mut a, mut b, room) = room_of_two(&hub, budget(2));
        let code = room.room_code.as_str();
        for i in 0..6 {
            let mut env = broadcast(code, json!(i));
            env["id"] = json!(i);
            a.send(env);
        }
        // The first over budget answers, echoing its id; the rest are dropped silently.
        assert_eq!(a.error(), (ErrorCode::RateLimited, Some(json!(2))));
        a.assert_nothing_queued("at most one rate_limited a second");
        let got: Vec<_> = b
            .drain()
            .into_iter()
            .map(|o| match o.event {
                ServerEvent::Broadcast { payload, .. } => payload,
                other => panic!("expected a broadcast, got {other:?}"),
            })
            .collect();
        assert_eq!(got, [json!(0), json!(1)], "only the burst is relayed");
        // It takes one of the ten errors: nine more fit in the window.
        for _ in 0..12 {
            a.send_text("not json");
        }
        assert_eq!(a.drain().len(), 9);
    }

    #[test]
    fn rate_limited_is_not_sent_once_the_window_is_full() {
        let hub = hub();
        let mut c = Conn::new(&hub, budget(1));
        for _ in 0..10 {
            c.send_text("not json");
        }
        c.broadcast("ZZZZZZ", json!(1)); // the token: not_in_session, over the throttle
        c.broadcast("ZZZZZZ", json!(2)); // over budget: rate_limited, over the throttle
        let got = c.drain();
        assert_eq!(got.len(), 10);
        assert!(got
            .iter()
            .all(|o| o.code() == Some(ErrorCode::InvalidMessage)));
    }

    #[test]
    fn a_broadcast_reaches_every_other_session_in_the_hub() {
        let hub = hub();
        let (mut a, mut b, room) = room_of_two(&hub, SessionLimits::default());
        let mut c = Conn::new(&hub, SessionLimits::default());
        let cj = c.join(&room.room_code.to_lowercase(), "C");
        assert!(matches!(a.next().event, ServerEvent::UserJoined(p) if p.id == cj.user_id));
        assert!(matches!(b.next().event, ServerEvent::UserJoined(p) if p.id == cj.user_id));
        let code = room.room_code.as_str();
        let b_id = cj.participants[1].id.clone();

        // The payload goes out byte for byte as the sender wrote it, to everyone but the
        // sender; the room code may be written the way people type it.
        let payload = r#"{"note": 60,  "v":[1.5, null], "s":"\u00e9"}"#;
        let typed = format!("{}-{}", &code[..3].to_lowercase(), &code[3..]);
        a.send_text(&format!(
            r#"{{"event":"event:broadcast","data":{{"roomCode":"{typed}","eventName":"note","payload":{payload}}}}}"#
        ));
        a.assert_nothing_queued("never back to the sender");
        for (who, rx) in [("b", &mut b), ("c", &mut c)] {
            let out = rx.next();
            let ServerEvent::Broadcast {
                event_name,
                sender_id,
                ..
            } = &out.event
            else {
                panic!("{who}: expected a broadcast, got {out:?}")
            };
            assert_eq!(
                (event_name.as_str(), sender_id),
                ("note", &room.user_id),
                "{who}"
            );
            let raw = String::from_utf8(out.raw.to_vec()).unwrap();
            assert!(
                raw.contains(&format!(r#""payload":{payload},"#)),
                "{who}: {raw}"
            );
            rx.assert_nothing_queued(who);
        }

        // Datagrams, JSON or MessagePack, reach receivers without datagrams as JSON.
        b.session
            .handle_datagram(broadcast(code, json!({"from": "b"})).to_string().as_bytes());
        let mp = jam_protocol::json_to_msgpack(
            broadcast(code, json!({"from": "c"})).to_string().as_bytes(),
        )
        .expect("MessagePack");
        c.session.handle_datagram(&mp);
        for (who, rx, want) in [
            ("a", &mut a, vec![("b", &b_id), ("c", &cj.user_id)]),
            ("b", &mut b, vec![("c", &cj.user_id)]),
            ("c", &mut c, vec![("b", &b_id)]),
        ] {
            let got: Vec<_> = rx
                .drain()
                .into_iter()
                .map(|o| match o.event {
                    ServerEvent::Broadcast {
                        payload, sender_id, ..
                    } => (payload, sender_id),
                    other => panic!("{who}: expected a broadcast, got {other:?}"),
                })
                .collect();
            let want: Vec<_> = want
                .into_iter()
                .map(|(from, id)| (json!({ "from": from }), id.clone()))
                .collect();
            assert_eq!(got, want, "{who}");
        }
        let stats = hub.stats().snapshot();
        assert_eq!((stats.events_in, stats.datagrams_in), (3, 2));

        // c leaves: its answer, and the others hear it.
        c.send(json!({"event": "session:leave", "data": {"roomCode": code}, "id": "bye"}));
        let out = c.next();
        assert!(matches!(out.event, ServerEvent::Left { .. }), "{out:?}");
        assert_eq!(out.id, Some(json!("bye")));
        for (who, rx) in [("a", &mut a), ("b", &mut b)] {
            let out = rx.next();
            assert_eq!(
                out.event,
                ServerEvent::UserLeft {
                    user_id: cj.user_id.clone()
                },
                "{who}"
            );
        }
        assert_eq!(
            hub.room(&RoomCode::normalize(code).unwrap()).unwrap().len(),
            2
        );
    }
}
