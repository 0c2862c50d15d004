#!/usr/bin/env bash
# The jam-server benchmark scenarios (docs/performance.md has what they found).
#
#   bash bench/scenarios.sh          full: 10 s windows, 5,000/2,000 idle connections
#   bash bench/scenarios.sh quick    a few seconds each, smaller idle counts
#   ONLY="floor busy" bash bench/scenarios.sh   run only some of:
#        wire floor busy downbeat knee idle churn loss
#   SERVER_BIN=/path/to/jam-server bash bench/scenarios.sh   measure another build
#   SYSCALLS=1 bash bench/scenarios.sh   also count the server's system calls in the busy
#        runs (jam-bench --syscalls: perf stat on the syscall tracepoints; needs perf and
#        permission to trace, and the tracing costs the server a little CPU)
#
# Every run but wire spawns a fresh jam-server (release build, next to jam-bench) on free
# loopback ports; wire spawns jam-bench itself as an echo peer instead (--floor). Placement:
# the server or echo peer is pinned to CPU 1 (taskset, via --server-cpus), the load
# generator to CPU 0. Results: target/bench-results/<time>/results.jsonl (one JSON line per run),
# report.txt (the tables as printed) and summary.md (Markdown tables).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-full}
ONLY=${ONLY:-wire floor busy downbeat knee idle churn loss}
SYSCALLS=${SYSCALLS:-0}
if [[ $MODE == quick ]]; then
    SECS=3 WARM=1 IDLE_WS=500 IDLE_WT=200 IDLE_HOLD=5 KNEE_SECS=3
    KNEE_STEPS=5,10,20,40,60,80
else
    SECS=10 WARM=2 IDLE_WS=5000 IDLE_WT=2000 IDLE_HOLD=25 KNEE_SECS=8
    KNEE_STEPS=5,10,15,20,25,30,40,50,60,70,80,90,100,120,150
fi

cargo build --release --workspace --bins --quiet
BIN=target/release/jam-bench
OUT=target/bench-results/$(date +%Y%m%d-%H%M%S)-$MODE
mkdir -p "$OUT"
JSONL=$OUT/results.jsonl
REPORT=$OUT/report.txt

# Thousands of sockets on both sides of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SERVER_CPU=1 BENCH_CPU=0
if [[ $(nproc) -lt 2 ]]; then SERVER_CPU=0; fi
bench() {
    # Tables go to the report, JSON lines to results.jsonl.
    taskset -c "$BENCH_CPU" "$BIN" --server-cpus "$SERVER_CPU" ${SERVER_BIN:+--server-bin "$SERVER_BIN"} "$@" | tee -a "$REPORT" | grep '^{' >>"$JSONL" || true
}
has() { [[ " $ONLY " == *" $1 "* ]]; }

{
    echo "# jam-bench scenarios ($MODE), $(date -u +%FT%TZ)"
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "# placement: jam-server (wire: the echo peer) on CPU $SERVER_CPU, jam-bench on CPU $BENCH_CPU (taskset); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git diff --quiet 2>/dev/null || echo '(with local changes)')"
} | tee -a "$REPORT"

LOAD=(--seconds "$SECS" --warmup "$WARM")
BUSY_EXTRA=()
if [[ $SYSCALLS == 1 ]]; then BUSY_EXTRA=(--syscalls); fi

if has wire; then
    # 0. The machine's own floor, no jam-server: a 150-byte message's round trip to an echo
    #    peer over each carrier, open loop at 1,000 a second and closed loop with 8 in
    #    flight (as fast as the pair goes).
    for k in udp tcp quic wt; do
        bench --label "wire $k open" --floor "$k" --rate 1000 "${LOAD[@]}"
        bench --label "wire $k closed" --floor "$k" --floor-inflight 8 "${LOAD[@]}"
    done
fi

if has floor; then
    # 1. Latency floor: one room of 8 at 40 Hz, a steady beat.
    for t in wt-datagram ws wt-stream; do
        bench --label "floor $t" --transport "$t" --rooms 1 --per-room 8 --rate 40 --pattern metronome "${LOAD[@]}"
    done
fi

if has busy; then
    # 2. Busy server: 50 rooms of 8 at 50 Hz (20,000 events/s in, 140,000 deliveries/s out).
    for t in wt-datagram ws wt-stream mixed; do
        bench --label "busy $t" --transport "$t" --rooms 50 --per-room 8 --rate 50 --pattern poisson \
            "${LOAD[@]}" "${BUSY_EXTRA[@]}"
    done
fi

if has downbeat; then
    # 2b. The same load as chords: everyone in a room on the same beat.
    for t in wt-datagram ws; do
        bench --label "busy downbeat $t" --transport "$t" --rooms 50 --per-room 8 --rate 50 --pattern downbeat "${LOAD[@]}"
    done
fi

if has knee; then
    # 3. The knee: more rooms of 8 at 50 Hz until p99 > 5 ms or delivery < 99.9 % (datagrams)
    #    / 100 % (reliable). Each step is a fresh server.
    for t in ws wt-datagram wt-stream; do
        bench --label "knee $t" --transport "$t" --per-room 8 --rate 50 --pattern poisson \
            --knee "$KNEE_STEPS" --knee-p99-us 5000 --seconds "$KNEE_SECS" --warmup "$WARM"
    done
fi

if has idle; then
    # 4. Idle connections in rooms of 8, keep-alives on (server pings every 20 s, the Rust
    #    WebTransport client keeps alive every 5 s): server memory per connection.
    bench --label "idle ws" --idle "$IDLE_WS" --transport ws --per-room 8 --seconds "$IDLE_HOLD" --connect-concurrency 64
    bench --label "idle wt" --idle "$IDLE_WT" --transport wt-datagram --per-room 8 --seconds "$IDLE_HOLD" --connect-concurrency 32
fi

if has churn; then
    # 5. Churn: one room of 8 plays at 40 Hz while fresh connections join it and leave
    #    (each stays 500 ms) at 20 and 100 joins/s.
    for t in ws wt-datagram; do
        for rate in 20 100; do
            bench --label "churn $rate/s $t" --transport "$t" --rooms 1 --per-room 8 --rate 40 \
                --pattern metronome --churn "$rate" --churn-hold-ms 500 "${LOAD[@]}"
        done
    done
fi

if has loss; then
    # 6. 1 % packet loss on loopback, inside a private network namespace (the machine's own
    #    loopback is untouched): WebSocket (TCP retransmits, head-of-line blocking) against
    #    WebTransport datagrams (lost notes). iptables drops 1 % of packets arriving on lo.
    if ! command -v iptables >/dev/null; then
        apt-get install -y iptables >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y iptables >/dev/null 2>&1; } || true
    fi
    if command -v iptables >/dev/null && unshare -n true 2>/dev/null; then
        for rooms in 1 10; do
            for t in ws wt-datagram wt-stream; do
                unshare -n bash -c '
                    ip link set lo up
                    iptables -A INPUT -i lo -m statistic --mode random --probability 0.01 -j DROP
                    exec taskset -c "$0" "$1" --server-cpus "$2" "${@:3}"
                ' "$BENCH_CPU" "$BIN" "$SERVER_CPU" ${SERVER_BIN:+--server-bin "$SERVER_BIN"} --label "loss 1% $rooms room(s) $t" --transport "$t" \
                    --rooms "$rooms" --per-room 8 --rate 40 --pattern metronome --drain 5 "${LOAD[@]}" \
                    | tee -a "$REPORT" | grep '^{' >>"$JSONL" || true
            done
        done
    else
        echo "# loss: skipped (needs root, unshare -n and iptables)" | tee -a "$REPORT"
    fi
fi

"$BIN" --summarize "$JSONL" | tee "$OUT/summary.md"
echo "# results in $OUT"
