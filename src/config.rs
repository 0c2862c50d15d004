//! Configuration: the command line (clap), each flag with an environment fallback, the
//! limits it sets, and [`Config::validate`], which refuses at start any value the server
//! could not run with. Nothing here opens sockets or files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::{Auth, AuthFlags, KeyError};
use crate::handshakes::{self, RetryPolicy};
use crate::history::HistoryLimits;
use crate::origins::{BadOrigin, OriginPolicy};
use crate::proxies::TrustedProxies;
use crate::room::Limits;
use crate::session::SessionLimits;

/// The largest `--max-message-bytes`: a relayed message, with what the server adds to it,
/// must fit a WebSocket receiver's write buffer (256 KiB) with room to spare, or every
/// WebSocket receiver of a large event would be cut off as a slow consumer.
pub const MAX_MESSAGE_BYTES: u64 = 128 * 1024;

/// The data directory when `--data-dir` is not given.
pub const DATA_DIR: &str = "data";

/// A configuration the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value is outside the range the server supports.
    #[error("{flag} is {value}; it must be between {min} and {max}")]
    OutOfRange {
        /// The flag, as typed on the command line.
        flag: &'static str,
        /// The value given.
        value: String,
        /// The smallest value allowed.
        min: String,
        /// The largest value allowed.
        max: String,
    },
    /// `--allowed-origins` holds something that is not an origin pattern.
    #[error(transparent)]
    Origins(BadOrigin),
    /// Peers would be dropped for silence before the server's keep-alive reached them.
    #[error("--ping-interval ({ping}) must be shorter than --peer-timeout ({timeout})")]
    PingNotBelowTimeout {
        /// The ping interval given.
        ping: String,
        /// The peer timeout given.
        timeout: String,
    },
    /// A resume's replay of the room history would not fit in a connection's queue.
    #[error("--outbox-bytes ({outbox}) must be larger than --history-bytes ({history})")]
    OutboxBelowHistory {
        /// The outgoing byte budget given.
        outbox: usize,
        /// The history bytes given.
        history: usize,
    },
    /// `--redis-url` is not a Redis URL.
    #[error("--redis-url is not a Redis URL (redis://host:port or rediss://…): {0}")]
    RedisUrl(String),
    /// `--data-dir` is empty.
    #[error("--data-dir must name a directory")]
    DataDir,
    /// `--trusted-proxies` holds something that is not an address or network.
    #[error("--trusted-proxies: {0}")]
    TrustedProxies(String),
    /// A sign-in key flag that cannot be used.
    #[error(transparent)]
    Jwt(#[from] KeyError),
    /// `--node-id` is not 1 to 64 letters, digits, `.`, `_` or `-`.
    #[error("--node-id must be 1 to 64 letters, digits, '.', '_' or '-'")]
    NodeId,
    /// A public URL flag does not hold an absolute http(s) URL.
    #[error("{flag} must be an absolute {scheme} URL with a host, like {example}")]
    PublicUrl {
        /// The flag.
        flag: &'static str,
        /// The schemes allowed.
        scheme: &'static str,
        /// An example.
        example: &'static str,
    },
}

/// jam-server: real-time jam sessions over WebTransport and WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "jam-server", version, about, args_override_self = true)]
pub struct Config {
    /// TCP address for HTTP, the web demo and WebSocket (`[::]` is dual-stack). When
    /// neither this nor `JAM_HTTP_ADDR` is given, a platform's `PORT` sets the port
    /// (`[::]:$PORT`).
    #[arg(long, env = "JAM_HTTP_ADDR", default_value = "[::]:3001")]
    pub http_addr: SocketAddr,

    /// Reverse proxies whose forwarding headers are believed, as addresses or networks
    /// (`10.0.0.0/8,fdaa::/16,127.0.0.1`; default: none). Only from these peers is the
    /// client's address taken from `X-Forwarded-For` / `Forwarded` / `Fly-Client-IP`, and
    /// the scheme and host from `X-Forwarded-Proto` / `X-Forwarded-Host` / `Forwarded`;
    /// every per-address limit then counts the client, not the proxy.
    #[arg(long, env = "JAM_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// When set, `/metrics` and `/stats` are served only on this TCP address (a private
    /// network or loopback), not on the public HTTP port; `/healthz` and `/readyz` are
    /// served on both.
    #[arg(long, env = "JAM_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// How log lines are written: `text` (for people) or `json` (one JSON object a line,
    /// for a platform's log collector).
    #[arg(long, env = "JAM_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// UDP address for WebTransport (HTTP/3): an address (`[::]:4433`; `[::]` is
    /// dual-stack), a host name and port resolved at start (`fly-global-services:4433`),
    /// or `off` (no UDP: `/connect` offers no WebTransport and clients use WebSocket).
    #[arg(long, env = "JAM_WT_ADDR", default_value = "[::]:4433")]
    pub wt_addr: WtAddr,

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
    #[arg(long, env = "JAM_MAX_MESSAGE_BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=MAX_MESSAGE_BYTES as i64))]
    pub max_message_bytes: u32,

    /// Sustained `event:broadcast` per connection, per second.
    #[arg(long, env = "JAM_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit: u32,

    /// Burst of `event:broadcast` per connection above the rate.
    #[arg(long, env = "JAM_RATE_BURST", default_value_t = 2000)]
    pub rate_burst: u32,

    /// How often the server pings an idle peer (e.g. `5s`, `500ms`).
    #[arg(long, env = "JAM_PING_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// A peer silent for this long is gone (e.g. `15s`); its seat is then held for the
    /// resume window.
    #[arg(long, env = "JAM_PEER_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub peer_timeout: Duration,

    /// How long a seat whose connection ended without a leave is held for a resume
    /// (`0s`: freed at once, as in protocol version 1).
    #[arg(long, env = "JAM_RESUME_WINDOW", default_value = "30s", value_parser = humantime::parse_duration)]
    pub resume_window: Duration,

    /// Most recent reliable messages a room keeps to replay to a seat that resumes.
    #[arg(long, env = "JAM_HISTORY_MESSAGES", default_value_t = 1024)]
    pub history_messages: usize,

    /// Most bytes of recent reliable messages a room keeps (see `--history-messages`).
    #[arg(long, env = "JAM_HISTORY_BYTES", default_value_t = 1024 * 1024)]
    pub history_bytes: usize,

    /// Most live rooms on the server, rooms whose seats are all away included; a
    /// `session:create` beyond it answers `rate_limited`.
    #[arg(long, env = "JAM_MAX_ROOMS", default_value_t = 2000)]
    pub max_rooms: usize,

    /// Most bytes of history in all rooms together (each message counted with 64 bytes of
    /// bookkeeping); beyond it the least recently written histories are trimmed.
    #[arg(long, env = "JAM_HISTORY_BUDGET", default_value_t = 128 * 1024 * 1024)]
    pub history_budget: u64,

    /// Rooms one IP address (or IPv6 /64) may create in a burst.
    #[arg(long, env = "JAM_ROOM_CREATE_BURST", default_value_t = 20)]
    pub room_create_burst: u32,

    /// Rooms one IP address (or IPv6 /64) may create per minute after the burst.
    #[arg(long, env = "JAM_ROOM_CREATES_PER_MINUTE", default_value_t = 20)]
    pub room_creates_per_minute: u32,

    /// Most away seats (held for a resume) whose lost connection came from one IP address
    /// (or IPv6 /64); a seat beyond it is freed at once.
    #[arg(long, env = "JAM_MAX_AWAY_SEATS_PER_ADDRESS", default_value_t = 32)]
    pub max_away_seats_per_address: u32,

    /// The key that signs resume tokens (created, mode 0600, if missing). Default:
    /// `resume.key` in `--cert-dir`; with `--ephemeral-cert`, a key in memory only.
    #[arg(long, env = "JAM_RESUME_KEY_FILE")]
    pub resume_key_file: Option<PathBuf>,

    /// Joins of unknown rooms one IP address may make in a burst.
    #[arg(long, env = "JAM_JOIN_FAILURE_BURST", default_value_t = 20)]
    pub join_failure_burst: u32,

    /// Joins of unknown rooms one IP address may make per minute after the burst.
    #[arg(long, env = "JAM_JOIN_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub join_failures_per_minute: u32,

    /// Most open connections (WebSocket and WebTransport together) from one IP address,
    /// or from one /64 for IPv6.
    #[arg(long, env = "JAM_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    pub max_connections_per_address: usize,

    /// Most open connections of every kind together (TCP connections on the HTTP port,
    /// WebSocket and Socket.IO included, and WebTransport sessions). Default: the
    /// descriptor limit minus 64; a larger value is lowered to that, with a warning.
    #[arg(long, env = "JAM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most open TCP connections on the HTTP port (plain HTTP, WebSocket and Socket.IO
    /// together) from one IP address, or from one /64 for IPv6.
    #[arg(
        long,
        env = "JAM_MAX_HTTP_CONNECTIONS_PER_ADDRESS",
        default_value_t = 128
    )]
    pub max_http_connections_per_address: usize,

    /// When a QUIC Initial from a source address not yet proven is answered with a Retry
    /// (one more round trip; nothing kept for it): `auto` when its address (or /64)
    /// already has a handshake in progress or a quarter of `--max-handshakes` are in
    /// progress, `always`, or `never`.
    #[arg(long, env = "JAM_QUIC_RETRY", default_value = "auto")]
    pub quic_retry: RetryPolicy,

    /// Most QUIC handshakes in progress from one IP address (or IPv6 /64); an Initial
    /// beyond it is retried (unproven source) or refused.
    #[arg(long, env = "JAM_MAX_HANDSHAKES_PER_ADDRESS", default_value_t = handshakes::DEFAULT_PER_ADDRESS)]
    pub max_handshakes_per_address: usize,

    /// Most QUIC handshakes in progress on the whole server; an Initial beyond it is
    /// retried (unproven source) or refused.
    #[arg(long, env = "JAM_MAX_HANDSHAKES", default_value_t = handshakes::DEFAULT_TOTAL)]
    pub max_handshakes: usize,

    /// Largest read-ahead and write buffer of one HTTP connection in bytes: requests
    /// pipelined beyond it wait unread until the answers before them are taken.
    #[arg(long, env = "JAM_HTTP_BUFFER_BYTES", default_value_t = 64 * 1024)]
    pub http_buffer_bytes: usize,

    /// A connection in no room is closed after this long (`0s`: never).
    #[arg(long, env = "JAM_JOIN_DEADLINE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub join_deadline: Duration,

    /// A heartbeating connection (3 `clock:ping`s within 10 s) that sends nothing for this
    /// long turns its seat away while it stays open (`0s`: never; at least `100ms`).
    #[arg(long, env = "JAM_SILENCE_LIMIT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub silence_limit: Duration,

    /// Sustained room requests (create, join, leave, resume) per connection, per second.
    #[arg(long, env = "JAM_CONTROL_RATE", default_value_t = 5)]
    pub control_rate: u32,

    /// Burst of room requests per connection above the rate.
    #[arg(long, env = "JAM_CONTROL_BURST", default_value_t = 20)]
    pub control_burst: u32,

    /// An HTTP connection that has not sent a whole request head (request line and
    /// headers) within this long is closed.
    #[arg(long, env = "JAM_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Messages a connection's outgoing queue holds before it counts as stalled.
    #[arg(long, env = "JAM_OUTBOX_CAPACITY", default_value_t = 1024)]
    pub outbox_capacity: usize,

    /// Bytes a connection's outgoing queue holds before it counts as stalled (with
    /// `--outbox-capacity`, whichever fills first); more than `--history-bytes`, so that a
    /// resume's replay fits.
    #[arg(long, env = "JAM_OUTBOX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub outbox_bytes: usize,

    /// Tokio worker threads: 0 = one per core (multi-thread runtime), 1 = a single
    /// current-thread runtime (no work stealing, no cross-thread wake-ups).
    #[arg(long, env = "JAM_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Make a fresh development certificate in `--cert-dir`, print its hash, and exit.
    #[arg(long)]
    pub make_cert: bool,

    /// Web origins allowed to connect (docs/protocol.md §10), comma-separated: exact origins
    /// (`https://jam.example.com`), wildcards over DNS labels (`https://*.example.com`),
    /// `null`, or `*` for every origin. Requests without an `Origin` are always allowed.
    #[arg(long, env = "JAM_ALLOWED_ORIGINS", default_value = "*")]
    pub allowed_origins: String,

    /// Directory of the web demo to serve instead of the copy built into the binary.
    #[arg(long, env = "JAM_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Where each room's state is kept across restarts on a single node (docs/protocol.md
    /// §12): the database file `rooms.redb` in this directory, made if missing; one server
    /// per directory. Default: `data`; with `--ephemeral-cert` (whose resume key dies with
    /// the process, and every token with it) rooms are kept in memory unless this is
    /// given. Not used with `--redis-url`.
    #[arg(long, env = "JAM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep rooms' state in Redis instead (`redis://host:port/db`): what several nodes
    /// share (docs/protocol.md §12).
    #[arg(long, env = "JAM_REDIS_URL")]
    pub redis_url: Option<String>,

    /// This node's id among the nodes sharing one Redis (docs/protocol.md §12): 1 to 64
    /// letters, digits, `.`, `_` or `-`. Default: random at start.
    #[arg(long, env = "JAM_NODE_ID")]
    pub node_id: Option<String>,

    /// The base URL clients reach this node's HTTP side at (`https://jam-1.example.com`):
    /// other nodes send clients here, to its WebSocket at `<url>/ws`. Default: the bound
    /// HTTP address.
    #[arg(long, env = "JAM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// This node's WebTransport URL as clients reach it
    /// (`https://jam-1.example.com:4433/jam`). Default: the host of `--public-url` (or the
    /// bound address) with the bound WebTransport port.
    #[arg(long, env = "JAM_PUBLIC_WT_URL")]
    pub public_wt_url: Option<String>,

    /// Keep rooms' state in memory only (tests and in-process servers): a restart keeps
    /// only what the signed tokens carry.
    #[arg(skip)]
    pub memory_store: bool,

    /// Sign-in with the app's JWTs (docs/protocol.md §13): a file holding the HS256
    /// shared secret (a trailing newline is not part of it). Off when neither this nor
    /// `--jwt-public-key-file` is set.
    #[arg(long, env = "JAM_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Sign-in with the app's JWTs: a PEM file holding the public key that verifies them
    /// (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA; the key decides the one algorithm
    /// accepted).
    #[arg(long, env = "JAM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// The issuer (`iss`) every token must name, when set.
    #[arg(long, env = "JAM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The audience (`aud`) every token must name, when set.
    #[arg(long, env = "JAM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// How long each development certificate lasts (the managed self-signed mode, used
    /// when no `--cert` is given): it is replaced a quarter of that (at most a day) before
    /// it expires, and the next one's hash is in `/connect` an eighth (at most an hour)
    /// before the switch. At most 14 days less an hour (Chromium's limit); short ones are
    /// for tests.
    #[arg(long, env = "JAM_DEV_CERT_LIFETIME", default_value = "311h", value_parser = humantime::parse_duration)]
    pub dev_cert_lifetime: Duration,

    /// How often `--cert` and `--key` are looked at for a change (a minute; SIGHUP looks at
    /// once; tests shorten it).
    #[arg(skip = std::time::Duration::from_secs(60))]
    pub cert_check_interval: Duration,

    /// The leeway on a token's `exp` and `nbf` (30 s; tests of expiry shorten it).
    #[arg(skip = crate::auth::LEEWAY)]
    pub jwt_leeway: Duration,
}

/// Where WebTransport listens (`--wt-addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WtAddr {
    /// No WebTransport (platforms without UDP).
    Off,
    /// `host:port`, a literal socket address or a host name resolved at start.
    At(String),
}

impl std::str::FromStr for WtAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(WtAddr::Off);
        }
        if s.parse::<SocketAddr>().is_ok() {
            return Ok(WtAddr::At(s.to_string()));
        }
        match s.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !host.contains(['[', ']', ':', '/'])
                    && port.parse::<u16>().is_ok() =>
            {
                Ok(WtAddr::At(s.to_string()))
            }
            _ => Err(format!(
                "{s:?} is not `off`, an address like [::]:4433 or a host and port like fly-global-services:4433"
            )),
        }
    }
}

impl std::fmt::Display for WtAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WtAddr::Off => f.write_str("off"),
            WtAddr::At(at) => f.write_str(at),
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

impl Config {
    /// The configuration of the command line and the environment, as the binary reads it:
    /// a platform's `PORT` gives the HTTP port when no HTTP address was given (Fly.io,
    /// Railway, Heroku-style platforms). A `PORT` that is not a port stops the start.
    pub fn from_command_line() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Config::command().get_matches();
        let mut config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let defaulted =
            matches.value_source("http_addr") == Some(clap::parser::ValueSource::DefaultValue);
        if let (true, Ok(port)) = (defaulted, std::env::var("PORT")) {
            match port.trim().parse::<u16>() {
                Ok(port) => config.http_addr.set_port(port),
                Err(_) => Config::command()
                    .error(
                        clap::error::ErrorKind::ValueValidation,
                        format!("PORT is {port:?}; it must be a port number (0 to 65535)"),
                    )
                    .exit(),
            }
        }
        config
    }

    /// Defaults for tests and tools: loopback, ephemeral ports, in-memory certificate, and
    /// no per-address room budgets (every client of a test comes from 127.0.0.1; a test of
    /// those budgets sets them).
    pub fn loopback() -> Self {
        let mut c = Config::parse_from(["jam-server"]);
        c.room_create_burst = 1_000_000;
        c.room_creates_per_minute = 1_000_000;
        c.max_away_seats_per_address = 1_000_000;
        c.http_addr = "127.0.0.1:0".parse().expect("literal address");
        c.wt_addr = WtAddr::At("127.0.0.1:0".into());
        c.ephemeral_cert = true;
        c.memory_store = true;
        c
    }

    /// Checks every duration and limit, and how they fit together; the server refuses to
    /// start on the first one that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let between = |flag, value: u64, min: u64, max: u64| {
            in_range(flag, value, min, max, |v| v.to_string())
        };
        let duration = |flag, value, min, max| {
            in_range(flag, value, min, max, |v| {
                humantime::format_duration(*v).to_string()
            })
        };
        between("--max-room-size", self.max_room_size.into(), 1, 10_000)?;
        between(
            "--max-message-bytes",
            self.max_message_bytes.into(),
            64,
            MAX_MESSAGE_BYTES,
        )?;
        between("--rate-limit", self.rate_limit.into(), 1, 1_000_000)?;
        between("--rate-burst", self.rate_burst.into(), 1, 1_000_000)?;
        between(
            "--join-failure-burst",
            self.join_failure_burst.into(),
            1,
            1_000_000,
        )?;
        between(
            "--join-failures-per-minute",
            self.join_failures_per_minute.into(),
            1,
            1_000_000,
        )?;
        between(
            "--outbox-capacity",
            self.outbox_capacity as u64,
            2,
            1_048_576,
        )?;
        between(
            "--outbox-bytes",
            self.outbox_bytes as u64,
            64 * 1024,
            1 << 30,
        )?;
        between("--worker-threads", self.worker_threads as u64, 0, 1024)?;
        between(
            "--max-connections-per-address",
            self.max_connections_per_address as u64,
            1,
            1_000_000,
        )?;
        if let Some(max) = self.max_connections {
            between("--max-connections", max as u64, 1, 10_000_000)?;
        }
        between(
            "--max-http-connections-per-address",
            self.max_http_connections_per_address as u64,
            1,
            1_000_000,
        )?;
        between(
            "--max-handshakes-per-address",
            self.max_handshakes_per_address as u64,
            1,
            1_000_000,
        )?;
        between(
            "--max-handshakes",
            self.max_handshakes as u64,
            1,
            10_000_000,
        )?;
        between(
            "--http-buffer-bytes",
            self.http_buffer_bytes as u64,
            8192,
            16 * 1024 * 1024,
        )?;
        between("--control-rate", self.control_rate.into(), 1, 1_000_000)?;
        between("--control-burst", self.control_burst.into(), 1, 1_000_000)?;
        duration("--join-deadline", self.join_deadline, Duration::ZERO, DAY)?;
        between(
            "--history-messages",
            self.history_messages as u64,
            0,
            1_000_000,
        )?;
        between(
            "--history-bytes",
            self.history_bytes as u64,
            0,
            64 * 1024 * 1024,
        )?;
        between("--max-rooms", self.max_rooms as u64, 1, 10_000_000)?;
        between(
            "--history-budget",
            self.history_budget,
            64 * 1024,
            1024 * 1024 * 1024 * 1024,
        )?;
        between(
            "--room-create-burst",
            self.room_create_burst.into(),
            1,
            1_000_000,
        )?;
        between(
            "--room-creates-per-minute",
            self.room_creates_per_minute.into(),
            1,
            1_000_000,
        )?;
        between(
            "--max-away-seats-per-address",
            self.max_away_seats_per_address.into(),
            0,
            1_000_000,
        )?;
        const DAY: Duration = Duration::from_secs(24 * 3600);
        duration(
            "--ping-interval",
            self.ping_interval,
            Duration::from_millis(10),
            DAY,
        )?;
        duration(
            "--peer-timeout",
            self.peer_timeout,
            Duration::from_millis(100),
            DAY,
        )?;
        duration("--resume-window", self.resume_window, Duration::ZERO, DAY)?;
        duration(
            "--dev-cert-lifetime",
            self.dev_cert_lifetime,
            Duration::from_secs(8),
            crate::tls::MAX_DEV_CERT_LIFETIME,
        )?;
        if !self.silence_limit.is_zero() {
            duration(
                "--silence-limit",
                self.silence_limit,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )?;
        }
        duration(
            "--header-timeout",
            self.header_timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        self.origin_policy().map_err(ConfigError::Origins)?;
        self.proxies()?;
        self.auth()?;
        if let Some(url) = &self.redis_url {
            redis::Client::open(url.as_str()).map_err(|e| ConfigError::RedisUrl(e.to_string()))?;
        }
        if self
            .data_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError::DataDir);
        }
        if self.ping_interval >= self.peer_timeout {
            return Err(ConfigError::PingNotBelowTimeout {
                ping: humantime::format_duration(self.ping_interval).to_string(),
                timeout: humantime::format_duration(self.peer_timeout).to_string(),
            });
        }
        if self.outbox_bytes <= self.history_bytes {
            return Err(ConfigError::OutboxBelowHistory {
                outbox: self.outbox_bytes,
                history: self.history_bytes,
            });
        }
        Ok(())
    }

    /// The room store this configuration asks for: Redis, the database file in the data
    /// directory, or memory.
    pub fn store(&self) -> anyhow::Result<std::sync::Arc<crate::store::Store>> {
        use crate::store::{FileBackend, RedisBackend, Store};
        use anyhow::Context as _;
        let in_memory = self.memory_store || (self.ephemeral_cert && self.data_dir.is_none());
        Ok(match (&self.redis_url, in_memory) {
            (Some(url), _) => Store::new(std::sync::Arc::new(RedisBackend::new(url)?)),
            (None, true) => Store::memory(),
            (None, false) => {
                let dir = self
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DATA_DIR));
                Store::new(std::sync::Arc::new(
                    FileBackend::open(&dir)
                        .with_context(|| format!("--data-dir {}", dir.display()))?,
                ))
            }
        })
    }

    /// The origins allowed to connect.
    pub fn origin_policy(&self) -> Result<OriginPolicy, BadOrigin> {
        OriginPolicy::parse(&self.allowed_origins)
    }

    /// The room core's limits.
    pub fn room_limits(&self) -> Limits {
        Limits {
            max_room_size: self.max_room_size as usize,
            join_failure_burst: self.join_failure_burst,
            join_failures_per_minute: self.join_failures_per_minute,
            resume_window: self.resume_window,
            history: HistoryLimits {
                messages: self.history_messages,
                bytes: self.history_bytes,
            },
            max_rooms: self.max_rooms,
            history_budget: self.history_budget,
            room_create_burst: self.room_create_burst,
            room_creates_per_minute: self.room_creates_per_minute,
            max_away_seats_per_address: self.max_away_seats_per_address,
        }
    }

    /// The `--trusted-proxies`.
    pub fn proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(&self.trusted_proxies).map_err(ConfigError::TrustedProxies)
    }

    /// Sign-in as the `--jwt-*` flags configure it: `None` when off.
    pub fn auth(&self) -> Result<Option<Auth>, KeyError> {
        Auth::from_flags(AuthFlags {
            secret_file: self.jwt_secret_file.as_deref(),
            public_key_file: self.jwt_public_key_file.as_deref(),
            issuer: self.jwt_issuer.as_deref(),
            audience: self.jwt_audience.as_deref(),
            leeway: self.jwt_leeway,
        })
    }

    /// Per-connection limits.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_message_bytes: self.max_message_bytes as usize,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            control_rate: self.control_rate,
            control_burst: self.control_burst,
            join_deadline: self.join_deadline,
            silence_limit: self.silence_limit,
        }
    }
}

/// `Ok` when `value` is within `min..=max`; else the error that names the flag, with the
/// values written by `show`.
fn in_range<T: PartialOrd>(
    flag: &'static str,
    value: T,
    min: T,
    max: T,
    show: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    if (&min..=&max).contains(&&value) {
        return Ok(());
    }
    Err(ConfigError::OutOfRange {
        flag,
        value: show(&value),
        min: show(&min),
        max: show(&max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::parse_from(["jam-server"]);
        assert_eq!(c.http_addr, "[::]:3001".parse().unwrap());
        assert_eq!(c.wt_addr, WtAddr::At("[::]:4433".into()));
        assert_eq!(c.max_room_size, 16);
        assert_eq!(c.max_message_bytes, 16384);
        assert_eq!((c.rate_limit, c.rate_burst), (1000, 2000));
        assert_eq!(c.ping_interval, Duration::from_secs(5));
        assert_eq!(c.peer_timeout, Duration::from_secs(15));
        assert_eq!(c.resume_window, Duration::from_secs(30));
        assert_eq!(c.silence_limit, Duration::from_secs(3));
        assert_eq!((c.history_messages, c.history_bytes), (1024, 1024 * 1024));
        assert_eq!(c.resume_key_file, None);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.max_http_connections_per_address, 128);
        assert_eq!(c.http_buffer_bytes, 64 * 1024);
        assert_eq!((c.max_rooms, c.history_budget), (2000, 128 * 1024 * 1024));
        assert_eq!((c.room_create_burst, c.room_creates_per_minute), (20, 20));
        assert_eq!(c.max_away_seats_per_address, 32);
        assert_eq!(c.quic_retry, RetryPolicy::Auto);
        assert_eq!((c.max_handshakes_per_address, c.max_handshakes), (32, 1024));
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
        assert_eq!(c.validate(), Ok(()));
    }

    fn refusal(args: &[&str]) -> ConfigError {
        let mut argv = vec!["jam-server"];
        argv.extend_from_slice(args);
        Config::parse_from(argv)
            .validate()
            .expect_err("the configuration is refused")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::parse_from(["jam-server"]).validate(), Ok(()));
        assert_eq!(Config::loopback().validate(), Ok(()));
    }

    #[test]
    fn every_duration_and_limit_is_checked_at_start() {
        // A zero ping interval used to panic every WebSocket writer (tokio's interval).
        assert_eq!(
            Config::parse_from(["jam-server", "--resume-window", "0s"]).validate(),
            Ok(()),
            "a zero window is version 1's behaviour"
        );
        let e = refusal(&["--ping-interval", "0s"]);
        assert!(e.to_string().starts_with("--ping-interval is 0s"), "{e}");
        assert!(matches!(
            refusal(&["--peer-timeout", "0s"]),
            ConfigError::OutOfRange {
                flag: "--peer-timeout",
                ..
            }
        ));
        assert!(matches!(
            refusal(&["--ping-interval", "30s", "--peer-timeout", "30s"]),
            ConfigError::PingNotBelowTimeout { .. }
        ));
        for (flag, value) in [
            ("--rate-limit", "0"),
            ("--rate-burst", "0"),
            ("--join-failure-burst", "0"),
            ("--join-failures-per-minute", "0"),
            ("--outbox-capacity", "0"),
            ("--outbox-capacity", "1"),
            ("--worker-threads", "5000"),
            ("--ping-interval", "2days"),
            ("--resume-window", "2days"),
            ("--header-timeout", "0s"),
            ("--header-timeout", "2h"),
            ("--history-messages", "1000001"),
            ("--history-bytes", "1000000000"),
            ("--max-connections", "0"),
            ("--max-http-connections-per-address", "0"),
            ("--http-buffer-bytes", "8191"),
            ("--max-rooms", "0"),
            ("--max-rooms", "10000001"),
            ("--history-budget", "2000000000000"),
            ("--history-budget", "1000"),
            ("--room-create-burst", "0"),
            ("--room-creates-per-minute", "0"),
            ("--max-away-seats-per-address", "1000001"),
            ("--max-handshakes-per-address", "0"),
            ("--max-handshakes", "0"),
            ("--silence-limit", "10ms"),
            ("--silence-limit", "2h"),
        ] {
            match refusal(&[flag, value]) {
                ConfigError::OutOfRange { flag: f, .. } => assert_eq!(f, flag),
                other => panic!("{flag} {value}: {other}"),
            }
        }
    }

    #[test]
    fn the_outgoing_byte_budget_is_checked_at_start() {
        assert_eq!(Config::parse_from(["jam-server"]).outbox_bytes, 4 << 20);
        for value in ["65535", "1073741825"] {
            assert!(matches!(
                refusal(&["--outbox-bytes", value]),
                ConfigError::OutOfRange {
                    flag: "--outbox-bytes",
                    ..
                }
            ));
        }
        let e = refusal(&["--outbox-bytes", "1048576"]);
        assert!(matches!(e, ConfigError::OutboxBelowHistory { .. }), "{e}");
        assert!(e.to_string().starts_with("--outbox-bytes (1048576)"), "{e}");
    }
}
