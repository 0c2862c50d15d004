//! The WebSocket side of the client: the handshake (subprotocol `jam.v1`, `TCP_NODELAY`)
//! and the reader task that decodes each text frame into the client's queue.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use jam_protocol::SUBPROTOCOL;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::error::Result;
use crate::link::{set_closed, Inbox, Link, Sender};
use crate::received::{Closed, Tap, Via};

/// The WebSocket read buffer: a few KiB holds many note events per read. tungstenite
/// zero-fills the free part of its read buffer before every read; its 128 KiB default
/// made that memset a fifth of a busy bench's CPU.
const CLIENT_READ_BUFFER: usize = 8 * 1024;

pub(crate) async fn connect(url: &str, mut tap: Option<Tap>) -> Result<Link> {
    let nodelay = true;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (socket, _response) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), nodelay).await?;
    let (sink, mut stream) = socket.split();
    let (inbox, rx, latency) = Inbox::new();
    let closed = Arc::new(Mutex::new(None));
    let closed2 = closed.clone();
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    if let Some(tap) = tap.as_mut() {
                        if tap(Via::WebSocket, text.as_bytes(), Instant::now()) {
                            continue;
                        }
                    }
                    inbox.deliver(Via::WebSocket, Bytes::copy_from_slice(text.as_bytes()));
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    set_closed(&closed2, Closed::WebSocket { code, reason });
                }
                Ok(_) => {}
                Err(e) => {
                    set_closed(&closed2, Closed::Other(e.to_string()));
                    break;
                }
            }
        }
        set_closed(&closed2, Closed::Other("stream ended".into()));
    });
    Ok(Link {
        sender: Sender::Ws(tokio::sync::Mutex::new(sink)),
        rx,
        latency,
        closed,
        reader,
    })
}
