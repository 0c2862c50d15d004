//! A room's state and the rules that change it without the hub: its seats in join order,
//! the host, the last `seq` given out with the history kept for replay, and the tempo;
//! publishing a reliable room message to every seat present, removing a seat, and the
//! host hand-over that follows.
//!
//! It does not decide who may sit down (`hub.rs`), what a held seat is (`resume.rs`), or
//! how a member's events fan out (`membership.rs`); it holds no lock itself: [`Room`]
//! wraps it in one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use jam_protocol::{self as protocol, Participant, RoomCode, Tempo, UserId};

use super::budget::Hold;
use crate::addresses::AddressKey;
use crate::auth::SeatSignIn;
use crate::history::{History, HistoryBudget, HistoryLimits};
use crate::outbox::Outbox;
use crate::store::{RoomRecord, SeatRecord, SEQ_RESERVE};

/// One place in a room. The seat, not the connection, carries the user's identity.
pub(super) struct Seat {
    pub(super) participant: Participant,
    pub(super) user: UserId,
    pub(super) name_key: String,
    /// Place in the room's join order (smaller joined earlier); survives a restart in the
    /// seat's token.
    pub(super) order: u64,
    /// The connection's outbox; `None` while the seat is away.
    pub(super) outbox: Option<Outbox>,
    /// The number of the [`Membership`](super::Membership) that holds the seat now; an
    /// older one, taken over by a resume, changes nothing when it ends.
    pub(super) attach: u64,
    /// The nonce of the seat's current resume token: the only one that resumes it.
    pub(super) nonce: String,
    /// Counts the seat's times away, so that the expiry of an earlier absence does nothing.
    pub(super) away: u64,
    /// The address of the connection that holds it, or held it last; while the seat is
    /// away, it counts against that address's away seats.
    pub(super) address: Option<AddressKey>,
    /// How long it is held when its connection goes (`budget.rs`).
    pub(super) hold: Hold,
    /// With sign-in on, whose seat it is and until when (docs/protocol.md §13): never
    /// sent to anyone.
    pub(super) sign_in: Option<SeatSignIn>,
}

impl Seat {
    pub(super) fn is_away(&self) -> bool {
        self.outbox.is_none()
    }

    /// The seat as everyone sees it now, its round trip included.
    pub(super) fn snapshot(&self) -> Participant {
        Participant {
            rtt_ms: self.outbox.as_ref().and_then(Outbox::rtt_ms),
            ..self.participant.clone()
        }
    }
}

pub(super) struct RoomState {
    /// In join order.
    pub(super) seats: Vec<Seat>,
    pub(super) host: UserId,
    /// The last room sequence number given out.
    pub(super) seq: u64,
    /// The `seq` the room store holds for the room: no number above it is handed out
    /// before the store is told a higher one (docs/protocol.md §12).
    pub(super) seq_ceiling: u64,
    pub(super) history: History,
    pub(super) next_order: u64,
    pub(super) tempo: Tempo,
    /// Handed over to another node (docs/protocol.md §12): its state is that node's to
    /// store from now.
    pub(super) handed_over: bool,
    /// Recreated from a token after a restart: seats that come back are added while the
    /// hub's restart window lasts.
    pub(super) restored: bool,
    /// The round trips last sent in `session:latency`, and when (`latency.rs`).
    pub(super) latency_sent: Vec<(UserId, Option<u32>)>,
    pub(super) latency_at: Option<Instant>,
}

impl RoomState {
    pub(super) fn new(
        host: UserId,
        seat: Seat,
        tempo: Tempo,
        limits: HistoryLimits,
        budget: Arc<HistoryBudget>,
    ) -> Self {
        RoomState {
            next_order: seat.order + 1,
            seats: vec![seat],
            host,
            seq: 0,
            seq_ceiling: 0,
            history: History::new(limits, budget),
            tempo,
            restored: false,
            handed_over: false,
            latency_sent: Vec::new(),
            latency_at: None,
        }
    }

    /// Sends a reliable room message to every seat present but the one whose place in
    /// the join order is `skip`, under the room's next `seq`, and keeps it for replay.
    pub(super) fn publish(&mut self, skip: Option<u64>, make: impl FnOnce(u64) -> Bytes) {
        self.seq += 1;
        let bytes = make(self.seq);
        for seat in self.seats.iter().filter(|s| Some(s.order) != skip) {
            if let Some(outbox) = &seat.outbox {
                outbox.push_reliable(bytes.clone());
            }
        }
        self.history.push(self.seq, bytes, skip);
    }

    /// The room's state for the room store (docs/protocol.md §12), with its `seq` written
    /// [`SEQ_RESERVE`] ahead when the last stored value has been reached.
    pub(super) fn record(&mut self, code: &RoomCode) -> RoomRecord {
        if self.seq_ceiling <= self.seq {
            self.seq_ceiling = self.seq + SEQ_RESERVE;
        }
        self.record_with_seq(code, self.seq_ceiling)
    }

    /// The room's state for the room store with its exact `seq` (at a clean stop).
    pub(super) fn exact_record(&mut self, code: &RoomCode) -> RoomRecord {
        self.seq_ceiling = self.seq;
        self.record_with_seq(code, self.seq)
    }

    fn record_with_seq(&self, code: &RoomCode, seq: u64) -> RoomRecord {
        RoomRecord {
            code: code.to_string(),
            tempo: self.tempo.clone(),
            host: self.host.to_string(),
            seq,
            next_order: self.next_order,
            seats: self
                .seats
                .iter()
                .map(|s| SeatRecord {
                    user: s.user.to_string(),
                    name: s.participant.name.clone(),
                    instrument: s.participant.instrument.clone(),
                    order: s.order,
                    nonce: s.nonce.clone(),
                    sub: s.sign_in.as_ref().map(|x| x.sub.clone()),
                    exp: s.sign_in.as_ref().map(|x| x.exp),
                })
                .collect(),
        }
    }

    pub(super) fn seat_mut(&mut self, user: &UserId) -> Option<&mut Seat> {
        self.seats.iter_mut().find(|s| &s.user == user)
    }

    /// Removes a seat for good: `session:user-left` to the others, then
    /// `session:host-changed` if it was the host (the earliest-joined seat left, away or
    /// not, takes over).
    pub(super) fn remove(&mut self, user: &UserId) {
        let Some(pos) = self.seats.iter().position(|s| &s.user == user) else {
            return;
        };
        let order = self.seats.remove(pos).order;
        if self.seats.is_empty() {
            return;
        }
        self.publish(Some(order), |seq| protocol::encode_user_left(user, seq));
        if &self.host == user {
            let host = self.seats[0].user.clone();
            self.publish(None, |seq| protocol::encode_host_changed(&host, seq));
            self.host = host;
        }
    }

    /// Makes the earliest-joined seat the host (after a restart, while seats come back).
    pub(super) fn host_is_earliest(&mut self) {
        let earliest = self.seats[0].user.clone();
        if earliest != self.host {
            self.publish(None, |seq| protocol::encode_host_changed(&earliest, seq));
            self.host = earliest;
        }
    }
}

/// A live room.
pub struct Room {
    pub(super) code: RoomCode,
    pub(super) state: Mutex<RoomState>,
}

impl Room {
    /// Its canonical code.
    pub fn code(&self) -> &RoomCode {
        &self.code
    }

    /// The room's state, locked. Inlined into the fan-out in `membership.rs`, as it was
    /// when both lived in one module.
    #[inline]
    pub(super) fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than stopping the whole room, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of seats, away ones included.
    pub fn len(&self) -> usize {
        self.lock().seats.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A held seat's deadline.
pub(super) struct Expiry {
    pub(super) at: Instant,
    pub(super) room: Arc<Room>,
    pub(super) user: UserId,
    pub(super) away: u64,
}

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Expiry {}
impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[cfg(test)]
mod tests {
    use jam_protocol::{ErrorCode, ProtocolError, ServerEvent};

    use crate::room::testing::{member, name, next};
    use crate::room::{Hub, Limits};

    #[test]
    fn create_join_leave_and_host_hand_over() {
        let hub = Hub::new(Limits::default());
        let mut a = member(&hub, 16);
        let mut b = member(&hub, 16);
        let mut c = member(&hub, 16);
        let ma = hub
            .create(name("Ana"), "piano".into(), &a.outbox, None, None)
            .unwrap();
        let code = ma.room_code().to_string();
        let ServerEvent::Created(info) = next(&mut a) else {
            panic!()
        };
        assert_eq!(info.host_id, info.user_id);
        let mb = hub
            .join(
                &code.to_lowercase(),
                name("Bo"),
                "".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        let _mc = hub
            .join(&code, name("Cy"), "drums".into(), &c.outbox, None, None)
            .unwrap();
        let ServerEvent::Joined(info) = next(&mut b) else {
            panic!()
        };
        assert_eq!(info.participants.len(), 2);
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(p) if p.name == "Bo"));
        assert!(matches!(next(&mut a), ServerEvent::UserJoined(p) if p.name == "Cy"));
        let ServerEvent::Joined(info) = next(&mut c) else {
            panic!()
        };
        let names: Vec<_> = info.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Ana", "Bo", "Cy"]);
        assert!(matches!(next(&mut b), ServerEvent::UserJoined(_)));

        let host = ma.user().to_string();
        ma.leave();
        for m in [&mut b, &mut c] {
            assert_eq!(
                next(m),
                ServerEvent::UserLeft {
                    user_id: host.clone()
                }
            );
            assert_eq!(
                next(m),
                ServerEvent::HostChanged {
                    host_id: mb.user().to_string()
                }
            );
        }
        mb.leave();
        _mc.leave();
        assert_eq!(hub.room_count(), 0);
        assert!(matches!(
            hub.join(&code, name("Dee"), "".into(), &a.outbox, None, None),
            Err(ProtocolError {
                code: ErrorCode::RoomNotFound,
                ..
            })
        ));
    }
}
