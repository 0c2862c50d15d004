//! A Socket.IO connection's start: its admission, session and handlers, then its writer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use socketioxide::adapter::Emitter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use socketioxide_core::adapter::CoreLocalAdapter;
use tracing::Instrument;

use super::admit::Admitted;
use super::encode::{Local, Out};
use super::inbound::{Conn, Inbound};
use super::outbound::run;
use crate::conn::{Admission, Context};
use crate::outbox::{CloseReason, Inbox, Queued};
use crate::stats::Transport;

/// What the connect handler needs to start the writer, left by [`prepare`] in the
/// socket's extensions.
#[derive(Clone)]
struct Starter(Arc<Mutex<Option<Writer>>>);

struct Writer {
    conn: Arc<Conn>,
    local: Arc<CoreLocalAdapter<Emitter>>,
    rx: Inbox<Queued>,
    admission: Admission,
    guard: tokio_util::task::task_tracker::TaskTrackerToken,
}

/// The connect middleware: admits the connection, opens its session and registers its
/// handlers. An error refuses it (`connect_error` at the client).
pub(super) fn prepare(
    socket: SocketRef<Local>,
    ctx: Arc<Context>,
    local: Option<Arc<CoreLocalAdapter<Emitter>>>,
) -> Result<(), &'static str> {
    let local = local.ok_or("namespace not ready")?;
    let parts = socket.req_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    // The Engine.IO session's admission; a second connect on the same session (after a
    // namespace disconnect) asks for a new one.
    let admission = match parts.extensions.get::<Admitted>().and_then(Admitted::take) {
        Some(admission) => admission,
        None => ctx
            .arrive(peer, Transport::SocketIo)
            .admit()
            .map_err(|refused| refused.as_str())?,
    };
    let mut admission = admission;
    admission.connected();
    let (session, outbox, rx) = admission.open_session_with_parts();
    let conn = Arc::new(Conn {
        session: Mutex::new(Some(session)),
        outbox,
        acks: Mutex::new(HashMap::new()),
        left: AtomicBool::new(false),
    });
    socket.on_fallback(Inbound(conn.clone()));
    let on_disconnect = conn.clone();
    socket.on_disconnect(move |reason: DisconnectReason| {
        let conn = on_disconnect.clone();
        async move {
            if reason == DisconnectReason::ClientNSDisconnect {
                conn.left.store(true, Ordering::Relaxed);
            }
            conn.outbox.close(close_reason_for(reason));
        }
    });
    socket
        .extensions
        .insert(Starter(Arc::new(Mutex::new(Some(Writer {
            conn,
            local,
            rx,
            admission,
            guard: ctx.tracker.token(),
        })))));
    Ok(())
}

/// The connect handler (a task of its own): runs the writer [`prepare`] left.
pub(super) async fn start(socket: SocketRef<Local>) {
    let writer = socket
        .extensions
        .remove::<Starter>()
        .and_then(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    let Some(w) = writer else {
        return;
    };
    let _guard = w.guard;
    let span = w.admission.span().clone();
    let out = Out {
        socket,
        local: w.local,
    };
    run(out, w.conn, w.rx, w.admission).instrument(span).await;
}

fn close_reason_for(reason: DisconnectReason) -> CloseReason {
    use DisconnectReason::*;
    match reason {
        TransportClose | TransportError | ClientNSDisconnect => CloseReason::PeerClosed,
        HeartbeatTimeout => CloseReason::PeerTimeout,
        MultipleHttpPollingError | PacketParsingError => CloseReason::ProtocolViolation,
        ClosingServer => CloseReason::Shutdown,
        // The server disconnected it, and set its reason first.
        ServerNSDisconnect => CloseReason::Shutdown,
    }
}
