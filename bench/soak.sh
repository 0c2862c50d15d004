#!/usr/bin/env bash
# Soak: the busy load (50 rooms × 8 players × 50 Hz, mixed transports: WebSocket,
# WebTransport datagrams and WebTransport streams) for a long time, with churn, watching
# that nothing grows. docs/performance.md ("Soak") has what it found.
#
#   bash bench/soak.sh              30 minutes
#   SOAK_SECONDS=90 bash bench/soak.sh
#   bash bench/soak.sh 600          10 minutes
#
# Knobs (environment): SOAK_SECONDS (1800), SEGMENT_SECONDS (300: the load runs as
# back-to-back jam-bench runs of this length, so every player leaves and a new one joins
# at each boundary), CHURN (10 joins/s, each on a fresh connection that stays 500 ms),
# SAMPLE_SECONDS (10), WARMUP_SECONDS (120: the RSS the end is compared with is the first
# sample this long after the load started), RESUME_WINDOW_SECONDS (30: seats of players
# that went away are held this long), SERVER_BIN (another build to soak).
#
# It starts one release jam-server (pinned to CPU 1; jam-bench to CPU 0, as
# bench/scenarios.sh places them), samples its RSS, open file descriptors, threads, and
# from /stats its tasks, rooms and connections every SAMPLE_SECONDS into samples.csv,
# and after the last player left checks that rooms and connections came back to 0, fds
# and tasks to their idle values (± 5), and RSS to within 10 % of its value after
# warm-up. Prints a summary; exits non-zero if a check fails.
# Results: $CARGO_TARGET_DIR (or target)/soak-results/<time>/ — samples.csv,
# bench.jsonl (one jam-bench JSON line per segment), server.log, summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${1:-${SOAK_SECONDS:-1800}}
SEGMENT_SECONDS=${SEGMENT_SECONDS:-300}
CHURN=${CHURN:-10}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-10}
WARMUP_SECONDS=${WARMUP_SECONDS:-120}
RESUME_WINDOW_SECONDS=${RESUME_WINDOW_SECONDS:-30}
if ((WARMUP_SECONDS >= SOAK_SECONDS)); then WARMUP_SECONDS=$((SOAK_SECONDS / 3)); fi

TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p jam-server -p jam-bench --bins --quiet
SERVER=${SERVER_BIN:-$TARGET/release/jam-server}
BENCH=$TARGET/release/jam-bench
OUT=$TARGET/soak-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
CSV=$OUT/samples.csv
SUMMARY=$OUT/summary.txt

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SERVER_CPU=1 BENCH_CPU=0
if [[ $(nproc) -lt 2 ]]; then SERVER_CPU=0; fi

free_port() { python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_$1); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
HTTP_PORT=$(free_port STREAM)
WT_PORT=$(free_port DGRAM)
BASE=http://127.0.0.1:$HTTP_PORT

RUST_LOG=${RUST_LOG:-warn} taskset -c "$SERVER_CPU" "$SERVER" \
    --http-addr "127.0.0.1:$HTTP_PORT" --wt-addr "127.0.0.1:$WT_PORT" --ephemeral-cert \
    --max-room-size 64 --max-connections-per-address 1000000 --max-http-connections-per-address 1000000 \
    --room-create-burst 1000000 --room-creates-per-minute 1000000 \
    --max-away-seats-per-address 1000000 \
    --resume-window "${RESUME_WINDOW_SECONDS}s" >"$OUT/server.log" 2>&1 &
PID=$!
SAMPLER=
cleanup() {
    [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 100); do
    curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$BASE/healthz" >/dev/null || { echo "the server did not start"; cat "$OUT/server.log"; exit 1; }

T0=$(date +%s)
PHASE_FILE=$OUT/.phase
echo idle >"$PHASE_FILE"
sample() {
    local now stats rss fds threads
    now=$(($(date +%s) - T0))
    stats=$(curl -fs --max-time 5 "$BASE/stats" || echo '{}')
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$PID/status")
    threads=$(awk '/^Threads:/{print $2}' "/proc/$PID/status")
    fds=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "$now,$(cat "$PHASE_FILE"),$rss,$fds,$threads,$(jq -r '[.tasks, .rooms, .connections, .eventsIn, .deliveries, .dropped, .slowConsumers] | map(. // "") | @csv' <<<"$stats")"
}
echo "t_s,phase,rss_kib,fds,threads,tasks,rooms,connections,events_in,deliveries,dropped,slow_consumers" >"$CSV"
sample >>"$CSV"
(
    while kill -0 "$PID" 2>/dev/null; do
        sleep "$SAMPLE_SECONDS"
        sample >>"$CSV"
    done
) &
SAMPLER=$!

{
    echo "# soak: $SOAK_SECONDS s of 50 rooms × 8 × 50 Hz (mixed transports), churn $CHURN joins/s, segments of $SEGMENT_SECONDS s"
    echo "# $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); jam-server PID $PID on CPU $SERVER_CPU, jam-bench on CPU $BENCH_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$SUMMARY"

# The load, as back-to-back segments until the time is up.
echo load >"$PHASE_FILE"
LOAD_START=$(date +%s)
segment=0
while :; do
    left=$((LOAD_START + SOAK_SECONDS - $(date +%s)))
    ((left >= 10)) || break
    seconds=$((left < SEGMENT_SECONDS ? left : SEGMENT_SECONDS))
    segment=$((segment + 1))
    taskset -c "$BENCH_CPU" "$BENCH" --url "$BASE/connect" --server-pid "$PID" \
        --transport mixed --rooms 50 --per-room 8 --rate 50 --pattern poisson \
        --churn "$CHURN" --churn-hold-ms 500 --seconds "$seconds" --warmup 2 \
        --label "soak segment $segment" --json >>"$OUT/bench.jsonl" ||
        echo "# segment $segment: jam-bench exited non-zero" | tee -a "$SUMMARY"
    kill -0 "$PID" 2>/dev/null || { echo "the server died" | tee -a "$SUMMARY"; exit 1; }
done
LOAD_END=$(date +%s)

# Everyone has left (or gone: held seats end with the resume window).
echo drain >"$PHASE_FILE"
stats_field() { curl -fs --max-time 5 "$BASE/stats" | jq -r ".$1"; }
deadline=$(($(date +%s) + RESUME_WINDOW_SECONDS + 60))
while [[ $(stats_field rooms) != 0 || $(stats_field connections) != 0 ]] && (($(date +%s) < deadline)); do
    sleep 1
done
# A little longer, so the last samples are of a server at rest.
sleep $((SAMPLE_SECONDS * 2))
echo end >"$PHASE_FILE"
sample >>"$CSV"
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=

# The figures.
warm_t=$((LOAD_START - T0 + WARMUP_SECONDS))
status=0
python3 - "$CSV" "$warm_t" "$SUMMARY" <<'EOF' || status=$?
import csv, sys
path, warm_t, summary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [r for r in csv.DictReader(open(path))]
num = lambda r, k: int(r[k]) if r[k] not in ("", None) else None
start = rows[0]
load = [r for r in rows if r["phase"] == "load"]
warm = next((r for r in load if int(r["t_s"]) >= warm_t), load[-1] if load else start)
end = rows[-1]
cols = ["rss_kib", "fds", "threads", "tasks", "rooms", "connections"]
def peak(k):
    vals = [num(r, k) for r in rows if num(r, k) is not None]
    return max(vals) if vals else None
lines = []
lines.append(f"samples: {len(rows)} in {path}")
lines.append(f"{'':12}" + "".join(f"{c:>13}" for c in cols))
for name, r in [("start", start), (f"warm ({warm['t_s']} s)", warm)]:
    lines.append(f"{name:12}" + "".join(f"{str(num(r, c)):>13}" for c in cols))
lines.append(f"{'peak':12}" + "".join(f"{str(peak(c)):>13}" for c in cols))
lines.append(f"{'end (' + end['t_s'] + ' s)':12}" + "".join(f"{str(num(end, c)):>13}" for c in cols))
checks = []
checks.append(("rooms back to 0", num(end, "rooms") == 0))
checks.append(("connections back to 0", num(end, "connections") == 0))
rss_w, rss_e = num(warm, "rss_kib"), num(end, "rss_kib")
ratio = rss_e / rss_w if rss_w else float("inf")
checks.append((f"RSS at the end within 10 % of after warm-up ({rss_e} / {rss_w} KiB = {ratio:.3f})", ratio <= 1.10))
checks.append((f"fds back to idle ± 5 ({num(start, 'fds')} → {num(end, 'fds')})", abs(num(end, "fds") - num(start, "fds")) <= 5))
if num(start, "tasks") is not None and num(end, "tasks") is not None:
    checks.append((f"tasks back to idle ± 5 ({num(start, 'tasks')} → {num(end, 'tasks')})", abs(num(end, "tasks") - num(start, "tasks")) <= 5))
for what, ok in checks:
    lines.append(f"{'PASS' if ok else 'FAIL'}: {what}")
text = "\n".join(lines)
print(text)
open(summary, "a").write(text + "\n")
sys.exit(0 if all(ok for _, ok in checks) else 1)
EOF
"$BENCH" --summarize "$OUT/bench.jsonl" | tee -a "$SUMMARY" || true
echo "# load ran $((LOAD_END - LOAD_START)) s in $segment segment(s); results in $OUT" | tee -a "$SUMMARY"
exit $status
