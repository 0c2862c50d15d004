//! # jam-wt
//!
//! WebTransport plumbing that both ends of a jam connection use, on wtransport: reading a
//! session's datagrams and the session header every datagram carries. The server's
//! transport adapter and the Rust client depend on it; it knows nothing of rooms or
//! messages.

#![warn(missing_docs)]

use bytes::Bytes;
use jam_protocol::datagram::{parse_varint, quic_varint};
use wtransport::error::ConnectionError;
use wtransport::Connection;

/// Receives a session's datagrams, straight from quinn in the caller's task.
///
/// wtransport (as patched in `vendor/`) no longer relays datagrams through its connection
/// driver task, which cost a wake-up of that task, a poll of each of its dozen futures and a
/// channel hop per datagram. Reading here also keeps the project's rule for a datagram
/// whose session header is another session's or broken: it is dropped and the session
/// carries on.
pub struct DatagramReader {
    connection: Connection,
    quarter_id: u64,
}

impl DatagramReader {
    /// A reader for `connection`'s session.
    pub fn new(connection: &Connection) -> Self {
        DatagramReader {
            connection: connection.clone(),
            quarter_id: quarter_stream_id(connection),
        }
    }

    /// The next datagram's payload (the session header taken off), with no copy.
    /// Cancel-safe.
    pub async fn next(&self) -> Result<Bytes, ConnectionError> {
        let quic = self.connection.quic_connection();
        loop {
            match quic.read_datagram().await {
                Ok(q) => match parse_varint(&q) {
                    Some((id, used)) if id == self.quarter_id => return Ok(q.slice(used..)),
                    // Not this session's (or no header): dropped.
                    _ => continue,
                },
                // The connection is gone: wtransport tells why.
                Err(_) => {
                    return self
                        .connection
                        .receive_datagram()
                        .await
                        .map(|d| d.payload())
                }
            }
        }
    }
}

/// The session's quarter stream id, which heads each of its datagrams (RFC 9297).
fn quarter_stream_id(connection: &Connection) -> u64 {
    connection.session_id().into_u64() / 4
}

/// The bytes that head each of the session's datagrams: its quarter stream id as a QUIC
/// varint. Computed once per session; every datagram sent to it starts with them.
pub fn datagram_header(connection: &Connection) -> Vec<u8> {
    quic_varint(quarter_stream_id(connection))
}
