//! Floor mode end to end, through the binary: a short run of each kind against the echo
//! peer it spawns, open and closed loop, checking that every echo came back and that the
//! JSON line carries the round trip, the one-way estimate and the echo peer's CPU.

mod common;

use serde_json::Value;

use common::jam_bench;

/// Messages in each run's measured window.
const MESSAGES: u64 = 200;

/// Runs `jam-bench --floor KIND` with `extra` flags and returns its JSON line.
fn floor(kind: &str, extra: &[&str]) -> Value {
    let messages = MESSAGES.to_string();
    let mut args = vec![
        "--floor",
        kind,
        "--json",
        "--warmup",
        "0.05",
        "--seconds",
        "5",
        "--floor-messages",
    ];
    args.push(&messages);
    args.extend_from_slice(extra);
    let stdout = jam_bench(&args);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}"));
    serde_json::from_str(line).expect("the JSON line parses")
}

/// Every message of the window echoed, and the figures present and in order.
fn check(report: &Value, kind: &str, shape: &str) {
    let what = format!("{kind} {shape}: {report}");
    assert_eq!(report["mode"], "floor", "{what}");
    assert_eq!(report["kind"], kind, "{what}");
    assert_eq!(report["shape"], shape, "{what}");
    assert_eq!(report["messages"], MESSAGES, "{what}");
    assert_eq!(report["echoes"], MESSAGES, "{what}");
    assert_eq!(report["lost"], 0, "{what}");
    let rtt = &report["rttUs"];
    assert_eq!(rtt["count"], MESSAGES, "{what}");
    let figure = |p: &Value, k: &str| p[k].as_f64().unwrap_or_else(|| panic!("no {k} in {what}"));
    let ordered: Vec<f64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| figure(rtt, k))
        .collect();
    assert!(ordered[0] > 0.0, "{what}");
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{what}");
    for k in ["p50", "p99", "max"] {
        let half = figure(&report["oneWayUs"], k);
        assert!((half * 2.0 - figure(rtt, k)).abs() <= 0.2, "{what}");
    }
    assert!(
        report["echo"]["cpuUsPerMessage"].is_number(),
        "no echo CPU in {what}"
    );
    assert!(report["echo"]["pid"].is_number(), "{what}");
}

#[test]
fn every_kind_echoes_every_message_open_and_closed_loop() {
    for kind in ["udp", "quic", "wt", "tcp"] {
        check(&floor(kind, &["--rate", "2000"]), kind, "open");
        check(&floor(kind, &["--floor-inflight", "8"]), kind, "closed");
    }
}
