//! The books of one run: every event sent (when it was due, who should get it) and every
//! delivery (when it arrived, on which path). Receivers write here from their connection's
//! reader through a [`Tap`]; the report is computed from it at the end.
//!
//! All times are nanoseconds since one `Instant` epoch shared by every client of the
//! process, so sender and receiver clocks are the same clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;
use jam_client::{Tap, Via};

use crate::wire::{find_stamp, Stamp};

/// Latencies are recorded in nanoseconds, up to a minute, to 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds")
}

/// One event as sent.
#[derive(Debug, Clone, Copy)]
struct EventRec {
    intended: u64,
    /// Receivers (by position in the room) that got it.
    got: u64,
    first: u64,
    last: u64,
    in_window: bool,
    failed: bool,
}

#[derive(Debug)]
struct SenderLog {
    /// Bits of the room positions that should receive this sender's events.
    receivers: u64,
    events: Vec<EventRec>,
}

/// Counters and histograms of one run.
pub struct Ledger {
    epoch: Instant,
    window: (u64, u64),
    senders: Vec<SenderLog>,
    /// Deliveries owed for events due in the window (and not failed).
    pub expected: u64,
    /// Distinct deliveries of events due in the window.
    pub received: u64,
    /// Events due in the window that were handed to a transport.
    pub sent_in_window: u64,
    /// Sends the transport refused.
    pub send_failures: u64,
    /// A receiver got the same event twice.
    pub duplicates: u64,
    /// A receiver got an event after a later one of the same sender.
    pub reordered: u64,
    /// A receiver saw a jump forward in a sender's sequence (some events not there yet).
    pub gaps: u64,
    /// Stamps naming no known event.
    pub unknown: u64,
    /// Intended send time to arrival, events due in the window.
    pub latency: Histogram<u64>,
    /// Actual send time to arrival.
    pub from_send: Histogram<u64>,
    /// Latency by the path the event arrived on: WebSocket, stream, datagram.
    pub by_path: [Histogram<u64>; 3],
    /// How late the generator was: actual minus intended send time.
    pub lag: Histogram<u64>,
}

/// The ledger shared by the generator and every receiver.
pub type Shared = Arc<Mutex<Ledger>>;

/// Locks the ledger (a panic elsewhere does not make the books unreadable).
pub fn lock(ledger: &Shared) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

fn path_index(via: Via) -> usize {
    match via {
        Via::WebSocket => 0,
        Via::Stream => 1,
        Via::Datagram => 2,
    }
}

/// Path names in the order of [`Ledger::by_path`].
pub const PATHS: [&str; 3] = ["ws", "stream", "datagram"];

impl Ledger {
    /// Books for `senders` participants.
    pub fn new(epoch: Instant, senders: usize) -> Shared {
        Arc::new(Mutex::new(Ledger {
            epoch,
            window: (0, u64::MAX),
            senders: (0..senders)
                .map(|_| SenderLog {
                    receivers: 0,
                    events: Vec::new(),
                })
                .collect(),
            expected: 0,
            received: 0,
            sent_in_window: 0,
            send_failures: 0,
            duplicates: 0,
            reordered: 0,
            gaps: 0,
            unknown: 0,
            latency: histogram(),
            from_send: histogram(),
            by_path: [histogram(), histogram(), histogram()],
            lag: histogram(),
        }))
    }

    /// The measured window: events due in `[from, to)` count.
    pub fn set_window(&mut self, from: u64, to: u64) {
        self.window = (from, to);
    }

    /// Who receives `sender`'s events: a bit per room position.
    pub fn set_receivers(&mut self, sender: u32, receivers: u64) {
        self.senders[sender as usize].receivers = receivers;
    }

    /// Books a send due at `intended` and going out at `actual`; returns its sequence
    /// number.
    pub fn book(&mut self, sender: u32, intended: u64, actual: u64) -> u32 {
        let _ = self.lag.record(actual.saturating_sub(intended).max(1));
        let in_window = intended >= self.window.0 && intended < self.window.1;
        let log = &mut self.senders[sender as usize];
        let seq = log.events.len() as u32;
        log.events.push(EventRec {
            intended,
            got: 0,
            first: u64::MAX,
            last: 0,
            in_window,
            failed: false,
        });
        if in_window {
            self.expected += u64::from(log.receivers.count_ones());
            self.sent_in_window += 1;
        }
        seq
    }

    /// The transport refused a booked send.
    pub fn failed(&mut self, sender: u32, seq: u32) {
        self.send_failures += 1;
        let log = &mut self.senders[sender as usize];
        if let Some(e) = log.events.get_mut(seq as usize) {
            e.failed = true;
            if e.in_window {
                self.expected -= u64::from(log.receivers.count_ones());
                self.sent_in_window -= 1;
            }
        }
    }

    /// Deliveries still owed.
    pub fn outstanding(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// Fan-out skew per event due in the window: first to last receiver, in ns, for
    /// events that reached at least two receivers.
    pub fn skew(&self) -> Histogram<u64> {
        let mut h = histogram();
        for log in &self.senders {
            for e in log
                .events
                .iter()
                .filter(|e| e.in_window && e.got.count_ones() >= 2)
            {
                let _ = h.record((e.last - e.first).max(1));
            }
        }
        h
    }

    /// Events due in the window that reached nobody who should have got them.
    pub fn lost_events(&self) -> u64 {
        self.senders
            .iter()
            .map(|log| {
                log.events
                    .iter()
                    .filter(|e| e.in_window && !e.failed && log.receivers != 0 && e.got == 0)
                    .count() as u64
            })
            .sum()
    }

    /// The sender that lost the most deliveries, and how many.
    pub fn worst_sender(&self) -> (u32, u64) {
        let mut worst = (0, 0);
        for (i, log) in self.senders.iter().enumerate() {
            let want = u64::from(log.receivers.count_ones());
            let lost: u64 = log
                .events
                .iter()
                .filter(|e| e.in_window && !e.failed)
                .map(|e| want - u64::from((e.got & log.receivers).count_ones()))
                .sum();
            if lost > worst.1 {
                worst = (i as u32, lost);
            }
        }
        worst
    }

    fn arrive(
        &mut self,
        via: Via,
        position: u32,
        stamp: Stamp,
        at: Instant,
        seen: &mut HashMap<u32, u32>,
    ) {
        let now = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        let Some(log) = self.senders.get_mut(stamp.sender as usize) else {
            self.unknown += 1;
            return;
        };
        let Some(e) = log.events.get_mut(stamp.seq as usize) else {
            self.unknown += 1;
            return;
        };
        let bit = 1u64 << position;
        if e.got & bit != 0 {
            self.duplicates += 1;
            return;
        }
        e.got |= bit;
        e.first = e.first.min(now);
        e.last = e.last.max(now);
        let counts = e.in_window && log.receivers & bit != 0;
        let intended = e.intended;
        let next = seen.entry(stamp.sender).or_insert(0);
        if stamp.seq < *next {
            self.reordered += 1;
        } else {
            if stamp.seq > *next {
                self.gaps += 1;
            }
            *next = stamp.seq + 1;
        }
        if counts {
            self.received += 1;
            let latency = now.saturating_sub(intended).max(1);
            let _ = self.latency.record(latency);
            let _ = self.by_path[path_index(via)].record(latency);
            let _ = self
                .from_send
                .record(now.saturating_sub(stamp.actual).max(1));
        }
    }
}

/// A tap for the participant at `position` of its room: books every bench event it
/// receives and lets everything else through to the client's queue.
pub fn receiver_tap(ledger: Shared, position: u32) -> Tap {
    let mut seen: HashMap<u32, u32> = HashMap::new();
    Box::new(move |via, raw, at| match find_stamp(raw) {
        Some(stamp) => {
            lock(&ledger).arrive(via, position, stamp, at, &mut seen);
            true
        }
        None => false,
    })
}

/// A tap that swallows bench events unrecorded (for churning participants).
pub fn silent_tap() -> Tap {
    Box::new(|_, raw, _| find_stamp(raw).is_some())
}
