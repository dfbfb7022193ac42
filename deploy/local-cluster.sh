#!/usr/bin/env bash
# Three separate `holdfast serve` processes on 127.0.0.1, initialised as one cluster.
# Usage: deploy/local-cluster.sh [DATA_DIR]   (Ctrl-C stops them all)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-.holdfast-local}
cargo build --release --locked -p holdfast-node --bin holdfast
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for id in 1 2 3; do
  mkdir -p "$data/node-$id"
  ./target/release/holdfast serve --id "$id" --http-addr "127.0.0.1:700$id" --raft-addr "127.0.0.1:710$id" \
    --allow-sandbox-payments --data-dir "$data/node-$id" >"$data/node-$id.log" 2>&1 &
  pids+=($!)
done
for id in 1 2 3; do
  until curl -fsS "http://127.0.0.1:700$id/healthz" >/dev/null 2>&1; do sleep 0.2; done
done
members='[{"id":1,"raft_addr":"127.0.0.1:7101","http_addr":"127.0.0.1:7001","region":"a"},
{"id":2,"raft_addr":"127.0.0.1:7102","http_addr":"127.0.0.1:7002","region":"b"},
{"id":3,"raft_addr":"127.0.0.1:7103","http_addr":"127.0.0.1:7003","region":"c"}]'
curl -s -X POST http://127.0.0.1:7001/cluster/init -H 'content-type: application/json' -d "{\"members\":$members}"; echo
echo "cluster up: http://127.0.0.1:7001 7002 7003 (logs in $data/)"
wait
