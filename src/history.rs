//! A room's recent reliable messages (docs/protocol.md §6), kept so that a seat that comes back
//! can be sent exactly what it missed. Bounded by count and by bytes; the oldest go first.
//! The bytes are the very ones first sent (shared, not copied).

use std::collections::VecDeque;

use bytes::Bytes;

/// How much history a room keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most messages kept.
    pub messages: usize,
    /// Most bytes kept (the envelopes' lengths).
    pub bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            messages: 1024,
            bytes: 1024 * 1024,
        }
    }
}

/// One reliable room message as it went out.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its room sequence number.
    pub seq: u64,
    /// The envelope, as sent.
    pub bytes: Bytes,
    /// The seat it was not sent to (its sender, or the seat it is about), by its place in
    /// the room's join order, if any.
    pub skip: Option<u64>,
}

/// The most recent reliable messages of one room, in `seq` order.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
    limits: HistoryLimits,
}

impl History {
    /// An empty history.
    pub fn new(limits: HistoryLimits) -> Self {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// Keeps one more message (its `seq` one above the last), forgetting the oldest ones
    /// beyond the limits.
    pub fn push(&mut self, seq: u64, bytes: Bytes, skip: Option<u64>) {
        if self.limits.messages == 0 || bytes.len() > self.limits.bytes {
            // Kept nowhere: it also cuts the history, which must have no gaps.
            self.entries.clear();
            self.bytes = 0;
            return;
        }
        self.bytes += bytes.len();
        self.entries.push_back(Entry { seq, bytes, skip });
        while self.entries.len() > self.limits.messages || self.bytes > self.limits.bytes {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    /// Every kept message after `last` up to the room's `seq`, when the history still
    /// reaches back that far (an empty run when nothing was missed); `None` when it does
    /// not, or when `last` is ahead of the room.
    pub fn since(&self, last: u64, seq: u64) -> Option<impl Iterator<Item = &Entry>> {
        if last > seq {
            return None;
        }
        if last < seq {
            let oldest = self.entries.front()?.seq;
            if oldest > last + 1 {
                return None;
            }
        }
        Some(self.entries.iter().filter(move |e| e.seq > last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(messages: usize, bytes: usize) -> History {
        History::new(HistoryLimits { messages, bytes })
    }

    fn seqs(h: &History, last: u64, seq: u64) -> Option<Vec<u64>> {
        h.since(last, seq).map(|it| it.map(|e| e.seq).collect())
    }

    #[test]
    fn replays_what_it_still_holds_and_only_then() {
        let mut h = history(3, 1000);
        for seq in 1..=5 {
            h.push(seq, Bytes::from(vec![b'x'; 10]), None);
        }
        assert_eq!(seqs(&h, 5, 5), Some(vec![]), "nothing missed");
        assert_eq!(seqs(&h, 3, 5), Some(vec![4, 5]));
        assert_eq!(seqs(&h, 2, 5), Some(vec![3, 4, 5]));
        assert_eq!(seqs(&h, 1, 5), None, "seq 2 is forgotten");
        assert_eq!(seqs(&h, 6, 5), None, "ahead of the room");
        assert_eq!(seqs(&history(3, 1000), 0, 0), Some(vec![]));
        assert_eq!(
            seqs(&history(3, 1000), 0, 2),
            None,
            "a room whose history was cut"
        );
    }

    #[test]
    fn the_byte_limit_forgets_the_oldest() {
        let mut h = history(100, 25);
        for seq in 1..=3 {
            h.push(seq, Bytes::from(vec![b'x'; 10]), None);
        }
        assert_eq!(seqs(&h, 1, 3), Some(vec![2, 3]));
        assert_eq!(seqs(&h, 0, 3), None);
        // One message larger than the whole budget leaves no history at all.
        h.push(4, Bytes::from(vec![b'x'; 30]), None);
        assert_eq!(seqs(&h, 3, 4), None);
        assert_eq!(seqs(&h, 4, 4), Some(vec![]));
        h.push(5, Bytes::from(vec![b'x'; 10]), None);
        assert_eq!(seqs(&h, 4, 5), Some(vec![5]));
    }

    #[test]
    fn no_history_replays_only_nothing() {
        let mut h = history(0, 1000);
        h.push(1, Bytes::from_static(b"x"), None);
        assert_eq!(seqs(&h, 0, 1), None);
        assert_eq!(seqs(&h, 1, 1), Some(vec![]));
    }
}
