//! One load run: connect every participant (one connection each), run the open-loop
//! generator over warm-up and the measured window, optionally churn joins and leaves
//! into the played rooms, wait for late deliveries, and hand the books to the report.
//!
//! Open loop: every send has an intended time computed up front from the pattern; a late
//! send is sent late, not skipped, and its latency still counts from the intended time,
//! so a stalled generator or server cannot hide its own delay (no coordinated omission).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use jam_client::{Client, ClockEstimator, Tap};
use jam_protocol::json_to_msgpack;
use jam_protocol::Encoding;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::{Args, Enc, Kind, Pattern};
use crate::counters::QuicTotals;
use crate::hostile::Attacks;
use crate::idle_spin;
use crate::ledger::{self, Ledger, Shared};
use crate::monitor;
use crate::report::{Brief, ChurnReport, ClockReport, HostileReport, Report};
use crate::target::Target;
use crate::wire::{write_event, Note, Stamp};

/// Longest wait for one connection and its create or join.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connected participant.
pub struct Member {
    /// Its connection.
    pub client: Client,
    /// How it sends.
    pub kind: Kind,
    /// Its room's index.
    pub room: usize,
}

/// Nanoseconds since `epoch`.
pub fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

fn encoding(args: &Args) -> Encoding {
    match args.encoding {
        Enc::Json => Encoding::Json,
        Enc::Msgpack => Encoding::MsgPack,
    }
}

/// Opens participant `slot`'s connection of `kind` with `tap` on its reader.
pub async fn connect(
    args: &Args,
    target: &Target,
    slot: usize,
    kind: Kind,
    tap: Option<Tap>,
) -> Result<Client> {
    if kind.is_wt() {
        let (url, hash) = target.wt()?;
        let enc = encoding(args);
        Ok(match target.wt_endpoint(slot, args.wt_sockets)? {
            Some(endpoint) => Client::connect_wt_on(endpoint, url, enc, tap).await?,
            None => Client::connect_wt_tapped(url, hash, enc, tap).await?,
        })
    } else {
        Ok(Client::connect_ws_tapped(target.ws()?, tap).await?)
    }
}

/// Connects `rooms x per_room` participants (at most `limit`, the last room then being
/// smaller): the first of each room creates it, the rest join. Returns the members by
/// global index, the room codes, and the failures.
pub async fn connect_all(
    args: &Args,
    target: &Target,
    ledger: Option<&Shared>,
    limit: Option<usize>,
) -> (Vec<Option<Member>>, Vec<Option<String>>, Vec<String>) {
    let per_room = args.per_room as usize;
    let tap_for = |position: u32| ledger.map(|l| ledger::receiver_tap(l.clone(), position));
    let mut members: Vec<Option<Member>> = (0..args.rooms * per_room).map(|_| None).collect();
    let mut failures = Vec::new();

    let leaders = futures_util::stream::iter(0..args.rooms)
        .map(|room| {
            let kind = args.transport.for_member(0);
            let tap = tap_for(0);
            async move {
                let r = tokio::time::timeout(CONNECT_TIMEOUT, async {
                    let mut client = connect(args, target, room * per_room, kind, tap).await?;
                    let info = client.create("p0", "piano").await?;
                    Ok::<_, anyhow::Error>((client, info.room_code))
                })
                .await
                .unwrap_or_else(|_| Err(anyhow!("timed out")));
                (room, kind, r)
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut codes: Vec<Option<String>> = vec![None; args.rooms];
    for (room, kind, r) in leaders {
        match r {
            Ok((client, code)) => {
                codes[room] = Some(code);
                members[room * per_room] = Some(Member { client, kind, room });
            }
            Err(e) => failures.push(format!("room {room} creator: {e:#}")),
        }
    }

    let total = limit.unwrap_or(usize::MAX);
    let joiners = futures_util::stream::iter(
        (0..args.rooms)
            .flat_map(|room| (1..per_room).map(move |p| (room, p)))
            .filter(|(room, p)| room * per_room + p < total),
    )
    .map(|(room, p)| {
        let kind = args.transport.for_member(p);
        let tap = tap_for(p as u32);
        let code = codes[room].clone();
        async move {
            let r = tokio::time::timeout(CONNECT_TIMEOUT, async {
                let code = code.ok_or_else(|| anyhow!("its room was not created"))?;
                let mut client = connect(args, target, room * per_room + p, kind, tap).await?;
                client.join(&code, &format!("p{p}"), instrument(p)).await?;
                Ok::<_, anyhow::Error>(client)
            })
            .await
            .unwrap_or_else(|_| Err(anyhow!("timed out")));
            (room, p, kind, r)
        }
    })
    .buffer_unordered(args.connect_concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    for (room, p, kind, r) in joiners {
        match r {
            Ok(client) => members[room * per_room + p] = Some(Member { client, kind, room }),
            Err(e) => failures.push(format!("room {room} participant {p}: {e:#}")),
        }
    }
    (members, codes, failures)
}

fn instrument(p: usize) -> &'static str {
    [
        "piano", "bass", "drums", "guitar", "synth", "violin", "cello", "voice",
    ][p % 8]
}

/// Runs one load against `target` and reports it.
pub async fn run(args: &Args, target: &mut Target, epoch: Instant) -> Result<Report> {
    let per_room = args.per_room as usize;
    let ledger = Ledger::new(epoch, args.rooms * per_room);
    let setup_started = Instant::now();
    let (mut members, codes, failures) = connect_all(args, target, Some(&ledger), None).await;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    if members.iter().all(Option::is_none) {
        return Err(anyhow!(
            "no participant could connect: {}",
            failures.first().map(String::as_str).unwrap_or("?")
        ));
    }
    // Who receives whose events: everyone else in the room who joined.
    {
        let mut l = ledger::lock(&ledger);
        for room in 0..args.rooms {
            let joined: u64 = (0..per_room)
                .filter(|p| members[room * per_room + p].is_some())
                .fold(0, |mask, p| mask | 1 << p);
            for p in 0..per_room {
                l.set_receivers((room * per_room + p) as u32, joined & !(1 << p));
            }
        }
    }
    // Let presence messages and connection set-up settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let clock = estimate_clock(&mut members).await;

    let start = now_ns(epoch) + 200_000_000;
    let w0 = start + secs_ns(args.warmup);
    let w1 = w0 + secs_ns(args.seconds);
    ledger::lock(&ledger).set_window(w0, w1);
    let at = |ns: u64| epoch + Duration::from_nanos(ns);
    let monitor = monitor::spawn(
        target.pid,
        target.stats_url.clone(),
        at(w0),
        at(w1),
        args.syscalls,
    );
    // QUIC's own packet and ACK counts over the window, from the bench's side of each
    // WebTransport connection.
    let connections: Vec<_> = members
        .iter()
        .flatten()
        .filter_map(|m| m.client.wt_connection().cloned())
        .collect();
    let quic = (!connections.is_empty()).then(|| {
        let (from, to) = (at(w0), at(w1));
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let before = QuicTotals::of(&connections);
            tokio::time::sleep_until(to.into()).await;
            QuicTotals::of(&connections).since(before)
        })
    });

    // The hostile neighbour (--hostile) from other addresses, from now to the window's end.
    let attacks = if args.hostile {
        Some(Attacks::spawn(target.hostile_plan()?, at(w1))?)
    } else {
        None
    };

    let churn = args.churn.filter(|r| *r > 0.0).map(|rate| {
        let stats = Arc::new(Mutex::new(ChurnStats::new()));
        let task = tokio::spawn(churn(
            ChurnPlan {
                rate,
                hold: Duration::from_millis(args.churn_hold_ms),
                transport: args.transport,
                encoding: encoding(args),
                ws_url: target.ws_url.clone(),
                wt: target.wt().ok().map(|(u, h)| (u.to_owned(), h.to_owned())),
                codes: codes.iter().flatten().cloned().collect(),
                from: at(start),
                until: at(w1),
            },
            stats.clone(),
        ));
        (stats, task)
    });

    generate(args, &members, &codes, &ledger, epoch, start, w1).await;

    // Late deliveries: wait until nothing is owed, or the drain time is up.
    let drain_until = at(w1) + Duration::from_secs_f64(args.drain.max(0.0));
    while Instant::now() < drain_until && ledger::lock(&ledger).outstanding() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let window = tokio::task::spawn_blocking(move || monitor.join())
        .await
        .context("monitor")?
        .map_err(|_| anyhow!("the monitor thread panicked"))?;
    let quic = match quic {
        Some(task) => tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let churn = match churn {
        Some((stats, task)) => {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
            let s = stats.lock().unwrap_or_else(|e| e.into_inner());
            Some(ChurnReport::new(
                args.churn.unwrap_or(0.0),
                s.attempted,
                s.joined,
                s.left,
                s.failed,
                &s.join_latency,
                s.first_error.clone(),
            ))
        }
        None => None,
    };
    let attacks = match attacks {
        Some(a) => Some(a.finish().await?),
        None => None,
    };
    let disconnected = members
        .iter()
        .flatten()
        .filter(|m| m.client.closed().is_some())
        .count() as u64;
    let server_running = target.running();
    let l = ledger::lock(&ledger);
    let report = Report::from_run(
        args,
        &l,
        &window,
        target,
        failures,
        disconnected,
        churn,
        setup_secs,
        server_running,
        quic,
    );
    drop(l);
    drop(members);
    let hostile = attacks.map(|attacks| HostileReport {
        quiet: None,
        attacked: Brief::of(&report),
        attacks,
    });
    Ok(Report {
        clock,
        hostile,
        ..report
    })
}

/// The first participant's estimate of the server clock, from 8 pings before the load
/// starts (what a client library would show next to latency).
async fn estimate_clock(members: &mut [Option<Member>]) -> Option<ClockReport> {
    let member = members.iter_mut().flatten().next()?;
    let mut clock = ClockEstimator::new();
    member.client.sync_clock(&mut clock, 8).await.ok()?;
    Some(ClockReport {
        offset_ms: clock.offset_ms()?,
        error_ms: clock.error_ms()?,
        rtt_ms: clock.rtt_ms()?,
    })
}

fn secs_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// Waits until `due` (ns since `epoch`): the runtime's timer for the bulk of the wait
/// (it has 1 ms granularity), then yielding in a loop for the last stretch so the send
/// goes out within microseconds of its time while receivers keep running.
async fn wait_until(epoch: Instant, due: u64) {
    loop {
        let now = now_ns(epoch);
        if now >= due {
            return;
        }
        let left = due - now;
        if left > 2_000_000 {
            tokio::time::sleep(Duration::from_nanos(left - 1_500_000)).await;
        } else {
            tokio::task::yield_now().await;
            let took = now_ns(epoch) - now;
            if took < idle_spin::IDLE_YIELD_NS {
                idle_spin::add(took);
            }
        }
    }
}

/// The open-loop generator: every participant's sends, in intended-time order, from
/// `start` until `end` (ns since `epoch`).
async fn generate(
    args: &Args,
    members: &[Option<Member>],
    codes: &[Option<String>],
    ledger: &Shared,
    epoch: Instant,
    start: u64,
    end: u64,
) {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let rate = args.rate.max(0.001);
    let period = 1e9 / rate;
    let beat = 4.0 * period;
    let exp = |rng: &mut StdRng| -> u64 {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        (-u.ln() * period) as u64
    };
    // (due, sender, beat number)
    let mut heap: BinaryHeap<Reverse<(u64, u32, u64)>> = BinaryHeap::new();
    // Metronome: a phase per participant. Downbeat: a phase per room (rooms are separate
    // sessions with their own beat; everyone in a room plays on it).
    let mut phases = vec![0u64; members.len()];
    let room_phases: Vec<u64> = (0..codes.len())
        .map(|_| rng.random_range(0.0..beat) as u64)
        .collect();
    for (s, m) in members.iter().enumerate() {
        let Some(m) = m else { continue };
        phases[s] = match args.pattern {
            Pattern::Poisson => 0,
            Pattern::Metronome => rng.random_range(0.0..period) as u64,
            Pattern::Downbeat => room_phases[m.room],
        };
        let first = match args.pattern {
            Pattern::Poisson => start + exp(&mut rng),
            _ => start + phases[s],
        };
        heap.push(Reverse((first, s as u32, 0)));
    }
    let enc_msgpack = args.encoding == Enc::Msgpack;
    let mut text = String::with_capacity(256 + args.payload_bytes);
    let mut seqs = vec![0u64; members.len()];
    while let Some(Reverse((due, s, k))) = heap.pop() {
        if due >= end {
            break;
        }
        wait_until(epoch, due).await;
        let Some(m) = &members[s as usize] else {
            continue;
        };
        let Some(code) = &codes[m.room] else { continue };
        let notes: &[u8] = match args.pattern {
            Pattern::Downbeat => &[0, 4, 7, 12],
            _ => &[0],
        };
        for &interval in notes {
            let n = seqs[s as usize];
            seqs[s as usize] += 1;
            let note = match args.pattern {
                Pattern::Downbeat => Note {
                    on: k.is_multiple_of(2),
                    note: 48 + (m.room % 12) as u8 + interval,
                    velocity: 96,
                },
                _ => Note {
                    on: n.is_multiple_of(2),
                    note: 48 + ((u64::from(s) * 7 + n / 2) % 36) as u8,
                    velocity: 64 + (n % 48) as u8,
                },
            };
            let actual = now_ns(epoch);
            let seq = ledger::lock(ledger).book(s, due, actual);
            let stamp = Stamp {
                sender: s,
                seq,
                intended: due,
                actual,
            };
            write_event(&mut text, code, stamp, note, args.payload_bytes);
            let sent = match m.kind {
                Kind::Ws | Kind::WtStream => m.client.send_text(&text).await,
                Kind::WtDatagram => {
                    let msgpack;
                    let bytes: &[u8] = if enc_msgpack {
                        msgpack = json_to_msgpack(text.as_bytes()).unwrap_or_default();
                        &msgpack
                    } else {
                        text.as_bytes()
                    };
                    // An event too large for a datagram goes on the control stream.
                    if m.client
                        .max_datagram_size()
                        .is_some_and(|max| bytes.len() <= max)
                    {
                        m.client.send_datagram(bytes)
                    } else {
                        m.client.send_text(&text).await
                    }
                }
            };
            if sent.is_err() {
                ledger::lock(ledger).failed(s, seq);
            }
        }
        let next = match args.pattern {
            Pattern::Poisson => due + exp(&mut rng).max(1),
            Pattern::Metronome => start + phases[s as usize] + ((k + 1) as f64 * period) as u64,
            Pattern::Downbeat => start + phases[s as usize] + ((k + 1) as f64 * beat) as u64,
        };
        heap.push(Reverse((next, s, k + 1)));
    }
}

struct ChurnPlan {
    rate: f64,
    hold: Duration,
    transport: crate::cli::Transport,
    encoding: Encoding,
    ws_url: Option<String>,
    wt: Option<(String, String)>,
    codes: Vec<String>,
    from: Instant,
    until: Instant,
}

/// What the churning participants went through.
pub struct ChurnStats {
    /// Cycles started.
    pub attempted: u64,
    /// Joins answered with `session:joined`.
    pub joined: u64,
    /// Leaves answered with `session:left`.
    pub left: u64,
    /// Cycles that failed somewhere.
    pub failed: u64,
    /// Connect plus join, ns.
    pub join_latency: Histogram<u64>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl ChurnStats {
    fn new() -> Self {
        ChurnStats {
            attempted: 0,
            joined: 0,
            left: 0,
            failed: 0,
            join_latency: ledger::histogram(),
            first_error: None,
        }
    }
}

/// Starts `rate` join-and-leave cycles a second, each on a fresh connection, round-robin
/// over the played rooms, until the window ends; waits for the last to finish.
async fn churn(plan: ChurnPlan, stats: Arc<Mutex<ChurnStats>>) {
    let plan = Arc::new(plan);
    let mut cycles = tokio::task::JoinSet::new();
    let mut k: u64 = 0;
    loop {
        let due = plan.from + Duration::from_secs_f64(k as f64 / plan.rate);
        if due >= plan.until || plan.codes.is_empty() {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let plan = plan.clone();
        let stats = stats.clone();
        cycles.spawn(async move {
            let r =
                tokio::time::timeout(CONNECT_TIMEOUT + plan.hold, cycle(&plan, k, &stats)).await;
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            s.attempted += 1;
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("timed out".into()),
            };
            if let Some(e) = err {
                s.failed += 1;
                s.first_error.get_or_insert(e);
            }
        });
        k += 1;
    }
    while cycles.join_next().await.is_some() {}
}

async fn cycle(plan: &ChurnPlan, k: u64, stats: &Mutex<ChurnStats>) -> Result<()> {
    let code = &plan.codes[k as usize % plan.codes.len()];
    let t0 = Instant::now();
    let kind = plan.transport.for_member(k as usize);
    let tap = Some(ledger::silent_tap());
    let mut client = if kind.is_wt() {
        let (url, hash) = plan
            .wt
            .as_ref()
            .ok_or_else(|| anyhow!("no WebTransport URL"))?;
        Client::connect_wt_tapped(url, hash, plan.encoding, tap).await?
    } else {
        let url = plan
            .ws_url
            .as_deref()
            .ok_or_else(|| anyhow!("no WebSocket URL"))?;
        Client::connect_ws_tapped(url, tap).await?
    };
    client.join(code, &format!("churn{k}"), "listener").await?;
    {
        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
        s.joined += 1;
        let _ = s
            .join_latency
            .record((t0.elapsed().as_nanos() as u64).max(1));
    }
    tokio::time::sleep(plan.hold).await;
    client.leave(code).await?;
    stats.lock().unwrap_or_else(|e| e.into_inner()).left += 1;
    let _ = client.close().await;
    Ok(())
}
