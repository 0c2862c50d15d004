//! Seats that fall silent (docs/protocol.md §11), the room's side: a connection that was
//! heartbeating and then sent nothing for the silence limit turns its seat `away` while it
//! stays open, and the first thing heard from it turns the seat back. When that is, is the
//! session's to know (`silence.rs` at the crate root); this file changes the seat and tells
//! the others. A silent seat keeps its outbox, so it goes on receiving and nothing is
//! replayed when it is back; if its connection ends meanwhile, `resume.rs` holds the seat
//! without a second `session:user-away`.

use jam_protocol::{self as protocol, AwayReason, Status};

use super::hub::{Hub, Membership};
use super::state::Room;

impl Membership {
    /// Turns the seat away for silence: the others get `session:user-away` with `reason:
    /// "silent"`. Nothing happens unless the seat is active and still this hold's.
    pub fn fall_silent(&self) -> bool {
        self.hub.set_silent(&self.room, self, true)
    }

    /// Turns a silent seat back: the others get `session:user-back`.
    pub fn heard_again(&self) -> bool {
        self.hub.set_silent(&self.room, self, false)
    }
}

impl Hub {
    fn set_silent(&self, room: &Room, m: &Membership, silent: bool) -> bool {
        let (from, to) = match silent {
            true => (Status::Active, Status::Away),
            false => (Status::Away, Status::Active),
        };
        let mut state = room.lock();
        if state.handed_over {
            return false; // its seats are another node's now
        }
        let Some(seat) = state.seat_mut(&m.user) else {
            return false;
        };
        if seat.attach != m.attach || seat.is_away() || seat.participant.status != from {
            return false;
        }
        seat.participant.status = to;
        let order = seat.order;
        let user = &m.user;
        match silent {
            true => state.publish(Some(order), |seq| {
                protocol::encode_user_away(user, AwayReason::Silent, seq)
            }),
            false => state.publish(Some(order), |seq| protocol::encode_user_back(user, seq)),
        }
        self.save(&room.code, &mut state);
        true
    }
}
