//! What `benches/hot_path.rs` and `examples/hot_path_counts.rs` share: the note event and
//! a room of real sessions whose outboxes the caller drains.

use std::hint::black_box;

use bytes::Bytes;
use jam_protocol::Encoding;
use jam_protocol::{ServerEvent, ServerMessage};
use jam_server::outbox::{DatagramSink, Inbox, Outbox, Path};
use jam_server::room::{Hub, Limits};
use jam_server::session::{Session, SessionLimits};
use tokio_util::sync::CancellationToken;

/// Receivers in a bench room.
pub const RECEIVERS: usize = 7;

/// A realistic note event as a client sends it (about 100 bytes of payload).
pub fn event_text(room: &str) -> String {
    format!(
        "{{\"event\":\"event:broadcast\",\"data\":{{\"roomCode\":\"{room}\",\"eventName\":\"note\",\
         \"payload\":{{\"jb\":[12,345,1234567890,1234568000],\"type\":\"noteOn\",\"note\":60,\
         \"velocity\":100,\"channel\":0,\"instrument\":\"piano\"}}}}}}"
    )
}

/// A datagram sink that takes everything and keeps nothing (what quinn's send would cost
/// is not the server's hot path).
struct NullSink;

impl DatagramSink for NullSink {
    fn prefix(&self) -> &[u8] {
        // What a WebTransport session on the first request stream uses.
        &[0]
    }
    fn send(&self, datagram: Bytes) -> Option<bool> {
        // The size check a QUIC connection makes on its send.
        if datagram.len() > 1200 {
            return None;
        }
        black_box(datagram);
        Some(true)
    }
}

/// A room of one sender and its receivers, each a real [`Session`] with its own outbox.
pub struct Room {
    pub code: String,
    pub sender: Session,
    pub queues: Vec<Inbox<Bytes>>,
    _tokens: Vec<CancellationToken>,
}

pub fn room(receivers: Option<Encoding>) -> Room {
    room_of(receivers, RECEIVERS)
}

/// A room of one sender and `n` receivers.
pub fn room_of(receivers: Option<Encoding>, n: usize) -> Room {
    let hub = Hub::new(Limits::default());
    let limits = SessionLimits {
        max_message_bytes: 16 * 1024,
        rate_limit: u32::MAX,
        rate_burst: u32::MAX,
        ..SessionLimits::default()
    };
    let mut tokens = Vec::new();
    let mut open = |datagrams: Option<Encoding>| {
        let token = CancellationToken::new();
        tokens.push(token.clone());
        let sink = datagrams.map(|e| (Box::new(NullSink) as Box<dyn DatagramSink>, e));
        let (outbox, rx) = Outbox::new(1024, sink, token, hub.stats().clone());
        (
            Session::new(hub.clone(), outbox.clone(), limits.clone()),
            rx,
        )
    };
    let (mut sender, mut sender_rx) = open(receivers);
    sender.handle_text(
        r#"{"event":"session:create","data":{"name":"p0","instrument":"piano"}}"#,
        Path::Reliable,
    );
    let created = sender_rx.try_recv().expect("session:created");
    let code = match ServerMessage::from_json(&created).map(|m| m.event) {
        Ok(ServerEvent::Created(info)) => info.room_code,
        other => panic!("expected session:created, got {other:?}"),
    };
    let mut queues = Vec::new();
    let mut sessions = Vec::new();
    for i in 1..=n {
        let (mut s, rx) = open(receivers);
        s.handle_text(
            &format!(r#"{{"event":"session:join","data":{{"roomCode":"{code}","name":"p{i}"}}}}"#),
            Path::Reliable,
        );
        sessions.push(s);
        queues.push(rx);
    }
    // Sessions must live as long as their memberships: leak them into the bench's life.
    Box::leak(Box::new(sessions));
    let mut r = Room {
        code,
        sender,
        queues,
        _tokens: tokens,
    };
    drain(&mut r);
    while sender_rx.try_recv().is_ok() {}
    Box::leak(Box::new(sender_rx));
    r
}

pub fn drain(r: &mut Room) -> usize {
    let mut n = 0;
    for q in &mut r.queues {
        while let Ok(b) = q.try_recv() {
            black_box(b);
            n += 1;
        }
    }
    n
}
