//! A seat's sign-in (docs/protocol.md §13), the room's side: the seat keeps whose it is
//! (`sub`, never sent to anyone) and until when; `auth:refresh` moves the "until" for
//! the same `sub` only. Checking tokens is `auth.rs`'s; closing a connection whose seat's
//! token ran out is the session's.

use super::hub::Membership;
use crate::auth::{Refusal, Signed};

impl Membership {
    /// When the seat's sign-in token expires (seconds since the Unix epoch); `None`
    /// without sign-in.
    pub fn sign_in_exp(&self) -> Option<u64> {
        let state = self.room.lock();
        let seat = state.seats.iter().find(|s| s.user == self.user)?;
        seat.sign_in.as_ref().map(|s| s.exp)
    }

    /// Replaces the seat's token with `signed`'s: its expiry, if it is the same `sub`.
    pub fn refresh_sign_in(&self, signed: &Signed) -> Result<u64, Refusal> {
        let mut state = self.room.lock();
        let seat = state.seat_mut(&self.user).ok_or(Refusal::OtherSubject)?;
        let sign_in = seat.sign_in.as_mut().ok_or(Refusal::OtherSubject)?;
        if sign_in.sub != signed.sub {
            return Err(Refusal::OtherSubject);
        }
        sign_in.exp = signed.exp;
        self.hub.save(&self.room.code, &mut state);
        Ok(signed.exp)
    }
}
