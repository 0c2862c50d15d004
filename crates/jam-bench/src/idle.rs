//! Idle mode: many connections sitting in rooms, sending nothing, keep-alives on. It
//! measures what each one costs the server in resident memory and in CPU while idle.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::cli::Args;
use crate::procfs::{self, Proc};
use crate::run::connect_all;
use crate::target::Target;

/// What idle mode found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleReport {
    /// `--label`.
    pub label: Option<String>,
    /// `idle`.
    pub mode: &'static str,
    /// `--transport` (`ws`, or any WebTransport flavour).
    pub transport: &'static str,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that joined a room.
    pub connected: u64,
    /// Connections that failed to connect or join.
    pub connect_failures: u64,
    /// The first few failures.
    pub connect_errors: Vec<String>,
    /// Connections still open at the end of the hold.
    pub alive_at_end: u64,
    /// Participants per room.
    pub per_room: u32,
    /// How long the connections were held, seconds.
    pub seconds: f64,
    /// Seconds spent connecting.
    pub setup_seconds: f64,
    /// Server PID.
    pub server_pid: Option<u32>,
    /// Its CPU affinity.
    pub server_cpus: Option<String>,
    /// Server VmRSS before the first connection, KiB.
    pub rss_before_kib: Option<u64>,
    /// Highest server VmRSS sampled while holding, KiB.
    pub rss_peak_kib: Option<u64>,
    /// Server VmRSS at the end of the hold, KiB.
    pub rss_end_kib: Option<u64>,
    /// Server VmHWM at the end, KiB.
    pub vm_hwm_kib: Option<u64>,
    /// (peak - before) / connected, KiB.
    pub kib_per_connection: Option<f64>,
    /// Server CPU while holding, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// The bench's own VmRSS at the end, KiB.
    pub bench_rss_kib: Option<u64>,
    /// What a reader must not miss.
    pub warnings: Vec<String>,
}

/// Opens `n` idle connections, holds them `--seconds`, and reports the server's memory.
pub async fn run(args: &Args, target: &mut Target, n: usize) -> Result<IdleReport> {
    let pid = target.pid;
    let rss = || pid.and_then(|p| procfs::rss_kib(Proc::Pid(p)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss();

    let mut a = args.clone();
    a.rooms = n.div_ceil(args.per_room as usize);
    let started = Instant::now();
    let (members, _codes, failures) = connect_all(&a, target, None, Some(n)).await;
    let setup_seconds = started.elapsed().as_secs_f64();
    let connected = members.iter().flatten().count() as u64;

    // Let the last handshakes and presence messages finish before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = pid.and_then(|p| procfs::cpu_us(Proc::Pid(p)));
    let hold_started = Instant::now();
    let mut peak = rss();
    let hold = Duration::from_secs_f64(args.seconds.max(0.0));
    while hold_started.elapsed() < hold {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss());
    }
    let cpu1 = pid.and_then(|p| procfs::cpu_us(Proc::Pid(p)));
    let held = hold_started.elapsed().as_secs_f64().max(1e-9);
    let alive = members
        .iter()
        .flatten()
        .filter(|m| m.client.closed().is_none())
        .count() as u64;
    let rss_end = rss();
    let kib_per_connection = match (peak, rss_before) {
        (Some(p), Some(b)) if connected > 0 => {
            Some((p.saturating_sub(b) as f64 / connected as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let mut warnings = Vec::new();
    if !failures.is_empty() {
        warnings.push(format!("{} connections failed", failures.len()));
    }
    if alive < connected {
        warnings.push(format!(
            "{} connections closed while idle",
            connected - alive
        ));
    }
    if !target.running() {
        warnings.push("THE SERVER IS NOT RUNNING after the run".into());
    }
    let report = IdleReport {
        label: args.label.clone(),
        mode: "idle",
        transport: if args.transport.for_member(0).is_wt() {
            "wt"
        } else {
            "ws"
        },
        connections: n,
        connected,
        connect_failures: failures.len() as u64,
        connect_errors: failures.into_iter().take(5).collect(),
        alive_at_end: alive,
        per_room: args.per_room,
        seconds: args.seconds,
        setup_seconds: (setup_seconds * 100.0).round() / 100.0,
        server_pid: pid,
        server_cpus: target.cpus(),
        rss_before_kib: rss_before,
        rss_peak_kib: peak,
        rss_end_kib: rss_end,
        vm_hwm_kib: pid.and_then(|p| procfs::hwm_kib(Proc::Pid(p))),
        kib_per_connection,
        server_cpu_pct: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(((b - a) as f64 / 1e4 / held * 10.0).round() / 10.0),
            _ => None,
        },
        bench_rss_kib: procfs::rss_kib(Proc::Me),
        warnings,
    };
    drop(members);
    Ok(report)
}

impl IdleReport {
    /// The table for people.
    pub fn print_table(&self) {
        println!(
            "== jam-bench idle{}: {} {} connections in rooms of {}, held {} s",
            self.label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default(),
            self.connections,
            self.transport,
            self.per_room,
            self.seconds
        );
        let row = |k: &str, v: String| println!("   {k:<28} {v}");
        let kib = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} KiB"));
        row(
            "placement",
            format!(
                "server pid {} on CPUs {}, bench on CPUs {}",
                self.server_pid.map_or("?".into(), |p| p.to_string()),
                self.server_cpus.as_deref().unwrap_or("?"),
                procfs::cpus(Proc::Me).as_deref().unwrap_or("?")
            ),
        );
        row(
            "connections",
            format!(
                "{} connected in {:.1} s, {} failed, {} alive at the end",
                self.connected, self.setup_seconds, self.connect_failures, self.alive_at_end
            ),
        );
        row("server RSS before", kib(self.rss_before_kib));
        row(
            "server RSS peak / end",
            format!("{} / {}", kib(self.rss_peak_kib), kib(self.rss_end_kib)),
        );
        row(
            "server RSS per connection",
            self.kib_per_connection
                .map_or("n/a".into(), |v| format!("{v} KiB")),
        );
        row(
            "server CPU while idle",
            self.server_cpu_pct
                .map_or("n/a".into(), |v| format!("{v} % of a core")),
        );
        row("bench RSS", kib(self.bench_rss_kib));
        for e in &self.connect_errors {
            row("connect error", e.clone());
        }
        for w in &self.warnings {
            println!("   !!! {w}");
        }
    }
}
