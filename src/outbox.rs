//! Delivery: how the room core reaches a member without knowing its transport. Each
//! member has an [`Outbox`], a bounded queue that its transport's writer drains, plus, for
//! WebTransport members, a [`DatagramSink`]. The queue holds encoded envelopes (JSON, no
//! framing); a transport that sends an envelope's parts separately (Socket.IO) takes a
//! queue of [`Queued`] items instead: envelopes, relayed events already read into their
//! [`Parts`], and the transport's own markers. A relayed event is encoded (and read into
//! parts) once ([`Relayed`]) and shared by every receiver.
//!
//! Nothing here waits: reliable messages use `try_send` and a full queue ends that member's
//! connection ([`CloseReason::SlowConsumer`]); datagram-class events to a lagging member
//! are dropped and counted. A queue is full when it holds its number of messages or its
//! budget of bytes, whichever comes first: the writer's end ([`Inbox`]) gives the bytes
//! back as it takes each message, so a member that stops reading holds at most the
//! budget, however large the events.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use jam_protocol::{json_to_msgpack, Encoding};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// Why the server ends a connection. The room core and the session decide *that* a
/// connection ends and why; each transport maps the reason to its own close signal (a
/// WebSocket close code, a WebTransport application error code) and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The server is shutting down.
    Shutdown,
    /// The member's reliable outbox overflowed: it stopped reading.
    SlowConsumer,
    /// Nothing was heard from the peer within the timeout.
    PeerTimeout,
    /// The peer broke the transport binding.
    ProtocolViolation,
    /// The peer sent text that is not valid UTF-8.
    InvalidData,
    /// The peer sent a frame too large to read safely.
    TooBig,
    /// The peer ended its side (closed its socket or finished its control stream).
    PeerClosed,
    /// The seat was resumed on another connection (1.1, §6 takeover).
    ResumedElsewhere,
    /// The connection stayed in no room past the join deadline.
    NoRoom,
    /// The peer began a message and did not finish it within the peer timeout.
    UnfinishedMessage,
    /// The room was handed over to another node (1.2, §12 hand-over).
    Moved,
    /// The seat's sign-in token expired without a refresh (1.2, §13).
    TokenExpired,
}

impl CloseReason {
    /// A short text for close frames and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "server shutting down",
            CloseReason::SlowConsumer => "outgoing queue overflowed",
            CloseReason::PeerTimeout => "peer timed out",
            CloseReason::ProtocolViolation => "protocol violation",
            CloseReason::InvalidData => "invalid UTF-8",
            CloseReason::TooBig => "message too big",
            CloseReason::PeerClosed => "closed by peer",
            CloseReason::ResumedElsewhere => "resumed elsewhere",
            CloseReason::NoRoom => "no room joined in time",
            CloseReason::UnfinishedMessage => "message not finished in time",
            CloseReason::Moved => "moved",
            CloseReason::TokenExpired => "token expired",
        }
    }
}

/// Which path an event arrived on, and so which path it leaves on (docs/protocol.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A WebSocket or a WebTransport control stream.
    Reliable,
    /// A WebTransport datagram.
    Datagram,
}

/// A member's unreliable channel (a WebTransport session's datagrams).
pub trait DatagramSink: Send + Sync + 'static {
    /// Bytes the transport puts before every payload (for WebTransport, the session's
    /// quarter stream id). Receivers that share a prefix share one framed copy per event.
    fn prefix(&self) -> &[u8];
    /// Sends one framed datagram (prefix + payload) without waiting: `Some(true)` when it
    /// went out, `Some(false)` when it was lost, `None` when the peer takes no datagrams or
    /// none this large now (the caller then uses the reliable channel). The size is checked
    /// by the send itself: asking for the limit first would take the connection's lock twice
    /// per delivery.
    fn send(&self, framed: Bytes) -> Option<bool>;
}

/// Longest datagram prefix that [`Relayed`] caches (a QUIC varint is at most 8 bytes).
const MAX_PREFIX: usize = 8;

/// One framed copy of an event, for the receivers whose prefix is `prefix`.
#[derive(Debug)]
struct Framed {
    prefix: [u8; MAX_PREFIX],
    prefix_len: usize,
    bytes: Option<Bytes>,
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued on the receiver's reliable channel.
    Queued,
    /// Sent as a datagram.
    Datagram,
    /// Dropped: datagram-class and the receiver lags, or the datagram send failed.
    Dropped,
}

/// An envelope read into its parts, for a transport that sends them separately
/// (Socket.IO emits `event` with `data`, and `{ seq }` when there is one).
#[derive(Debug)]
pub struct Parts {
    /// The event name.
    pub event: Box<str>,
    /// The data, as the server encoded it.
    pub data: Box<RawValue>,
    /// The request id the envelope answers, when it is an integer.
    pub id: Option<i64>,
    /// The room sequence number (docs/protocol.md §6), when it carries one.
    pub seq: Option<u64>,
    /// The event's Socket.IO arguments (`["event",data]`, or `["event",data,{"seq":n}]`)
    /// as the Socket.IO parser encodes them, left by the first receiver that sent them
    /// for the others; `None` inside when they could not be encoded.
    pub encoded: OnceLock<Option<socketioxide::handler::Value>>,
}

/// The fields [`Parts`] reads, borrowed from the envelope.
#[derive(Deserialize)]
struct Fields<'a> {
    event: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    seq: Option<u64>,
}

impl Parts {
    /// Reads an encoded envelope; an error when it has no `event` or no `data`.
    pub fn read(json: &[u8]) -> Result<Parts, serde_json::Error> {
        let f: Fields<'_> = serde_json::from_slice(json)?;
        Ok(Parts {
            event: f.event.into(),
            data: f.data.to_owned(),
            id: f.id.and_then(|id| id.get().parse().ok()),
            seq: f.seq,
            encoded: OnceLock::new(),
        })
    }
}

/// One item of a queue made by [`Outbox::with_parts`].
#[derive(Debug)]
pub enum Queued {
    /// An encoded envelope (JSON, no framing).
    Envelope(Bytes),
    /// A relayed event, read into its parts once for every receiver.
    Relayed(Arc<Parts>),
    /// A marker the transport put behind what was queued before it (Socket.IO: the end of
    /// one request's answers), handed back in order.
    Mark(i64),
}

/// An `event:broadcast` encoded once for all its receivers: the JSON envelope, and on
/// first need its MessagePack form, one datagram-framed copy per encoding and its parts.
#[derive(Debug)]
pub struct Relayed {
    json: Bytes,
    msgpack: OnceLock<Option<Bytes>>,
    framed: [OnceLock<Framed>; 2],
    parts: OnceLock<Option<Arc<Parts>>>,
}

impl Relayed {
    /// Wraps the encoded JSON envelope.
    pub fn new(json: Bytes) -> Self {
        Relayed {
            json,
            msgpack: OnceLock::new(),
            framed: [OnceLock::new(), OnceLock::new()],
            parts: OnceLock::new(),
        }
    }

    /// The envelope read into its parts, the first time a receiver needs them; `None`
    /// when it has no `event` or `data`.
    pub fn parts(&self) -> Option<&Arc<Parts>> {
        self.parts
            .get_or_init(|| Parts::read(&self.json).ok().map(Arc::new))
            .as_ref()
    }

    /// The envelope in `encoding`.
    pub fn encoded(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Json => Some(&self.json),
            Encoding::MsgPack => self.msgpack(),
        }
    }

    /// `prefix` + the envelope in `encoding`, built once for all receivers that share the
    /// prefix (in practice every WebTransport session: its id is that of the first
    /// request stream), and copied afresh only for a receiver with another prefix.
    pub fn framed(&self, encoding: Encoding, prefix: &[u8]) -> Option<Bytes> {
        let build = || {
            let body = self.encoded(encoding)?;
            let mut v = Vec::with_capacity(prefix.len() + body.len());
            v.extend_from_slice(prefix);
            v.extend_from_slice(body);
            Some(Bytes::from(v))
        };
        if prefix.len() > MAX_PREFIX {
            return build();
        }
        let slot = &self.framed[encoding as usize];
        let cached = slot.get_or_init(|| {
            let mut p = [0u8; MAX_PREFIX];
            p[..prefix.len()].copy_from_slice(prefix);
            Framed {
                prefix: p,
                prefix_len: prefix.len(),
                bytes: build(),
            }
        });
        if &cached.prefix[..cached.prefix_len] == prefix {
            cached.bytes.clone()
        } else {
            build()
        }
    }

    /// The JSON envelope.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The MessagePack envelope, encoded the first time a receiver needs it.
    pub fn msgpack(&self) -> Option<&Bytes> {
        self.msgpack
            .get_or_init(|| json_to_msgpack(&self.json).map(Bytes::from))
            .as_ref()
    }
}

/// Bytes a member's queue holds by default (`--outbox-bytes`).
pub const DEFAULT_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// What a queued item counts against its queue's byte budget.
pub trait Weighed {
    /// The bytes the item holds for its receiver.
    fn weight(&self) -> usize;
}

impl Weighed for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weighed for Queued {
    fn weight(&self) -> usize {
        match self {
            Queued::Envelope(json) => json.len(),
            // What the transport frames from it for this receiver.
            Queued::Relayed(parts) => parts.event.len() + parts.data.get().len(),
            Queued::Mark(_) => 0,
        }
    }
}

/// The writer's end of a member's queue: hands out what was queued, in order, and gives
/// each item's bytes back to the budget as it goes.
#[derive(Debug)]
pub struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    queued: Arc<AtomicUsize>,
}

impl<T: Weighed> Inbox<T> {
    /// The next item; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv().await?;
        self.taken(&item);
        Some(item)
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let item = self.rx.try_recv()?;
        self.taken(&item);
        Ok(item)
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// How many items are queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    fn taken(&self, item: &T) {
        self.queued.fetch_sub(item.weight(), Ordering::Relaxed);
    }
}

/// The sending end of a member's queue: envelopes only, or [`Queued`] items.
enum Queue {
    Envelopes(mpsc::Sender<Bytes>),
    Items(mpsc::Sender<Queued>),
}

/// Sends `item` unless its bytes would take the queue past `budget` (a full queue then).
fn send_within<T: Weighed>(
    tx: &mpsc::Sender<T>,
    item: T,
    queued: &AtomicUsize,
    budget: usize,
) -> Result<(), TrySendError<()>> {
    let weight = item.weight();
    // Counted before the send, so that the writer never gives back bytes not yet counted.
    let before = queued.fetch_add(weight, Ordering::Relaxed);
    let sent = if before + weight > budget && before > 0 {
        Err(TrySendError::Full(()))
    } else {
        tx.try_send(item).map_err(unit)
    };
    if sent.is_err() {
        queued.fetch_sub(weight, Ordering::Relaxed);
    }
    sent
}

/// A full or closed queue, whatever the item was.
fn unit<T>(e: TrySendError<T>) -> TrySendError<()> {
    match e {
        TrySendError::Full(_) => TrySendError::Full(()),
        TrySendError::Closed(_) => TrySendError::Closed(()),
    }
}

impl Queue {
    /// Queues `json`, or for a queue of items the parts of `event` (which `json` encodes)
    /// when there is one, within `budget` bytes.
    fn try_send(
        &self,
        json: Bytes,
        event: Option<&Relayed>,
        queued: &AtomicUsize,
        budget: usize,
    ) -> Result<(), TrySendError<()>> {
        match self {
            Queue::Envelopes(tx) => send_within(tx, json, queued, budget),
            Queue::Items(tx) => {
                let item = match event.and_then(Relayed::parts) {
                    Some(parts) => Queued::Relayed(parts.clone()),
                    None => Queued::Envelope(json),
                };
                send_within(tx, item, queued, budget)
            }
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Queue::Envelopes(tx) => tx.capacity(),
            Queue::Items(tx) => tx.capacity(),
        }
    }
}

struct OutboxShared {
    queue: Queue,
    capacity: usize,
    /// Bytes the queue may hold.
    budget: usize,
    /// Bytes it holds now (the [`Inbox`] gives them back).
    queued: Arc<AtomicUsize>,
    datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
    closer: CancellationToken,
    reason: OnceLock<CloseReason>,
    stats: Arc<Stats>,
    /// The connection's last round-trip time in whole ms; `u32::MAX` until measured.
    rtt_ms: AtomicU32,
}

/// The sending half of a member's bounded queue (encoded envelopes, or [`Queued`] items),
/// plus its datagram sink. Cloning shares the queue.
#[derive(Clone)]
pub struct Outbox(Arc<OutboxShared>);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("capacity", &self.0.capacity)
            .field("budget", &self.0.budget)
            .field("datagrams", &self.0.datagrams.is_some())
            .finish()
    }
}

/// How much a member's queue holds: messages, and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Messages (at least 2).
    pub messages: usize,
    /// Bytes; one message larger than this still fits in an empty queue.
    pub bytes: usize,
}

impl Bounds {
    /// `messages` messages, within the default byte budget.
    pub fn messages(messages: usize) -> Self {
        Bounds {
            messages,
            bytes: DEFAULT_BUDGET_BYTES,
        }
    }
}

impl From<usize> for Bounds {
    fn from(messages: usize) -> Self {
        Bounds::messages(messages)
    }
}

impl Outbox {
    /// Creates an outbox within `bounds`. `closer` is cancelled when the server decides to
    /// end the connection (its transport watches it).
    pub fn new(
        bounds: impl Into<Bounds>,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, Inbox<Bytes>) {
        Outbox::open(bounds.into(), Queue::Envelopes, datagrams, closer, stats)
    }

    /// Creates an outbox within `bounds` for a transport that sends an envelope's parts
    /// separately: relayed events arrive read into their [`Parts`] (once for all such
    /// receivers), and the transport can queue its own markers ([`Outbox::push_mark`]).
    pub fn with_parts(
        bounds: impl Into<Bounds>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, Inbox<Queued>) {
        Outbox::open(bounds.into(), Queue::Items, None, closer, stats)
    }

    /// An outbox whose queue of `T` (at least 2) is `queue` around its sending end.
    fn open<T>(
        bounds: Bounds,
        queue: impl FnOnce(mpsc::Sender<T>) -> Queue,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, Inbox<T>) {
        let capacity = bounds.messages.max(2);
        let (tx, rx) = mpsc::channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let shared = OutboxShared {
            queue: queue(tx),
            capacity,
            budget: bounds.bytes,
            queued: queued.clone(),
            datagrams,
            closer,
            reason: OnceLock::new(),
            stats,
            rtt_ms: AtomicU32::new(u32::MAX),
        };
        (Outbox(Arc::new(shared)), Inbox { rx, queued })
    }

    /// Queues on the member's queue within its budget.
    fn try_send(&self, json: Bytes, event: Option<&Relayed>) -> Result<(), TrySendError<()>> {
        let s = &self.0;
        s.queue.try_send(json, event, &s.queued, s.budget)
    }

    /// Queues a control message or a reliable event; a full queue means the member
    /// stopped reading, and it is disconnected.
    pub fn push_reliable(&self, bytes: Bytes) -> bool {
        self.reliable(self.try_send(bytes, None))
    }

    /// Queues the transport's marker `mark` behind what is queued now, as reliably as a
    /// message; `false` when it was not queued (a queue of envelopes takes no markers).
    pub fn push_mark(&self, mark: i64) -> bool {
        match &self.0.queue {
            Queue::Items(tx) => self.reliable(tx.try_send(Queued::Mark(mark)).map_err(unit)),
            Queue::Envelopes(_) => false,
        }
    }

    /// What became of a reliable send: a full queue cuts the member off.
    fn reliable(&self, sent: Result<(), TrySendError<()>>) -> bool {
        match sent {
            Ok(()) => true,
            Err(TrySendError::Full(())) => {
                self.cut_off_slow();
                false
            }
            Err(TrySendError::Closed(())) => false,
        }
    }

    /// Queues a datagram-class event. Such events only use the lower half of the queue
    /// (in messages and in bytes), so a lagging member loses these first and its control
    /// messages still fit.
    fn push_lossy(&self, event: &Relayed) -> Delivered {
        let s = &self.0;
        if s.queue.capacity() <= s.capacity / 2
            || s.queued.load(Ordering::Relaxed) > s.budget / 2
            || self.try_send(event.json().clone(), Some(event)).is_err()
        {
            return Delivered::Dropped;
        }
        Delivered::Queued
    }

    /// Delivers one relayed event along the path rules of docs/protocol.md §4.
    pub fn deliver(&self, event: &Relayed, path: Path) -> Delivered {
        match path {
            Path::Reliable => {
                self.reliable(self.try_send(event.json().clone(), Some(event)));
                Delivered::Queued
            }
            Path::Datagram => match self.try_datagram(event) {
                Some(true) => Delivered::Datagram,
                Some(false) => Delivered::Dropped,
                // No datagrams, or too large for this receiver: the control stream (or
                // WebSocket) carries it, as JSON.
                None => self.push_lossy(event),
            },
        }
    }

    /// Sends `event` as one datagram in the member's encoding: whether the send went out,
    /// or `None` when the member has no datagrams or the event does not fit them.
    fn try_datagram(&self, event: &Relayed) -> Option<bool> {
        let (sink, encoding) = self.0.datagrams.as_ref()?;
        let framed = event.framed(*encoding, sink.prefix())?;
        sink.send(framed)
    }

    /// Records the connection's round-trip time, as its transport measured it.
    pub fn set_rtt(&self, rtt: Duration) {
        let ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX - 1);
        self.0.rtt_ms.store(ms.min(u32::MAX - 1), Ordering::Relaxed);
    }

    /// The connection's last round-trip time in whole ms, `None` until measured.
    pub fn rtt_ms(&self) -> Option<u32> {
        Some(self.0.rtt_ms.load(Ordering::Relaxed)).filter(|&ms| ms != u32::MAX)
    }

    /// How many more messages the queue takes now.
    pub fn free_capacity(&self) -> usize {
        self.0.queue.capacity()
    }

    /// Sends one of the server's own answers (a `clock:pong`) as a datagram in the
    /// member's encoding; on the reliable channel when the member has no datagrams or the
    /// answer does not fit. `false` when it was dropped.
    pub fn answer_by_datagram(&self, json: Bytes) -> bool {
        let answer = Relayed::new(json);
        match self.try_datagram(&answer) {
            Some(sent) => sent,
            None => self.push_reliable(answer.json().clone()),
        }
    }

    /// Ends the connection of a member that stopped reading (its transport found its
    /// writes blocked), counted like an outbox overflow.
    pub fn cut_off_slow(&self) {
        if self.0.reason.get().is_none() {
            self.0.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
        self.close(CloseReason::SlowConsumer);
    }

    /// Asks the transport to end the connection; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.0.reason.set(reason);
        self.0.closer.cancel();
    }

    /// Why the server closed the connection, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.reason.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_copies_are_shared_per_prefix() {
        let ev = Relayed::new(Bytes::from_static(
            br#"{"event":"event:broadcast","data":{}}"#,
        ));
        let a = ev.framed(Encoding::Json, &[0]).unwrap();
        let b = ev.framed(Encoding::Json, &[0]).unwrap();
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "one copy for every receiver with prefix 0"
        );
        assert_eq!(&a[1..], &ev.json()[..]);
        let other = ev.framed(Encoding::Json, &[0x40, 0x41]).unwrap();
        assert_eq!(&other[..2], &[0x40, 0x41]);
        assert_eq!(&other[2..], &ev.json()[..]);
        let mp = ev.framed(Encoding::MsgPack, &[0]).unwrap();
        assert_eq!(&mp[1..], &ev.msgpack().unwrap()[..]);
    }
    #[test]
    fn parts_are_read_once_for_every_receiver_and_marks_keep_their_place() {
        let stats = Arc::new(Stats::default());
        let (a, mut rx_a) = Outbox::with_parts(8, CancellationToken::new(), stats.clone());
        let (b, mut rx_b) = Outbox::with_parts(8, CancellationToken::new(), stats.clone());
        let (c, mut rx_c) = Outbox::new(8, None, CancellationToken::new(), stats);
        let json = br#"{"event":"event:broadcast","data":{"n":1},"seq":7}"#;
        let ev = Relayed::new(Bytes::from_static(json));
        assert!(a.push_mark(3));
        assert!(!c.push_mark(3), "a queue of envelopes takes no marks");
        for outbox in [&a, &b, &c] {
            assert_eq!(outbox.deliver(&ev, Path::Reliable), Delivered::Queued);
        }
        assert!(matches!(rx_a.try_recv(), Ok(Queued::Mark(3))));
        let parts = |item| match item {
            Ok(Queued::Relayed(p)) => p,
            other => panic!("expected parts, got {other:?}"),
        };
        let (pa, pb) = (parts(rx_a.try_recv()), parts(rx_b.try_recv()));
        assert!(Arc::ptr_eq(&pa, &pb), "one read for every receiver");
        assert_eq!(
            (&*pa.event, pa.data.get(), pa.seq),
            ("event:broadcast", r#"{"n":1}"#, Some(7))
        );
        assert_eq!(
            &rx_c.try_recv().unwrap()[..],
            json,
            "others still get the bytes"
        );
    }

    #[test]
    fn a_queue_is_full_at_its_byte_budget_and_taking_gives_the_bytes_back() {
        let stats = Arc::new(Stats::default());
        let closer = CancellationToken::new();
        let bounds = Bounds {
            messages: 100,
            bytes: 1000,
        };
        let (outbox, mut inbox) = Outbox::new(bounds, None, closer.clone(), stats.clone());
        let big = Bytes::from(vec![b'x'; 400]);
        assert!(outbox.push_reliable(big.clone()));
        assert!(outbox.push_reliable(big.clone()));
        // A datagram-class event finds the queue past half its bytes: dropped, no harm.
        let ev = Relayed::new(Bytes::from_static(br#"{"event":"e","data":1}"#));
        assert_eq!(outbox.push_lossy(&ev), Delivered::Dropped);
        assert!(!closer.is_cancelled());
        // Taking one gives its bytes back: another fits.
        assert_eq!(inbox.try_recv().unwrap().len(), 400);
        assert!(outbox.push_reliable(big.clone()));
        // 1200 bytes would not fit: the member stopped reading, and is cut off.
        assert!(!outbox.push_reliable(big));
        assert!(closer.is_cancelled());
        assert_eq!(outbox.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(stats.snapshot().slow_consumers, 1);
        // One message larger than the whole budget still goes to an empty queue.
        let (outbox, mut inbox) = Outbox::new(bounds, None, CancellationToken::new(), stats);
        assert!(outbox.push_reliable(Bytes::from(vec![b'y'; 5000])));
        assert_eq!(inbox.try_recv().unwrap().len(), 5000);
        assert!(outbox.push_reliable(Bytes::from(vec![b'y'; 500])));
    }
}
