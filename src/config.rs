//! Configuration: the command line (clap), each flag with an environment fallback, and
//! the limits it sets. Nothing here opens sockets or files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::room::Limits;
use crate::session::SessionLimits;

/// jam-server: real-time jam sessions over WebTransport and WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "jam-server", version, about)]
pub struct Config {
    /// TCP address for HTTP, the web demo and WebSocket (`[::]` is dual-stack).
    #[arg(long, env = "JAM_HTTP_ADDR", default_value = "[::]:3001")]
    pub http_addr: SocketAddr,

    /// UDP address for WebTransport (HTTP/3); `[::]` is dual-stack.
    #[arg(long, env = "JAM_WT_ADDR", default_value = "[::]:4433")]
    pub wt_addr: SocketAddr,

    /// PEM certificate chain for WebTransport; without it a development certificate is
    /// made and renewed automatically.
    #[arg(long, env = "JAM_CERT", requires = "key")]
    pub cert: Option<PathBuf>,

    /// PEM private key matching `--cert`.
    #[arg(long, env = "JAM_KEY", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Where the development certificate is stored and reused across restarts.
    #[arg(long, env = "JAM_CERT_DIR", default_value = "certs")]
    pub cert_dir: PathBuf,

    /// Keep the development certificate in memory only (nothing written to disk).
    #[arg(long, env = "JAM_EPHEMERAL_CERT", conflicts_with = "cert")]
    pub ephemeral_cert: bool,

    /// Most participants in one room.
    #[arg(long, env = "JAM_MAX_ROOM_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_room_size: u32,

    /// Largest message in bytes (JSON, without framing).
    #[arg(long, env = "JAM_MAX_MESSAGE_BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub max_message_bytes: u32,

    /// Sustained `event:broadcast` per connection, per second.
    #[arg(long, env = "JAM_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit: u32,

    /// Burst of `event:broadcast` per connection above the rate.
    #[arg(long, env = "JAM_RATE_BURST", default_value_t = 2000)]
    pub rate_burst: u32,

    /// How often the server pings an idle peer (e.g. `20s`, `500ms`).
    #[arg(long, env = "JAM_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// A peer silent for this long is dropped (e.g. `60s`).
    #[arg(long, env = "JAM_PEER_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub peer_timeout: Duration,

    /// Joins of unknown rooms one IP address may make in a burst.
    #[arg(long, env = "JAM_JOIN_FAILURE_BURST", default_value_t = 20)]
    pub join_failure_burst: u32,

    /// Joins of unknown rooms one IP address may make per minute after the burst.
    #[arg(long, env = "JAM_JOIN_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub join_failures_per_minute: u32,

    /// Messages a connection's outgoing queue holds before it counts as stalled.
    #[arg(long, env = "JAM_OUTBOX_CAPACITY", default_value_t = 1024)]
    pub outbox_capacity: usize,

    /// Tokio worker threads: 0 = one per core (multi-thread runtime), 1 = a single
    /// current-thread runtime (no work stealing, no cross-thread wake-ups).
    #[arg(long, env = "JAM_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Make a fresh development certificate in `--cert-dir`, print its hash, and exit.
    #[arg(long)]
    pub make_cert: bool,

    /// Directory of the web demo to serve instead of the copy built into the binary.
    #[arg(long, env = "JAM_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
}

impl Config {
    /// Defaults for tests and tools: loopback, ephemeral ports, in-memory certificate.
    pub fn loopback() -> Self {
        let mut c = Config::parse_from(["jam-server"]);
        c.http_addr = "127.0.0.1:0".parse().expect("literal address");
        c.wt_addr = "127.0.0.1:0".parse().expect("literal address");
        c.ephemeral_cert = true;
        c
    }

    /// The room core's limits.
    pub fn room_limits(&self) -> Limits {
        Limits {
            max_room_size: self.max_room_size as usize,
            outbox_capacity: self.outbox_capacity,
            join_failure_burst: self.join_failure_burst,
            join_failures_per_minute: self.join_failures_per_minute,
        }
    }

    /// Per-connection limits.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_message_bytes: self.max_message_bytes as usize,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::parse_from(["jam-server"]);
        assert_eq!(c.http_addr, "[::]:3001".parse().unwrap());
        assert_eq!(c.wt_addr, "[::]:4433".parse().unwrap());
        assert_eq!(c.max_room_size, 16);
        assert_eq!(c.max_message_bytes, 16384);
        assert_eq!((c.rate_limit, c.rate_burst), (1000, 2000));
        assert_eq!(c.ping_interval, Duration::from_secs(20));
        assert_eq!(c.peer_timeout, Duration::from_secs(60));
    }

    #[test]
    fn flags_parse_human_durations_and_port_zero() {
        let c = Config::parse_from([
            "jam-server",
            "--http-addr",
            "127.0.0.1:0",
            "--ping-interval",
            "500ms",
            "--peer-timeout",
            "2s",
        ]);
        assert_eq!(c.http_addr.port(), 0);
        assert_eq!(c.ping_interval, Duration::from_millis(500));
        assert_eq!(c.peer_timeout, Duration::from_secs(2));
    }
}
