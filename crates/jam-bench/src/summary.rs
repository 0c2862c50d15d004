//! `--summarize FILE`: turns the JSON lines of many runs (as `bench/scenarios.sh`
//! collects them) into Markdown tables: load runs, knee searches, idle runs.

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

/// Prints the tables for the JSON lines in `path`.
pub fn print(path: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |mode: &'static str| lines.iter().filter(move |v| s(v, "mode") == mode);

    println!("| scenario | transport | load | deliveries/s | delivered | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | skew p99 µs | server µs/delivery | server CPU % | server peak RSS MiB | bench busy % | generator lag max µs | notes |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for v in of("load") {
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

    let knees: Vec<&Value> = of("knee").collect();
    if !knees.is_empty() {
        println!();
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

    let idles: Vec<&Value> = of("idle").collect();
    if !idles.is_empty() {
        println!();
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
                v["warnings"]
                    .as_array()
                    .map(|w| w
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}
