//! `jam-bench`: the benchmark tool of jam-server, built on the crate's own Rust client
//! with one connection per simulated participant.
//!
//! ## How the parts fit
//!
//! ```text
//!   cli       flags: target, load shape, modes (idle, knee, floor, smoke)
//!   target    spawn jam-server on free ports (or resolve --url); PID, /stats
//!   hostile   --hostile: attacks from 127.0.0.2-6 beside the rooms, on a thread of their own
//!   run       connect everyone, open-loop generator, churn, drain  ──► ledger
//!   idle_spin the generator's idle spinning (run adds, monitor reads)
//!   wire      the note event and its stamp [sender, seq, intended, actual]
//!   ledger    books of sends and deliveries; receivers write through a client Tap
//!   monitor   a thread sampling /proc and /stats over the measured window
//!   counters  context switches, system calls (perf), QUIC packets and ACKs per delivery
//!   report    JSON line and table;  idle: memory per idle connection
//!   summary   Markdown tables from collected JSON lines
//!   floor     --floor: a message's round trip to this program spawned as an echo peer
//!             over UDP, QUIC, WebTransport or TCP, with no server: the machine's floor
//! ```
//!
//! Every client lives in this process, so every timestamp is on one monotonic clock (one
//! `Instant` epoch) and the latency is truly one-way: from when the sender *meant* to
//! send to when the receiver's reader got the bytes.

mod cli;
mod counters;
mod floor;
mod hostile;
mod idle;
mod idle_spin;
mod ledger;
mod monitor;
mod procfs;
mod report;
mod run;
mod summary;
mod target;
mod wire;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::cli::{Args, Pattern, Transport};
use crate::report::Report;
use crate::target::Target;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::from_command_line();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jam-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jam-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(args: Args) -> Result<ExitCode> {
    if let Some(kind) = args.floor_echo {
        floor::echo(kind, args.floor_addr).await?;
        return Ok(ExitCode::SUCCESS);
    }
    procfs::init();
    let epoch = Instant::now();
    if let Some(file) = &args.summarize {
        summary::print(file)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.smoke {
        return smoke(&args, epoch).await;
    }
    if let Some(n) = args.idle {
        let mut target = Target::open(&args, args.per_room).await?;
        let report = idle::run(&args, &mut target, n).await?;
        if let Some(note) = target.stop() {
            eprintln!("jam-bench: {note}");
        }
        if !args.json {
            report.print_table();
        }
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(kind) = args.floor {
        let report = floor::run(&args, kind).await?;
        if !args.json {
            report.print_table();
        }
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(steps) = args.knee.clone() {
        return knee(&args, &steps, epoch).await;
    }
    if args.hostile {
        let (quiet, attacked) = hostile_pair(&args, epoch).await?;
        emit(&args, &quiet);
        emit(&args, &attacked);
        return Ok(ExitCode::SUCCESS);
    }
    let report = once(&args, epoch).await?;
    emit(&args, &report);
    Ok(ExitCode::SUCCESS)
}

/// The hostile neighbour: the load quiet, then the same load under attack, each against
/// a fresh server; the second report carries both runs' figures.
async fn hostile_pair(args: &Args, epoch: Instant) -> Result<(Report, Report)> {
    let label = |what: &str| {
        Some(match &args.label {
            Some(l) => format!("{l} {what}"),
            None => what.to_owned(),
        })
    };
    let mut a = args.clone();
    a.hostile = false;
    a.label = label("quiet");
    let quiet = once(&a, epoch).await?;
    a.hostile = true;
    a.label = label("hostile neighbour");
    let mut attacked = once(&a, epoch).await?;
    if let Some(h) = attacked.hostile.as_mut() {
        h.quiet = Some(report::Brief::of(&quiet));
    }
    Ok((quiet, attacked))
}

/// The room size a spawned server must allow: the players plus churners in flight.
fn max_room_size(args: &Args) -> u32 {
    let churners = args
        .churn
        .map(|r| (r * (args.churn_hold_ms as f64 / 1000.0 + 0.5) * 2.0).ceil() as u32)
        .unwrap_or(0);
    args.per_room + churners + 4
}

/// One run against a fresh target (or `--url`).
async fn once(args: &Args, epoch: Instant) -> Result<Report> {
    let mut target = Target::open(args, max_room_size(args))
        .await
        .context("opening the target")?;
    let report = run::run(args, &mut target, epoch).await;
    if let Some(note) = target.stop() {
        eprintln!("jam-bench: {note}");
    }
    report
}

fn emit(args: &Args, report: &Report) {
    if !args.json {
        report.print_table();
    }
    println!("{}", report.json());
}

/// Raises the room count step by step until p99 or delivery misses.
async fn knee(args: &Args, steps: &[usize], epoch: Instant) -> Result<ExitCode> {
    let floor = if args.transport.is_reliable() {
        1.0
    } else {
        0.999
    };
    let mut held: Option<Report> = None;
    let mut failed: Option<(Report, String)> = None;
    for &rooms in steps {
        let mut a = args.clone();
        a.rooms = rooms;
        a.label = Some(format!(
            "{}knee {} rooms",
            args.label
                .as_deref()
                .map(|l| format!("{l} "))
                .unwrap_or_default(),
            rooms
        ));
        let report = once(&a, epoch).await?;
        emit(&a, &report);
        let mut why = Vec::new();
        if report.latency_us.p99 > args.knee_p99_us as f64 {
            why.push(format!(
                "p99 {:.0} µs > {} µs",
                report.latency_us.p99, args.knee_p99_us
            ));
        }
        if report.delivery_ratio < floor {
            why.push(format!(
                "delivery {:.4} % < {} %",
                report.delivery_ratio * 100.0,
                floor * 100.0
            ));
        }
        if report.connect_failures > 0 || !report.server.running {
            why.push("connections failed or the server died".into());
        }
        if why.is_empty() {
            held = Some(report);
        } else {
            failed = Some((report, why.join(", ")));
            break;
        }
    }
    let brief = |r: &Report| {
        serde_json::json!({
            "rooms": r.rooms,
            "participants": r.participants,
            "deliveriesPerSec": r.deliveries_per_sec,
            "p50Us": r.latency_us.p50,
            "p99Us": r.latency_us.p99,
            "deliveryRatio": r.delivery_ratio,
            "serverCpuUsPerDelivery": r.server.cpu_us_per_delivery,
            "serverCpuPct": r.server.cpu_pct,
            "benchBusyPct": r.bench.busy_pct,
            "behindSchedule": r.bench.behind_schedule,
        })
    };
    let summary = serde_json::json!({
        "label": args.label,
        "mode": "knee",
        "transport": args.transport.as_str(),
        "pattern": args.pattern.as_str(),
        "perRoom": args.per_room,
        "rateHz": args.rate,
        "p99LimitUs": args.knee_p99_us,
        "deliveryFloor": floor,
        "held": held.as_ref().map(brief),
        "failedAt": failed.as_ref().map(|(r, why)| {
            let mut b = brief(r);
            b["why"] = Value::from(why.clone());
            b
        }),
    });
    if !args.json {
        match &held {
            Some(r) => println!(
                "== knee ({}): highest load that held: {} rooms x {} = {:.0} deliveries/s at p99 {:.0} µs",
                args.transport.as_str(),
                r.rooms,
                r.per_room,
                r.deliveries_per_sec,
                r.latency_us.p99
            ),
            None => println!("== knee ({}): no step held", args.transport.as_str()),
        }
        match &failed {
            Some((r, why)) => println!("   first miss at {} rooms: {why}", r.rooms),
            None => println!("   every step held (raise the list to find the knee)"),
        }
    }
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Keys every load report must carry (the smoke test checks the JSON, not the struct).
const REQUIRED: &[&str] = &[
    "transport",
    "eventsSent",
    "deliveriesExpected",
    "deliveriesReceived",
    "deliveryRatio",
    "deliveriesPerSec",
    "latencyUs.p50",
    "latencyUs.p90",
    "latencyUs.p99",
    "latencyUs.p999",
    "latencyUs.max",
    "fanoutSkewUs.p99",
    "connectFailures",
    "duplicates",
    "reordered",
    "gaps",
    "server.cpuUsPerDelivery",
    "server.rssPeakKib",
    "bench.cpuPct",
    "bench.busyPct",
    "bench.lagUs.max",
    "bench.behindSchedule",
];

/// Keys the hostile neighbour's report must carry besides [`REQUIRED`].
const REQUIRED_HOSTILE: &[&str] = &[
    "hostile.quiet.p50Us",
    "hostile.quiet.p99Us",
    "hostile.quiet.maxUs",
    "hostile.attacked.p50Us",
    "hostile.attacked.p99Us",
    "hostile.attacked.maxUs",
    "hostile.attacks.floodConnections",
    "hostile.attacks.historyBytes",
    "hostile.attacks.slowReaders",
    "hostile.attacks.pings",
    "hostile.attacks.quicInitials",
    "hostile.attacks.serverQuicRetries",
];

/// The keys of `keys` that `json` lacks (or holds `null` at).
fn missing<'a>(json: &Value, keys: &[&'a str]) -> Vec<&'a str> {
    keys.iter()
        .copied()
        .filter(|key| {
            key.split('.')
                .try_fold(json, |v, k| v.get(k))
                .is_none_or(Value::is_null)
        })
        .collect()
}

/// The CI smoke test: each transport briefly; fails on a missing field, on less than
/// 100 % delivery on a reliable transport, or on no delivery at all.
async fn smoke(args: &Args, epoch: Instant) -> Result<ExitCode> {
    let mut problems = Vec::new();
    for transport in [Transport::Ws, Transport::WtStream, Transport::WtDatagram] {
        let mut a = args.clone();
        a.transport = transport;
        a.rooms = 2;
        a.per_room = 4;
        a.rate = 20.0;
        a.seconds = 2.0;
        a.warmup = 0.5;
        a.drain = 2.0;
        a.pattern = Pattern::Metronome;
        a.label = Some(format!("smoke {}", transport.as_str()));
        let name = transport.as_str();
        let report = match once(&a, epoch).await {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        emit(&a, &report);
        let json: Value = serde_json::from_str(&report.json())?;
        for key in missing(&json, REQUIRED) {
            problems.push(format!("{name}: the JSON report has no `{key}`"));
        }
        if report.deliveries_received == 0 {
            problems.push(format!("{name}: nothing was delivered"));
        }
        if transport.is_reliable() && report.delivery_ratio < 1.0 {
            problems.push(format!(
                "{name}: delivery {:.4} % on a reliable transport",
                report.delivery_ratio * 100.0
            ));
        }
        if report.duplicates > 0 || (transport.is_reliable() && report.reordered > 0) {
            problems.push(format!(
                "{name}: {} duplicates, {} reordered",
                report.duplicates, report.reordered
            ));
        }
        let counters = &report.server.counters;
        if counters.context_switches_per_delivery.is_none() {
            problems.push(format!("{name}: no context switches counted"));
        }
        if transport != Transport::Ws
            && (counters.quic_packets_from_server.unwrap_or(0) == 0
                || counters.quic_acks_to_server.is_none())
        {
            problems.push(format!("{name}: no QUIC packet or ACK counts"));
        }
        if report.connect_failures > 0 || report.disconnected > 0 || !report.server.running {
            problems.push(format!(
                "{name}: {} connect failures, {} disconnected, server running: {}",
                report.connect_failures, report.disconnected, report.server.running
            ));
        }
    }
    // The hostile neighbour, briefly, on WebSocket: both runs, the attacks, every field.
    let mut a = args.clone();
    a.transport = Transport::Ws;
    a.rooms = 2;
    a.per_room = 4;
    a.rate = 20.0;
    a.seconds = 2.0;
    a.warmup = 0.5;
    a.drain = 2.0;
    a.pattern = Pattern::Metronome;
    a.label = Some("smoke".into());
    match hostile_pair(&a, epoch).await {
        Ok((quiet, attacked)) => {
            emit(&a, &quiet);
            emit(&a, &attacked);
            let json: Value = serde_json::from_str(&attacked.json())?;
            for key in missing(&json, REQUIRED)
                .into_iter()
                .chain(missing(&json, REQUIRED_HOSTILE))
            {
                problems.push(format!("hostile: the JSON report has no `{key}`"));
            }
            if attacked.deliveries_received == 0 || !attacked.server.running {
                problems.push("hostile: nothing delivered, or the server died".into());
            }
            if attacked
                .hostile
                .as_ref()
                .is_some_and(|h| h.attacks.quic_initials == 0)
            {
                problems.push("hostile: no QUIC Initial was sent".into());
            }
        }
        Err(e) => problems.push(format!("hostile: {e:#}")),
    }
    if problems.is_empty() {
        println!("jam-bench smoke: ok (ws, wt-stream, wt-datagram, hostile neighbour)");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("jam-bench smoke: FAILED: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
