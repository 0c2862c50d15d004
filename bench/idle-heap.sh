#!/usr/bin/env bash
# Where an idle session's heap goes, layer by layer: the server (profiling build) runs
# under heaptrack twice, with N and then 2N idle sessions held open by jam-bench, and
# bench/heap_layers.py divides the difference at the heap's peak by N, grouped by the
# library that asked for each allocation (QUIC, TLS, HTTP/3 + WebTransport, jam-server).
# docs/performance.md ("Idle memory, layer by layer") has what it found.
#
#   bash bench/idle-heap.sh                  300 and 600 WebTransport sessions
#   N=500 TRANSPORT=ws bash bench/idle-heap.sh
#
# Needs heaptrack (Debian: heaptrack) and python3. Results: target/idle-heap/.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-300}
TRANSPORT=${TRANSPORT:-wt-datagram}
command -v heaptrack >/dev/null || { echo "idle-heap: heaptrack is not installed" >&2; exit 1; }
cargo build --profile profiling --bin jam-server --quiet
cargo build --release -p jam-bench --quiet
OUT=target/idle-heap
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # sessions label
    local n=$1 label=$2 http wt pid
    http=$(port) wt=$(port)
    rm -f "$OUT/$label".zst
    heaptrack -o "$OUT/$label" target/profiling/jam-server --http-addr "127.0.0.1:$http" \
        --wt-addr "127.0.0.1:$wt" --ephemeral-cert \
        --max-connections-per-address 1000000 --max-http-connections-per-address 1000000 \
        --room-create-burst 1000000 --room-creates-per-minute 1000000 \
        --max-away-seats-per-address 1000000 --max-handshakes-per-address 1000000 \
        >"$OUT/$label.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$http/healthz" && break
        sleep 0.2
    done
    local url="http://127.0.0.1:$http/connect"
    [[ $TRANSPORT == ws ]] && url="ws://127.0.0.1:$http/ws"
    target/release/jam-bench --url "$url" --stats-url "http://127.0.0.1:$http" --idle "$n" \
        --transport "$TRANSPORT" --per-room 8 --seconds 6 --json >"$OUT/$label.json"
    # heaptrack's own process is the parent; the server is its child.
    pkill -INT -P "$pid" 2>/dev/null || true
    pkill -INT -f "target/profiling/jam-server --http-addr 127.0.0.1:$http" 2>/dev/null || true
    wait "$pid" || true
    heaptrack_print -f "$OUT/$label.zst" --print-flamegraph "$OUT/$label.stacks" \
        --flamegraph-cost-type peak >/dev/null
}

run "$N" "small"
run "$((2 * N))" "large"
python3 bench/heap_layers.py "$OUT/small.stacks" "$OUT/large.stacks" "$N"
