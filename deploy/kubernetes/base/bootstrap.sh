#!/bin/sh
# Run by the holdfast-bootstrap Job: waits until every member in members.json answers
# /healthz, then initialises the cluster on the first one. Idempotent: a cluster that is
# already initialised answers 409 ALREADY_INITIALIZED, taken as done.
# PROBE_ADDRESSES (host:port ...) and INIT_ADDRESS override where it looks, for members
# whose advertised HTTP address is not reachable from here (docker-compose.yml).
set -eu
members=/etc/holdfast/bootstrap/members.json
key=""
[ -r "${OPERATOR_KEY_FILE:-}" ] && key=$(cat "$OPERATOR_KEY_FILE")
# One member per line in members.json; no jq in the image.
addresses=${PROBE_ADDRESSES:-$(sed -n 's/.*"http_addr": *"\([^"]*\)".*/\1/p' "$members")}
first=${INIT_ADDRESS:-$(echo "$addresses" | head -n 1)}
[ -n "$first" ] || { echo "no http_addr in $members" >&2; exit 1; }
for address in $addresses; do
  tries=0
  until curl -fsS -m 2 -o /dev/null "http://$address/healthz"; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { echo "$address never answered" >&2; exit 1; }
    sleep 2
  done
  echo "$address is up"
done
answer=$(curl -sS -m 60 -w '\n%{http_code}' -X POST "http://$first/cluster/init" \
  -H "authorization: Bearer $key" -H 'content-type: application/json' \
  --data "{\"members\": $(cat "$members")}")
status=$(echo "$answer" | tail -n 1)
echo "$answer" | head -n -1
case "$status" in
  200|201) echo "initialised the cluster on $first" ;;
  409) echo "$answer" | grep -q ALREADY_INITIALIZED || exit 1; echo "already initialised" ;;
  *) echo "POST /cluster/init answered $status" >&2; exit 1 ;;
esac
