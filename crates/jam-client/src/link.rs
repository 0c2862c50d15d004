//! A live connection's parts, as a transport's `connect` hands them to the
//! [`Client`](crate::Client): the sending half, the queue the reader tasks fill, the slot
//! where they leave how the connection ended, and the reader task itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::SplitSink;
use jam_protocol::{Encoding, ServerEvent, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wtransport::Connection;

use crate::received::{Closed, Received, Via};

pub(crate) type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// The sending half of a connection.
pub(crate) enum Sender {
    Ws(tokio::sync::Mutex<WsSink>),
    Wt {
        connection: Connection,
        stream: tokio::sync::Mutex<wtransport::SendStream>,
    },
}

/// Where the reader tasks leave how the connection ended (the first reason wins).
pub(crate) type ClosedSlot = Arc<Mutex<Option<Closed>>>;

pub(crate) fn set_closed(slot: &Mutex<Option<Closed>>, closed: Closed) {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(closed);
    }
}

/// A connection just made.
pub(crate) struct Link {
    pub(crate) sender: Sender,
    pub(crate) rx: mpsc::UnboundedReceiver<Received>,
    pub(crate) latency: watch::Receiver<Rtts>,
    pub(crate) closed: ClosedSlot,
    pub(crate) reader: tokio::task::JoinHandle<()>,
}

/// The round trips of a room's active seats, by user id, as the last `session:latency`
/// gave them (`None`: not measured yet).
pub type Rtts = BTreeMap<String, Option<u32>>;

/// Where a connection's reader tasks hand over what they decoded: messages to the
/// client's queue, and `session:latency`, which is state rather than an event, to a
/// watched value (so that it never sits between a request and its answer).
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: mpsc::UnboundedSender<Received>,
    latency: Arc<watch::Sender<Rtts>>,
}

impl Inbox {
    pub(crate) fn new() -> (
        Inbox,
        mpsc::UnboundedReceiver<Received>,
        watch::Receiver<Rtts>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (latency, watched) = watch::channel(Rtts::new());
        let inbox = Inbox {
            tx,
            latency: Arc::new(latency),
        };
        (inbox, rx, watched)
    }

    /// Decodes one message from the server (JSON, or MessagePack for a datagram that
    /// sniffs as such) and hands it over; an undecodable one is logged and dropped.
    pub(crate) fn deliver(&self, via: Via, raw: Bytes) {
        let decoded = match (via, Encoding::sniff(&raw)) {
            (Via::Datagram, Encoding::MsgPack) => ServerMessage::from_msgpack(&raw),
            _ => ServerMessage::from_json(&raw),
        };
        match decoded {
            Ok(ServerMessage {
                event: ServerEvent::Latency(rtts),
                ..
            }) => {
                self.latency.send_replace(rtts);
            }
            Ok(message) => {
                let _ = self.tx.send(Received { message, via, raw });
            }
            Err(e) => tracing::warn!(error = %e, ?via, "undecodable server message"),
        }
    }
}
