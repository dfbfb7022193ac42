#!/usr/bin/env bash
# sdk-cpu.sh BINDIR [holdfast-bench options...]
#
# One run of the SDK flash sale (`holdfast-bench flash-sale --sdk`, 1,000,000 seats, 1,000
# callers, 20 s, three local nodes) with BINDIR's `holdfast` and `holdfast-bench`, and the
# processor time it cost: each node's and the benchmark's CPU time is read from /proc over
# 10 s from 12 s into the run, and divided by the requests a second the benchmark reports.
# Prints one line: requests/s, node and benchmark cores and µs per request, the machine's
# idle share over the window, and the benchmark's own summary. Extra arguments go to
# holdfast-bench (e.g. --sdk-max-batch 256 --sdk-batches-in-flight 4).
set -euo pipefail
B=$(cd "$1" && pwd); shift
export HOLDFAST_ALLOW_SANDBOX_PAYMENTS=true HOLDFAST_BIN=$B/holdfast
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"$B/holdfast-bench" flash-sale --sdk --seats 1000000 --clients 1000 --hot-fraction 0 \
  --duration 20 --nodes 3 "$@" > "$OUT" 2>&1 &
RUN=$!
for _ in $(seq 1 60); do
  sleep 1
  [ "$(pgrep -f "$B/holdfast serve" | wc -l)" -ge 3 ] && break
done
sleep 12
mapfile -t NODES < <(pgrep -f "$B/holdfast serve")
BENCH=$(pgrep -f "$B/holdfast-bench flash-sale" | head -1)
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd+ | bc; }
machine() { grep '^cpu ' /proc/stat | awk '{print $5, $2 + $3 + $4 + $5 + $6 + $7 + $8}'; }
n0=$(ticks "${NODES[@]}"); b0=$(ticks "$BENCH"); read -r i0 a0 < <(machine); t0=$(date +%s.%N)
sleep 10
n1=$(ticks "${NODES[@]}"); b1=$(ticks "$BENCH"); read -r i1 a1 < <(machine); t1=$(date +%s.%N)
wait "$RUN"
summary=$(grep '^FlashSale' "$OUT" | sed 's/^FlashSale [^:]*: //')
rate=$(echo "$summary" | sed 's/^hold \([0-9]*\)\/s.*/\1/')
python3 - "$n0" "$n1" "$b0" "$b1" "$i0" "$i1" "$a0" "$a1" "$t0" "$t1" "$rate" "$(getconf CLK_TCK)" "$summary" <<'PY'
import sys
n0, n1, b0, b1, i0, i1, a0, a1, t0, t1, rate, tick = map(float, sys.argv[1:13])
seconds = t1 - t0
nodes, bench = (n1 - n0) / tick / seconds, (b1 - b0) / tick / seconds
print(f"{rate:.0f}/s  nodes {nodes:.2f} cores {1e6 * nodes / rate:.1f} µs/req  "
      f"bench {bench:.2f} cores {1e6 * bench / rate:.1f} µs/req  "
      f"idle {100 * (i1 - i0) / (a1 - a0):.0f} %  | {sys.argv[13]}")
PY
