#!/usr/bin/env bash
# make demo: a whole Potluck on this machine's loopback: 3 core nodes, 1 Front
# and 2 Backs, the sample app pushed and installed. State and logs live in
# .demo/; `make demo-stop` stops everything. A second run while the demo is
# up prints its addresses again and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=${DEMO_DIR:-.demo}
BIN=bin
DOMAIN=${DEMO_DOMAIN:-hello.potluck.test}
BASE=${DEMO_PORT_BASE:-8400}        # core APIs on BASE, BASE+10, BASE+20; raft on +1
MESH=${DEMO_MESH_PORT_BASE:-51820}  # core WireGuard on MESH..MESH+2, the Front's on MESH+10
FRONT_HTTP=${DEMO_FRONT_HTTP:-127.0.0.1:8080}
FRONT_ADMIN=${DEMO_FRONT_ADMIN:-127.0.0.1:9180}
FRONT_MESH=$((MESH + 10))
BACK_IP_BASE=${DEMO_BACK_IP_BASE:-127.0.0.}  # Backs publish on ${BACK_IP_BASE}2 and 3
API_PORTS=($BASE $((BASE + 10)) $((BASE + 20)))
RAFT_PORTS=($((BASE + 1)) $((BASE + 11)) $((BASE + 21)))
MESH_PORTS=($MESH $((MESH + 1)) $((MESH + 2)))
API=http://127.0.0.1:${API_PORTS[0]}

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

summary() {
  local token; token=$(cat "$DEMO/operator.token")
  cat <<EOT

Potluck is running (state and logs in $DEMO/).

  App:        curl -H 'Host: $DOMAIN' http://$FRONT_HTTP/
              curl -H 'Host: $DOMAIN' -H 'Content-Type: application/json' -d '{"name":"ada"}' http://$FRONT_HTTP/
  API:        http://127.0.0.1:${API_PORTS[0]}/v1/status  (also :${API_PORTS[1]}, :${API_PORTS[2]})
              curl -H 'Authorization: Bearer $token' http://127.0.0.1:${API_PORTS[0]}/v1/installations/hello
  UI:         http://127.0.0.1:${API_PORTS[0]}/ui/  (log in with the token below)
  CLI:        POTLUCK_ADDR=$API POTLUCK_TOKEN=\$(cat $DEMO/operator.token) bin/potluck status
  Front:      http://$FRONT_ADMIN/status and /metrics
  Backs:      http://127.0.0.1:$((BASE + 791))/status and http://127.0.0.1:$((BASE + 792))/status
  Token:      $token
  Stop:       make demo-stop
EOT
}

if alive "$DEMO/core1.pid"; then
  say "already running"
  summary
  exit 0
fi

mkdir -p "$DEMO"
bash scripts/docker-up.sh
say "building"
make -s build
[ -x "$BIN/potluck-core" ] && [ -x "$BIN/potluck-front" ] && [ -x "$BIN/potluck-back" ] || die "binaries missing after make build"

[ -f "$DEMO/operator.token" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$DEMO/operator.token")
chmod 600 "$DEMO/operator.token"
TOKEN=$(cat "$DEMO/operator.token")
# curl reads the header from stdin (-H @-): on its command line the token
# would show in /proc/PID/cmdline to every local user.
api() { curl -fsS --max-time 30 -H @- "$@" <<<"Authorization: Bearer $TOKEN"; }

start() { # name, then the command
  local name=$1; shift
  setsid "$@" >"$DEMO/$name.log" 2>&1 < /dev/null &
  echo $! > "$DEMO/$name.pid"
}

[ -f "$DEMO/cluster-ca/ca.crt" ] || "$BIN/potluck-core" ca init --out "$DEMO/cluster-ca" --name demo >/dev/null
PEERS="core1=127.0.0.1:${RAFT_PORTS[0]},core2=127.0.0.1:${RAFT_PORTS[1]},core3=127.0.0.1:${RAFT_PORTS[2]}"
say "starting 3 core nodes"
for i in 0 1 2; do
  n=$((i + 1))
  start "core$n" "$BIN/potluck-core" --id "core$n" --data-dir "$DEMO/core$n" \
    --raft-bind "127.0.0.1:${RAFT_PORTS[$i]}" --peers "$PEERS" --http "127.0.0.1:${API_PORTS[$i]}" \
    --operator-token-file "$DEMO/operator.token" --cluster-ca "$DEMO/cluster-ca" --mesh-port "${MESH_PORTS[$i]}" --fast-raft
done
for _ in $(seq 1 100); do
  curl -fsS --max-time 2 "$API/v1/status" -H @- <<<"Authorization: Bearer $TOKEN" 2>/dev/null | grep -Eq '"leader": *"core' && break
  sleep 0.3
done
api "$API/v1/status" >/dev/null || die "the core did not elect a leader; see $DEMO/core*.log"

if [ ! -s "$DEMO/join.token" ]; then
  (umask 077; : > "$DEMO/join.token")
  api -X POST -H 'Content-Type: application/json' -d '{"description":"demo hosts"}' "$API/v1/tokens" \
    | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' > "$DEMO/join.token"
fi
chmod 600 "$DEMO/join.token"
[ -s "$DEMO/join.token" ] || { rm -f "$DEMO/join.token"; die "could not create a join token"; }
CORES="$API,http://127.0.0.1:${API_PORTS[1]},http://127.0.0.1:${API_PORTS[2]}"

say "starting 1 Front and 2 Backs"
start front1 "$BIN/potluck-front" --core "$CORES" --join-token-file "$DEMO/join.token" --name front1 --data-dir "$DEMO/front1" \
  --listen "$FRONT_HTTP" --admin "$FRONT_ADMIN" --mesh-port "$FRONT_MESH" --endpoint "127.0.0.1:$FRONT_MESH" --public-url "http://$FRONT_HTTP"
for n in 1 2; do
  start "back$n" "$BIN/potluck-back" --core "$CORES" --join-token-file "$DEMO/join.token" --name "back$n" --data-dir "$DEMO/back$n" \
    --cpus 1 --memory 512MiB --disk 2GiB --publish-ip "${BACK_IP_BASE}$((n + 1))" --metrics "127.0.0.1:$((BASE + 790 + n))"
done

say "building the sample app image (FROM scratch, offline)"
make -s app-image APP_IMAGE=potluck-sample-app:latest >/dev/null
say "waiting for the hosts to be ready"
for _ in $(seq 1 100); do
  [ "$(api "$API/v1/hosts" | grep -Eo '"status": *"ready"' | wc -l)" -ge 3 ] && break
  sleep 0.5
done

if ! api "$API/v1/apps/hello" >/dev/null 2>&1; then
  say "pushing the sample app"
  api -X POST --data-binary @bin/app-image.tar -H 'Content-Type: application/x-tar' \
    "$API/v1/apps/hello/tarball?container_port=8080" >/dev/null
fi
if ! api "$API/v1/installations/hello" >/dev/null 2>&1; then
  say "installing it on 1 Front and 2 Backs"
  api -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"hello\",\"app\":\"hello\",\"fronts\":1,\"backs\":2,\"domain\":\"$DOMAIN\",\"cpus\":0.25,\"memory_mb\":64,\"disk_mb\":64,\"container_port\":8080}" \
    "$API/v1/installations" >/dev/null
fi

say "waiting until both instances run and the Front serves them"
for _ in $(seq 1 240); do
  running=$( (api "$API/v1/installations/hello" || true) | grep -Eo '"state": *"running"' | wc -l || true)
  if [ "$running" -ge 2 ] && curl -fsS --max-time 2 -H "Host: $DOMAIN" "http://$FRONT_HTTP/" >/dev/null 2>&1; then
    for _ in 1 2 3 4; do curl -sS -H "Host: $DOMAIN" "http://$FRONT_HTTP/"; done
    summary
    exit 0
  fi
  sleep 0.5
done
die "the app did not answer through the Front in 2 minutes; see $DEMO/*.log"
