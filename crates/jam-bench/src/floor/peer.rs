//! The echo peer of a floor run, and the way to it. [`echo`] is the peer itself (this
//! program run with `--floor-echo KIND`): it listens, prints where, and mirrors every
//! message back until its stdin closes. [`Echo`] is that process seen from the measuring
//! side (spawned pinned, stopped by closing its stdin), and [`connect`] opens the
//! connection to it, split in a sending and a receiving half. Also the message header
//! both sides read.
//!
//! QUIC and WebTransport use a self-signed certificate (wtransport's, made with rcgen)
//! that the measuring side trusts by its SHA-256, as the Rust client trusts the server's.
//! The plain QUIC floor is quinn with its default transport; the WebTransport floor is a
//! wtransport session whose datagrams are read through `jam-wt` on both sides and echoed
//! framed once straight to quinn, as the server's fan-out sends.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use jam_wt::{datagram_header, DatagramReader};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::process::{Child, ChildStdin, Command};
use wtransport::quinn;
use wtransport::quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use wtransport::tls::client::ServerHashVerification;
use wtransport::tls::rustls::RootCertStore;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Identity, ServerConfig};

use crate::cli::{Args, FloorKind};
use crate::procfs;

/// What the echo peer prints, followed by its address and certificate hash (`-` for none).
const READY: &str = "floor-echo ready";

/// ALPN of the plain QUIC floor (any value both sides agree on).
const QUIC_ALPN: &[u8] = b"jam-floor";

/// Longest wait for the echo peer to print where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the connection (and its handshake) to the echo peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the echo peer to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes of a message's header: sequence number, send time (ns), measured flag.
pub const HEADER: usize = 17;

// The peer.

/// Runs the echo peer of `kind` on `addr`: prints [`READY`] with the bound address (and
/// certificate hash), then mirrors every message back to its sender until stdin closes.
pub async fn echo(kind: FloorKind, addr: SocketAddr) -> Result<()> {
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let serve = async {
        match kind {
            FloorKind::Udp => echo_udp(addr).await,
            FloorKind::Quic => echo_quic(addr).await,
            FloorKind::Wt => echo_wt(addr).await,
            FloorKind::Tcp => echo_tcp(addr).await,
        }
    };
    tokio::select! {
        r = serve => r.with_context(|| format!("the {} echo peer", kind.as_str())),
        () = stdin_closed => Ok(()),
    }
}

/// Tells the spawning side where to connect.
fn ready(addr: SocketAddr, cert_hash: Option<&Sha256Digest>) {
    let hash = cert_hash.map_or_else(|| "-".to_owned(), Sha256Digest::to_string);
    // stdout is line-buffered: the line leaves at once.
    println!("{READY} {addr} {hash}");
}

/// A self-signed certificate for the QUIC and WebTransport peers (ECDSA P-256, 14 days,
/// the shape browsers accept by hash).
fn identity() -> Result<Identity> {
    Identity::self_signed(["localhost", "127.0.0.1"]).context("making a self-signed certificate")
}

/// The SHA-256 of `identity`'s certificate.
fn cert_hash(identity: &Identity) -> Result<Sha256Digest> {
    identity
        .certificate_chain()
        .as_slice()
        .first()
        .map(|c| c.hash())
        .ok_or_else(|| anyhow!("the certificate chain is empty"))
}

async fn echo_udp(addr: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind(addr)
        .await
        .with_context(|| format!("binding UDP {addr}"))?;
    ready(socket.local_addr()?, None);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await.context("UDP receive")?;
        // A send that fails is a lost echo, as on a network.
        let _ = socket.send_to(&buf[..n], from).await;
    }
}

async fn echo_tcp(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding TCP {addr}"))?;
    ready(listener.local_addr()?, None);
    loop {
        let (stream, _) = listener.accept().await.context("TCP accept")?;
        tokio::spawn(async move {
            if let Err(e) = echo_tcp_connection(stream).await {
                tracing::debug!(error = %e, "floor echo: TCP connection ended");
            }
        });
    }
}

async fn echo_tcp_connection(stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = read.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        write.write_all(&buf[..n]).await?;
    }
}

async fn echo_quic(addr: SocketAddr) -> Result<()> {
    let identity = identity()?;
    let hash = cert_hash(&identity)?;
    let mut tls = wtransport::tls::server::build_default_tls_config(identity);
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).context("QUIC server TLS")?;
    let endpoint =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), addr)
            .with_context(|| format!("binding QUIC {addr}"))?;
    ready(endpoint.local_addr()?, Some(&hash));
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let r = async {
                let connection = incoming.await?;
                loop {
                    let datagram = connection.read_datagram().await?;
                    let _ = connection.send_datagram(datagram);
                }
            };
            let r: Result<(), quinn::ConnectionError> = r.await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "floor echo: QUIC connection ended");
            }
        });
    }
    Ok(())
}

async fn echo_wt(addr: SocketAddr) -> Result<()> {
    let identity = identity()?;
    let hash = cert_hash(&identity)?;
    let config = ServerConfig::builder()
        .with_bind_address(addr)
        .with_identity(identity)
        .build();
    let endpoint = wtransport::Endpoint::server(config)
        .with_context(|| format!("binding WebTransport {addr}"))?;
    ready(endpoint.local_addr()?, Some(&hash));
    loop {
        let incoming = endpoint.accept().await;
        tokio::spawn(async move {
            if let Err(e) = echo_wt_session(incoming).await {
                tracing::debug!(error = %e, "floor echo: WebTransport session ended");
            }
        });
    }
}

/// One WebTransport session: datagrams read as the server reads them (`jam-wt`), sent
/// back framed once and handed straight to quinn, as the server's fan-out sends.
async fn echo_wt_session(incoming: wtransport::endpoint::IncomingSession) -> Result<()> {
    let request = incoming.await?;
    let connection = request.accept().await?;
    let reader = DatagramReader::new(&connection);
    let header = datagram_header(&connection);
    loop {
        let payload = reader.next().await?;
        let mut framed = Vec::with_capacity(header.len() + payload.len());
        framed.extend_from_slice(&header);
        framed.extend_from_slice(&payload);
        let _ = connection.quic_connection().send_datagram(framed.into());
    }
}

// The measuring side.

/// The sending half of the connection to the echo peer.
pub enum Tx {
    Udp(Arc<UdpSocket>),
    Quic(quinn::Connection),
    Wt(wtransport::Connection),
    Tcp(OwnedWriteHalf),
}

impl Tx {
    /// Sends one message.
    pub async fn send(&mut self, message: &[u8]) -> Result<()> {
        match self {
            Tx::Udp(s) => {
                s.send(message).await.context("UDP send")?;
            }
            Tx::Quic(c) => c
                .send_datagram(message.to_vec().into())
                .context("QUIC datagram send")?,
            Tx::Wt(c) => c
                .send_datagram(message)
                .context("WebTransport datagram send")?,
            Tx::Tcp(w) => w.write_all(message).await.context("TCP send")?,
        }
        Ok(())
    }
}

/// The receiving half: one echoed message at a time.
pub enum Rx {
    Udp(Arc<UdpSocket>, Vec<u8>),
    Quic(quinn::Connection),
    Wt(DatagramReader),
    /// A message read in part stays in `buf`, so a cancelled read loses nothing.
    Tcp {
        read: OwnedReadHalf,
        buf: Vec<u8>,
        filled: usize,
    },
}

impl Rx {
    /// The next echo's header. Cancel-safe.
    pub async fn recv(&mut self, size: usize) -> Result<Echoed> {
        match self {
            Rx::Udp(s, buf) => {
                let n = s.recv(buf).await.context("UDP receive")?;
                Echoed::parse(&buf[..n], size)
            }
            Rx::Quic(c) => {
                let d = c.read_datagram().await.context("QUIC datagram receive")?;
                Echoed::parse(&d, size)
            }
            Rx::Wt(r) => {
                let d = r.next().await.context("WebTransport datagram receive")?;
                Echoed::parse(&d, size)
            }
            Rx::Tcp { read, buf, filled } => {
                while *filled < size {
                    let n = read
                        .read(&mut buf[*filled..size])
                        .await
                        .context("TCP receive")?;
                    if n == 0 {
                        bail!("the echo peer closed the TCP connection");
                    }
                    *filled += n;
                }
                *filled = 0;
                Echoed::parse(&buf[..size], size)
            }
        }
    }
}

/// A connection to the echo peer, split in its two halves.
pub struct Link {
    /// Sends.
    pub tx: Tx,
    /// Receives the echoes.
    pub rx: Rx,
    /// The client endpoint, kept open as long as the connection.
    pub endpoint: Option<Box<dyn std::any::Any + Send>>,
}

/// Connects to the echo peer at `addr` (trusting the certificate hash `hash` for QUIC and
/// WebTransport), within [`CONNECT_TIMEOUT`]; `size` is the message size.
pub async fn connect(
    kind: FloorKind,
    addr: SocketAddr,
    hash: Option<&str>,
    size: usize,
) -> Result<Link> {
    tokio::time::timeout(CONNECT_TIMEOUT, open(kind, addr, hash, size))
        .await
        .map_err(|_| {
            anyhow!(
                "connecting to the {} echo peer took over {} s",
                kind.as_str(),
                CONNECT_TIMEOUT.as_secs()
            )
        })?
}

async fn open(kind: FloorKind, addr: SocketAddr, hash: Option<&str>, size: usize) -> Result<Link> {
    let digest = || -> Result<Sha256Digest> {
        hash.ok_or_else(|| anyhow!("the echo peer gave no certificate hash"))?
            .parse()
            .map_err(|_| anyhow!("the echo peer's certificate hash is malformed"))
    };
    let local: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    Ok(match kind {
        FloorKind::Udp => {
            let socket = UdpSocket::bind(local).await.context("binding UDP")?;
            socket.connect(addr).await.context("UDP connect")?;
            let socket = Arc::new(socket);
            Link {
                tx: Tx::Udp(socket.clone()),
                rx: Rx::Udp(socket, vec![0u8; 65_536]),
                endpoint: None,
            }
        }
        FloorKind::Tcp => {
            let stream = TcpStream::connect(addr).await.context("TCP connect")?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            let (read, write) = stream.into_split();
            Link {
                tx: Tx::Tcp(write),
                rx: Rx::Tcp {
                    read,
                    buf: vec![0u8; size],
                    filled: 0,
                },
                endpoint: None,
            }
        }
        FloorKind::Quic => {
            let verifier = Arc::new(ServerHashVerification::new([digest()?]));
            let mut tls = wtransport::tls::client::build_default_tls_config(
                Arc::new(RootCertStore::empty()),
                Some(verifier),
            );
            tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
            let crypto = QuicClientConfig::try_from(tls).context("QUIC client TLS")?;
            let mut endpoint = quinn::Endpoint::client(local).context("binding QUIC")?;
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
            let connection = endpoint
                .connect(addr, "localhost")
                .context("QUIC connect")?
                .await
                .context("QUIC handshake")?;
            if connection.max_datagram_size().is_none_or(|max| max < size) {
                bail!("the QUIC connection cannot carry {size}-byte datagrams");
            }
            Link {
                tx: Tx::Quic(connection.clone()),
                rx: Rx::Quic(connection),
                endpoint: Some(Box::new(endpoint)),
            }
        }
        FloorKind::Wt => {
            let config = ClientConfig::builder()
                .with_bind_address(local)
                .with_server_certificate_hashes([digest()?])
                .build();
            let endpoint = wtransport::Endpoint::client(config).context("binding WebTransport")?;
            let connection = endpoint
                .connect(format!("https://{addr}/floor"))
                .await
                .context("WebTransport session")?;
            if connection.max_datagram_size().is_none_or(|max| max < size) {
                bail!("the WebTransport session cannot carry {size}-byte datagrams");
            }
            Link {
                rx: Rx::Wt(DatagramReader::new(&connection)),
                tx: Tx::Wt(connection),
                endpoint: Some(Box::new(endpoint)),
            }
        }
    })
}

/// Writes a message's header into `buf` (the rest stays zero).
pub fn write_message(buf: &mut [u8], seq: u64, sent_ns: u64, measured: bool) {
    buf[0..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_le_bytes());
    buf[16] = u8::from(measured);
}

/// An echoed message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echoed {
    /// Its sequence number.
    pub seq: u64,
    /// When it was sent, ns since the measuring side's epoch.
    pub sent_ns: u64,
    /// Whether it was sent in the measured window.
    pub measured: bool,
}

impl Echoed {
    /// Reads the header of an echo that must be `size` bytes.
    pub fn parse(bytes: &[u8], size: usize) -> Result<Echoed> {
        if bytes.len() != size {
            bail!(
                "an echo of {} bytes came back for a {size}-byte message",
                bytes.len()
            );
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Ok(Echoed {
            seq: word(0),
            sent_ns: word(8),
            measured: bytes[16] == 1,
        })
    }
}

/// The echo peer as a child process.
pub struct Echo {
    child: Child,
    /// Closing it tells the peer to exit.
    stdin: Option<ChildStdin>,
    /// Its PID.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate's SHA-256 (QUIC and WebTransport).
    pub cert_hash: Option<String>,
}

impl Echo {
    /// Spawns this program as the echo peer of `kind`, pinned as `--server-cpus` says,
    /// and waits for its address.
    pub async fn spawn(args: &Args, kind: FloorKind) -> Result<Echo> {
        let me = std::env::current_exe().context("locating jam-bench")?;
        let mut cmd = Command::from(crate::target::pinned(&me, echo_cpus(args).as_deref()));
        cmd.arg("--floor-echo")
            .arg(kind.as_str())
            .arg("--floor-addr")
            .arg("127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the {} echo peer", kind.as_str()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the echo peer exited at once"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let line = tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).lines().next_line())
            .await
            .map_err(|_| {
                anyhow!(
                    "the {} echo peer did not listen within {} s",
                    kind.as_str(),
                    START_TIMEOUT.as_secs()
                )
            })?
            .context("reading the echo peer's address")?
            .ok_or_else(|| anyhow!("the {} echo peer exited before it listened", kind.as_str()))?;
        let mut words = line
            .strip_prefix(READY)
            .ok_or_else(|| anyhow!("the echo peer said {line:?}"))?
            .split_whitespace();
        let addr = words
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("no address in the echo peer's {line:?}"))?;
        let cert_hash = words.next().filter(|h| *h != "-").map(str::to_owned);
        Ok(Echo {
            child,
            stdin,
            pid,
            addr,
            cert_hash,
        })
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Closes its stdin and waits for it to exit (kills it after [`STOP_TIMEOUT`]); says
    /// how it ended when that was not cleanly.
    pub async fn stop(mut self) -> Option<String> {
        if let Some(status) = self.exited() {
            return Some(format!("the echo peer had already exited: {status}"));
        }
        drop(self.stdin.take());
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("the echo peer exited with {status}")),
            Ok(Err(e)) => Some(format!("waiting for the echo peer: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Some("the echo peer did not exit when its stdin closed; killed".into())
            }
        }
    }
}

/// The CPUs to pin the echo peer to: `--server-cpus`, else CPU 1 on a machine with two
/// or more (`none`: not pinned).
fn echo_cpus(args: &Args) -> Option<String> {
    match args.server_cpus.as_deref() {
        Some("none") => None,
        Some(cpus) => Some(cpus.to_owned()),
        None => (procfs::cpu_times().len() >= 2).then(|| "1".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_header_reads_back() {
        let mut buf = vec![0u8; 150];
        write_message(&mut buf, 42, 123_456_789, true);
        assert_eq!(
            Echoed::parse(&buf, 150).unwrap(),
            Echoed {
                seq: 42,
                sent_ns: 123_456_789,
                measured: true
            }
        );
        assert!(Echoed::parse(&buf[..100], 150).is_err());
    }
}
