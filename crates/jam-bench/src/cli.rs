//! The command line of `jam-bench`: what to run against, the shape of the load, and the
//! special modes (idle connections, the knee search, the machine's floor, the CI smoke
//! test). Parsing only.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, ValueEnum};

/// `--rate` in floor mode when the command line does not set it: messages a second.
pub const FLOOR_DEFAULT_RATE: f64 = 1000.0;

/// jam-bench: open-loop load generator and latency meter for jam-server.
///
/// By default it starts the `jam-server` binary next to its own executable on free
/// loopback ports, drives it with one connection per simulated participant, and reports
/// one-way sender-to-receiver latency (measured from each send's intended time), delivery,
/// fan-out skew and the server's CPU and memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "jam-bench", version, about, long_about = None)]
pub struct Args {
    /// A running server instead of a spawned one: `ws://HOST:PORT/ws`,
    /// `https://HOST:PORT/jam` (with `--cert-hash`), or `http://HOST:PORT/connect`.
    #[arg(long)]
    pub url: Option<String>,

    /// SHA-256 (hex) of the WebTransport certificate, for an `https://` `--url`.
    #[arg(long)]
    pub cert_hash: Option<String>,

    /// Where `GET /stats` is, when `--url` does not tell (e.g. `http://127.0.0.1:3001`).
    #[arg(long)]
    pub stats_url: Option<String>,

    /// PID of a running server to measure (CPU time, RSS); set for a spawned server.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// The server binary to spawn (default: `jam-server` next to this executable).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Pin the spawned server to these CPUs (`taskset -c` list, e.g. `1`). In floor mode
    /// it pins the echo peer, to CPU 1 when not given on a machine with two CPUs or more;
    /// `none` leaves it unpinned.
    #[arg(long)]
    pub server_cpus: Option<String>,

    /// Extra arguments for the spawned server (repeatable, e.g. `--server-arg=--outbox-capacity=256`).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,

    /// `RUST_LOG` for the spawned server.
    #[arg(long, default_value = "warn")]
    pub server_log: String,

    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// Participants per room (each one connection, each one sender and receiver).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub per_room: u32,

    /// Note events per second per participant (the mean, for every pattern).
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,

    /// Measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,

    /// Load before the measured window, in seconds (sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// How long to wait after the last send for late deliveries, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,

    /// Size of each event's `payload` JSON in bytes (padded up to it; the note itself is
    /// about 100 bytes).
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,

    /// How the participants connect and send.
    #[arg(long, value_enum, default_value_t = Transport::WtDatagram)]
    pub transport: Transport,

    /// When notes are played.
    #[arg(long, value_enum, default_value_t = Pattern::Poisson)]
    pub pattern: Pattern,

    /// Datagram encoding of WebTransport sessions (both directions).
    #[arg(long, value_enum, default_value_t = Enc::Json)]
    pub encoding: Enc,

    /// Runtime worker threads of the bench (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// UDP sockets the WebTransport participants share (0 = one each, as separate
    /// browsers would have). Shared sockets let one `recvmmsg` serve many participants,
    /// which makes the bench cheaper per datagram; the server sees the same connections.
    #[arg(long, default_value_t = 1)]
    pub wt_sockets: usize,

    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,

    /// Seed of the schedule (Poisson gaps, phases).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Also run this many joins (each followed by a leave) per second into the played
    /// rooms, each on a fresh connection.
    #[arg(long)]
    pub churn: Option<f64>,

    /// How long a churning participant stays in the room, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub churn_hold_ms: u64,

    /// Idle mode: open this many connections in rooms of `--per-room`, send nothing, and
    /// measure the server's memory per connection over `--seconds` (keep-alives on).
    #[arg(long)]
    pub idle: Option<usize>,

    /// Knee mode: run once per room count in this list (e.g. `10,20,40`), each against a
    /// fresh server, and stop at the first step that misses `--knee-p99-us` or the
    /// delivery floor.
    #[arg(long, value_delimiter = ',')]
    pub knee: Option<Vec<usize>>,

    /// The p99 latency a knee step must stay under, in microseconds.
    #[arg(long, default_value_t = 5000)]
    pub knee_p99_us: u64,

    /// Floor mode: time a small message's round trip to an echo peer (this program,
    /// spawned pinned to `--server-cpus`) over plain UDP, QUIC datagrams, WebTransport
    /// datagrams or TCP, with no jam-server in the way: what this machine costs to move a
    /// note from one process to another. Open loop at `--rate` (1,000 a second unless
    /// given), or closed loop with `--floor-inflight`.
    #[arg(long, value_enum, value_name = "KIND")]
    pub floor: Option<FloorKind>,

    /// Floor mode: bytes in each message (a note datagram is about 150).
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u16).range(24..=1200))]
    pub floor_bytes: u16,

    /// Floor mode: keep this many messages in flight, each echo sending the next at once
    /// (closed loop, as fast as the pair goes); 0 sends at `--rate` whatever comes back.
    #[arg(long, default_value_t = 0)]
    pub floor_inflight: usize,

    /// Floor mode: end the measured window after this many messages, if `--seconds` has
    /// not ended it first.
    #[arg(long)]
    pub floor_messages: Option<u64>,

    /// Run as the echo peer of a floor run (what `--floor` spawns): listen on
    /// `--floor-addr`, print the address, echo every message until stdin closes.
    #[arg(long, value_enum, value_name = "KIND", hide = true)]
    pub floor_echo: Option<FloorKind>,

    /// Where the echo peer listens.
    #[arg(long, default_value = "127.0.0.1:0", hide = true)]
    pub floor_addr: SocketAddr,

    /// Hostile neighbour: run the load twice against fresh servers, quiet and then with
    /// attacks from other loopback addresses (127.0.0.2-6: a connection flood, room
    /// creation with history fill, slow readers, a `clock:ping` flood, unfinished QUIC
    /// handshakes), and report the rooms' latency of both.
    #[arg(long)]
    pub hostile: bool,

    /// CI smoke test: 2 rooms x 4 on each transport for a few seconds; checks the JSON
    /// report and 100 % delivery on the reliable transports; exits non-zero otherwise.
    #[arg(long)]
    pub smoke: bool,

    /// Print Markdown tables of the JSON lines in this file (as `bench/scenarios.sh`
    /// collects them) and exit.
    #[arg(long, value_name = "FILE")]
    pub summarize: Option<String>,

    /// Also count the server's system calls over the window, by name, with `perf stat`
    /// on the kernel's syscall tracepoints (needs `perf` and permission to trace the
    /// server; the tracing itself costs the server a little CPU).
    #[arg(long)]
    pub syscalls: bool,

    /// Print only the JSON line (no table).
    #[arg(long)]
    pub json: bool,

    /// A label copied into the JSON line (e.g. the scenario name).
    #[arg(long)]
    pub label: Option<String>,
}

impl Args {
    /// The arguments of this process's command line (exits on a bad one, as clap does),
    /// with floor mode's own `--rate` default when the line does not set it.
    pub fn from_command_line() -> Args {
        let matches = Args::command().get_matches();
        let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if args.floor.is_some() && matches.value_source("rate") == Some(ValueSource::DefaultValue) {
            args.rate = FLOOR_DEFAULT_RATE;
        }
        args
    }
}

/// What carries a floor run's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FloorKind {
    /// Plain UDP datagrams.
    Udp,
    /// QUIC datagrams (quinn, no WebTransport session).
    Quic,
    /// WebTransport datagrams (a wtransport session, read as the server and client read).
    Wt,
    /// TCP with `TCP_NODELAY` (what WebSocket rides on).
    Tcp,
}

impl FloorKind {
    /// The flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FloorKind::Udp => "udp",
            FloorKind::Quic => "quic",
            FloorKind::Wt => "wt",
            FloorKind::Tcp => "tcp",
        }
    }

    /// Whether every message arrives (so a silence is a stall, never a loss).
    pub fn is_reliable(self) -> bool {
        matches!(self, FloorKind::Tcp)
    }
}

/// How participants connect and send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebTransport, events as datagrams.
    WtDatagram,
    /// WebTransport, events on the control stream.
    WtStream,
    /// WebSocket.
    Ws,
    /// Participants take turns: WebSocket, WebTransport datagrams, WebTransport stream.
    Mixed,
}

impl Transport {
    /// The flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WtDatagram => "wt-datagram",
            Transport::WtStream => "wt-stream",
            Transport::Ws => "ws",
            Transport::Mixed => "mixed",
        }
    }

    /// What participant `i` of a room uses.
    pub fn for_member(self, i: usize) -> Kind {
        match self {
            Transport::WtDatagram => Kind::WtDatagram,
            Transport::WtStream => Kind::WtStream,
            Transport::Ws => Kind::Ws,
            Transport::Mixed => [Kind::Ws, Kind::WtDatagram, Kind::WtStream][i % 3],
        }
    }

    /// Whether every event travels a reliable path (so delivery must be 100 %).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Ws | Transport::WtStream)
    }
}

/// One participant's connection and send path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WebSocket.
    Ws,
    /// WebTransport, sending datagrams.
    WtDatagram,
    /// WebTransport, sending on the control stream.
    WtStream,
}

impl Kind {
    /// Whether this participant needs WebTransport.
    pub fn is_wt(self) -> bool {
        !matches!(self, Kind::Ws)
    }
}

/// When notes are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// Exponential gaps with mean 1/rate per participant.
    Poisson,
    /// A steady 1/rate beat per participant, each with its own random phase.
    Metronome,
    /// Everyone in a room plays a 4-note chord on the same beat (rate/4 beats a second;
    /// each room has its own phase): the worst case for fan-out.
    Downbeat,
}

impl Pattern {
    /// The flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Poisson => "poisson",
            Pattern::Metronome => "metronome",
            Pattern::Downbeat => "downbeat",
        }
    }
}

/// Datagram encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Enc {
    /// JSON.
    Json,
    /// MessagePack.
    Msgpack,
}
