//! What the room core's unit tests share: a member without a transport (its outbox and
//! the queue its writer would drain) and the shortest ways to read that queue. Tests
//! only; each concern's tests stay in its own file.

use bytes::Bytes;
use jam_protocol::{validate_name, Name, ServerEvent, ServerMessage};
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::outbox::{Inbox, Outbox};

/// A connection without a transport.
pub(super) struct Member {
    pub(super) outbox: Outbox,
    pub(super) rx: Inbox<Bytes>,
    pub(super) token: CancellationToken,
}

/// A member whose outbox holds `capacity` messages.
pub(super) fn member(hub: &Hub, capacity: usize) -> Member {
    let token = CancellationToken::new();
    let (outbox, rx) = Outbox::new(capacity, None, token.clone(), hub.stats().clone());
    Member { outbox, rx, token }
}

/// The next queued event; panics if there is none.
pub(super) fn next(m: &mut Member) -> ServerEvent {
    let bytes = m.rx.try_recv().expect("a queued message");
    ServerMessage::from_json(&bytes).unwrap().event
}

/// A name that passes validation.
pub(super) fn name(s: &str) -> Name {
    validate_name(s).unwrap()
}
