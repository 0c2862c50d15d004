//! Reading events in: each event becomes the protocol envelope and goes to the
//! connection's session, in arrival order.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::value::RawValue;
use socketioxide::extract::AckSender;
use socketioxide::handler::{FromMessageParts, MessageHandler, Value};
use socketioxide::socket::Socket;

use jam_protocol::{self as protocol, ErrorCode, ProtocolError};

use super::check::is_malformed;
use super::encode::Local;
use crate::cluster::Cluster;
use crate::followup::Followup;
use crate::outbox::{Outbox, Path};
use crate::session::Session;

/// One Socket.IO connection's state, shared by the inbound handler (socketioxide's
/// receive path), the disconnect handler and the writer task. It holds no reference to
/// the socket (the socket holds the handler).
pub(super) struct Conn {
    /// `None` once the connection has ended.
    pub(super) session: Mutex<Option<Session>>,
    pub(super) outbox: Outbox,
    /// Acknowledgements waiting for their answer, by acknowledgement id (the `id` of
    /// the request's envelope). Each has a marker ([`Queued::Mark`]) behind its request's
    /// answers in the outbox, so the map holds no more than the queue does.
    pub(super) acks: Mutex<HashMap<i64, Pending>>,
    /// The client sent a Socket.IO disconnect: it left, rather than lost, the room.
    pub(super) left: AtomicBool,
}

impl Conn {
    pub(super) fn lobby_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::lobby_deadline)
    }

    /// When the seat turns away for silence (docs/protocol.md §11). Only events are heard
    /// here: Engine.IO's pings and pongs stay inside socketioxide.
    pub(super) fn silence_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::silence_deadline)
    }

    /// When the seat's sign-in token runs out (docs/protocol.md §13).
    pub(super) fn expiry_deadline(&self) -> Option<std::time::Instant> {
        self.lock_session()
            .as_ref()
            .and_then(Session::expiry_deadline)
    }

    pub(super) fn expire(&self) {
        if let Some(session) = self.lock_session().as_mut() {
            session.expire();
        }
    }

    pub(super) fn check_silence(&self) {
        if let Some(session) = self.lock_session().as_mut() {
            session.check_silence();
        }
    }

    pub(super) fn lock_session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_acks(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Pending>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One incoming event: `value` is the packet's JSON array `[event, data, ...]`. A room
    /// request that waits for the node directory is returned, to run on its own task
    /// ([`Conn::settle`]).
    fn receive(
        &self,
        socket: &Arc<Socket<Local>>,
        mut value: Value,
        ack_id: Option<i64>,
    ) -> Option<(Followup, Arc<Cluster>)> {
        let ack = ack_id.map(|_| {
            let Ok(ack) = AckSender::from_message_parts(socket, &mut value, &ack_id);
            ack
        });
        let mut guard = self.lock_session();
        let session = guard.as_mut()?;
        let read = match &value {
            Value::Str(text, None) if is_malformed(text) => Err(Refused::NotAnEvent),
            Value::Str(text, None) => envelope(text, ack_id).ok_or(Refused::NotAnEvent),
            _ => Err(Refused::Binary),
        };
        let read = read.and_then(|env| {
            if env.len() > session.max_message_bytes() {
                Err(Refused::TooLarge)
            } else {
                Ok(env)
            }
        });
        // What the acknowledgement gets if the session does not answer: the error for
        // a message refused before the session could read it (the session's own error
        // for it carries no id, as on the WebSocket).
        let otherwise = read.as_ref().err().map(|why| {
            let error = match why {
                Refused::TooLarge => ProtocolError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "message is larger than {} bytes",
                        session.max_message_bytes()
                    ),
                ),
                other => ProtocolError::invalid(other.as_str()),
            };
            protocol::encode_error(&error, None)
        });
        if let (Some(id), Some(ack)) = (ack_id, ack) {
            self.lock_acks().insert(id, Pending { ack, otherwise });
        }
        match read {
            Ok(env) => session.handle_text(&env, Path::Reliable),
            Err(Refused::TooLarge) => session.too_large(),
            Err(why) => session.invalid(why.as_str()),
        }
        let waiting = session.take_followup();
        if waiting.is_none() {
            if let Some(id) = ack_id {
                self.outbox.push_mark(id);
            }
        }
        waiting
    }

    /// Runs a room request that waits for the node directory, then answers it (and its
    /// acknowledgement) as the session would have at once.
    async fn settle(
        self: Arc<Self>,
        followup: Followup,
        cluster: Arc<Cluster>,
        ack_id: Option<i64>,
    ) {
        let hub = match self.lock_session().as_ref() {
            Some(session) => session.hub().clone(),
            None => return,
        };
        let settled = followup.run(&cluster, &hub).await;
        if let Some(session) = self.lock_session().as_mut() {
            session.apply(settled);
        }
        if let Some(id) = ack_id {
            self.outbox.push_mark(id);
        }
    }
}

/// Why the adapter refused an event before the session read it.
#[derive(Debug, Clone, Copy)]
enum Refused {
    NotAnEvent,
    Binary,
    TooLarge,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Refused::NotAnEvent => "a Socket.IO event must be [name, data]",
            Refused::Binary => "binary data is not accepted; send JSON",
            Refused::TooLarge => "message too large",
        }
    }
}

/// An acknowledgement waiting for its request's answer.
pub(super) struct Pending {
    pub(super) ack: AckSender<Local>,
    /// What it gets when the session sent no answer (else it gets no argument).
    pub(super) otherwise: Option<Bytes>,
}

/// The protocol envelope for the Socket.IO event `args` (`["name", data, ...]`, as
/// JSON): `{"event": name, "data": data, "id": ack}`, with the name and data exactly as
/// the client wrote them. Arguments after `data` are ignored like unknown fields; a
/// missing `data` leaves the envelope without one (the session answers
/// `invalid_message`). `None` when `args` is not an array.
fn envelope(args: &str, ack: Option<i64>) -> Option<String> {
    let args: Vec<&RawValue> = serde_json::from_str(args).ok()?;
    let (event, data) = (args.first()?, args.get(1));
    let mut env = String::with_capacity(args.iter().map(|a| a.get().len()).sum::<usize>() + 48);
    env.push_str(r#"{"event":"#);
    env.push_str(event.get());
    if let Some(data) = data {
        env.push_str(r#","data":"#);
        env.push_str(data.get());
    }
    if let Some(id) = ack {
        env.push_str(r#","id":"#);
        env.push_str(&id.to_string());
    }
    env.push('}');
    Some(env)
}

/// socketioxide's handler for every event: hands it to the connection in order.
pub(super) struct Inbound(pub(super) Arc<Conn>);

/// The type parameter of [`Inbound`]'s [`MessageHandler`] implementation.
pub(super) struct InOrder;

impl MessageHandler<Local, InOrder> for Inbound {
    fn call(&self, socket: Arc<Socket<Local>>, value: Value, ack_id: Option<i64>) {
        if let Some((followup, cluster)) = self.0.receive(&socket, value, ack_id) {
            tokio::spawn(self.0.clone().settle(followup, cluster, ack_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_becomes_the_envelope_with_its_data_as_written() {
        assert_eq!(
            envelope(r#"["session:create",{"name":"A", "x" :[1, 2.50]}]"#, None).as_deref(),
            Some(r#"{"event":"session:create","data":{"name":"A", "x" :[1, 2.50]}}"#)
        );
        assert_eq!(
            envelope(r#"["a\"b",1,"extra"]"#, Some(7)).as_deref(),
            Some(r#"{"event":"a\"b","data":1,"id":7}"#)
        );
        assert_eq!(
            envelope(r#"["session:create"]"#, Some(-1)).as_deref(),
            Some(r#"{"event":"session:create","id":-1}"#)
        );
        assert_eq!(envelope(r#"{"event":"x"}"#, None), None);
        assert_eq!(envelope(r#"[]"#, None), None);
        assert_eq!(envelope("not json", None), None);
    }
}
