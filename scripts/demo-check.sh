#!/usr/bin/env bash
# Checks `make demo` as a user would run it, on ports of its own: the demo
# comes up and serves the app through the Front from both instances, a second
# run leaves the first one serving, and demo-stop removes what it started
# (processes, containers, networks).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/potluck-demo-check.XXXXXX)}
export DEMO_PORT_BASE=18400 DEMO_MESH_PORT_BASE=52820
export DEMO_FRONT_HTTP=127.0.0.1:18080 DEMO_FRONT_ADMIN=127.0.0.1:19180 DEMO_BACK_IP_BASE=127.0.9.
cleanup() { bash scripts/demo-stop.sh >/dev/null 2>&1 || true; rm -rf "$DEMO_DIR"; }
trap cleanup EXIT
fail() { echo "demo-check: FAIL: $*" >&2; tail -n 20 "$DEMO_DIR"/*.log >&2 || true; exit 1; }

start=$(date +%s)
out=$(bash scripts/demo.sh 2>&1) || fail "make demo failed: $out"
echo "demo-check: demo up in $(( $(date +%s) - start )) s"
seen=$(for _ in 1 2 3 4 5 6; do curl -fsS --max-time 5 -H 'Host: hello.potluck.test' "http://$DEMO_FRONT_HTTP/"; done | sort -u | wc -l)
[ "$seen" = 2 ] || fail "expected both instances to answer through the Front, saw $seen"
# Secrets: token files readable by their owner only, never on a command line.
for f in operator.token join.token; do
  [ "$(stat -c %a "$DEMO_DIR/$f")" = 600 ] || fail "$f has mode $(stat -c %a "$DEMO_DIR/$f"), want 600"
done
for f in operator.token join.token; do
  # -f: the pattern comes from the file, so grep's own command line holds no secret.
  if grep -qaF -f "$DEMO_DIR/$f" /proc/[0-9]*/cmdline 2>/dev/null; then fail "the $f secret is on a process command line"; fi
done
again=$(bash scripts/demo.sh 2>&1) || fail "a second make demo failed: $again"
grep -q 'already running' <<<"$again" || fail "a second make demo did not recognise the running one"
curl -fsS --max-time 5 -H 'Host: hello.potluck.test' "http://$DEMO_FRONT_HTTP/" >/dev/null || fail "the app stopped answering after a second run"
bash scripts/demo-stop.sh >/dev/null
if curl -fsS --max-time 2 "http://$DEMO_FRONT_HTTP/" >/dev/null 2>&1; then fail "the Front still answers after demo-stop"; fi
for id in "$DEMO_DIR"/back*/identity.json; do
  host=$(sed -n 's/.*"host_id": *"\([^"]*\)".*/\1/p' "$id")
  left=$( (docker ps -aq --filter "label=io.potluck.host=$host"; docker network ls -q --filter "label=io.potluck.host=$host") | wc -l)
  [ "$left" = 0 ] || fail "demo-stop left $left containers or networks of Back $host"
done
echo "demo-check: 1 passed, 0 failed"
