//! A plain thread (not a task of the bench's runtime, so it never delays a send or a
//! receive) that samples the server and the bench over the measured window: CPU time and
//! `/stats` at both ends, resident memory every 100 ms, UDP buffer drops, the server's
//! context switches and (when asked) its system calls.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::counters::{SyscallCount, Syscalls};
use crate::idle_spin;
use crate::procfs::{self, Proc};

/// One look at everything, at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// The server's CPU time, µs.
    pub server_cpu_us: Option<u64>,
    /// The server threads' context switches so far.
    pub server_context_switches: Option<u64>,
    /// The bench's CPU time, µs.
    pub bench_cpu_us: Option<u64>,
    /// The server's `/stats`.
    pub stats: Option<Value>,
    /// Kernel UDP receive-buffer drops so far.
    pub udp_rcvbuf_errors: Option<u64>,
    /// Busy and total ticks per CPU.
    pub cpu_times: Vec<(u64, u64)>,
    /// The generator's idle spinning so far, ns.
    pub idle_spin_ns: u64,
}

impl Sample {
    /// Takes one now.
    pub fn take(pid: Option<u32>, stats_url: Option<&str>) -> Sample {
        Sample {
            at: Instant::now(),
            server_cpu_us: pid.and_then(|p| procfs::cpu_us(Proc::Pid(p))),
            server_context_switches: pid.and_then(procfs::context_switches),
            bench_cpu_us: procfs::cpu_us(Proc::Me),
            stats: stats_url.and_then(procfs::get_stats),
            udp_rcvbuf_errors: procfs::udp_rcvbuf_errors(),
            cpu_times: procfs::cpu_times(),
            idle_spin_ns: idle_spin::total_ns(),
        }
    }
}

/// What the monitor saw over the window.
#[derive(Debug, Clone)]
pub struct Window {
    /// At the window's start.
    pub start: Sample,
    /// At its end.
    pub end: Sample,
    /// Highest VmRSS sampled in the window, KiB.
    pub rss_peak_kib: Option<u64>,
    /// The server's VmHWM at the end, KiB.
    pub hwm_kib: Option<u64>,
    /// The server's system calls over the window (`--syscalls`).
    pub syscalls: Option<Syscalls>,
}

impl Window {
    /// Wall time between the two samples, seconds.
    pub fn seconds(&self) -> f64 {
        self.end.at.duration_since(self.start.at).as_secs_f64()
    }

    /// Bench CPU time over the window less the generator's idle spinning, µs.
    pub fn bench_busy_us(&self) -> Option<u64> {
        let spin = (self.end.idle_spin_ns - self.start.idle_spin_ns) / 1000;
        Some(self.bench_cpu_us()?.saturating_sub(spin))
    }

    /// Server CPU time over the window, µs.
    pub fn server_cpu_us(&self) -> Option<u64> {
        Some(
            self.end
                .server_cpu_us?
                .saturating_sub(self.start.server_cpu_us?),
        )
    }

    /// Bench CPU time over the window, µs.
    pub fn bench_cpu_us(&self) -> Option<u64> {
        Some(
            self.end
                .bench_cpu_us?
                .saturating_sub(self.start.bench_cpu_us?),
        )
    }

    /// A `/stats` counter's growth over the window.
    pub fn stat(&self, key: &str) -> Option<u64> {
        let a = self.start.stats.as_ref()?.get(key)?.as_u64()?;
        let b = self.end.stats.as_ref()?.get(key)?.as_u64()?;
        Some(b.saturating_sub(a))
    }

    /// Every numeric `/stats` counter's growth (and `rooms` as it was at the end).
    pub fn stats_delta(&self) -> Option<Value> {
        let end = self.end.stats.as_ref()?.as_object()?;
        let mut out = serde_json::Map::new();
        for (k, v) in end {
            if k == "rooms" {
                out.insert(k.clone(), v.clone());
            } else if let Some(d) = self.stat(k) {
                out.insert(k.clone(), d.into());
            }
        }
        Some(Value::Object(out))
    }

    /// How busy each CPU was over the window, percent (everyone: server, bench, others).
    pub fn cpu_busy_pct(&self) -> Vec<f64> {
        procfs::cpu_busy_pct(&self.start.cpu_times, &self.end.cpu_times)
    }

    /// The server threads' context switches over the window.
    pub fn server_context_switches(&self) -> Option<u64> {
        Some(
            self.end
                .server_context_switches?
                .saturating_sub(self.start.server_context_switches?),
        )
    }

    /// UDP receive-buffer drops over the window.
    pub fn udp_rcvbuf_errors(&self) -> Option<u64> {
        Some(
            self.end
                .udp_rcvbuf_errors?
                .saturating_sub(self.start.udp_rcvbuf_errors?),
        )
    }
}

/// Samples the window `[from, to)` (instants) on a thread of its own; with `syscalls`,
/// `perf stat` counts the server's system calls over it (started just before the window,
/// so its own start-up is not in it).
pub fn spawn(
    pid: Option<u32>,
    stats_url: Option<String>,
    from: Instant,
    to: Instant,
    syscalls: bool,
) -> JoinHandle<Window> {
    std::thread::spawn(move || {
        sleep_until(from);
        let count = pid
            .filter(|_| syscalls)
            .and_then(|p| SyscallCount::start(p, (to - Instant::now()).as_secs_f64()));
        let start = Sample::take(pid, stats_url.as_deref());
        let rss = || pid.and_then(|p| procfs::rss_kib(Proc::Pid(p)));
        let mut peak = rss();
        while Instant::now() + Duration::from_millis(100) < to {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(rss());
        }
        sleep_until(to);
        peak = peak.max(rss());
        let end = Sample::take(pid, stats_url.as_deref());
        Window {
            start,
            end,
            rss_peak_kib: peak,
            hwm_kib: pid.and_then(|p| procfs::hwm_kib(Proc::Pid(p))),
            syscalls: count.and_then(SyscallCount::finish),
        }
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
