//! Counters that show where a delivery's cost goes, beside its CPU time: the server's
//! system calls (with `--syscalls`, from the kernel's tracepoints through `perf stat`), its
//! threads' context switches (each one a sleep and a wake-up of a runtime thread), and,
//! for WebTransport participants, QUIC's own counts of packets and ACK frames in each
//! direction as the bench's connections saw them.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use wtransport::Connection;

/// The system calls counted one by one (every other one is only in the total).
const CALLS: &[&str] = &[
    "sendto",
    "sendmsg",
    "sendmmsg",
    "write",
    "writev",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "read",
    "readv",
    "epoll_wait",
    "epoll_pwait",
    "futex",
];

/// `perf stat` counting the server's system calls over the window.
pub struct SyscallCount {
    child: Child,
}

impl SyscallCount {
    /// Starts counting `pid`'s system calls for `seconds`; `None` when `perf` is missing
    /// or cannot attach (the report then says so).
    pub fn start(pid: u32, seconds: f64) -> Option<SyscallCount> {
        let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
        events.extend(CALLS.iter().map(|c| format!("syscalls:sys_enter_{c}")));
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &events.join(","), "-p"])
            .arg(pid.to_string())
            .args(["--", "sleep", &format!("{seconds:.3}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(SyscallCount { child })
    }

    /// Waits for the count (at most a few seconds past the window) and reads it.
    pub fn finish(mut self) -> Option<Syscalls> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
        let output = self.child.wait_with_output().ok()?;
        parse_perf(&String::from_utf8_lossy(&output.stderr))
    }
}

/// The server's system calls over the window.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscalls {
    /// Every system call.
    pub total: u64,
    /// The ones counted by name (those with none left out).
    pub by_call: BTreeMap<String, u64>,
}

/// Reads `perf stat -x,` output: `count,unit,event,...` per line.
fn parse_perf(text: &str) -> Option<Syscalls> {
    let mut out = Syscalls::default();
    let mut seen = false;
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(count), Some(_unit), Some(event)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(count) = count.trim().parse::<u64>() else {
            continue;
        };
        if event == "raw_syscalls:sys_enter" {
            out.total = count;
            seen = true;
        } else if let Some(call) = event.strip_prefix("syscalls:sys_enter_") {
            if count > 0 {
                out.by_call.insert(call.to_owned(), count);
            }
        }
    }
    seen.then_some(out)
}

/// QUIC's counts summed over the bench's WebTransport connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicTotals {
    /// UDP datagrams the connections received: the packets the server sent them.
    pub packets_from_server: u64,
    /// UDP datagrams the connections sent.
    pub packets_to_server: u64,
    /// ACK frames the connections sent: what the server had to read and process.
    pub acks_to_server: u64,
    /// ACK frames the server sent them.
    pub acks_from_server: u64,
    /// DATAGRAM frames the server sent them.
    pub datagrams_from_server: u64,
}

impl QuicTotals {
    /// The sum over `connections` now.
    pub fn of<'a>(connections: impl IntoIterator<Item = &'a Connection>) -> QuicTotals {
        let mut t = QuicTotals::default();
        for c in connections {
            let s = c.quic_connection().stats();
            t.packets_from_server += s.udp_rx.datagrams;
            t.packets_to_server += s.udp_tx.datagrams;
            t.acks_to_server += s.frame_tx.acks;
            t.acks_from_server += s.frame_rx.acks;
            t.datagrams_from_server += s.frame_rx.datagram;
        }
        t
    }

    /// Growth from `earlier` to `self`.
    pub fn since(self, earlier: QuicTotals) -> QuicTotals {
        QuicTotals {
            packets_from_server: self
                .packets_from_server
                .saturating_sub(earlier.packets_from_server),
            packets_to_server: self
                .packets_to_server
                .saturating_sub(earlier.packets_to_server),
            acks_to_server: self.acks_to_server.saturating_sub(earlier.acks_to_server),
            acks_from_server: self
                .acks_from_server
                .saturating_sub(earlier.acks_from_server),
            datagrams_from_server: self
                .datagrams_from_server
                .saturating_sub(earlier.datagrams_from_server),
        }
    }
}

/// The counters of one run, with each one per delivery.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountersReport {
    /// Deliveries the ratios are per (the server's count, else the bench's).
    pub deliveries: u64,
    /// The server threads' context switches (voluntary and not) over the window.
    pub context_switches: Option<u64>,
    /// The same per delivery.
    pub context_switches_per_delivery: Option<f64>,
    /// The server's system calls (`--syscalls`).
    pub syscalls: Option<Syscalls>,
    /// The same per delivery.
    pub syscalls_per_delivery: Option<f64>,
    /// QUIC packets the server sent to the bench's WebTransport connections.
    pub quic_packets_from_server: Option<u64>,
    /// The same per delivery.
    pub quic_packets_from_server_per_delivery: Option<f64>,
    /// QUIC packets the bench's connections sent the server (events and ACKs).
    pub quic_packets_to_server: Option<u64>,
    /// ACK frames the server received from the bench's connections.
    pub quic_acks_to_server: Option<u64>,
    /// The same per delivery.
    pub quic_acks_to_server_per_delivery: Option<f64>,
    /// ACK frames the server sent.
    pub quic_acks_from_server: Option<u64>,
    /// DATAGRAM frames the server sent (several may share a packet).
    pub quic_datagrams_from_server: Option<u64>,
}

impl CountersReport {
    /// Puts the window's counts together.
    pub fn new(
        deliveries: u64,
        context_switches: Option<u64>,
        syscalls: Option<Syscalls>,
        quic: Option<QuicTotals>,
    ) -> CountersReport {
        let per = |n: u64| (deliveries > 0).then(|| round3(n as f64 / deliveries as f64));
        let quic = quic.filter(|q| *q != QuicTotals::default());
        CountersReport {
            deliveries,
            context_switches,
            context_switches_per_delivery: context_switches.and_then(per),
            syscalls_per_delivery: syscalls.as_ref().and_then(|s| per(s.total)),
            syscalls,
            quic_packets_from_server: quic.map(|q| q.packets_from_server),
            quic_packets_from_server_per_delivery: quic.and_then(|q| per(q.packets_from_server)),
            quic_packets_to_server: quic.map(|q| q.packets_to_server),
            quic_acks_to_server: quic.map(|q| q.acks_to_server),
            quic_acks_to_server_per_delivery: quic.and_then(|q| per(q.acks_to_server)),
            quic_acks_from_server: quic.map(|q| q.acks_from_server),
            quic_datagrams_from_server: quic.map(|q| q.datagrams_from_server),
        }
    }

    /// The table's lines (label, text).
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let (Some(n), Some(p)) = (self.context_switches, self.context_switches_per_delivery) {
            out.push((
                "server context switches",
                format!("{n} ({p:.3} per delivery)"),
            ));
        }
        if let (Some(s), Some(p)) = (&self.syscalls, self.syscalls_per_delivery) {
            let calls: Vec<String> = s.by_call.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push((
                "server system calls",
                format!("{} ({p:.3} per delivery): {}", s.total, calls.join(", ")),
            ));
        }
        if let (Some(sent), Some(p)) = (
            self.quic_packets_from_server,
            self.quic_packets_from_server_per_delivery,
        ) {
            out.push((
                "QUIC packets from server",
                format!(
                    "{sent} ({p:.3} per delivery; {} DATAGRAM frames, {} ACK frames)",
                    self.quic_datagrams_from_server.unwrap_or(0),
                    self.quic_acks_from_server.unwrap_or(0)
                ),
            ));
        }
        if let (Some(acks), Some(p)) = (
            self.quic_acks_to_server,
            self.quic_acks_to_server_per_delivery,
        ) {
            out.push((
                "QUIC to server",
                format!(
                    "{} packets, {acks} ACK frames ({p:.3} per delivery)",
                    self.quic_packets_to_server.unwrap_or(0)
                ),
            ));
        }
        out
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_stat_output() {
        let text = "\n230872,,raw_syscalls:sys_enter,8001234567,100.00,,\n\
                    0,,syscalls:sys_enter_sendmsg,8001234567,100.00,,\n\
                    181774,,syscalls:sys_enter_sendto,8001234567,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_futex,0,0.00,,\n";
        let s = parse_perf(text).expect("parsed");
        assert_eq!(s.total, 230_872);
        assert_eq!(s.by_call.get("sendto"), Some(&181_774));
        assert!(
            !s.by_call.contains_key("sendmsg"),
            "zero counts are left out"
        );
        assert!(!s.by_call.contains_key("futex"));
        assert!(parse_perf("perf: not found").is_none());
    }

    #[test]
    fn per_delivery_ratios() {
        let quic = QuicTotals {
            packets_from_server: 900,
            packets_to_server: 300,
            acks_to_server: 100,
            acks_from_server: 20,
            datagrams_from_server: 1000,
        };
        let r = CountersReport::new(1000, Some(500), None, Some(quic));
        assert_eq!(r.context_switches_per_delivery, Some(0.5));
        assert_eq!(r.quic_packets_from_server_per_delivery, Some(0.9));
        assert_eq!(r.quic_acks_to_server_per_delivery, Some(0.1));
        assert!(r.syscalls_per_delivery.is_none());
        let none = CountersReport::new(0, Some(5), None, Some(QuicTotals::default()));
        assert!(none.context_switches_per_delivery.is_none());
        assert!(
            none.quic_packets_from_server.is_none(),
            "no WebTransport: no QUIC counts"
        );
    }
}
