//! What a connection does through its hold on a seat, the [`Membership`] handle (defined
//! with the hub in `hub.rs`, so that the hub and held seats can hand one out without
//! importing this file). It owns the event hot path (fan-out of a member's broadcast, encoded
//! once, under the room lock only), the tempo change, the leave, and the `Drop` that
//! keeps presence right on every exit path.
//!
//! What happens to the seat when the hold ends without a leave (away, held, expired) is
//! `resume.rs`'s; freeing it is the hub's (`hub.rs`).

use std::sync::atomic::Ordering;

use jam_protocol::{self as protocol, BroadcastDraft};
use serde_json::value::RawValue;

use super::hub::Membership;
use super::state::RoomState;
use crate::outbox::{Delivered, Path, Relayed};

impl Membership {
    /// Relays an event that the server received at `server_time_us` to every other seat
    /// present, on the path it came on: encoded once, outside the room's lock. One that
    /// came on a reliable path and is not `ephemeral` gets the room's next `seq` (its last
    /// bytes are written under the lock, where the number is drawn) and is kept for
    /// replay; an ephemeral or datagram-class one is neither (docs/protocol.md §11).
    pub fn broadcast(
        &self,
        event_name: &str,
        payload: &RawValue,
        server_time_us: u64,
        path: Path,
        ephemeral: bool,
    ) {
        // Numbered and kept: a reliable event that is not ephemeral (docs/protocol.md §11).
        let numbered = path == Path::Reliable && !ephemeral;
        let hint = numbered.then(|| self.seq_hint.load(Ordering::Relaxed) + 1);
        let draft = BroadcastDraft::new(event_name, payload, &self.user, server_time_us, hint);
        let (mut handed, mut datagrams, mut dropped) = (0, 0, 0);
        let mut deliver = |state: &RoomState, event: &Relayed| {
            for seat in state.seats.iter().filter(|s| s.order != self.order) {
                let Some(outbox) = &seat.outbox else { continue };
                handed += 1;
                match outbox.deliver(event, path) {
                    Delivered::Queued => {}
                    Delivered::Datagram => datagrams += 1,
                    Delivered::Dropped => dropped += 1,
                }
            }
        };
        match numbered {
            false => {
                let event = Relayed::new(draft.finish(None));
                deliver(&self.room.lock(), &event);
            }
            true => {
                let mut state = self.room.lock();
                state.seq += 1;
                let seq = state.seq;
                let bytes = draft.finish(Some(seq));
                deliver(&state, &Relayed::new(bytes.clone()));
                state.history.push(seq, bytes, Some(self.order));
                if seq >= state.seq_ceiling {
                    // Once per `SEQ_RESERVE` reliable messages (docs/protocol.md §12).
                    self.hub.save(&self.room.code, &mut state);
                }
                drop(state);
                self.seq_hint.store(seq, Ordering::Relaxed);
            }
        }
        // Shared counters are touched once per event, not once per receiver.
        let stats = &self.hub.stats;
        stats.deliveries.fetch_add(handed, Ordering::Relaxed);
        if datagrams > 0 {
            stats.datagrams_out.fetch_add(datagrams, Ordering::Relaxed);
        }
        if dropped > 0 {
            stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Changes the room's tempo (docs/protocol.md §9): it takes effect on the first bar line of
    /// the current tempo at least 250 ms from now; everyone, the setter included, gets
    /// `tempo:changed` (the setter's copy echoes `id`).
    pub fn set_tempo(&self, bpm: f64, beats_per_bar: Option<u32>, id: Option<&RawValue>) {
        let now = self.hub.clock.now_ms();
        let mut state = self.room.lock();
        let tempo = state
            .tempo
            .changed(bpm, beats_per_bar, now, self.user.as_str());
        state.seq += 1;
        let seq = state.seq;
        let to_room = protocol::encode_tempo_changed(&tempo, seq, None);
        for seat in &state.seats {
            let Some(outbox) = &seat.outbox else { continue };
            if seat.order == self.order && id.is_some() {
                outbox.push_reliable(protocol::encode_tempo_changed(&tempo, seq, id));
            } else {
                outbox.push_reliable(to_room.clone());
            }
        }
        state.history.push(seq, to_room, None);
        state.tempo = tempo;
        self.hub.save(&self.room.code, &mut state);
    }

    /// Leaves the room now: the seat is freed.
    pub fn leave(mut self) {
        self.active = false;
        self.hub.remove(&self.room, &self.user, Some(self.attach));
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.active {
            self.hub.detach(&self.room, &self.user, self.attach);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use serde_json::value::RawValue;

    use crate::outbox::{CloseReason, Path};
    use crate::room::testing::{member, name};
    use crate::room::{Hub, Limits};

    #[test]
    fn fan_out_skips_the_sender_and_a_stalled_member_is_cut_off() {
        let hub = Hub::new(Limits::default());
        let mut a = member(&hub, 16);
        let mut b = member(&hub, 8);
        let ma = hub
            .create(name("A"), "".into(), &a.outbox, None, None)
            .unwrap();
        let mb = hub
            .join(
                ma.room_code().as_str(),
                name("B"),
                "".into(),
                &b.outbox,
                None,
                None,
            )
            .unwrap();
        while a.rx.try_recv().is_ok() {}
        while b.rx.try_recv().is_ok() {}
        let payload: Box<RawValue> = serde_json::from_str("1").unwrap();

        // Datagram-class events only fill half of B's queue and are then dropped.
        for _ in 0..10 {
            ma.broadcast("n", &payload, 0, Path::Datagram, false);
        }
        assert!(
            a.rx.try_recv().is_err(),
            "the sender never gets its own event"
        );
        assert!(!b.token.is_cancelled());
        assert_eq!(hub.stats().dropped.load(Ordering::Relaxed), 6);
        // Reliable events fill the rest; one more overflows and B is disconnected.
        for _ in 0..5 {
            ma.broadcast("n", &payload, 0, Path::Reliable, false);
        }
        assert!(b.token.is_cancelled());
        assert_eq!(b.outbox.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(hub.stats().slow_consumers.load(Ordering::Relaxed), 1);
        mb.leave();
        assert_eq!(hub.room(ma.room_code()).unwrap().len(), 1);
    }
}
