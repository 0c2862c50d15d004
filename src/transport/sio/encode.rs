//! Writing an event out once for all its Socket.IO receivers: its arguments encoded as
//! `emit` would encode them, and sent to each socket through socketioxide's local adapter.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Emitter;
use socketioxide::extract::SocketRef;
use socketioxide::handler::Value;
use socketioxide::{SendError, SocketError};
use socketioxide_core::adapter::{
    BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, SocketEmitter,
};
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::Parse;
use tracing::debug;

use crate::outbox::Parts;

/// socketioxide's in-memory adapter, as its own `LocalAdapter` is, except that it also
/// leaves its local half ([`CoreLocalAdapter`]) in a [`Slot`] for the writers: through
/// it an event whose arguments were encoded once goes to one socket as it is
/// ([`send_encoded`]), where `emit` would encode it again for every socket.
pub(super) struct Local(Arc<CoreLocalAdapter<Emitter>>);

/// Where the namespace's [`Local`] adapter leaves its local half.
pub(super) type Slot = Arc<OnceLock<Arc<CoreLocalAdapter<Emitter>>>>;

impl CoreAdapter<Emitter> for Local {
    type Error = Infallible;
    type State = Slot;
    type AckStream = <Emitter as SocketEmitter>::AckStream;
    type InitRes = ();

    fn new(slot: &Slot, local: CoreLocalAdapter<Emitter>) -> Self {
        let local = Arc::new(local);
        // Only the main namespace is served, so only one is made.
        let _ = slot.set(local.clone());
        Local(local)
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        on_success();
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Infallible> {
        Ok(self.0.broadcast_with_ack(packet, opts, timeout).0)
    }

    fn get_local(&self) -> &CoreLocalAdapter<Emitter> {
        &self.0
    }
}

impl DefinedAdapter for Local {}

/// Where the writer sends: its socket, and the namespace's local adapter for events
/// encoded once.
pub(super) struct Out {
    pub(super) socket: SocketRef<Local>,
    pub(super) local: Arc<CoreLocalAdapter<Emitter>>,
}

/// The arguments of `emit(event, data)`, or of `emit(event, data, { seq })`, encoded by
/// `parser` exactly as `emit` encodes them; `None` when they cannot be.
pub(super) fn arguments(parser: impl Parse, parts: &Parts) -> Option<Value> {
    let data: &RawValue = &parts.data;
    let event = Some(&*parts.event);
    let encoded = match parts.seq {
        Some(seq) => parser.encode_value(&(data, Meta { seq }), event),
        None => parser.encode_value(&(data,), event),
    };
    encoded
        .map_err(|e| debug!(error = %e, "socket.io: an event not encoded"))
        .ok()
}

/// What `emit` does once it has encoded the arguments: an EVENT packet with them, on the
/// socket's namespace, to the socket alone. The packet is put together from the shared
/// arguments (a reference-counted buffer) for this socket.
pub(super) fn send_encoded(out: &Out, args: Value) -> Result<(), SendError> {
    if !out.socket.connected() {
        return Err(SendError::Socket(SocketError::Closed));
    }
    let packet = Packet::event(out.local.path().clone(), args);
    out.local
        .broadcast(packet, BroadcastOptions::new(out.socket.id))
        .map_err(|errors| {
            SendError::Socket(errors.into_iter().next().unwrap_or(SocketError::Closed))
        })
}

/// The second argument of an event that carries a room sequence number.
#[derive(Serialize)]
struct Meta {
    seq: u64,
}
