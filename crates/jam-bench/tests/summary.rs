//! `--summarize` through the binary: recorded JSON lines of floor and load runs (the load
//! runs with their per-delivery counters, one with `--syscalls`) and the line of a short
//! live floor run become the floor table and the counters table.

mod common;

use std::path::PathBuf;

use common::jam_bench;

/// Recorded lines: an open-loop UDP floor run, the same with three messages lost, a
/// WebTransport load run (QUIC counters, no system calls) and a WebSocket load run with
/// `--syscalls`.
const RECORDED: &str = include_str!("data/summary-runs.jsonl");

/// The table whose header row starts with `| first |`: its header and its rows.
fn table<'a>(summary: &'a str, first: &str) -> Vec<&'a str> {
    let head = format!("| {first} |");
    let lines: Vec<&str> = summary.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no table starting {head:?} in:\n{summary}"));
    lines[start..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with('|'))
        .collect()
}

/// The row of `table` for `label`.
fn row<'a>(table: &[&'a str], label: &str) -> Vec<&'a str> {
    let start = format!("| {label} |");
    let line = table
        .iter()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{}", table.join("\n")));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn floor_and_counters_tables() {
    let live = jam_bench(&[
        "--floor",
        "udp",
        "--json",
        "--warmup",
        "0",
        "--seconds",
        "5",
        "--floor-messages",
        "50",
        "--label",
        "live udp",
    ]);
    let live = live
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {live:?}"));
    let file: PathBuf = [
        env!("CARGO_TARGET_TMPDIR"),
        &format!("summary-{}.jsonl", std::process::id()),
    ]
    .iter()
    .collect();
    std::fs::write(&file, format!("{RECORDED}{live}\n")).expect("writing the runs");
    let summary = jam_bench(&["--summarize", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);

    let floor = table(&summary, "floor");
    assert_eq!(
        floor[0],
        "| floor | kind | loop | bytes | echoes/s | RTT p50 µs | RTT p90 µs | RTT p99 µs | one-way p50 µs | echo CPU µs/message | lost | notes |"
    );
    assert_eq!(
        row(&floor, "wire udp open"),
        [
            "wire udp open",
            "udp",
            "open @ 1000/s",
            "150",
            "1000",
            "112.9",
            "135.3",
            "1288.2",
            "56.5",
            "30.00",
            "0",
            ""
        ]
    );
    let lossy = row(&floor, "lossy udp");
    assert_eq!(lossy[10], "3 of 1000 (0.300 %)", "{lossy:?}");
    assert_eq!(lossy[11], "3 of 1000 messages had no echo", "{lossy:?}");
    let live = row(&floor, "live udp");
    assert_eq!(live[1..4], ["udp", "open @ 1000/s", "150"], "{live:?}");
    assert!(
        live[5].parse::<f64>().is_ok_and(|p50| p50 > 0.0),
        "{live:?}"
    );
    assert_eq!(live[10], "0", "{live:?}");

    let counters = table(&summary, "counters");
    assert_eq!(
        counters[0],
        "| counters | transport | deliveries | system calls / delivery | busiest system calls / delivery | context switches / delivery | QUIC packets out / delivery | ACK frames in / delivery |"
    );
    assert_eq!(
        row(&counters, "tiny wt"),
        [
            "tiny wt",
            "wt-datagram",
            "19",
            "–",
            "–",
            "3.895",
            "1.737",
            "1.316"
        ]
    );
    assert_eq!(
        row(&counters, "tiny ws syscalls"),
        [
            "tiny ws syscalls",
            "ws",
            "19",
            "4.368",
            "epoll_wait 1.737, recvfrom 1.000, sendto 0.947, write 0.263",
            "1.526",
            "–",
            "–"
        ]
    );
    assert_eq!(counters.len(), 4, "header, rule and two rows");

    // The load table still lists both load runs; the floor runs stay out of it.
    let load = table(&summary, "scenario");
    assert_eq!(load.len(), 4, "{}", load.join("\n"));
}
