//! What Linux tells about a process and the network stack under `/proc`: CPU time
//! (utime + stime), resident memory (VmRSS, VmHWM), CPU affinity, and UDP receive-buffer
//! drops. Also the blocking `GET /stats` the monitor thread uses. Reading only.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

/// `self` or a PID.
#[derive(Debug, Clone, Copy)]
pub enum Proc {
    /// This process.
    Me,
    /// Another process.
    Pid(u32),
    /// The calling thread of this process (CPU time only).
    Thread,
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::Me => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
            Proc::Thread => format!("/proc/thread-self/{file}"),
        }
    }
}

/// Asks for the clock tick rate now (it runs `getconf`), so the monitor never forks a
/// process in the middle of a measured window.
pub fn init() {
    clock_ticks_per_second();
}

fn clock_ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// User plus system CPU time of the whole process (all threads), in microseconds; the
/// kernel counts it in clock ticks (usually 10 ms).
pub fn cpu_us(p: Proc) -> Option<u64> {
    let stat = std::fs::read_to_string(p.path("stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks_per_second())
}

fn status_field(p: Proc, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(p.path("status")).ok()?;
    field(&status, key).map(str::to_owned)
}

/// The value of line `key:` in a `status` file.
fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
}

fn kib(v: Option<String>) -> Option<u64> {
    v?.split_whitespace().next()?.parse().ok()
}

/// Resident memory now, KiB.
pub fn rss_kib(p: Proc) -> Option<u64> {
    kib(status_field(p, "VmRSS"))
}

/// Peak resident memory over the process's life, KiB.
pub fn hwm_kib(p: Proc) -> Option<u64> {
    kib(status_field(p, "VmHWM"))
}

/// The CPUs the process may run on, as a list (`0`, `0-1`).
pub fn cpus(p: Proc) -> Option<String> {
    status_field(p, "Cpus_allowed_list")
}

/// Context switches of all the process's threads so far (voluntary: it slept and was
/// woken; involuntary: it was preempted).
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    let mut any = false;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for key in ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"] {
            if let Some(n) = field(&status, key).and_then(|v| v.parse::<u64>().ok()) {
                total += n;
                any = true;
            }
        }
    }
    any.then_some(total)
}

/// Whether the process still exists.
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Busy and total time of each CPU so far, in clock ticks, from `/proc/stat`
/// (busy = everything but idle and iowait; steal counts as busy: someone else had it).
pub fn cpu_times() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// How busy each CPU was between two [`cpu_times`] readings, percent to one decimal
/// (everyone: the server or echo peer, the bench, others).
pub fn cpu_busy_pct(start: &[(u64, u64)], end: &[(u64, u64)]) -> Vec<f64> {
    start
        .iter()
        .zip(end)
        .map(|(a, b)| {
            let busy = b.0.saturating_sub(a.0) as f64;
            let total = b.1.saturating_sub(a.1).max(1) as f64;
            (busy / total * 1000.0).round() / 10.0
        })
        .collect()
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// UDP datagrams the kernel dropped because a socket's receive buffer was full (this
/// network namespace, all sockets).
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?;
    let values = udp.next()?;
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// `GET {base}/stats` with a blocking socket: the server's counters as JSON.
pub fn get_stats(base: &str) -> Option<serde_json::Value> {
    let authority = base.strip_prefix("http://")?.trim_end_matches('/');
    let authority = authority.split('/').next()?;
    let mut s = TcpStream::connect(authority).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET /stats HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&response[split + 4..]).ok()
}
