#!/usr/bin/env bash
# Makes sure a Docker Engine answers on /var/run/docker.sock: installs Debian's
# docker.io when dockerd is missing and starts dockerd when nothing answers.
# Idempotent. Needs root for the install and the start.
set -euo pipefail

log() { echo "docker-up: $*"; }
die() { echo "docker-up: $*" >&2; exit 1; }
sock=${DOCKER_SOCK:-/var/run/docker.sock}

answers() { curl -fsS --max-time 3 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1; }

if answers; then log "engine answers on $sock"; exit 0; fi
[ "$(id -u)" = 0 ] || die "no Docker Engine answers on $sock and I am not root: start dockerd or run me as root"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  log "installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io curl iptables ca-certificates >/dev/null
fi

log "starting dockerd (log: /var/log/potluck-dockerd.log)"
# setsid: the engine outlives this script and the shell that ran it.
setsid dockerd >/var/log/potluck-dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if answers; then log "engine up: $(curl -fsS --unix-socket "$sock" http://docker/version | tr -d '\n' | cut -c1-120)"; exit 0; fi
  sleep 0.5
done
tail -20 /var/log/potluck-dockerd.log >&2 || true
die "dockerd did not answer within 30 s (log above)"
