//! Admission in front of socketioxide: the origin policy, CORS, the per-address limit
//! and whole request bodies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::debug;

use super::check::checked_payload;
use super::check::MAX_PAYLOAD_BYTES;
use crate::conn::{Admission, Context, Refused as RefusedConn};
use crate::stats::Transport;

/// An admitted Engine.IO session (its place in its address's count), carried in the
/// handshake request's extensions, which the session keeps for its lifetime.
#[derive(Clone)]
pub(super) struct Admitted(Arc<Mutex<Option<Admission>>>);

impl Admitted {
    pub(super) fn take(&self) -> Option<Admission> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whether the request belongs to an existing Engine.IO session (it names its `sid`).
fn names_session(query: Option<&str>) -> bool {
    query
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.starts_with("sid="))
}

/// Whether `query` has the parameter `pair` (`name=value`).
fn has_pair(query: Option<&str>, pair: &str) -> bool {
    query.unwrap_or("").split('&').any(|p| p == pair)
}

/// In front of socketioxide: the origin policy (docs/protocol.md §10) on every request, CORS
/// for allowed origins (long-polling from a page on another origin is a cross-origin
/// XHR), and the per-address limit on every new Engine.IO session.
pub(super) async fn admit(
    State(ctx): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let named = origin.as_ref().map(|o| o.to_str().unwrap_or("?"));
    if let Err(refused) = ctx.check_origin(named, peer, Transport::SocketIo) {
        return refused.into_response();
    }
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        if req.method() == Method::GET
            && names_session(req.uri().query())
            && has_pair(req.uri().query(), "transport=websocket")
        {
            // The upgrade of a session to WebSocket is answered at once (101, or an
            // error), and the WebSocket rides on its session's place.
            next.run(req).await
        } else if names_session(req.uri().query()) {
            // A request to an existing session (a long poll, a POST of packets) holds a
            // place of its address until it is answered, beside its session's own; its
            // body is read whole first.
            let Ok(_place) = ctx.arrive(peer, Transport::SocketIo).admit() else {
                return closing(
                    StatusCode::TOO_MANY_REQUESTS,
                    RefusedConn::TooManyFromAddress.as_str(),
                );
            };
            let req = match whole_body(req, &ctx).await {
                Ok(req) => req,
                Err(refused) => return refused,
            };
            next.run(req).await
        } else {
            // A new Engine.IO session holds a place for as long as it lives.
            let admission = match ctx.arrive(peer, Transport::SocketIo).admit() {
                Ok(admission) => admission,
                Err(refused) => return refused.into_response(),
            };
            req.extensions_mut()
                .insert(Admitted(Arc::new(Mutex::new(Some(admission)))));
            next.run(req).await
        }
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `req` with its body read whole, so that socketioxide never waits on a peer's body:
/// a body larger than [`MAX_PAYLOAD_BYTES`] is refused (413), and one not finished within
/// the peer timeout is cut off (408, and the HTTP connection closes).
async fn whole_body(req: Request, ctx: &Arc<Context>) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64) {
        return Err(closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    let read = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES);
    let Ok(read) = tokio::time::timeout(ctx.peer_timeout, read).await else {
        debug!("socket.io: request body not finished in time");
        return Err(closing(
            StatusCode::REQUEST_TIMEOUT,
            "request body not finished in time",
        ));
    };
    match read {
        Ok(bytes) => {
            let mut parts = parts;
            let bytes = match checked_payload(&bytes) {
                Some(checked) => {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(checked.len()));
                    Bytes::from(checked)
                }
                None => bytes,
            };
            Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
        }
        Err(e) => {
            // A chunked body past the limit, or a broken one.
            debug!(error = %e, "socket.io: request body refused");
            Err(closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body refused",
            ))
        }
    }
}

/// A refusal after which the HTTP connection closes (its unread body goes with it).
fn closing(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONNECTION, "close")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_naming_a_session_skip_admission() {
        assert!(names_session(Some("EIO=4&transport=polling&sid=abc")));
        assert!(names_session(Some("sid=abc&EIO=4")));
        assert!(!names_session(Some("EIO=4&transport=websocket")));
        assert!(!names_session(Some("EIO=4&xsid=1")));
        assert!(!names_session(None));
        assert!(has_pair(
            Some("EIO=4&transport=websocket&sid=abc"),
            "transport=websocket"
        ));
        assert!(!has_pair(
            Some("EIO=4&transport=polling&x=transport=websocket"),
            "transport=websocket"
        ));
    }
}
