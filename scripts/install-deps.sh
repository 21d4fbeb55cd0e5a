#!/usr/bin/env bash
# Installs what Potluck's tests need on a Debian machine, idempotently.
# Usage: scripts/install-deps.sh [--bench] [--docker]
#   always:   Go modules (go mod download), iproute2 + iptables (network-namespace NAT tests),
#             chromium (the web UI test drives a headless Chromium),
#             nginx (lb's TestNginxParity runs each scenario through a real NGINX too),
#             dig (bind9-dnsutils: core/dnsserve's resolver tests),
#             curl and h2load (nghttp2-client: front/h2's tests with real HTTP/2 clients)
#   --bench:  wrk (make bench-nginx, make bench-tls)
#   --docker: a running Docker Engine (scripts/docker-up.sh installs docker.io and starts dockerd)
set -euo pipefail

want_bench=0 want_docker=0
for a in "$@"; do
  case "$a" in
    --bench) want_bench=1 ;;
    --docker) want_docker=1 ;;
    *) echo "install-deps: unknown option $a" >&2; exit 2 ;;
  esac
done

log() { echo "install-deps: $*"; }
die() { echo "install-deps: $*" >&2; exit 1; }

command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && export PATH=$PATH:/usr/local/go/bin; } 
command -v go >/dev/null || die "Go 1.26 is missing: install it to /usr/local/go"

pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || pkgs+=("$2"); }
need ip iproute2
need iptables iptables
need chromium chromium
need dig bind9-dnsutils   # core/dnsserve's tests query the DNS server with dig
need curl curl            # front/h2's tests: curl and h2load speak h2 to the server
need h2load nghttp2-client
[ -x /usr/sbin/nginx ] || need nginx nginx
if [ $want_bench = 1 ]; then need wrk wrk; fi

if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing ${pkgs[*]}; run as root or install them: apt-get install ${pkgs[*]}"
  fi
  log "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ $want_docker = 1 ]; then bash "$(dirname "$0")/docker-up.sh"; fi

log "downloading Go modules"
go mod download
# Pebble (the ACME test server of e2e.TestHTTPSWithACME) is a go.mod tool:
# internal/acmetest builds it from the module cache; building once here
# fills the build cache.
go build -o /dev/null github.com/letsencrypt/pebble/v2/cmd/pebble
log "ready"
