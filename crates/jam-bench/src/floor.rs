//! Floor mode (`--floor KIND`): what this machine costs to carry one small message from one
//! process to another and back, with nothing of jam-server in the way, so that the
//! server's own share of a latency can be told from the machine's.
//!
//! jam-bench spawns itself as the echo peer ([`peer`]: `--floor-echo KIND`, pinned with
//! `taskset` to `--server-cpus`, CPU 1 by default), then sends `--floor-bytes` messages
//! over plain UDP, QUIC datagrams, WebTransport datagrams or TCP with `TCP_NODELAY`, and
//! times each round trip. This file owns the run: its plan, the two loops, the books and
//! the report.
//!
//! Two shapes: open loop (`--rate` messages a second whatever comes back, 1,000 unless
//! given) and closed loop (`--floor-inflight N`: N messages in flight, each echo sending
//! the next at once, as fast as the pair goes). Both sides wait in the kernel between
//! messages (no spinning), so each one-way trip includes one wake-up, as a relayed note
//! does. Each message carries its sequence number, its send time and whether it is
//! measured, so the echo is a pure mirror and the measuring side keeps no table.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Args, FloorKind};
use crate::ledger;
use crate::procfs::{self, Proc};
use crate::report::Percentiles;
use crate::run::now_ns;

mod peer;

pub use peer::echo;
use peer::{connect, write_message, Echo, Echoed, Link, Rx, HEADER};

/// Longest silence from the echo peer while messages are owed, before the run fails.
const ECHO_TIMEOUT: Duration = Duration::from_secs(2);

/// Closed loop over datagrams: a message not echoed in this long is taken as lost and
/// another is sent in its place, so a loss does not shrink the loop for good.
const LOSS_WAIT: Duration = Duration::from_millis(100);

/// What a floor run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FloorReport {
    /// `--label`.
    pub label: Option<String>,
    /// `floor`.
    pub mode: &'static str,
    /// `udp`, `quic`, `wt` or `tcp`.
    pub kind: &'static str,
    /// `open` (at `rateHz`) or `closed` (`inFlight` messages kept in flight).
    pub shape: &'static str,
    /// Messages a second asked for (open loop).
    pub rate_hz: Option<f64>,
    /// Messages kept in flight (closed loop).
    pub in_flight: Option<usize>,
    /// Bytes in each message.
    pub message_bytes: usize,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Warm-up before it, seconds.
    pub warmup: f64,
    /// Messages sent in the window.
    pub messages: u64,
    /// Of those, the ones whose echo came back.
    pub echoes: u64,
    /// Of those, the ones whose echo never came.
    pub lost: u64,
    /// Echoes a second over the window.
    pub messages_per_sec: f64,
    /// Round trip: send to echo received, µs.
    pub rtt_us: Percentiles,
    /// Closed loop over datagrams: times nothing came back for [`LOSS_WAIT`] and the
    /// messages in flight were taken as lost and replaced.
    pub refills: u64,
    /// Half the round trip: the one-way estimate, µs.
    pub one_way_us: Percentiles,
    /// The echo peer.
    pub echo: FloorSide,
    /// The measuring side (this process).
    pub bench: FloorSide,
    /// Each CPU's busy share over the window, percent: far above what the two sides
    /// used, something else ran beside them.
    pub cpu_busy_pct: Vec<f64>,
    /// The 1-minute load average at the start.
    pub load_avg: Option<f64>,
    /// What a reader must not miss.
    pub warnings: Vec<String>,
}

/// One process of a floor run, over the measured window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FloorSide {
    /// PID.
    pub pid: u32,
    /// Its CPU affinity.
    pub cpus: Option<String>,
    /// CPU time over the window, µs (counted by the kernel in clock ticks).
    pub cpu_us: Option<u64>,
    /// CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    /// CPU time per echoed message, µs.
    pub cpu_us_per_message: Option<f64>,
}

/// A run's counts and round trips.
struct Books {
    /// Messages sent, warm-up included.
    sent: u64,
    /// Echoes received, warm-up included.
    received: u64,
    /// Messages sent in the measured window.
    window_sent: u64,
    /// Echoes of those received.
    window_echoed: u64,
    /// Round trips of the window's messages, ns.
    rtt: Histogram<u64>,
    /// Whether the last message has been sent.
    done_sending: bool,
    /// Closed loop over datagrams: times the loop was refilled after [`LOSS_WAIT`].
    refills: u64,
}

impl Books {
    fn new() -> Books {
        Books {
            sent: 0,
            received: 0,
            window_sent: 0,
            window_echoed: 0,
            rtt: ledger::histogram(),
            done_sending: false,
            refills: 0,
        }
    }

    /// Books a send; returns its sequence number.
    fn sent(&mut self, measured: bool) -> u64 {
        let seq = self.sent;
        self.sent += 1;
        if measured {
            self.window_sent += 1;
        }
        seq
    }

    /// Books an echo received at `now` (ns since the epoch).
    fn echoed(&mut self, e: Echoed, now: u64) {
        self.received += 1;
        if e.measured {
            self.window_echoed += 1;
            let _ = self.rtt.record(now.saturating_sub(e.sent_ns).max(1));
        }
    }
}

fn lock(books: &Mutex<Books>) -> MutexGuard<'_, Books> {
    books.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a run's time goes, in ns since the epoch, and when to stop.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The first send.
    start: u64,
    /// The measured window's start: messages sent from here on count.
    w0: u64,
    /// Its end, unless `limit` messages end it first.
    w1: u64,
    /// Most messages in the window.
    limit: u64,
    /// Bytes in a message.
    size: usize,
    /// Longest silence from the echo peer while messages are owed.
    silence: Duration,
    /// How long to wait for the last echoes after the last send.
    drain: Duration,
}

/// The two processes' CPU time, and the machine's, at one moment.
#[derive(Debug, Clone)]
struct Mark {
    ns: u64,
    echo_cpu_us: Option<u64>,
    bench_cpu_us: Option<u64>,
    /// Busy and total ticks of each CPU.
    cpus: Vec<(u64, u64)>,
}

impl Mark {
    fn now(epoch: Instant, echo_pid: u32) -> Mark {
        Mark {
            ns: now_ns(epoch),
            echo_cpu_us: procfs::cpu_us(Proc::Pid(echo_pid)),
            bench_cpu_us: procfs::cpu_us(Proc::Me),
            cpus: procfs::cpu_times(),
        }
    }
}

/// The measured window's edges.
#[derive(Debug, Default)]
struct Marks {
    start: Option<Mark>,
    end: Option<Mark>,
}

/// The CPUs of a `taskset`-style list (`0`, `0-1`, `0,2-3`).
fn cpu_set(list: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
            set.extend(a..=b);
        }
    }
    set
}

/// Runs one floor measurement of `kind` and reports it.
pub async fn run(args: &Args, kind: FloorKind) -> Result<FloorReport> {
    let epoch = Instant::now();
    let load_avg = procfs::loadavg();
    let mut echo = Echo::spawn(args, kind).await?;
    let measured = async {
        let link = connect(kind, echo.addr, echo.cert_hash.as_deref(), size(args)).await?;
        let plan = plan(args, epoch);
        if args.floor_inflight > 0 {
            closed_loop(kind, link, args.floor_inflight, plan, epoch, echo.pid).await
        } else {
            open_loop(link, args.rate, plan, epoch, echo.pid).await
        }
    };
    let measured = measured.await;
    let echo_cpus = procfs::cpus(Proc::Pid(echo.pid));
    let echo_pid = echo.pid;
    let died = echo.exited();
    let stop_note = echo.stop().await;
    let (books, marks) = match (measured, died) {
        (Ok(m), _) => m,
        (Err(e), Some(status)) => {
            return Err(e.context(format!("the echo peer exited: {status}")));
        }
        (Err(e), None) => return Err(e),
    };
    let mut report = report(args, kind, &books, &marks, echo_pid, echo_cpus, stop_note);
    report.load_avg = load_avg;
    Ok(report)
}

fn size(args: &Args) -> usize {
    usize::from(args.floor_bytes).max(HEADER)
}

fn plan(args: &Args, epoch: Instant) -> Plan {
    let secs = |s: f64| (s.max(0.0) * 1e9) as u64;
    let start = now_ns(epoch) + 50_000_000;
    let w0 = start + secs(args.warmup);
    let period = if args.floor_inflight > 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / args.rate.max(0.001))
    };
    Plan {
        start,
        w0,
        w1: w0 + secs(args.seconds),
        limit: args.floor_messages.unwrap_or(u64::MAX),
        size: size(args),
        silence: ECHO_TIMEOUT + period * 2,
        drain: Duration::from_secs_f64(args.drain.max(0.0)),
    }
}

fn at(epoch: Instant, ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch + Duration::from_nanos(ns))
}

/// Open loop: a message every 1/`rate` s from `plan.start`, whatever comes back; the
/// echoes are read by a task of their own.
async fn open_loop(
    link: Link,
    rate: f64,
    plan: Plan,
    epoch: Instant,
    echo_pid: u32,
) -> Result<(Books, Marks)> {
    let Link {
        mut tx,
        rx,
        endpoint: _endpoint,
    } = link;
    let books = Arc::new(Mutex::new(Books::new()));
    let mut receiver = tokio::spawn(receive(rx, books.clone(), plan, epoch));
    let period = 1e9 / rate.max(0.001);
    let mut message = vec![0u8; plan.size];
    let mut marks = Marks::default();
    let mut k: u64 = 0;
    loop {
        let due = plan.start + (k as f64 * period) as u64;
        if due >= plan.w1 || lock(&books).window_sent >= plan.limit {
            tokio::time::sleep_until(at(epoch, due.min(plan.w1))).await;
            break;
        }
        tokio::time::sleep_until(at(epoch, due)).await;
        if receiver.is_finished() {
            break;
        }
        let measured = due >= plan.w0;
        if measured && marks.start.is_none() {
            marks.start = Some(Mark::now(epoch, echo_pid));
        }
        let sent_ns = now_ns(epoch);
        let seq = lock(&books).sent(measured);
        write_message(&mut message, seq, sent_ns, measured);
        tx.send(&message).await?;
        k += 1;
    }
    marks.end = Some(Mark::now(epoch, echo_pid));
    let owed = {
        let mut b = lock(&books);
        b.done_sending = true;
        b.received < b.sent
    };
    if receiver.is_finished() || owed {
        match tokio::time::timeout(plan.drain, &mut receiver).await {
            Ok(r) => r.context("the receiving task")??,
            // Whatever has not come back by now is lost.
            Err(_) => receiver.abort(),
        }
    } else {
        receiver.abort();
    }
    let books = Arc::try_unwrap(books)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_else(|shared| std::mem::replace(&mut *lock(&shared), Books::new()));
    Ok((books, marks))
}

/// The open loop's receiving task: books every echo until all are back once the sending
/// has ended. Fails when the echo peer falls silent while messages are still being sent.
async fn receive(mut rx: Rx, books: Arc<Mutex<Books>>, plan: Plan, epoch: Instant) -> Result<()> {
    loop {
        let echoed = match tokio::time::timeout(plan.silence, rx.recv(plan.size)).await {
            Ok(r) => r?,
            Err(_) => {
                let b = lock(&books);
                if b.done_sending {
                    return Ok(());
                }
                bail!(
                    "no echo came back for {:.1} s ({} messages sent, {} echoed)",
                    plan.silence.as_secs_f64(),
                    b.sent,
                    b.received
                );
            }
        };
        let now = now_ns(epoch);
        let mut b = lock(&books);
        b.echoed(echoed, now);
        if b.done_sending && b.received >= b.sent {
            return Ok(());
        }
    }
}

/// Closed loop: `n` messages in flight, each echo sending the next at once, on one task.
/// Over datagrams, a message not echoed within [`LOSS_WAIT`] is taken as lost and
/// replaced; a silence of `plan.silence` fails the run.
async fn closed_loop(
    kind: FloorKind,
    link: Link,
    n: usize,
    plan: Plan,
    epoch: Instant,
    echo_pid: u32,
) -> Result<(Books, Marks)> {
    let Link {
        mut tx,
        mut rx,
        endpoint: _endpoint,
    } = link;
    let mut books = Books::new();
    let mut marks = Marks::default();
    let mut message = vec![0u8; plan.size];
    // Messages written off as lost, and the sequence numbers below which they lie (an
    // echo under it arriving after all is late, and sends nothing in its place).
    let mut written_off: u64 = 0;
    let mut written_off_below: u64 = 0;
    let mut ended = false;
    let mut silent = Duration::ZERO;
    let wait = if kind.is_reliable() {
        plan.silence
    } else {
        LOSS_WAIT
    };

    tokio::time::sleep_until(at(epoch, plan.start)).await;
    // Books the next message and writes it into `message`.
    let next = |books: &mut Books, marks: &mut Marks, message: &mut [u8]| {
        let measured = now_ns(epoch) >= plan.w0;
        if measured && marks.start.is_none() {
            marks.start = Some(Mark::now(epoch, echo_pid));
        }
        let seq = books.sent(measured);
        write_message(message, seq, now_ns(epoch), measured);
    };
    for _ in 0..n {
        next(&mut books, &mut marks, &mut message);
        tx.send(&message).await?;
    }
    let mut deadline: Option<Instant> = None;
    loop {
        if !ended && (now_ns(epoch) >= plan.w1 || books.window_sent >= plan.limit) {
            ended = true;
            marks.end = Some(Mark::now(epoch, echo_pid));
            deadline = Some(Instant::now() + plan.drain);
        }
        let in_flight = books.sent.saturating_sub(books.received + written_off);
        if ended && in_flight == 0 {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match tokio::time::timeout(wait, rx.recv(plan.size)).await {
            Ok(r) => {
                let echoed = r?;
                silent = Duration::ZERO;
                books.echoed(echoed, now_ns(epoch));
                let late = echoed.seq < written_off_below && written_off > 0;
                if late {
                    written_off -= 1;
                }
                if ended || late {
                    continue;
                }
                next(&mut books, &mut marks, &mut message);
                tx.send(&message).await?;
            }
            Err(_) if ended => {
                if kind.is_reliable() {
                    bail!(
                        "{in_flight} echoes did not come back within {:.1} s of the last send",
                        plan.silence.as_secs_f64()
                    );
                }
                break;
            }
            Err(_) => {
                silent += wait;
                if silent >= plan.silence {
                    bail!(
                        "no echo came back for {:.1} s ({} messages sent, {} echoed)",
                        silent.as_secs_f64(),
                        books.sent,
                        books.received
                    );
                }
                if kind.is_reliable() {
                    continue;
                }
                // Everything in flight is taken as lost; refill the loop.
                books.refills += 1;
                written_off += in_flight;
                written_off_below = books.sent;
                for _ in 0..n {
                    next(&mut books, &mut marks, &mut message);
                    tx.send(&message).await?;
                }
            }
        }
    }
    if marks.end.is_none() {
        marks.end = Some(Mark::now(epoch, echo_pid));
    }
    books.done_sending = true;
    Ok((books, marks))
}

/// The report of a finished run.
fn report(
    args: &Args,
    kind: FloorKind,
    books: &Books,
    marks: &Marks,
    echo_pid: u32,
    echo_cpus: Option<String>,
    stop_note: Option<String>,
) -> FloorReport {
    let window_s = match (&marks.start, &marks.end) {
        (Some(a), Some(b)) => b.ns.saturating_sub(a.ns) as f64 / 1e9,
        _ => 0.0,
    };
    let echoes = books.window_echoed;
    let side = |pid: u32, cpus: Option<String>, cpu: fn(&Mark) -> Option<u64>| {
        let cpu_us = match (&marks.start, &marks.end) {
            (Some(a), Some(b)) => cpu(b).zip(cpu(a)).map(|(b, a)| b.saturating_sub(a)),
            _ => None,
        };
        FloorSide {
            pid,
            cpus,
            cpu_us,
            cpu_pct: cpu_us
                .filter(|_| window_s > 0.0)
                .map(|us| (us as f64 / 1e4 / window_s * 10.0).round() / 10.0),
            cpu_us_per_message: cpu_us
                .filter(|_| echoes > 0)
                .map(|us| (us as f64 / echoes as f64 * 100.0).round() / 100.0),
        }
    };
    let echo = side(echo_pid, echo_cpus, |m| m.echo_cpu_us);
    let bench = side(std::process::id(), procfs::cpus(Proc::Me), |m| {
        m.bench_cpu_us
    });
    let cpu_busy_pct = match (&marks.start, &marks.end) {
        (Some(a), Some(b)) => procfs::cpu_busy_pct(&a.cpus, &b.cpus),
        _ => Vec::new(),
    };
    let lost = books.window_sent.saturating_sub(echoes);
    let mut warnings = Vec::new();
    let ours = echo.cpu_pct.unwrap_or(0.0) + bench.cpu_pct.unwrap_or(0.0);
    if let Some(busiest) = cpu_busy_pct.iter().copied().reduce(f64::max) {
        if busiest > ours + 25.0 {
            warnings.push(format!(
                "other work ran beside the run: a CPU was {busiest} % busy while the two sides used {ours:.1} % of a core"
            ));
        }
    }
    if lost > 0 {
        warnings.push(format!(
            "{lost} of {} messages had no echo",
            books.window_sent
        ));
    }
    if books.refills > 0 {
        warnings.push(format!(
            "the closed loop stalled {} times for {} ms and was refilled",
            books.refills,
            LOSS_WAIT.as_millis()
        ));
    }
    if books.window_sent == 0 {
        warnings.push("no message was sent in the measured window".into());
    }
    if let (Some(e), Some(b)) = (&echo.cpus, &bench.cpus) {
        if !cpu_set(e).is_disjoint(&cpu_set(b)) {
            warnings.push(format!(
                "the bench (CPUs {b}) and the echo peer (CPUs {e}) may share a CPU: run the bench under `taskset -c 0`"
            ));
        }
    }
    warnings.extend(stop_note);
    let rtt_us = Percentiles::of(&books.rtt);
    let closed = args.floor_inflight > 0;
    FloorReport {
        label: args.label.clone(),
        mode: "floor",
        kind: kind.as_str(),
        shape: if closed { "closed" } else { "open" },
        rate_hz: (!closed).then_some(args.rate),
        in_flight: closed.then_some(args.floor_inflight),
        message_bytes: size(args),
        seconds: (window_s * 1000.0).round() / 1000.0,
        warmup: args.warmup,
        messages: books.window_sent,
        echoes,
        lost,
        messages_per_sec: if window_s > 0.0 {
            (echoes as f64 / window_s * 10.0).round() / 10.0
        } else {
            0.0
        },
        refills: books.refills,
        one_way_us: halved(&rtt_us),
        rtt_us,
        echo,
        bench,
        cpu_busy_pct,
        load_avg: None,
        warnings,
    }
}

/// Every figure of `p` halved (to 0.1 µs): the one-way estimate of a round trip.
fn halved(p: &Percentiles) -> Percentiles {
    let h = |v: f64| (v * 5.0).round() / 10.0;
    Percentiles {
        count: p.count,
        p50: h(p.p50),
        p90: h(p.p90),
        p99: h(p.p99),
        p999: h(p.p999),
        max: h(p.max),
        mean: h(p.mean),
    }
}

impl FloorReport {
    /// The table for people.
    pub fn print_table(&self) {
        let shape = match (self.rate_hz, self.in_flight) {
            (_, Some(n)) => format!("closed loop, {n} in flight"),
            (Some(r), None) => format!("open loop at {r}/s"),
            (None, None) => "?".into(),
        };
        println!(
            "== jam-bench floor{}: {}, {shape}, {}-byte messages, {} s (+{} s warm-up)",
            self.label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default(),
            self.kind,
            self.message_bytes,
            self.seconds,
            self.warmup
        );
        let row = |k: &str, v: String| println!("   {k:<28} {v}");
        let dist = |p: &Percentiles| {
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                p.p50, p.p90, p.p99, p.p999, p.max
            )
        };
        row(
            "placement",
            format!(
                "echo pid {} on CPUs {}, bench on CPUs {}",
                self.echo.pid,
                self.echo.cpus.as_deref().unwrap_or("?"),
                self.bench.cpus.as_deref().unwrap_or("?")
            ),
        );
        row(
            "messages",
            format!(
                "{} sent, {} echoed, {} lost ({:.0} a second)",
                self.messages, self.echoes, self.lost, self.messages_per_sec
            ),
        );
        row("round trip µs", dist(&self.rtt_us));
        row("one way (RTT/2) µs", dist(&self.one_way_us));
        let cpu = |s: &FloorSide| match (s.cpu_us_per_message, s.cpu_pct) {
            (Some(per), Some(pct)) => format!("{per:.2} µs per message ({pct} % of a core)"),
            _ => "n/a".into(),
        };
        row("echo peer CPU", cpu(&self.echo));
        row("bench CPU", cpu(&self.bench));
        row(
            "machine",
            format!(
                "CPUs busy {} %, load average {}",
                self.cpu_busy_pct
                    .iter()
                    .map(|p| format!("{p:.0}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                self.load_avg.map_or("?".into(), |l| format!("{l:.2}"))
            ),
        );
        for w in &self.warnings {
            println!("   !!! {w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_as_sets() {
        assert_eq!(cpu_set("1"), BTreeSet::from([1]));
        assert_eq!(cpu_set("0-1"), BTreeSet::from([0, 1]));
        assert_eq!(cpu_set("0,2-3"), BTreeSet::from([0, 2, 3]));
        assert!(cpu_set("0").is_disjoint(&cpu_set("1")));
    }
}
