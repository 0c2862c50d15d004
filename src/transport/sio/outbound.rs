//! Writing out: the writer drains the session's outbox onto the socket, and answers
//! acknowledgements.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::handler::Value;
use socketioxide::{SendError, SocketError};
use tracing::debug;

use super::encode::{arguments, send_encoded, Out};
use super::inbound::Conn;
use crate::conn::{until, Admission};
use crate::outbox::{CloseReason, Inbox, Parts, Queued};

/// Envelopes emitted per wake-up of the writer before it looks at the token again.
const BATCH: usize = 64;

/// The writer: drains the outbox onto the socket until the connection ends, then ends
/// the session.
pub(super) async fn run(out: Out, conn: Arc<Conn>, mut rx: Inbox<Queued>, admission: Admission) {
    let token = admission.token().clone();
    loop {
        let lobby = conn.lobby_deadline();
        // Events arrive on socketioxide's tasks: a deadline passed by a later event is
        // checked again and waited for anew.
        let silent_by = conn.silence_deadline();
        let expires = conn.expiry_deadline();
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = until(lobby) => {
                conn.outbox.close(CloseReason::NoRoom);
                break;
            }
            _ = until(silent_by) => conn.check_silence(),
            _ = until(expires) => conn.expire(),
            m = rx.recv() => {
                let Some(first) = m else { break };
                let mut open = emit(&out, &conn, first);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) if open => open = emit(&out, &conn, m),
                        _ => break,
                    }
                }
                if !open {
                    break;
                }
            }
        }
    }
    let reason = conn.outbox.close_reason().unwrap_or(CloseReason::Shutdown);
    // However it ended, no more messages are handled; only a Socket.IO disconnect from
    // the client frees the seat at once (like `session:leave`), else it is held (§6).
    let session = conn.lock_session().take();
    if let Some(mut session) = session {
        if conn.left.load(Ordering::Relaxed) {
            session.leave();
        }
    }
    match reason {
        CloseReason::PeerClosed | CloseReason::PeerTimeout | CloseReason::Shutdown => {}
        CloseReason::SlowConsumer => {
            // Its buffer is most likely full: the disconnect goes only if it fits; if
            // not, Engine.IO's next ping does not fit either and it drops the client.
            let _ = out.socket.clone().disconnect();
        }
        _ => {
            // Deliver what is still queued (a last error), then disconnect.
            while let Ok(m) = rx.try_recv() {
                if !emit(&out, &conn, m) {
                    break;
                }
            }
            let _ = out.socket.clone().disconnect();
        }
    }
    // Pending acknowledgements hold the socket: let them go.
    conn.lock_acks().clear();
    admission.finish(reason);
}

/// What an acknowledgement receives: the direct answer, without its `id`.
#[derive(Serialize)]
struct Answer<'a> {
    event: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl<'a> Answer<'a> {
    fn of(parts: &'a Parts) -> Self {
        Answer {
            event: &parts.event,
            data: &parts.data,
            seq: parts.seq,
        }
    }
}

/// Emits one queued item (or runs an acknowledgement marker); `false` when the
/// connection is over. A relayed event comes read into its parts, and its arguments are
/// encoded once, by its first Socket.IO receiver, for all of them; only the server's own
/// envelopes to this connection are read and encoded here.
fn emit(out: &Out, conn: &Conn, item: Queued) -> bool {
    match item {
        Queued::Relayed(parts) => {
            let args = parts
                .encoded
                .get_or_init(|| arguments(out.local.parser(), &parts));
            emit_parts(out, conn, &parts, args.clone())
        }
        Queued::Envelope(json) => match Parts::read(&json) {
            Ok(parts) => {
                let args = arguments(out.local.parser(), &parts);
                emit_parts(out, conn, &parts, args)
            }
            Err(e) => {
                debug!(error = %e, "socket.io: an envelope without event or data");
                true
            }
        },
        Queued::Mark(id) => acknowledge(conn, id),
    }
}

/// Sends the event whose arguments are `args` (see [`arguments`]), and acknowledges the
/// request whose `id` it answers.
fn emit_parts(out: &Out, conn: &Conn, parts: &Parts, args: Option<Value>) -> bool {
    if let Some(args) = args {
        if !sent(conn, send_encoded(out, args)) {
            return false;
        }
    }
    match parts.id.and_then(|id| conn.lock_acks().remove(&id)) {
        Some(pending) => sent(conn, pending.ack.send(&Answer::of(parts))),
        None => true,
    }
}

/// The end of request `id`'s answers: its acknowledgement, if no answer took it, gets the
/// refusal it was left with, or no argument.
fn acknowledge(conn: &Conn, id: i64) -> bool {
    let Some(pending) = conn.lock_acks().remove(&id) else {
        return true;
    };
    match pending.otherwise {
        Some(answer) => match Parts::read(&answer) {
            Ok(parts) => sent(conn, pending.ack.send(&Answer::of(&parts))),
            Err(_) => true,
        },
        // No answer came: the request was handled and that is all.
        None => sent(conn, pending.ack.send(&[(); 0])),
    }
}

/// Whether an emit went out; a full Engine.IO buffer means the client stopped reading.
fn sent(conn: &Conn, result: Result<(), SendError>) -> bool {
    match result {
        Ok(()) => true,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            conn.outbox.cut_off_slow();
            false
        }
        Err(SendError::Socket(SocketError::Closed)) => false,
        Err(e) => {
            debug!(error = %e, "socket.io: emit failed");
            true
        }
    }
}
