//! Seats that survive the network (docs/protocol.md §6): what happens when a seat's
//! connection ends without a leave, and when the seat comes back. A lost connection turns
//! its seat away and holds it for the resume window; the window's end frees it; a resume
//! with the seat's token takes it back (closing a connection that still holds it),
//! replays what it missed from the room's history and tells the others it is back.
//! After a restart, the first resume of a room recreates it and later ones bring their
//! seats back, for one resume window.
//!
//! Signing and checking tokens is `credentials.rs`'s; freeing a seat and the answer that
//! seats a connection are the hub's (`hub.rs`).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use jam_protocol::{
    self as protocol, AwayReason, ErrorCode, Name, ProtocolError, RoomCode, Status, UserId,
};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, Membership};
use super::state::{Expiry, Room, RoomState};
use crate::credentials::{self, Claims};
use crate::outbox::{CloseReason, Outbox};

/// A refused resume: always `resume_failed`, with why.
fn failed(why: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::ResumeFailed, why)
}

/// What a valid token names: the room's canonical code, the seat's user, and the claims.
struct Credentials {
    code: RoomCode,
    user: UserId,
    claims: Claims,
}

impl Hub {
    /// Takes a seat back with its token (docs/protocol.md §6): queues `session:resumed` (with
    /// `id`) and, when the history still holds them, the reliable room messages after
    /// `last_seq` that the seat missed, then tells the others `session:user-back`. A
    /// connection that still holds the seat is closed ([`CloseReason::ResumedElsewhere`]).
    /// After a restart, the first resume of a room recreates it, and later ones bring
    /// their seats back, for one resume window. `peer` is the new connection's IP address:
    /// the seat counts against it if it goes away again.
    pub fn resume(
        self: &Arc<Self>,
        code_input: &str,
        token: &str,
        last_seq: Option<u64>,
        outbox: &Outbox,
        id: Option<&RawValue>,
        peer: Option<IpAddr>,
    ) -> Result<Membership, ProtocolError> {
        let Credentials { code, user, claims } = self.check_credentials(code_input, token)?;
        let now = Instant::now();
        let mut rooms = self.rooms();
        let room = match rooms.get(&code) {
            Some(room) => room.clone(),
            None if !self.store.durable() && self.in_restart_window(now) => {
                self.check_room_cap(&rooms)?;
                let seat = (user, claims, peer);
                return Ok(self.recreate(&mut rooms, code, seat, outbox, id));
            }
            None => return Err(failed("the room is gone")),
        };
        // The hub lock stays held until the seat is settled, as for a join.
        let mut state = room.lock();
        match state.seats.iter().position(|s| s.user == user) {
            Some(pos) if state.seats[pos].nonce != claims.nonce => {
                Err(failed("the resume token was already used"))
            }
            Some(pos) => {
                let at = (pos, peer);
                Ok(self.take_back(&room, &mut state, at, last_seq, outbox, id))
            }
            None if state.restored && self.in_restart_window(now) => {
                self.bring_back(&room, &mut state, (user, claims, peer), outbox, id)
            }
            None => Err(failed("the seat is no longer held")),
        }
    }

    /// The room, user and claims of a token this server signed for the room typed as
    /// `code_input`.
    fn check_credentials(
        &self,
        code_input: &str,
        token: &str,
    ) -> Result<Credentials, ProtocolError> {
        let claims = self
            .key
            .verify(token)
            .ok_or_else(|| failed("the resume token is not valid"))?;
        let code = RoomCode::normalize(code_input)
            .filter(|c| c.as_str() == claims.room)
            .ok_or_else(|| failed("the resume token is for another room"))?;
        let user =
            UserId::parse(&claims.user).ok_or_else(|| failed("the resume token is not valid"))?;
        Ok(Credentials { code, user, claims })
    }

    /// Whether rooms may still be recreated from tokens signed before a restart.
    fn in_restart_window(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) < self.limits.resume_window
    }

    /// Gives the held seat at `pos` to `outbox` (a connection from `peer`) under a fresh
    /// token, closing a connection that still held it; answers, replays what it missed
    /// after `last_seq`, and tells the others it is back.
    fn take_back(
        self: &Arc<Self>,
        room: &Arc<Room>,
        state: &mut RoomState,
        (pos, peer): (usize, Option<IpAddr>),
        last_seq: Option<u64>,
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        let replay_room = outbox.free_capacity().saturating_sub(2);
        let seat = &mut state.seats[pos];
        match seat.outbox.replace(outbox.clone()) {
            Some(old) => old.close(CloseReason::ResumedElsewhere),
            None => {
                if let Some(key) = seat.address {
                    self.away_seats.remove(key);
                }
            }
        }
        seat.address = peer.map(crate::addresses::AddressKey::of);
        seat.hold.reattach(Instant::now());
        seat.participant.status = Status::Active;
        seat.attach = self.next_attach();
        seat.away += 1;
        seat.nonce = credentials::nonce();
        let (order, user) = (seat.order, seat.user.clone());
        let membership = self.membership(room, seat);
        let missed = missed(state, last_seq, order, replay_room);
        self.answer_resumed(outbox, room, &user, state, missed, id);
        state.publish(Some(order), |seq| protocol::encode_user_back(&user, seq));
        self.save(&room.code, state);
        membership
    }

    /// After a restart, seats a token's seat in a room recreated by an earlier one, in
    /// its place in the join order, unless its name was taken or the room filled.
    fn bring_back(
        self: &Arc<Self>,
        room: &Arc<Room>,
        state: &mut RoomState,
        (user, claims, peer): (UserId, Claims, Option<IpAddr>),
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Result<Membership, ProtocolError> {
        let name = protocol::validate_name(&claims.name)
            .map_err(|_| failed("the resume token is not valid"))?;
        self.check_room_for(state, &name.key)
            .map_err(|_| failed("the seat's name was taken or its room filled"))?;
        let order = claims.order;
        let mut seat = self.new_seat(user.clone(), name, claims.instrument, order, outbox, peer);
        let membership = self.membership(room, &seat);
        let joined = seat.participant.clone();
        // The seat is announced (and the host settled) before its outbox is on it: the
        // newcomer's own answer comes first and its snapshot holds all that.
        let held = seat.outbox.take();
        state.publish(Some(claims.order), |seq| {
            protocol::encode_user_joined(&joined, seq)
        });
        let at = state.seats.partition_point(|s| s.order < seat.order);
        state.seats.insert(at, seat);
        state.next_order = state.next_order.max(claims.order + 1);
        state.host_is_earliest();
        if let Some(seat) = state.seat_mut(&user) {
            seat.outbox = held;
        }
        self.answer_resumed(outbox, room, &user, state, None, id);
        self.save(&room.code, state);
        Ok(membership)
    }

    /// Queues `session:resumed` (with `id`), then the `missed` messages as first sent;
    /// `replayed` says whether they came.
    fn answer_resumed(
        &self,
        outbox: &Outbox,
        room: &Room,
        user: &UserId,
        state: &RoomState,
        missed: Option<Vec<Bytes>>,
        id: Option<&RawValue>,
    ) {
        let event = protocol::event::RESUMED;
        let replayed = Some(missed.is_some());
        outbox.push_reliable(self.session_answer(event, &room.code, user, state, replayed, id));
        for bytes in missed.into_iter().flatten() {
            outbox.push_reliable(bytes);
        }
    }

    /// Recreates a room after a restart from the first token that names it.
    fn recreate(
        self: &Arc<Self>,
        rooms: &mut HashMap<RoomCode, Arc<Room>>,
        code: RoomCode,
        (user, claims, peer): (UserId, Claims, Option<IpAddr>),
        outbox: &Outbox,
        id: Option<&RawValue>,
    ) -> Membership {
        // A name this server would refuse (an older one signed it) still gets the key
        // every other name is compared by.
        let name = protocol::validate_name(&claims.name).unwrap_or_else(|_| Name {
            display: claims.name.clone(),
            key: protocol::name_key(&claims.name),
        });
        let seat = self.new_seat(user, name, claims.instrument, claims.order, outbox, peer);
        self.open_room(rooms, code, seat, true, outbox, id)
    }

    /// A connection that held a seat ended without a leave: the seat turns away and is
    /// held for the resume window (`budget.rs` says for how long, after quick returns),
    /// or freed at once: with no window (as in version 1), when its hold has run out, or
    /// when its address already holds as many away seats as it may.
    pub(super) fn detach(&self, room: &Arc<Room>, user: &UserId, attach: u64) {
        let now = Instant::now();
        let window = self.limits.resume_window;
        let mut state = room.lock();
        if state.handed_over {
            return; // its seats are another node's now
        }
        let Some(seat) = state.seat_mut(user) else {
            return;
        };
        if seat.attach != attach {
            return; // taken over by a resume
        }
        let until = match window.is_zero() {
            true => None,
            false => seat.hold.away(now, window),
        };
        let address = seat.address;
        let Some(until) = until.filter(|_| address.is_none_or(|a| self.away_seats.add(a))) else {
            drop(state);
            self.remove(room, user, Some(attach));
            return;
        };
        seat.outbox = None;
        // A seat away for silence is away already: its hold starts now, unannounced (§11).
        let silent = seat.participant.status == Status::Away;
        seat.participant.status = Status::Away;
        seat.away += 1;
        let away = seat.away;
        let order = seat.order;
        if !silent {
            state.publish(Some(order), |seq| {
                protocol::encode_user_away(user, AwayReason::Disconnected, seq)
            });
        }
        self.save(&room.code, &mut state);
        drop(state);
        let expiry = Expiry {
            at: until,
            room: room.clone(),
            user: user.clone(),
            away,
        };
        self.expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Reverse(expiry));
        self.expiry_added.notify_one();
    }

    /// Frees every held seat whose window has ended by `now`; returns when the next one
    /// ends.
    pub fn expire_due(&self, now: Instant) -> Option<Instant> {
        loop {
            let due = {
                let mut heap = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
                match heap.peek() {
                    Some(Reverse(e)) if e.at <= now => heap.pop().map(|Reverse(e)| e),
                    Some(Reverse(e)) => return Some(e.at),
                    None => return None,
                }
            };
            let e = due?;
            let still_away = e
                .room
                .lock()
                .seats
                .iter()
                .any(|s| s.user == e.user && s.is_away() && s.away == e.away);
            if still_away {
                self.remove(&e.room, &e.user, None);
            }
        }
    }

    /// Frees held seats as their windows end, and trims histories when they pass their
    /// budget, until `shutdown`.
    pub async fn run_expiry(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next = self.expire_due(Instant::now());
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.expiry_added.notified() => {}
                _ = self.history_budget.over.notified() => self.trim_histories(),
                _ = wait => {}
            }
        }
    }
}

/// The reliable room messages after `last_seq` that the seat at `order` missed (its own
/// are not), as first sent: `None` when there is no `last_seq`, when the history no
/// longer reaches back that far, or when they would not fit in `room` places.
fn missed(state: &RoomState, last_seq: Option<u64>, order: u64, room: usize) -> Option<Vec<Bytes>> {
    last_seq
        .and_then(|last| state.history.since(last, state.seq))
        .map(|run| {
            run.filter(|e| e.skip != Some(order))
                .map(|e| e.bytes.clone())
                .collect()
        })
        .filter(|missed: &Vec<Bytes>| missed.len() <= room)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jam_protocol::{validate_name, ServerEvent, ServerMessage, SessionInfo};

    use super::*;
    use crate::credentials::ResumeKey;
    use crate::history::HistoryLimits;
    use crate::outbox::Path;
    use crate::room::testing::{member, name, next, Member};
    use crate::room::Limits;

    /// The next queued message, with its `seq`.
    fn next_msg(m: &mut Member) -> ServerMessage {
        let bytes = m.rx.try_recv().expect("a queued message");
        ServerMessage::from_json(&bytes).unwrap()
    }

    fn info(event: ServerEvent) -> SessionInfo {
        match event {
            ServerEvent::Created(i) | ServerEvent::Joined(i) | ServerEvent::Resumed(i) => i,
            other => panic!("not a session answer: {other:?}"),
        }
    }

    fn drain(m: &mut Member) -> Vec<ServerMessage> {
        std::iter::from_fn(|| m.rx.try_recv().ok())
            .map(|b| ServerMessage::from_json(&b).unwrap())
            .collect()
    }

    /// Ana (host) and Bo in one room; both answers read.
    fn duo(
        hub: &Arc<Hub>,
    ) -> (
        Member,
        Membership,
        SessionInfo,
        Member,
        Membership,
        SessionInfo,
    ) {
        let mut a = member(hub, 64);
        let mut b = member(hub, 64);
        let ma = hub
            .create(name("Ana"), "piano".into(), &a.outbox, None, None)
            .unwrap();
        let ia = info(next(&mut a));
        let mb = hub
            .join(
                &ia.room_code,
                name("Bo"),
                "bass".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        let ib = info(next(&mut b));
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(_)));
        (a, ma, ia, b, mb, ib)
    }

    fn resume(
        hub: &Arc<Hub>,
        code: &str,
        token: &str,
        last: Option<u64>,
        m: &Member,
    ) -> Result<Membership, ErrorCode> {
        hub.resume(code, token, last, &m.outbox, None, None)
            .map_err(|e| e.code)
    }

    #[test]
    fn a_lost_connection_holds_the_seat_and_a_resume_replays_what_it_missed() {
        let hub = Hub::new(Limits::default());
        let (mut a, ma, ia, _b, mb, ib) = duo(&hub);
        assert_eq!((ia.seq, ib.seq), (0, 1), "the join is room message 1");
        drop(mb);
        let away = next_msg(&mut a);
        assert_eq!(
            away.event,
            ServerEvent::UserAway {
                user_id: ib.user_id.clone(),
                reason: Some(AwayReason::Disconnected),
            }
        );
        assert_eq!(away.seq, Some(2));
        let room = hub
            .room(&RoomCode::normalize(&ia.room_code).unwrap())
            .unwrap();
        assert_eq!(room.len(), 2, "the seat still counts");
        // While away: the name stays taken, and the room goes on.
        let mut c = member(&hub, 64);
        assert_eq!(
            hub.join(&ia.room_code, name("BO"), "".into(), &c.outbox, None, None)
                .map(|_| ())
                .map_err(|e| e.code),
            Err(ErrorCode::NameTaken)
        );
        let payload: Box<RawValue> = serde_json::from_str(r#"{"n":60}"#).unwrap();
        ma.broadcast("note", &payload, 0, Path::Reliable, false);
        ma.broadcast("note", &payload, 0, Path::Datagram, false);
        let mc = hub
            .join(&ia.room_code, name("Cy"), "".into(), &c.outbox, None, None)
            .unwrap();
        let sent_to_a = drain(&mut a);
        assert_eq!(
            sent_to_a.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(4)],
            "a sees Cy join"
        );

        // Bo comes back on a new connection, from seq 1: the broadcast (3) and Cy's join (4)
        // are replayed as first sent; its own away notice (2) and the datagram are not.
        let mut b2 = member(&hub, 64);
        let mb2 = resume(&hub, &ia.room_code, &ib.resume_token, Some(1), &b2).unwrap();
        let answer = next_msg(&mut b2);
        let resumed = info(answer.event);
        assert_eq!(
            (resumed.user_id.as_str(), resumed.replayed),
            (ib.user_id.as_str(), Some(true))
        );
        assert_eq!(resumed.seq, 4);
        assert_ne!(resumed.resume_token, ib.resume_token, "a fresh token");
        assert!(resumed
            .participants
            .iter()
            .all(|p| p.status == Status::Active));
        let replay = drain(&mut b2);
        assert_eq!(
            replay.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(3), Some(4)]
        );
        assert!(
            matches!(&replay[0].event, ServerEvent::Broadcast { sender_id, .. } if *sender_id == ia.user_id)
        );
        assert!(replay.iter().all(|m| m.id.is_none()));
        // The others hear that Bo is back, and nothing else.
        for m in [&mut a, &mut c] {
            let msgs = drain(m);
            let back = msgs.last().unwrap();
            assert_eq!(
                back.event,
                ServerEvent::UserBack {
                    user_id: ib.user_id.clone()
                }
            );
            assert_eq!(back.seq, Some(5));
        }
        // The token was single-use; the new one works.
        let mut b3 = member(&hub, 64);
        assert_eq!(
            resume(&hub, &ia.room_code, &ib.resume_token, None, &b3).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        drop((mb2, mc));
        let _mb3 = resume(&hub, &ia.room_code, &resumed.resume_token, None, &b3).unwrap();
        assert_eq!(
            info(next_msg(&mut b3).event).replayed,
            Some(false),
            "no lastSeq: the snapshot is the state"
        );
    }

    #[test]
    fn a_resume_replays_nothing_when_the_history_no_longer_reaches_back() {
        let hub = Hub::new(Limits {
            history: HistoryLimits {
                messages: 2,
                bytes: 1 << 20,
            },
            ..Limits::default()
        });
        let (_a, ma, ia, _b, mb, ib) = duo(&hub);
        drop(mb);
        let payload: Box<RawValue> = serde_json::from_str("1").unwrap();
        for _ in 0..3 {
            ma.broadcast("n", &payload, 0, Path::Reliable, false);
        }
        for last in [Some(1), Some(99), None] {
            let mut b2 = member(&hub, 64);
            let room = hub
                .room(&RoomCode::normalize(&ia.room_code).unwrap())
                .unwrap();
            let token = {
                let state = room.lock();
                let seat = state
                    .seats
                    .iter()
                    .find(|s| s.user.as_str() == ib.user_id)
                    .unwrap();
                hub.token(room.code(), seat)
            };
            let m = resume(&hub, &ia.room_code, &token, last, &b2).unwrap();
            assert_eq!(
                info(next_msg(&mut b2).event).replayed,
                Some(false),
                "{last:?}"
            );
            assert!(drain(&mut b2).is_empty(), "{last:?}: nothing replayed");
            drop(m);
        }
    }

    /// The next two messages `m` gets: `left` left, and `host` is the host now.
    fn left_then_host_changed(m: &mut Member, left: &str, host: &str) {
        assert_eq!(
            next(m),
            ServerEvent::UserLeft {
                user_id: left.to_owned()
            }
        );
        assert_eq!(
            next(m),
            ServerEvent::HostChanged {
                host_id: host.to_owned()
            }
        );
    }

    #[test]
    fn a_held_seat_expires_into_a_leave_and_the_earliest_seat_becomes_host() {
        let window = Duration::from_secs(30);
        let hub = Hub::new(Limits::default());
        let (a, ma, ia, mut b, mb, ib) = duo(&hub);
        drop(ma);
        assert_eq!(
            next(&mut b),
            ServerEvent::UserAway {
                user_id: ia.user_id.clone(),
                reason: Some(AwayReason::Disconnected),
            }
        );
        let now = Instant::now();
        assert!(hub.expire_due(now).is_some(), "not yet");
        assert!(b.rx.try_recv().is_err());
        assert_eq!(
            hub.expire_due(now + window + Duration::from_millis(1)),
            None
        );
        left_then_host_changed(&mut b, &ia.user_id, &ib.user_id);
        assert_eq!(
            resume(&hub, &ia.room_code, &ia.resume_token, None, &a).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        // A room whose seats are all away lives until the last window ends.
        drop(mb);
        let code = RoomCode::normalize(&ia.room_code).unwrap();
        assert!(hub.room(&code).is_some());
        hub.expire_due(Instant::now() + window + Duration::from_millis(1));
        assert!(hub.room(&code).is_none());
    }

    #[test]
    fn a_resume_takes_over_a_connection_that_still_holds_the_seat() {
        let hub = Hub::new(Limits::default());
        let (mut a, _ma, ia, b, mb, ib) = duo(&hub);
        let mut b2 = member(&hub, 64);
        let mb2 = resume(&hub, &ia.room_code, &ib.resume_token, Some(ib.seq), &b2).unwrap();
        assert_eq!(b.outbox.close_reason(), Some(CloseReason::ResumedElsewhere));
        assert!(b.token.is_cancelled());
        assert_eq!(info(next_msg(&mut b2).event).replayed, Some(true));
        // The old connection ending changes nothing: no away, no leave.
        drop(mb);
        assert_eq!(
            drain(&mut a)
                .into_iter()
                .map(|m| m.event)
                .collect::<Vec<_>>(),
            [ServerEvent::UserBack {
                user_id: ib.user_id.clone()
            }]
        );
        drop(mb2);
        assert!(matches!(next(&mut a), ServerEvent::UserAway { .. }));
    }

    #[test]
    fn tokens_for_another_room_or_forged_are_refused_and_refusals_do_not_use_them_up() {
        let hub = Hub::new(Limits::default());
        let (_a, _ma, ia, _b, mb, ib) = duo(&hub);
        let (mut c, _mc, ic, _d, _md, _id) = duo(&hub);
        drop(mb);
        let wrong = [
            (ic.room_code.as_str(), ib.resume_token.clone()),
            (ia.room_code.as_str(), format!("{}x", ib.resume_token)),
            (ia.room_code.as_str(), "nope".into()),
            ("??????", ib.resume_token.clone()),
        ];
        for (code, token) in wrong {
            assert_eq!(
                resume(&hub, code, &token, None, &c).map(|_| ()),
                Err(ErrorCode::ResumeFailed),
                "{code} {token}"
            );
        }
        assert!(c.rx.try_recv().is_err(), "the hub answers nothing itself");
        let _mb = resume(
            &hub,
            &ia.room_code.to_lowercase(),
            &ib.resume_token,
            None,
            &c,
        )
        .unwrap();
        assert!(matches!(next(&mut c), ServerEvent::Resumed(_)));
        // A token from another server's key is refused.
        let other = Hub::new(Limits::default());
        let mut e = member(&other, 64);
        let me = other
            .create(name("E"), "".into(), &e.outbox, None, None)
            .unwrap();
        let ie = info(next(&mut e));
        drop(me);
        assert_eq!(
            resume(&hub, &ie.room_code, &ie.resume_token, None, &e).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
    }

    #[test]
    fn no_window_frees_a_lost_seat_at_once() {
        let hub = Hub::new(Limits {
            resume_window: Duration::ZERO,
            ..Limits::default()
        });
        let (_a, ma, ia, mut b, mb, ib) = duo(&hub);
        drop(ma);
        left_then_host_changed(&mut b, &ia.user_id, &ib.user_id);
        drop(mb);
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn after_a_restart_seats_come_back_in_join_order_with_the_earliest_as_host() {
        let key = ResumeKey::generate();
        let old = Hub::with_key(Limits::default(), key.clone());
        let mut a = member(&old, 64);
        let ma = old
            .create(name("Ana"), "piano".into(), &a.outbox, None, None)
            .unwrap();
        let ia = info(next(&mut a));
        let mut seats = vec![];
        for who in ["Bo", "Cy"] {
            let mut m = member(&old, 64);
            let mm = old
                .join(&ia.room_code, name(who), "".into(), &m.outbox, None, None)
                .unwrap();
            seats.push((info(next(&mut m)), mm));
        }
        drop(ma);

        let new = Hub::with_key(Limits::default(), key);
        // Cy comes back first: the room is recreated under its code, Cy hosts.
        let mut c = member(&new, 64);
        let ic = &seats[1].0;
        let _mc = resume(&new, &ia.room_code, &ic.resume_token, Some(ic.seq), &c).unwrap();
        let rc = info(next(&mut c));
        assert_eq!(
            (
                rc.room_code.as_str(),
                rc.user_id.as_str(),
                rc.host_id.as_str()
            ),
            (
                ia.room_code.as_str(),
                ic.user_id.as_str(),
                ic.user_id.as_str()
            )
        );
        assert_eq!((rc.seq, rc.replayed), (0, Some(false)));
        // Ana comes back: announced to Cy, and Ana (earlier) is host again.
        let mut a2 = member(&new, 64);
        let _ma2 = resume(&new, &ia.room_code, &ia.resume_token, None, &a2).unwrap();
        let ra = info(next(&mut a2));
        assert_eq!(ra.host_id, ia.user_id);
        let names: Vec<_> = ra
            .participants
            .iter()
            .map(|p| (p.name.as_str(), p.instrument.as_str()))
            .collect();
        assert_eq!(names, [("Ana", "piano"), ("Cy", "")]);
        assert!(matches!(next(&mut c), ServerEvent::UserJoined(p) if p.id == ia.user_id));
        assert_eq!(
            next(&mut c),
            ServerEvent::HostChanged {
                host_id: ia.user_id.clone()
            }
        );
        // A used token stays used across the restart.
        let mut x = member(&new, 64);
        assert_eq!(
            resume(&new, &ia.room_code, &ia.resume_token, None, &x).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        // Someone took Bo's name meanwhile: Bo's seat cannot come back.
        let _mx = new
            .join(&ia.room_code, name("bo"), "".into(), &x.outbox, None, None)
            .unwrap();
        let mut b2 = member(&new, 64);
        assert_eq!(
            resume(&new, &ia.room_code, &seats[0].0.resume_token, None, &b2).map(|_| ()),
            Err(ErrorCode::ResumeFailed)
        );
        assert!(b2.rx.try_recv().is_err());
        let _ = &mut x;
    }

    #[test]
    fn a_room_recreated_from_a_name_now_refused_keys_it_like_every_other_name() {
        let key = ResumeKey::generate();
        let old = Hub::with_key(Limits::default(), key.clone());
        let mut a = member(&old, 64);
        let _ma = old
            .create(name("Ana"), "".into(), &a.outbox, None, None)
            .unwrap();
        let ia = info(next(&mut a));
        // A token for a name this server refuses (a control character), Cyrillic А first.
        let odd = "\u{410}NA\u{7}";
        assert!(validate_name(odd).is_err());
        let token = key.sign(&crate::credentials::Claims {
            room: ia.room_code.clone(),
            user: UserId::generate().to_string(),
            name: odd.into(),
            instrument: String::new(),
            order: 1,
            nonce: crate::credentials::nonce(),
        });
        let new = Hub::with_key(Limits::default(), key);
        let m = member(&new, 64);
        let _mm = resume(&new, &ia.room_code, &token, None, &m).unwrap();
        let room = new
            .room(&RoomCode::normalize(&ia.room_code).unwrap())
            .unwrap();
        let key = room.lock().seats[0].name_key.clone();
        assert_eq!(key, protocol::name_key(odd));
        assert_ne!(
            key,
            odd.to_lowercase(),
            "the NFKC + skeleton key, not lower case"
        );
    }

    #[test]
    fn an_address_holds_a_bounded_number_of_away_seats_and_quick_returns_run_out() {
        let hub = Hub::new(Limits {
            max_away_seats_per_address: 1,
            ..Limits::default()
        });
        let addr: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let (ip, key) = (Some(addr), crate::addresses::AddressKey::of(addr));
        let mut a = member(&hub, 64);
        let mut b = member(&hub, 64);
        let ma = hub
            .create(name("A"), "".into(), &a.outbox, None, ip)
            .unwrap();
        let ia = info(next(&mut a));
        let mb = hub
            .create(name("B"), "".into(), &b.outbox, None, ip)
            .unwrap();
        let ib = info(next(&mut b));
        drop(ma);
        assert_eq!(hub.away_seats.held(key), 1);
        drop(mb);
        assert_eq!(hub.away_seats.held(key), 1, "the second seat is not held");
        assert!(hub
            .room(&RoomCode::normalize(&ib.room_code).unwrap())
            .is_none());
        // Resume and drop again: each time a fresh window, a bounded number of times.
        let mut token = ia.resume_token;
        for _ in 0..super::super::budget::MAX_RETURNS {
            let mut c = member(&hub, 64);
            let m = hub
                .resume(&ia.room_code, &token, None, &c.outbox, None, ip)
                .unwrap();
            token = info(next(&mut c)).resume_token;
            assert_eq!(hub.away_seats.held(key), 0, "back, so not away");
            drop(m);
            assert_eq!(hub.away_seats.held(key), 1);
        }
        let code = RoomCode::normalize(&ia.room_code).unwrap();
        let deadline = |hub: &Hub| hub.room(&code).unwrap().lock().seats[0].hold.until;
        let before = deadline(&hub);
        let mut c = member(&hub, 64);
        let m = hub
            .resume(&ia.room_code, &token, None, &c.outbox, None, ip)
            .unwrap();
        let _ = info(next(&mut c));
        drop(m);
        assert_eq!(
            deadline(&hub),
            before,
            "no fresh window after the last return"
        );
    }
}
