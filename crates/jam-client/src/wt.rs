//! The WebTransport side of the client: endpoints that trust a certificate by its
//! SHA-256, connecting a session and its control stream, and the reader tasks (datagrams
//! through `jam-wt`'s reader, control stream lines in a task of their own).

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jam_protocol::Encoding;
use jam_wt::DatagramReader;
use wtransport::endpoint::endpoint_side;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint};

use crate::error::{ClientError, Result};
use crate::link::{set_closed, ClosedSlot, Inbox, Link, Sender};
use crate::received::{Closed, Tap, Via};

/// A WebTransport client endpoint (one UDP socket) that trusts the certificate with
/// SHA-256 `cert_hash_hex`. Each [`Client::connect_wt`](crate::Client::connect_wt) makes
/// its own, as separate browsers would; many clients in one process may share one with
/// [`Client::connect_wt_on`](crate::Client::connect_wt_on), so that one `recvmmsg` serves them all (jam-bench does).
/// `recv_buffer` sets the socket's receive buffer (bytes), which a shared socket needs
/// larger than the default.
pub fn wt_endpoint(
    cert_hash_hex: &str,
    recv_buffer: Option<usize>,
) -> Result<Endpoint<endpoint_side::Client>> {
    let digest = parse_hash(cert_hash_hex)?;
    let builder = ClientConfig::builder();
    let builder = match recv_buffer {
        None => builder.with_bind_default(),
        Some(bytes) => {
            let socket = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            socket.set_only_v6(false)?;
            socket.set_recv_buffer_size(bytes)?;
            socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
            builder.with_bind_socket(socket.into())
        }
    };
    let config = builder
        .with_server_certificate_hashes([digest])
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .build();
    Ok(Endpoint::client(config)?)
}

/// Like [`wt_endpoint`], with its UDP socket bound to `bind` (e.g. `127.0.0.2:0`, to
/// come from another loopback address than the other clients).
pub fn wt_endpoint_bound(
    cert_hash_hex: &str,
    bind: SocketAddr,
) -> Result<Endpoint<endpoint_side::Client>> {
    let digest = parse_hash(cert_hash_hex)?;
    let config = ClientConfig::builder()
        .with_bind_address(bind)
        .with_server_certificate_hashes([digest])
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .build();
    Ok(Endpoint::client(config)?)
}

/// The first datagram of `n` WebTransport connection attempts, each with a connection id
/// of its own: QUIC client Initial packets, as this client sends them, to be sent again
/// by a plain UDP socket that will never finish the handshakes (a load test's flood of
/// half-open handshakes). They are caught on a local socket that never answers, within
/// `deadline`; fewer than `n` when it ran out.
pub async fn client_initials(n: usize, deadline: Duration) -> Result<Vec<Vec<u8>>> {
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let url = format!("https://{}/jam", sink.local_addr()?);
    let endpoint = wt_endpoint_bound(&"0".repeat(64), "127.0.0.1:0".parse().expect("address"))?;
    let until = tokio::time::Instant::now() + deadline;
    let mut seen = std::collections::HashSet::new();
    let mut initials = Vec::with_capacity(n);
    let mut buf = vec![0u8; 2048];
    while initials.len() < n && tokio::time::Instant::now() < until {
        let attempt = endpoint.connect(url.as_str());
        tokio::pin!(attempt);
        // Datagrams of earlier attempts (their close, a resend) are told apart by their
        // destination connection id.
        loop {
            let got = tokio::select! {
                _ = &mut attempt => break,
                _ = tokio::time::sleep_until(until) => break,
                got = sink.recv_from(&mut buf) => got?,
            };
            let datagram = &buf[..got.0];
            if let Some(dcid) = initial_dcid(datagram) {
                if seen.insert(dcid.to_vec()) {
                    initials.push(datagram.to_vec());
                    break;
                }
            }
        }
    }
    Ok(initials)
}

/// The destination connection id of a QUIC version 1 Initial packet.
fn initial_dcid(datagram: &[u8]) -> Option<&[u8]> {
    let first = *datagram.first()?;
    // Long header, fixed bit, packet type 0 (Initial).
    if first & 0xf0 != 0xc0 || datagram.get(1..5)? != [0, 0, 0, 1] {
        return None;
    }
    let len = *datagram.get(5)? as usize;
    datagram.get(6..6 + len)
}

/// Whether `datagram` is a QUIC version 1 Retry packet.
pub fn is_retry(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0xf0 == 0xf0)
        && datagram.get(1..5) == Some(&[0, 0, 0, 1][..])
}

/// Reads 64 hex digits (either case) as a SHA-256 digest. Works on bytes, so any other
/// input, non-ASCII included, is an error and never a panic.
fn parse_hash(hex: &str) -> Result<Sha256Digest> {
    let invalid = |why: &str| ClientError::Invalid {
        what: "certificate hash",
        why: why.to_owned(),
    };
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return Err(invalid("must be 64 hex digits"));
    }
    let nibble = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    let mut bytes = [0u8; 32];
    for (b, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => *b = hi << 4 | lo,
            _ => return Err(invalid("must be 64 hex digits")),
        }
    }
    Ok(Sha256Digest::new(bytes))
}

pub(crate) async fn connect(
    endpoint: &Endpoint<endpoint_side::Client>,
    url: &str,
    encoding: Encoding,
    tap: Option<Tap>,
) -> Result<Link> {
    let url = match encoding {
        Encoding::Json => url.to_owned(),
        Encoding::MsgPack => format!("{url}?encoding=msgpack"),
    };
    let connection = endpoint.connect(&url).await?;
    let (send, recv) = connection.open_bi().await?.await?;
    let (inbox, rx, latency) = Inbox::new();
    let closed = Arc::new(Mutex::new(None));
    let reader = tokio::spawn(read_wt(
        connection.clone(),
        recv,
        inbox,
        closed.clone(),
        tap,
    ));
    Ok(Link {
        sender: Sender::Wt {
            connection,
            stream: tokio::sync::Mutex::new(send),
        },
        rx,
        latency,
        closed,
        reader,
    })
}

async fn read_wt(
    connection: Connection,
    recv: wtransport::RecvStream,
    inbox: Inbox,
    closed: ClosedSlot,
    tap: Option<Tap>,
) {
    let tap = tap.map(|t| Arc::new(Mutex::new(t)));
    // The control stream gets a task of its own, so that waking up for a datagram does
    // not poll the stream too (a quinn stream read per datagram cost the bench a few %).
    let mut lines = AbortOnDrop(tokio::spawn(read_lines(recv, inbox.clone(), tap.clone())));
    let datagrams = DatagramReader::new(&connection);
    loop {
        match datagrams.next().await {
            Ok(raw) => on_datagram(raw, tap.as_deref(), &inbox),
            Err(e) => {
                // The control stream hands over what it still has before the close shows.
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut lines.0).await;
                set_closed(&closed, closed_by(e));
                return;
            }
        }
    }
}

/// A shared [`Tap`], for a connection read by more than one task.
type SharedTap = Arc<Mutex<Tap>>;

/// Shows `raw` to the tap, if there is one; `true` when the tap consumed it.
fn tapped(tap: Option<&Mutex<Tap>>, via: Via, raw: &[u8], at: Instant) -> bool {
    tap.is_some_and(|t| (t.lock().unwrap_or_else(|e| e.into_inner()))(via, raw, at))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the control stream's lines until it ends.
async fn read_lines(mut recv: wtransport::RecvStream, inbox: Inbox, tap: Option<SharedTap>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        let arrived = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        // Lines are taken from a moving start and the buffer is compacted once per read,
        // so a large batch costs one pass rather than one shift per line.
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + i];
            start += i + 1;
            if tapped(tap.as_deref(), Via::Stream, line, arrived) {
                continue;
            }
            inbox.deliver(Via::Stream, Bytes::copy_from_slice(line));
        }
        pending.drain(..start);
    }
}

fn on_datagram(raw: Bytes, tap: Option<&Mutex<Tap>>, inbox: &Inbox) {
    if !tapped(tap, Via::Datagram, &raw, Instant::now()) {
        inbox.deliver(Via::Datagram, raw);
    }
}

fn closed_by(e: wtransport::error::ConnectionError) -> Closed {
    match e {
        wtransport::error::ConnectionError::ApplicationClosed(c) => Closed::WebTransport {
            code: c.code().into_inner(),
            reason: String::from_utf8_lossy(c.reason()).into_owned(),
        },
        other => Closed::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_hashes_are_64_hex_digits_and_never_panic() {
        let good = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        assert!(parse_hash(good).is_ok());
        // 64 bytes, but not 64 ASCII characters: a byte-sliced parser split 'é' in two.
        let accented = format!("é{}", &good[2..]);
        assert_eq!(accented.len(), 64);
        assert!(matches!(
            parse_hash(&accented),
            Err(ClientError::Invalid { .. })
        ));
        for bad in [
            "",
            "00",
            &good[1..],
            &format!("{good}0"),
            &good.replace('a', "g"),
        ] {
            assert!(parse_hash(bad).is_err(), "{bad:?}");
        }
        assert!(parse_hash(&"🎹".repeat(16)).is_err());
        assert!(
            parse_hash("+f".repeat(32).as_str()).is_err(),
            "a sign is not a digit"
        );
    }
}
