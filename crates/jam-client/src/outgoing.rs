//! Envelopes a client sends, built as JSON values (and MessagePack for datagrams).

use jam_protocol::event;
use serde_json::{json, Value};

/// Builds an `event:broadcast` envelope.
pub fn broadcast_envelope(room: &str, event_name: &str, payload: &Value) -> Value {
    json!({
        "event": event::BROADCAST,
        "data": { "roomCode": room, "eventName": event_name, "payload": payload },
    })
}

/// Encodes a JSON envelope as MessagePack (for datagram tests and the benchmark).
pub fn to_msgpack(envelope: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(envelope).unwrap_or_default()
}
