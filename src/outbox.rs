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
//! are dropped and counted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use jam_protocol::{json_to_msgpack, Encoding};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
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
    /// The largest payload the peer takes now, without the prefix; `None` when datagrams
    /// are unavailable.
    fn max_size(&self) -> Option<usize>;
    /// Bytes the transport puts before every payload (for WebTransport, the session's
    /// quarter stream id). Receivers that share a prefix share one framed copy per event.
    fn prefix(&self) -> &[u8];
    /// Sends one framed datagram (prefix + payload) without waiting; `false` when it was
    /// not sent.
    fn send(&self, framed: Bytes) -> bool;
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

/// The sending end of a member's queue: envelopes only, or [`Queued`] items.
enum Queue {
    Envelopes(mpsc::Sender<Bytes>),
    Items(mpsc::Sender<Queued>),
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
    /// when there is one.
    fn try_send(&self, json: Bytes, event: Option<&Relayed>) -> Result<(), TrySendError<()>> {
        match self {
            Queue::Envelopes(tx) => tx.try_send(json).map_err(unit),
            Queue::Items(tx) => {
                let item = match event.and_then(Relayed::parts) {
                    Some(parts) => Queued::Relayed(parts.clone()),
                    None => Queued::Envelope(json),
                };
                tx.try_send(item).map_err(unit)
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
            .field("datagrams", &self.0.datagrams.is_some())
            .finish()
    }
}

impl Outbox {
    /// Creates an outbox of `capacity` messages. `closer` is cancelled when the server
    /// decides to end the connection (its transport watches it).
    pub fn new(
        capacity: usize,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, mpsc::Receiver<Bytes>) {
        Outbox::open(capacity, Queue::Envelopes, datagrams, closer, stats)
    }

    /// Creates an outbox of `capacity` items for a transport that sends an envelope's
    /// parts separately: relayed events arrive read into their [`Parts`] (once for all
    /// such receivers), and the transport can queue its own markers ([`Outbox::push_mark`]).
    pub fn with_parts(
        capacity: usize,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, mpsc::Receiver<Queued>) {
        Outbox::open(capacity, Queue::Items, None, closer, stats)
    }

    /// An outbox whose queue of `T` (at least 2) is `queue` around its sending end.
    fn open<T>(
        capacity: usize,
        queue: impl FnOnce(mpsc::Sender<T>) -> Queue,
        datagrams: Option<(Box<dyn DatagramSink>, Encoding)>,
        closer: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Outbox, mpsc::Receiver<T>) {
        let capacity = capacity.max(2);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = OutboxShared {
            queue: queue(tx),
            capacity,
            datagrams,
            closer,
            reason: OnceLock::new(),
            stats,
            rtt_ms: AtomicU32::new(u32::MAX),
        };
        (Outbox(Arc::new(shared)), rx)
    }

    /// Queues a control message or a reliable event; a full queue means the member
    /// stopped reading, and it is disconnected.
    pub fn push_reliable(&self, bytes: Bytes) -> bool {
        self.reliable(self.0.queue.try_send(bytes, None))
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

    /// Queues a datagram-class event. Such events only use the lower half of the queue,
    /// so a lagging member loses these first and its control messages still fit.
    fn push_lossy(&self, event: &Relayed) -> Delivered {
        let queue = &self.0.queue;
        if queue.capacity() <= self.0.capacity / 2
            || queue.try_send(event.json().clone(), Some(event)).is_err()
        {
            return Delivered::Dropped;
        }
        Delivered::Queued
    }

    /// Delivers one relayed event along the path rules of docs/protocol.md §4.
    pub fn deliver(&self, event: &Relayed, path: Path) -> Delivered {
        match (path, &self.0.datagrams) {
            (Path::Reliable, _) => {
                self.reliable(self.0.queue.try_send(event.json().clone(), Some(event)));
                Delivered::Queued
            }
            (Path::Datagram, _) => match self.try_datagram(event) {
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
        if event.encoded(*encoding)?.len() > sink.max_size()? {
            return None;
        }
        let framed = event.framed(*encoding, sink.prefix())?;
        Some(sink.send(framed))
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
}
