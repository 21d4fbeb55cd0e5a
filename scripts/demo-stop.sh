#!/usr/bin/env bash
# make demo-stop: stops the demo's processes and removes its containers and
# networks. Its state stays in .demo/ (rm -rf .demo for a fresh start).
set -uo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-.demo}
for pid in "$DEMO"/*.pid; do
  [ -f "$pid" ] || continue
  kill -TERM "$(cat "$pid")" 2>/dev/null
done
for _ in $(seq 1 50); do
  running=0
  for pid in "$DEMO"/*.pid; do [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null && running=1; done
  [ $running = 0 ] && break
  sleep 0.2
done
rm -f "$DEMO"/*.pid
# Backs leave their containers and installation networks in place on purpose
# (a Back restart must not take apps down); the demo is over, so remove them.
if command -v docker >/dev/null; then
  for id in "$DEMO"/back*/identity.json; do
    [ -f "$id" ] || continue
    host=$(sed -n 's/.*"host_id": *"\([^"]*\)".*/\1/p' "$id")
    [ -n "$host" ] || continue
    ids=$(docker ps -aq --filter "label=io.potluck.host=$host" 2>/dev/null)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null
    nets=$(docker network ls -q --filter "label=io.potluck.host=$host" 2>/dev/null)
    [ -n "$nets" ] && docker network rm $nets >/dev/null
  done
fi
echo "demo: stopped (state kept in $DEMO/)"
