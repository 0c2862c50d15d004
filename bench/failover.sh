#!/usr/bin/env bash
# The gap a player hears when the node that holds the room goes away: a drummer plays a
# note every 5 ms while its node is stopped (SIGTERM: the room is handed over) or killed
# (kill -9: the room is claimed elsewhere once the owner's entry lapses); the listener's
# gap is its first note after less its last note before. Runs the two measuring tests of
# tests/nodes.rs N times (release build, a real redis-server each run) and prints the
# percentiles. docs/performance.md has what it found.
#
#   bash bench/failover.sh [N]     default N = 10
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo test --release --test nodes --no-run -q 2>/dev/null
out=$(mktemp)
for _ in $(seq "$runs"); do
  cargo test --release -q --test nodes -- --nocapture --test-threads 1 \
    a_stopped_node_hands_its_room_over a_killed_node_s_room_is_claimed 2>&1 |
    grep -oE '(hand-over|kill -9 of the owner).*note gap [0-9]+ ms' >>"$out" || true
done
report() {
  local label=$1 pattern=$2
  grep "$pattern" "$out" | grep -oE 'note gap [0-9]+' | awk '{print $3}' | sort -n |
    awk -v label="$label" '{v[NR]=$1} END {
      if (NR == 0) { printf "%-22s no runs\n", label; exit }
      i50 = int((NR - 1) * 0.50) + 1; i90 = int((NR - 1) * 0.90) + 1; i99 = int((NR - 1) * 0.99) + 1
      printf "%-22s runs %3d  p50 %6d ms  p90 %6d ms  p99 %6d ms  max %6d ms\n", label, NR, v[i50], v[i90], v[i99], v[NR]
    }'
}
echo "# $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $runs runs of each"
report "SIGTERM hand-over" 'hand-over'
report "kill -9 of the owner" 'kill -9'
rm -f "$out"
