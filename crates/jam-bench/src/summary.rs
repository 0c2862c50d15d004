//! `--summarize FILE`: turns the JSON lines of many runs (as `bench/scenarios.sh`
//! collects them) into Markdown tables: load runs and their per-delivery counters, knee
//! searches, idle runs and floor runs. Each table is printed only when it has rows.

use anyhow::{Context as _, Result};
use serde_json::Value;

fn num(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn f(v: &Value, path: &str, digits: usize) -> String {
    num(v, path).map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A run's `warnings`, joined.
fn warnings(v: &Value) -> String {
    v["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Prints one kind of run as a Markdown table.
type Table = fn(&[&Value]);

/// Prints the tables for the JSON lines in `path`.
pub fn print(path: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |mode: &'static str| lines.iter().filter(move |v| s(v, "mode") == mode);
    let loads: Vec<&Value> = of("load").collect();
    let counted: Vec<&Value> = loads
        .iter()
        .copied()
        .filter(|v| v["server"]["counters"].is_object())
        .collect();
    let tables: [(Vec<&Value>, Table); 5] = [
        (loads, load_table),
        (counted, counters_table),
        (of("knee").collect(), knee_table),
        (of("idle").collect(), idle_table),
        (of("floor").collect(), floor_table),
    ];
    // Only the tables with rows, a blank line between them.
    for (i, (rows, print_table)) in tables
        .iter()
        .filter(|(rows, _)| !rows.is_empty())
        .enumerate()
    {
        if i > 0 {
            println!();
        }
        print_table(rows);
    }
    Ok(())
}

/// Load runs: the rate, latency, delivery and both sides' CPU.
fn load_table(loads: &[&Value]) {
    println!("| scenario | transport | load | deliveries/s | delivered | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | skew p99 µs | server µs/delivery | server CPU % | server peak RSS MiB | bench busy % | generator lag max µs | notes |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for v in loads {
        let mut notes = Vec::new();
        if v["bench"]["behindSchedule"].as_bool() == Some(true) {
            notes.push("generator behind".to_owned());
        }
        if let Some(c) = v.get("churn").filter(|c| !c.is_null()) {
            notes.push(format!(
                "churn {}/s: {} joined, {} failed, join p99 {} µs",
                f(c, "rate", 0),
                f(c, "joined", 0),
                f(c, "failed", 0),
                f(c, "joinUs.p99", 0)
            ));
        }
        for key in ["connectFailures", "disconnected", "duplicates", "reordered"] {
            if num(v, key).is_some_and(|n| n > 0.0) {
                notes.push(format!("{key} {}", f(v, key, 0)));
            }
        }
        if num(v, "udpRcvbufErrors").is_some_and(|n| n > 0.0) {
            notes.push(format!("UDP rcvbuf drops {}", f(v, "udpRcvbufErrors", 0)));
        }
        if num(v, "server.stats.dropped").is_some_and(|n| n > 0.0) {
            notes.push(format!(
                "server dropped {}",
                f(v, "server.stats.dropped", 0)
            ));
        }
        let busy: f64 = v["machineCpuBusyPct"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).sum())
            .unwrap_or(0.0);
        let ours = num(v, "server.cpuPct").unwrap_or(0.0) + num(v, "bench.cpuPct").unwrap_or(0.0);
        if busy - ours > 25.0 {
            notes.push(format!("others used ~{:.0} % CPU", busy - ours));
        }
        println!(
            "| {} | {} | {}×{} @ {} Hz {} | {} | {} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s(v, "label"),
            s(v, "transport"),
            f(v, "rooms", 0),
            f(v, "perRoom", 0),
            f(v, "rateHz", 0),
            s(v, "pattern"),
            f(v, "deliveriesPerSec", 0),
            num(v, "deliveryRatio").map_or("–".into(), |r| format!("{:.3}", r * 100.0)),
            f(v, "latencyUs.p50", 0),
            f(v, "latencyUs.p90", 0),
            f(v, "latencyUs.p99", 0),
            f(v, "latencyUs.p999", 0),
            f(v, "latencyUs.max", 0),
            f(v, "fanoutSkewUs.p99", 0),
            f(v, "server.cpuUsPerDelivery", 2),
            f(v, "server.cpuPct", 0),
            num(v, "server.rssPeakKib").map_or("–".into(), |k| format!("{:.1}", k / 1024.0)),
            f(v, "bench.busyPct", 0),
            f(v, "bench.lagUs.max", 0),
            notes.join("; "),
        );
    }
}

/// Load runs' counters (`server.counters`), each per delivery: the server's system calls
/// (`--syscalls`) and the busiest four of them by name (those that round to 0.000 left
/// out), its threads' context switches, and over WebTransport the QUIC packets it sent
/// and the ACK frames it received.
fn counters_table(loads: &[&Value]) {
    println!("| counters | transport | deliveries | system calls / delivery | busiest system calls / delivery | context switches / delivery | QUIC packets out / delivery | ACK frames in / delivery |");
    println!("|---|---|---:|---:|---|---:|---:|---:|");
    for v in loads {
        let c = &v["server"]["counters"];
        let deliveries = num(c, "deliveries").filter(|&d| d > 0.0);
        let by_call = match (c["syscalls"]["byCall"].as_object(), deliveries) {
            (Some(calls), Some(d)) => {
                let mut calls: Vec<(&str, f64)> = calls
                    .iter()
                    .filter_map(|(k, n)| Some((k.as_str(), n.as_f64()?)))
                    .collect();
                calls.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
                calls
                    .iter()
                    .map(|&(k, n)| (k, n / d))
                    .filter(|&(_, per)| per >= 0.0005)
                    .take(4)
                    .map(|(k, per)| format!("{k} {per:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s(v, "label"),
            s(v, "transport"),
            f(c, "deliveries", 0),
            f(c, "syscallsPerDelivery", 3),
            by_call,
            f(c, "contextSwitchesPerDelivery", 3),
            f(c, "quicPacketsFromServerPerDelivery", 3),
            f(c, "quicAcksToServerPerDelivery", 3),
        );
    }
}

/// Knee searches: the highest load that held and the first that did not.
fn knee_table(knees: &[&Value]) {
    println!("| knee | transport | per room × Hz | highest load that held | deliveries/s | p99 µs | server µs/delivery | server CPU % | bench busy % | first miss |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---|");
    for v in knees {
        let held = &v["held"];
        let miss = &v["failedAt"];
        println!(
            "| {} | {} | {} × {} | {} | {} | {} | {} | {} | {} | {} |",
            s(v, "label"),
            s(v, "transport"),
            f(v, "perRoom", 0),
            f(v, "rateHz", 0),
            if held.is_null() {
                "none".to_owned()
            } else {
                format!("{} rooms", f(held, "rooms", 0))
            },
            f(held, "deliveriesPerSec", 0),
            f(held, "p99Us", 0),
            f(held, "serverCpuUsPerDelivery", 2),
            f(held, "serverCpuPct", 0),
            f(held, "benchBusyPct", 0),
            if miss.is_null() {
                "none (raise the list)".to_owned()
            } else {
                format!("{} rooms: {}", f(miss, "rooms", 0), s(miss, "why"))
            },
        );
    }
}

/// Idle runs: the server's memory per connection.
fn idle_table(idles: &[&Value]) {
    println!("| idle | transport | connected | alive at end | server RSS before → peak MiB | KiB per connection | server CPU % idle | notes |");
    println!("|---|---|---:|---:|---|---:|---:|---|");
    for v in idles {
        let mib = |k: &str| num(v, k).map_or("–".into(), |x| format!("{:.1}", x / 1024.0));
        println!(
            "| {} | {} | {} | {} | {} → {} | {} | {} | {} |",
            s(v, "label"),
            s(v, "transport"),
            f(v, "connected", 0),
            f(v, "aliveAtEnd", 0),
            mib("rssBeforeKib"),
            mib("rssPeakKib"),
            f(v, "kibPerConnection", 1),
            f(v, "serverCpuPct", 1),
            warnings(v),
        );
    }
}

/// Floor runs (`--floor`): a message's round trip to the echo peer with no server, open
/// or closed loop, and the echo's CPU per message.
fn floor_table(floors: &[&Value]) {
    println!("| floor | kind | loop | bytes | echoes/s | RTT p50 µs | RTT p90 µs | RTT p99 µs | one-way p50 µs | echo CPU µs/message | lost | notes |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for v in floors {
        let shape = match s(v, "shape") {
            "open" => format!("open @ {}/s", f(v, "rateHz", 0)),
            "closed" => format!("closed, {} in flight", f(v, "inFlight", 0)),
            other => other.to_owned(),
        };
        let lost = match (num(v, "lost"), num(v, "messages")) {
            (Some(l), Some(m)) if l > 0.0 && m > 0.0 => {
                format!("{l:.0} of {m:.0} ({:.3} %)", l / m * 100.0)
            }
            (Some(l), _) => format!("{l:.0}"),
            (None, _) => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s(v, "label"),
            s(v, "kind"),
            shape,
            f(v, "messageBytes", 0),
            f(v, "messagesPerSec", 0),
            f(v, "rttUs.p50", 1),
            f(v, "rttUs.p90", 1),
            f(v, "rttUs.p99", 1),
            f(v, "oneWayUs.p50", 1),
            f(v, "echo.cpuUsPerMessage", 2),
            lost,
            warnings(v),
        );
    }
}
