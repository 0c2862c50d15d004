//! # jam-wt
//!
//! WebTransport plumbing that both ends of a jam connection use, on wtransport: reading a
//! session's datagrams (mostly straight from quinn, past wtransport's driver task) and the
//! session header every datagram carries. The server's transport adapter and the Rust
//! client depend on it; it knows nothing of rooms or messages.

#![warn(missing_docs)]

use bytes::Bytes;
use jam_protocol::datagram::{parse_varint, quic_varint};
use wtransport::error::ConnectionError;
use wtransport::Connection;

/// Receives a session's datagrams, mostly straight from quinn.
///
/// wtransport passes every received datagram through its connection driver task: a
/// wake-up, a channel hop and a fresh `select!` over a dozen futures per datagram. That
/// task reads a datagram only after reserving room in its one-slot channel, so once it
/// holds one it stops competing; this reader takes the datagram it holds first (keeping
/// arrival order) and otherwise reads quinn directly. Every datagram is still read
/// exactly once, by one of the two.
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

    /// The next datagram's payload (the session header taken off). Cancel-safe.
    pub async fn next(&self) -> Result<Bytes, ConnectionError> {
        loop {
            tokio::select! {
                biased;
                d = self.connection.receive_datagram() => return d.map(|d| d.payload()),
                q = self.connection.quic_connection().read_datagram() => match q {
                    Ok(q) => match parse_varint(&q) {
                        Some((id, used)) if id == self.quarter_id => return Ok(q.slice(used..)),
                        // Not this session's (or no header): dropped, as wtransport does.
                        _ => continue,
                    },
                    // The connection is gone: wtransport reports it (after any datagram
                    // it still holds).
                    Err(_) => {
                        return self.connection.receive_datagram().await.map(|d| d.payload())
                    }
                },
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
