//! Plain HTTP for the client: `GET /connect` (what a browser reads before it connects) and
//! GETs of the server's other pages, over reqwest without TLS or proxies (the server's
//! HTTP side is plain; a proxy from the environment must not see loopback tests).

use std::sync::OnceLock;

use reqwest::header::HOST;
use serde_json::Value;

use crate::error::{ClientError, Result};

/// How long one HTTP request may take, connection included.
const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One HTTP client for the process: its connection pool is shared by every call.
fn client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let built = reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()?;
    Ok(CLIENT.get_or_init(|| built))
}

/// `GET /connect` from `http_base` (e.g. `http://127.0.0.1:3001`), as JSON.
pub async fn fetch_connect(http_base: &str) -> Result<Value> {
    let url = format!("{}/connect", http_base.trim_end_matches('/'));
    let (status, body) = http_get(&url).await?;
    if status != 200 {
        return Err(ClientError::HttpStatus { url, status });
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `GET /connect?room=CODE` from `http_base` (docs/protocol.md §12): where the room lives,
/// as the owner node's answer (or this node's, when no other node holds it).
pub async fn fetch_connect_for(http_base: &str, room: &str) -> Result<Value> {
    let room: String = room
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let url = format!("{}/connect?room={room}", http_base.trim_end_matches('/'));
    let (status, body) = http_get(&url).await?;
    if status != 200 {
        return Err(ClientError::HttpStatus { url, status });
    }
    Ok(serde_json::from_slice(&body)?)
}

/// GET `url` (for `/connect`, `/healthz`, `/stats` and the web demo): the status code and
/// the body, whatever the status.
pub async fn http_get(url: &str) -> Result<(u16, Vec<u8>)> {
    http_get_with_host(url, None).await
}

/// Like [`http_get`], with an explicit `Host` header.
pub async fn http_get_with_host(url: &str, host: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let mut request = client()?.get(url);
    if let Some(host) = host {
        request = request.header(HOST, host);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, body.to_vec()))
}
