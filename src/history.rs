//! A room's recent reliable messages (docs/protocol.md §6), kept so that a seat that comes back
//! can be sent exactly what it missed. Bounded by count and by bytes; the oldest go first.
//! The bytes are the very ones first sent (shared, not copied).
//!
//! Every history also counts its bytes into one [`HistoryBudget`] shared by all rooms, with
//! one atomic add on a push: when the total passes the budget, the budget says so, and the
//! hub trims the least recently written histories whole (`room/trim.rs`), outside the
//! fan-out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// What one kept message costs the [`HistoryBudget`] beyond its envelope: its entry in the
/// queue and the shared buffer's header, rounded up.
pub const ENTRY_COST: usize = 64;

/// The bytes of history kept across every room, against one cap.
///
/// Two monotonic counters, so that a push is one atomic add: `pushed` (every byte ever
/// kept) and `freed` (every byte ever forgotten); what is kept now is their difference.
/// `pushed` doubles as a clock: a history remembers where it stood at its last push, so
/// the least recently written one is found without reading the time on the event path.
#[derive(Debug)]
pub struct HistoryBudget {
    cap: u64,
    pushed: AtomicU64,
    freed: AtomicU64,
    /// Told when a push takes the total above the cap.
    pub over: tokio::sync::Notify,
}

impl HistoryBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Arc<Self> {
        Arc::new(HistoryBudget {
            cap,
            pushed: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            over: tokio::sync::Notify::new(),
        })
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes of history kept now, in every room.
    pub fn used(&self) -> u64 {
        // `freed` is read first: it never passes `pushed`, so the difference cannot wrap.
        let freed = self.freed.load(Ordering::Acquire);
        self.pushed.load(Ordering::Acquire).saturating_sub(freed)
    }

    /// Counts `len` more bytes kept; returns the push's place on the budget's clock.
    fn add(&self, len: usize) -> u64 {
        let at = self.pushed.fetch_add(len as u64, Ordering::AcqRel) + len as u64;
        if at.saturating_sub(self.freed.load(Ordering::Relaxed)) > self.cap {
            self.over.notify_one();
        }
        at
    }

    fn free(&self, len: usize) {
        if len > 0 {
            self.freed.fetch_add(len as u64, Ordering::AcqRel);
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
    budget: Arc<HistoryBudget>,
    /// Where the budget's clock stood at the last push.
    touched: u64,
}

impl Drop for History {
    fn drop(&mut self) {
        self.clear();
    }
}

impl History {
    /// An empty history that counts its bytes against `budget`.
    pub fn new(limits: HistoryLimits, budget: Arc<HistoryBudget>) -> Self {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            limits,
            budget,
            touched: 0,
        }
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When it was last written, on its budget's clock (0: never).
    pub fn touched(&self) -> u64 {
        self.touched
    }

    /// Forgets everything kept: a seat that comes back is then sent nothing
    /// (`replayed: false`), as when the history no longer reaches back far enough.
    pub fn clear(&mut self) {
        let charged = self.bytes + self.entries.len() * ENTRY_COST;
        self.entries.clear();
        self.bytes = 0;
        self.budget.free(charged);
    }

    /// Keeps one more message (its `seq` one above the last), forgetting the oldest ones
    /// beyond the limits.
    pub fn push(&mut self, seq: u64, bytes: Bytes, skip: Option<u64>) {
        if self.limits.messages == 0 || bytes.len() > self.limits.bytes {
            // Kept nowhere: it also cuts the history, which must have no gaps.
            self.clear();
            return;
        }
        self.bytes += bytes.len();
        self.touched = self.budget.add(bytes.len() + ENTRY_COST);
        self.entries.push_back(Entry { seq, bytes, skip });
        let mut forgotten = 0;
        while self.entries.len() > self.limits.messages || self.bytes > self.limits.bytes {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.bytes.len();
                forgotten += old.bytes.len() + ENTRY_COST;
            }
        }
        self.budget.free(forgotten);
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
        History::new(
            HistoryLimits { messages, bytes },
            HistoryBudget::new(u64::MAX),
        )
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

    #[test]
    fn the_budget_counts_the_bytes_of_every_history() {
        let budget = HistoryBudget::new(25 + 3 * ENTRY_COST as u64);
        let cost = |n: u64| n + ENTRY_COST as u64;
        let limits = HistoryLimits {
            messages: 2,
            bytes: 1000,
        };
        let mut a = History::new(limits, budget.clone());
        let mut b = History::new(limits, budget.clone());
        for seq in 1..=3 {
            a.push(seq, Bytes::from(vec![b'x'; 10]), None);
        }
        assert_eq!(
            budget.used(),
            2 * cost(10),
            "the room's own limit freed seq 1"
        );
        b.push(1, Bytes::from(vec![b'x'; 4]), None);
        assert!(b.touched() > a.touched(), "b was written last");
        assert_eq!(budget.used(), 2 * cost(10) + cost(4));
        b.push(2, Bytes::from(vec![b'x'; 4]), None);
        assert!(budget.used() > budget.cap());
        a.clear();
        assert_eq!(seqs(&a, 2, 3), None, "a cleared history replays nothing");
        assert_eq!(budget.used(), 2 * cost(4));
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
