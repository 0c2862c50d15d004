//! [`ClientError`]: every way a client call can fail, one variant each, so callers (tests,
//! the benchmark, tools) can branch on what went wrong without parsing text.

use std::time::Duration;

use jam_protocol::{DecodeError, ErrorCode, ServerEvent};

use crate::received::Closed;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A URL, certificate hash or other argument could not be used.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The WebSocket handshake or a WebSocket read or write failed.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The WebTransport session could not be established.
    #[error("WebTransport connect: {0}")]
    WtConnect(#[from] wtransport::error::ConnectingError),
    /// The WebTransport connection failed or was closed.
    #[error("WebTransport connection: {0}")]
    WtConnection(#[from] wtransport::error::ConnectionError),
    /// The control stream could not be opened.
    #[error("opening the control stream: {0}")]
    WtStreamOpen(#[from] wtransport::error::StreamOpeningError),
    /// A write on the control stream failed.
    #[error("writing the control stream: {0}")]
    WtStreamWrite(#[from] wtransport::error::StreamWriteError),
    /// A datagram could not be sent.
    #[error("sending a datagram: {0}")]
    Datagram(#[from] wtransport::error::SendDatagramError),
    /// The operation needs WebTransport and this client is on a WebSocket.
    #[error("{0} needs WebTransport")]
    NeedsWebTransport(&'static str),
    /// A local socket could not be made or configured.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// An HTTP request was answered with a status other than success.
    #[error("{url} answered {status}")]
    HttpStatus {
        /// The URL asked.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A server message or HTTP body was not what the protocol says.
    #[error("undecodable answer: {0}")]
    Decode(#[from] DecodeError),
    /// An HTTP body was not the JSON expected.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Nothing (or not the awaited message) arrived in time.
    #[error("no message within {0:?}")]
    Timeout(Duration),
    /// The connection closed before the awaited message.
    #[error("connection closed: {0:?}")]
    Closed(Option<Closed>),
    /// The server answered a request with an `error` message.
    #[error("{code}: {message}")]
    Refused {
        /// The wire code.
        code: ErrorCode,
        /// The text for people.
        message: String,
        /// `room_elsewhere`: the owner node's `GET /connect` answer.
        connect: Option<serde_json::Value>,
    },
    /// The server answered a request with another event than the expected one.
    #[error("expected {expected}, got {got:?}")]
    Unexpected {
        /// The event expected.
        expected: &'static str,
        /// What came instead.
        got: Box<ServerEvent>,
    },
}

impl ClientError {
    /// The wire code when the server refused the request with an `error` answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The result of a client call.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
