//! Shared helpers for the integration tests: a real server on loopback ports chosen by
//! the OS, and real clients connected to it.

#![allow(dead_code)]

use std::time::Duration;

use jam_client::{Client, Closed, Received};
use jam_protocol::Encoding;
use jam_protocol::{ErrorCode, ServerEvent, SessionInfo};
use jam_server::{Config, RunningServer};

/// Every single wait in the tests is bounded by this.
pub const T: Duration = Duration::from_secs(5);

/// A server started in-process on `127.0.0.1:0` with an in-memory certificate.
pub struct TestServer {
    pub server: RunningServer,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let mut config = Config::loopback();
        tweak(&mut config);
        let server = RunningServer::start(config).await.expect("server starts");
        TestServer { server }
    }

    pub fn http_base(&self) -> String {
        format!("http://{}", self.server.http_addr())
    }

    pub async fn ws(&self) -> Client {
        Client::connect_ws(&self.server.ws_url())
            .await
            .expect("ws connects")
    }

    pub async fn wt(&self) -> Client {
        self.wt_with(Encoding::Json).await
    }

    pub async fn wt_with(&self, encoding: Encoding) -> Client {
        Client::connect_wt(&self.server.wt_url(), &self.server.cert_hash(), encoding)
            .await
            .expect("wt connects")
    }

    /// A client of the given kind: "ws", "wt" or "wt-msgpack".
    pub async fn client(&self, kind: &str) -> Client {
        match kind {
            "ws" => self.ws().await,
            "wt" => self.wt().await,
            "wt-msgpack" => self.wt_with(Encoding::MsgPack).await,
            other => panic!("unknown client kind {other}"),
        }
    }
}

/// The transports every acceptance test runs on.
pub const KINDS: [&str; 2] = ["ws", "wt"];

/// Waits for an `error` answer and returns its code.
pub async fn expect_error(c: &mut Client) -> (ErrorCode, Option<serde_json::Value>) {
    let r = c.next().await.expect("an error answer");
    match r.message.event {
        ServerEvent::Error { code, .. } => (code, r.message.id),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Waits for the next message and returns its event.
pub async fn next_event(c: &mut Client) -> ServerEvent {
    c.next().await.expect("a message").message.event
}

/// Creates a room as `name` and returns its info.
pub async fn create(c: &mut Client, name: &str) -> SessionInfo {
    c.create(name, "piano").await.expect("room created")
}

/// Waits for the next `event:broadcast`, skipping presence messages.
pub async fn next_broadcast(c: &mut Client) -> Received {
    c.wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
        .await
        .expect("a broadcast")
}

/// Test-only waits on a [`Client`], kept out of the client library.
#[allow(async_fn_in_trait)]
pub trait ClientExt {
    /// Waits until the connection is closed (messages before it are discarded) and tells
    /// how.
    async fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, String>;
    /// Asserts nothing arrives within `window`.
    async fn expect_silence(&mut self, window: Duration) -> Result<(), String>;
}

impl ClientExt for Client {
    async fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Err(_) => return Err(format!("still open after {timeout:?}")),
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return self
                        .closed()
                        .ok_or_else(|| "closed without a reason".into())
                }
            }
        }
    }

    async fn expect_silence(&mut self, window: Duration) -> Result<(), String> {
        match tokio::time::timeout(window, self.recv()).await {
            Err(_) | Ok(None) => Ok(()),
            Ok(Some(r)) => Err(format!("expected silence, got {:?}", r.message)),
        }
    }
}
