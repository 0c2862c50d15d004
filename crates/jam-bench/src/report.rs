//! What a run found, as one JSON line (`--json`) and as a table for people. Field names
//! are camelCase; times are microseconds with one decimal; memory is KiB.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::cli::Args;
use crate::counters::{CountersReport, QuicTotals};
use crate::hostile::AttackReport;
use crate::ledger::{Ledger, PATHS};
use crate::monitor::Window;
use crate::procfs::{self, Proc};
use crate::target::Target;

/// A latency distribution in µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn us(ns: f64) -> f64 {
    (ns / 100.0).round() / 10.0
}

impl Percentiles {
    /// From a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |q: f64| us(h.value_at_quantile(q) as f64);
        Percentiles {
            count: h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: us(h.max() as f64),
            mean: us(h.mean()),
        }
    }
}

/// The server side of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerReport {
    /// PID, when known.
    pub pid: Option<u32>,
    /// Whether the bench started it.
    pub spawned: bool,
    /// Its CPU affinity.
    pub cpus: Option<String>,
    /// CPU time over the window, µs.
    pub cpu_us: Option<u64>,
    /// CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    /// CPU time per delivery the server made in the window, µs.
    pub cpu_us_per_delivery: Option<f64>,
    /// Highest VmRSS sampled in the window, KiB.
    pub rss_peak_kib: Option<u64>,
    /// VmHWM at the end of the window, KiB.
    pub vm_hwm_kib: Option<u64>,
    /// Growth of the `/stats` counters over the window.
    pub stats: Option<Value>,
    /// Whether it was still running after the run.
    pub running: bool,
    /// Where a delivery's cost goes: context switches, system calls, QUIC packets and
    /// ACKs, each also per delivery.
    pub counters: CountersReport,
}

/// The bench side of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    /// Its CPU affinity.
    pub cpus: Option<String>,
    /// Runtime worker threads.
    pub threads: usize,
    /// CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    /// The same without the generator's idle spinning (waiting for the next send time):
    /// the work the bench did, percent of one core.
    pub busy_pct: Option<f64>,
    /// Actual minus intended send time.
    pub lag_us: Percentiles,
    /// Sends more than 1 ms late.
    pub late_sends: u64,
    /// Whether the generator fell more than 1 ms behind at any point.
    pub behind_schedule: bool,
    /// Seconds spent connecting.
    pub setup_seconds: f64,
}

/// What the churning participants saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChurnReport {
    /// Joins a second asked for.
    pub rate: f64,
    /// Cycles started.
    pub attempted: u64,
    /// Joins answered.
    pub joined: u64,
    /// Leaves answered.
    pub left: u64,
    /// Cycles that failed.
    pub failed: u64,
    /// Fresh connection plus join, µs.
    pub join_us: Percentiles,
    /// The first failure.
    pub first_error: Option<String>,
}

impl ChurnReport {
    /// From the churn task's counters.
    pub fn new(
        rate: f64,
        attempted: u64,
        joined: u64,
        left: u64,
        failed: u64,
        join: &Histogram<u64>,
        first_error: Option<String>,
    ) -> Self {
        ChurnReport {
            rate,
            attempted,
            joined,
            left,
            failed,
            join_us: Percentiles::of(join),
            first_error,
        }
    }
}

/// Latency of the events that arrived on one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// Deliveries.
    pub count: u64,
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Largest, µs.
    pub max: f64,
}

/// One load run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `--label`.
    pub label: Option<String>,
    /// `load`.
    pub mode: &'static str,
    /// `--transport`.
    pub transport: &'static str,
    /// `--pattern`.
    pub pattern: &'static str,
    /// Datagram encoding.
    pub encoding: &'static str,
    /// Rooms.
    pub rooms: usize,
    /// Participants per room.
    pub per_room: u32,
    /// Events a second per participant.
    pub rate_hz: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Warm-up seconds.
    pub warmup: f64,
    /// Payload JSON size asked for.
    pub payload_bytes: usize,
    /// Participants connected.
    pub participants: u64,
    /// Participants that could not connect or join.
    pub connect_failures: u64,
    /// The first few connect failures.
    pub connect_errors: Vec<String>,
    /// Participants whose connection closed during the run.
    pub disconnected: u64,
    /// Events sent in the window.
    pub events_sent: u64,
    /// Sends the transport refused.
    pub send_failures: u64,
    /// Deliveries owed for those events.
    pub deliveries_expected: u64,
    /// Distinct deliveries received.
    pub deliveries_received: u64,
    /// Received over expected.
    pub delivery_ratio: f64,
    /// Received per second of the window.
    pub deliveries_per_sec: f64,
    /// Intended send time to arrival.
    pub latency_us: Percentiles,
    /// Actual send time to arrival.
    pub latency_from_send_us: Percentiles,
    /// Latency by arrival path.
    pub by_path: BTreeMap<&'static str, PathReport>,
    /// First to last receiver of one event.
    pub fanout_skew_us: Percentiles,
    /// Deliveries owed and not received.
    pub lost: u64,
    /// Events nobody received.
    pub lost_events: u64,
    /// The most deliveries one sender lost.
    pub worst_sender_lost: u64,
    /// Deliveries received twice.
    pub duplicates: u64,
    /// Deliveries that arrived after a later event of the same sender.
    pub reordered: u64,
    /// Forward jumps in a sender's sequence seen by a receiver.
    pub gaps: u64,
    /// The server.
    pub server: ServerReport,
    /// The bench.
    pub bench: BenchReport,
    /// Kernel UDP receive-buffer drops in the window (whole network namespace).
    pub udp_rcvbuf_errors: Option<u64>,
    /// How busy each CPU of the machine was in the window, percent (server, bench and
    /// anything else running).
    pub machine_cpu_busy_pct: Vec<f64>,
    /// The machine's 1-minute load average at the end.
    pub loadavg: Option<f64>,
    /// Join/leave churn, when asked for.
    pub churn: Option<ChurnReport>,
    /// The room clock as a client estimates it (docs/protocol.md §7), before the window.
    pub clock: Option<ClockReport>,
    /// The hostile neighbour (`--hostile`): the attacks and the rooms' latency beside the
    /// quiet run's.
    pub hostile: Option<HostileReport>,
    /// What a reader must not miss.
    pub warnings: Vec<String>,
}

/// The rooms' latency in one run, for the hostile neighbour's comparison.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Brief {
    /// Median, µs (from the intended send time).
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Received over expected.
    pub delivery_ratio: f64,
    /// Participants whose connection closed during the run.
    pub disconnected: u64,
}

impl Brief {
    /// The latency and delivery of `report`.
    pub fn of(report: &Report) -> Brief {
        Brief {
            p50_us: report.latency_us.p50,
            p99_us: report.latency_us.p99,
            max_us: report.latency_us.max,
            delivery_ratio: report.delivery_ratio,
            disconnected: report.disconnected,
        }
    }
}

/// The hostile neighbour: the same load quiet and under attack, each on a fresh server.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostileReport {
    /// The run without attacks (`None` until the pair is complete).
    pub quiet: Option<Brief>,
    /// This run, under attack.
    pub attacked: Brief,
    /// What the attackers did.
    pub attacks: AttackReport,
}

/// One participant's NTP-style estimate of the server clock. The bench and a spawned
/// server share this machine's clock, so the true offset is 0 and `offset_ms` is the
/// estimate's error.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockReport {
    /// Estimated `server - local`, ms.
    pub offset_ms: f64,
    /// The estimate's bound: half the shortest round trip, ms.
    pub error_ms: f64,
    /// The shortest round trip, ms.
    pub rtt_ms: f64,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

impl Report {
    /// Builds the report of a finished run.
    #[allow(clippy::too_many_arguments)]
    pub fn from_run(
        args: &Args,
        l: &Ledger,
        w: &Window,
        target: &Target,
        connect_errors: Vec<String>,
        disconnected: u64,
        churn: Option<ChurnReport>,
        setup_seconds: f64,
        server_running: bool,
        quic: Option<QuicTotals>,
    ) -> Report {
        let secs = w.seconds().max(1e-9);
        let participants = (args.rooms * args.per_room as usize - connect_errors.len()) as u64;
        let server_deliveries = w.stat("deliveries");
        let cpu_us = w.server_cpu_us();
        let per_delivery = match (cpu_us, server_deliveries.or(Some(l.received))) {
            (Some(c), Some(d)) if d > 0 => Some(round(c as f64 / d as f64, 2)),
            _ => None,
        };
        let lag = Percentiles::of(&l.lag);
        let late_sends = l.lag.count_between(1_000_001, u64::MAX);
        let bench_cpu_pct = w.bench_cpu_us().map(|c| round(c as f64 / 1e4 / secs, 1));
        let mut by_path = BTreeMap::new();
        for (i, name) in PATHS.iter().enumerate() {
            let h = &l.by_path[i];
            if !h.is_empty() {
                let p = Percentiles::of(h);
                by_path.insert(
                    *name,
                    PathReport {
                        count: p.count,
                        p50: p.p50,
                        p99: p.p99,
                        max: p.max,
                    },
                );
            }
        }
        let mut r = Report {
            label: args.label.clone(),
            mode: "load",
            transport: args.transport.as_str(),
            pattern: args.pattern.as_str(),
            encoding: match args.encoding {
                crate::cli::Enc::Json => "json",
                crate::cli::Enc::Msgpack => "msgpack",
            },
            rooms: args.rooms,
            per_room: args.per_room,
            rate_hz: args.rate,
            seconds: args.seconds,
            warmup: args.warmup,
            payload_bytes: args.payload_bytes,
            participants,
            connect_failures: connect_errors.len() as u64,
            connect_errors: connect_errors.into_iter().take(5).collect(),
            disconnected,
            events_sent: l.sent_in_window,
            send_failures: l.send_failures,
            deliveries_expected: l.expected,
            deliveries_received: l.received,
            delivery_ratio: if l.expected == 0 {
                0.0
            } else {
                round(l.received as f64 / l.expected as f64, 6)
            },
            deliveries_per_sec: round(l.received as f64 / args.seconds.max(1e-9), 1),
            latency_us: Percentiles::of(&l.latency),
            latency_from_send_us: Percentiles::of(&l.from_send),
            by_path,
            fanout_skew_us: Percentiles::of(&l.skew()),
            lost: l.outstanding(),
            lost_events: l.lost_events(),
            worst_sender_lost: l.worst_sender().1,
            duplicates: l.duplicates,
            reordered: l.reordered,
            gaps: l.gaps,
            server: ServerReport {
                pid: target.pid,
                spawned: target.spawned(),
                cpus: target.cpus(),
                cpu_us,
                cpu_pct: cpu_us.map(|c| round(c as f64 / 1e4 / secs, 1)),
                cpu_us_per_delivery: per_delivery,
                rss_peak_kib: w.rss_peak_kib,
                vm_hwm_kib: w.hwm_kib,
                stats: w.stats_delta(),
                running: server_running,
                counters: CountersReport::new(
                    server_deliveries.unwrap_or(l.received),
                    w.server_context_switches(),
                    w.syscalls.clone(),
                    quic,
                ),
            },
            bench: BenchReport {
                cpus: procfs::cpus(Proc::Me),
                threads: args.threads,
                cpu_pct: bench_cpu_pct,
                busy_pct: w.bench_busy_us().map(|c| round(c as f64 / 1e4 / secs, 1)),
                behind_schedule: lag.max > 1000.0,
                lag_us: lag,
                late_sends,
                setup_seconds: round(setup_seconds, 2),
            },
            udp_rcvbuf_errors: w.udp_rcvbuf_errors(),
            machine_cpu_busy_pct: w.cpu_busy_pct(),
            loadavg: procfs::loadavg(),
            churn,
            clock: None,
            hostile: None,
            warnings: Vec::new(),
        };
        r.warnings = r.warn();
        r
    }

    fn warn(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.bench.behind_schedule {
            w.push(format!(
                "GENERATOR FELL BEHIND SCHEDULE: up to {:.1} ms late, {} sends more than 1 ms late (latency still counts from the intended time)",
                self.bench.lag_us.max / 1000.0,
                self.bench.late_sends
            ));
        }
        if self
            .bench
            .cpu_pct
            .is_some_and(|c| c > 90.0 * self.bench.threads as f64)
        {
            w.push(
                "the bench used over 90 % of its CPU: the load generator may be the bottleneck"
                    .into(),
            );
        }
        if self.connect_failures > 0 {
            w.push(format!(
                "{} participants could not connect",
                self.connect_failures
            ));
        }
        if self.disconnected > 0 {
            w.push(format!(
                "{} connections closed during the run",
                self.disconnected
            ));
        }
        if self.send_failures > 0 {
            w.push(format!("{} sends failed", self.send_failures));
        }
        let ours = self.server.cpu_pct.unwrap_or(0.0) + self.bench.cpu_pct.unwrap_or(0.0);
        let all: f64 = self.machine_cpu_busy_pct.iter().sum();
        if all - ours > 25.0 {
            w.push(format!(
                "other processes used about {:.0} % of a core during the window: numbers are noisy",
                all - ours
            ));
        }
        if !self.server.running {
            w.push("THE SERVER IS NOT RUNNING after the run".into());
        }
        if self.server.stats.is_none() {
            w.push("no /stats from the server: CPU per delivery uses the bench's own count".into());
        }
        if self.udp_rcvbuf_errors.is_some_and(|e| e > 0) {
            w.push(format!(
                "{} UDP datagrams dropped by full socket receive buffers (kernel)",
                self.udp_rcvbuf_errors.unwrap_or(0)
            ));
        }
        w
    }

    /// The one-line JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The table for people.
    pub fn print_table(&self) {
        println!(
            "== jam-bench{}: {} x {} on {}, {} at {} Hz/participant, payload {} B, {} s (+{} s warm-up)",
            self.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default(),
            self.rooms,
            self.per_room,
            self.transport,
            self.pattern,
            self.rate_hz,
            self.payload_bytes,
            self.seconds,
            self.warmup,
        );
        println!(
            "   placement: server pid {} on CPUs {}, bench on CPUs {} ({} thread{})",
            self.server.pid.map_or("?".into(), |p| p.to_string()),
            self.server.cpus.as_deref().unwrap_or("?"),
            self.bench.cpus.as_deref().unwrap_or("?"),
            self.bench.threads,
            if self.bench.threads == 1 { "" } else { "s" },
        );
        let row = |k: &str, v: String| println!("   {k:<28} {v}");
        row(
            "participants",
            format!(
                "{} connected, {} connect failures, {} disconnected",
                self.participants, self.connect_failures, self.disconnected
            ),
        );
        row(
            "events sent",
            format!(
                "{} ({} send failures)",
                self.events_sent, self.send_failures
            ),
        );
        row("deliveries expected", self.deliveries_expected.to_string());
        row(
            "deliveries received",
            format!(
                "{} ({:.4} %), lost {}, duplicates {}, reordered {}, gaps {}",
                self.deliveries_received,
                self.delivery_ratio * 100.0,
                self.lost,
                self.duplicates,
                self.reordered,
                self.gaps
            ),
        );
        row("deliveries/s", format!("{:.0}", self.deliveries_per_sec));
        println!(
            "   {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "µs", "p50", "p90", "p99", "p99.9", "max"
        );
        let lat = |k: &str, p: &Percentiles| {
            println!(
                "   {k:<28} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                p.p50, p.p90, p.p99, p.p999, p.max
            )
        };
        lat("latency (from intended)", &self.latency_us);
        lat("latency (from actual send)", &self.latency_from_send_us);
        lat("fan-out skew", &self.fanout_skew_us);
        lat("generator lag", &self.bench.lag_us);
        if let Some(c) = &self.clock {
            row(
                "clock estimate (ms)",
                format!(
                    "offset {:+.3} (truth 0 on one machine), bound ±{:.3}, best round trip {:.3}",
                    c.offset_ms, c.error_ms, c.rtt_ms
                ),
            );
        }
        for (path, p) in &self.by_path {
            row(
                &format!("  arrived via {path}"),
                format!(
                    "{} deliveries, p50 {:.1}, p99 {:.1}, max {:.1} µs",
                    p.count, p.p50, p.p99, p.max
                ),
            );
        }
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v}{unit}"));
        row(
            "server CPU",
            format!(
                "{} ({} µs per delivery)",
                opt(self.server.cpu_pct, " % of a core"),
                opt(self.server.cpu_us_per_delivery, "")
            ),
        );
        row(
            "server memory",
            format!(
                "peak RSS {} KiB in window, VmHWM {} KiB",
                self.server
                    .rss_peak_kib
                    .map_or("n/a".into(), |v| v.to_string()),
                self.server
                    .vm_hwm_kib
                    .map_or("n/a".into(), |v| v.to_string())
            ),
        );
        for (k, v) in self.server.counters.lines() {
            row(k, v);
        }
        if let Some(s) = &self.server.stats {
            row("server /stats (window)", s.to_string());
        }
        row(
            "bench CPU",
            format!(
                "{} ({} busy, idle spinning excluded)",
                opt(self.bench.cpu_pct, " % of a core"),
                opt(self.bench.busy_pct, " %")
            ),
        );
        row(
            "machine CPUs busy",
            format!(
                "{:?} % (all processes), load average {}",
                self.machine_cpu_busy_pct,
                self.loadavg.map_or("?".into(), |l| l.to_string())
            ),
        );
        if let Some(e) = self.udp_rcvbuf_errors {
            row("UDP rcvbuf drops (kernel)", e.to_string());
        }
        if let Some(c) = &self.churn {
            row(
                "churn",
                format!(
                    "{}/s asked: {} cycles, {} joined, {} left, {} failed; connect+join p50 {:.0} µs, p99 {:.0} µs{}",
                    c.rate,
                    c.attempted,
                    c.joined,
                    c.left,
                    c.failed,
                    c.join_us.p50,
                    c.join_us.p99,
                    c.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
                ),
            );
        }
        if let Some(h) = &self.hostile {
            let brief = |b: &Brief| {
                format!(
                    "p50 {:.1}, p99 {:.1}, max {:.1} µs, delivered {:.4} %, {} disconnected",
                    b.p50_us,
                    b.p99_us,
                    b.max_us,
                    b.delivery_ratio * 100.0,
                    b.disconnected
                )
            };
            if let Some(q) = &h.quiet {
                row("rooms, quiet", brief(q));
            }
            row("rooms, hostile neighbour", brief(&h.attacked));
            let a = &h.attacks;
            let opt = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
            row(
                "attacks",
                format!(
                    "{} connections held; {} rooms, {} KiB of history; {} slow readers sent {} KiB; {} pings; {} QUIC Initials, {} Retry back",
                    a.flood_connections,
                    a.history_rooms,
                    a.history_bytes / 1024,
                    a.slow_readers,
                    a.slow_bytes / 1024,
                    a.pings,
                    a.quic_initials,
                    a.quic_retries_received
                ),
            );
            row(
                "server after the attacks",
                format!(
                    "{} QUIC retries, {} handshakes in progress, {} slow consumers cut off, {} connections refused",
                    opt(a.server_quic_retries),
                    opt(a.server_quic_handshakes),
                    opt(a.server_slow_consumers),
                    opt(a.server_connections_refused)
                ),
            );
            row(
                "attackers' CPU",
                a.attacker_cpu_us.map_or("?".into(), |us| {
                    format!("{:.0} ms, on the bench's CPUs", us as f64 / 1000.0)
                }),
            );
            for e in &a.errors {
                row("attacker error", e.clone());
            }
        }
        for e in &self.connect_errors {
            row("connect error", e.clone());
        }
        for w in &self.warnings {
            println!("   !!! {w}");
        }
    }
}
