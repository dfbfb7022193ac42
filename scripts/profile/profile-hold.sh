#!/usr/bin/env bash
# Where a hold's CPU goes: runs the peer comparison's Holdfast workload (three real nodes,
# wrk over HTTP/1.1, 64 connections, one random seat of 1,000,000 per hold) through the
# leader or a follower, samples every CPU with `perf record -e cpu-clock` for 12 s in the
# middle of the measured window, and prints the holds/s, each node's share of the samples
# and the samples by cost category (categories.py).
#
#   scripts/profile/profile-hold.sh target/release/holdfast leader|follower
#
# Needs root (perf -a), perf (Debian's linux-perf), wrk, and ../shared/peers. A release
# build has line tables (profile.release debug = "line-tables-only"), so symbols resolve.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: profile-hold.sh HOLDFAST_BINARY leader|follower}")
TARGET=${2:-leader}
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS_DIR:-$HERE/../../../shared/peers}
OUT=${PROFILE_OUT:-/var/tmp/holdfast-profile}
mkdir -p "$OUT"
label=hold-$TARGET-$(date -u +%Y%m%dT%H%M%SZ)
export HOLDFAST_ALLOW_SANDBOX_PAYMENTS=true DURATION_S=${DURATION_S:-25}
python3 "$PEERS/holdfast_cluster.py" "$BIN" --target "$TARGET" --label "$label" >"$OUT/$label.txt" 2>&1 &
cluster=$!
for _ in $(seq 1 1200); do grep -q "== measured" "$OUT/$label.txt" 2>/dev/null && break; sleep 0.5; done
sleep 3
perf record -e cpu-clock -F 999 -a -o "$OUT/$label.perf" -- sleep 12 >/dev/null 2>&1
wait "$cluster"
grep -E "^leader node|^ops/s|^latency ms|cores" "$OUT/$label.txt" | head -12
perf script -i "$OUT/$label.perf" -F comm,pid,ip,sym,dso 2>/dev/null >"$OUT/$label.samples"
python3 "$HERE/categories.py" "$OUT/$label.samples"
