//! The history budget across rooms (docs/protocol.md §6): when the bytes kept in every
//! room's history pass `--history-budget`, the least recently written histories are
//! forgotten whole, first, until the total is back to seven eighths of the budget, so a
//! seat of such a room that resumes gets `replayed: false` and the snapshot.
//!
//! Counting the bytes is `history.rs`'s (an atomic add on each push); this file only
//! trims, from the hub's expiry task, never from the fan-out.

use std::sync::Arc;

use super::hub::Hub;
use super::state::Room;

impl Hub {
    /// Trims the least recently written histories until the total is back under seven
    /// eighths of the budget; does nothing while it is within the budget.
    pub(super) fn trim_histories(&self) {
        let budget = &self.history_budget;
        if budget.used() <= budget.cap() {
            return;
        }
        let target = budget.cap() / 8 * 7;
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        let mut by_age: Vec<(u64, Arc<Room>)> = rooms
            .into_iter()
            .filter_map(|room| {
                let state = room.lock();
                let touched = state.history.touched();
                let kept = state.history.bytes() > 0;
                drop(state);
                kept.then_some((touched, room))
            })
            .collect();
        by_age.sort_unstable_by_key(|(touched, _)| *touched);
        let mut trimmed = 0usize;
        for (_, room) in by_age {
            if budget.used() <= target {
                break;
            }
            room.lock().history.clear();
            trimmed += 1;
        }
        tracing::warn!(
            trimmed,
            budget = budget.cap(),
            "history budget reached: the least recently written histories were trimmed"
        );
    }
}

#[cfg(test)]
mod tests {
    use jam_protocol::ServerEvent;
    use serde_json::value::RawValue;

    use crate::history::{HistoryLimits, ENTRY_COST};
    use crate::outbox::Path;
    use crate::room::testing::{member, name, next};
    use crate::room::{Hub, Limits};

    #[test]
    fn the_least_recently_written_histories_go_first() {
        let hub = Hub::new(Limits {
            history_budget: 3 * (1000 + ENTRY_COST as u64),
            history: HistoryLimits {
                messages: 100,
                bytes: 100_000,
            },
            ..Limits::default()
        });
        let payload: Box<RawValue> =
            serde_json::from_str(&format!("\"{}\"", "x".repeat(900))).unwrap();
        let mut rooms = Vec::new();
        for i in 0..4 {
            let mut a = member(&hub, 64);
            let m = hub
                .create(name(&format!("A{i}")), "".into(), &a.outbox, None, None)
                .unwrap();
            assert!(matches!(next(&mut a), ServerEvent::Created(_)));
            m.broadcast("n", &payload, 0, Path::Reliable, false);
            rooms.push((a, m));
        }
        assert!(hub.history_bytes() > hub.history_budget.cap());
        hub.trim_histories();
        assert!(hub.history_bytes() <= hub.history_budget.cap() / 8 * 7);
        let kept = |i: usize| {
            let room = hub.room(rooms[i].1.room_code()).unwrap();
            let bytes = room.lock().history.bytes();
            bytes
        };
        assert_eq!(kept(0), 0, "the oldest is trimmed");
        assert_eq!(kept(1), 0);
        assert!(kept(2) > 0 && kept(3) > 0, "the newest are kept");
        // Writing to the oldest makes it the newest.
        rooms[0]
            .1
            .broadcast("n", &payload, 0, Path::Reliable, false);
        rooms[1]
            .1
            .broadcast("n", &payload, 0, Path::Reliable, false);
        rooms[1]
            .1
            .broadcast("n", &payload, 0, Path::Reliable, false);
        hub.trim_histories();
        assert_eq!((kept(2), kept(3), kept(0)), (0, 0, 0));
        assert!(kept(1) > 0, "the most recently written is kept");
    }
}
