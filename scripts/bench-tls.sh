#!/usr/bin/env bash
# make bench-tls: potluck-front (standalone, tls: listener) against NGINX
# (listen ssl http2) on the same two backends, on 127.0.0.1 only; also
# potluck-single, potluck-front as one process (workers: 1, the default),
# and potluck-pipe, potluck-front with pipelined backend connections (lb's
# backend_pool.pipeline: 4, opt-in). potluck-front and potluck-pipe run
# FRONT_WORKERS worker processes (default auto: one per core, as NGINX's
# worker_processes auto):
#   handshakes/s  wrk, a new TLS connection per request (Connection: close)
#   h1 req/s      wrk, HTTP/1.1 over keep-alive TLS connections
#   h2 req/s      h2load, HTTP/2, 10 streams per connection
# ROUNDS rounds (default 3), the order reversed every other round, DURATION s
# each (default 5), CONNS connections (default 64); per run req/s and the CPU
# time per request of the proxy's processes (NGINX: master and workers), then
# the medians and the ratios to NGINX. FRONT_OLD=path adds potluck-old, another
# potluck-front binary on the same config (a before/after in one run);
# TESTS (default "hs h1 h2") picks the measures. H2_SERVER=go|native sets
# the tls: listener's h2_server for potluck-front and potluck-pipe (not for
# potluck-old, whose binary may not know it; nor does potluck-old get
# workers). Every run is bounded in time.
set -euo pipefail
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5} CONNS=${CONNS:-64}
BIN=${BIN:-bin}
for tool in wrk h2load openssl; do
  command -v $tool >/dev/null || { echo "bench-tls: $tool missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
dir=$(mktemp -d /tmp/bench-tls.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

b1=127.0.0.1:$(port) b2=127.0.0.1:$(port)
for b in $b1 $b2; do "$BIN/nginxcmp" backend --addr "$b" >"$dir/backend.log" 2>&1 & pids+=($!); done

ng=$(port)
mkdir -p "$dir/ngx"
cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/ngx; proxy_temp_path $dir/ngx; fastcgi_temp_path $dir/ngx; uwsgi_temp_path $dir/ngx; scgi_temp_path $dir/ngx;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    upstream app { server $b1 max_fails=1 fail_timeout=20s; server $b2 max_fails=1 fail_timeout=20s; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$ng ssl http2;
        ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
CONF
"$NGINX" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" >"$dir/nginx.log" 2>&1 & pids+=($!)

pf=$(port) pfh=$(port)
cat >"$dir/front.yaml" <<CONF
workers: ${FRONT_WORKERS:-auto}
listen: ["127.0.0.1:$pfh"]
admin: ""
tls:
  listen: ["127.0.0.1:$pf"]
  certificates: [{cert: "$dir/cert.pem", key: "$dir/key.pem"}]
${H2_SERVER:+  h2_server: $H2_SERVER}
routes:
  - default: true
    backends: [$b1, $b2]
CONF
"$BIN/potluck-front" --config "$dir/front.yaml" --log-level warn >"$dir/front.log" 2>&1 & pids+=($!)

pp=$(port) pph=$(port)
sed -e "s/127.0.0.1:$pfh/127.0.0.1:$pph/; s/127.0.0.1:$pf\"/127.0.0.1:$pp\"/; s/^routes:/backend_pool:\n  pipeline: 4\nroutes:/" "$dir/front.yaml" >"$dir/front-pipe.yaml"
"$BIN/potluck-front" --config "$dir/front-pipe.yaml" --log-level warn >"$dir/front-pipe.log" 2>&1 & pids+=($!)

ps1=$(port) ps1h=$(port)
sed -e "s/127.0.0.1:$pfh/127.0.0.1:$ps1h/; s/127.0.0.1:$pf\"/127.0.0.1:$ps1\"/; s/^workers:.*/workers: 1/" "$dir/front.yaml" >"$dir/front-single.yaml"
"$BIN/potluck-front" --config "$dir/front-single.yaml" --log-level warn >"$dir/front-single.log" 2>&1 & pids+=($!)

for p in $ng $pf $pp $ps1; do
  for _ in $(seq 50); do curl -sk -o /dev/null "https://127.0.0.1:$p/" && break; sleep 0.1; done
  curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$p/" || { echo "bench-tls: nothing answers on 127.0.0.1:$p" >&2; exit 1; }
done

# cpu PID...: user+system CPU ticks of the processes (all their threads).
# procs CONTENDER: its processes, the master and its workers.
cpu() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo $t; }
procs() { local p; case $1 in nginx) p=$ngpid ;; *) p=${cpid[$1]} ;; esac; echo "$p $(pgrep -P "$p" | tr '\n' ' ')"; }
hz=$(getconf CLK_TCK)
wrk_rps() { wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}'; }
h2_rps() { h2load -t2 -c"$CONNS" -m10 -D "$DURATION" "$1" 2>/dev/null | awk '/^finished in/ {gsub(/,/,""); print int($4)}'; }
# run CONTENDER TEST URL: prints "req/s cpu_us_per_request".
run() {
  local ps before rps after
  ps=$(procs "$1"); before=$(cpu $ps)
  case $2 in
    hs) rps=$(wrk_rps -H "Connection: close" "$3") ;;
    h1) rps=$(wrk_rps "$3") ;;
    h2) rps=$(h2_rps "$3") ;;
  esac
  after=$(cpu $ps)
  # A run that printed no figure must not count as 0 req/s.
  [ -n "$rps" ] && [ "$rps" -gt 0 ] || { echo "bench-tls: $1 $2: wrk or h2load gave no figure" >&2; exit 1; }
  echo "$rps $(( (after - before) * 1000000 / hz / (rps * DURATION) ))"
}

ngpid=${pids[2]}
declare -A cpid=([potluck-front]=${pids[3]} [potluck-pipe]=${pids[4]} [potluck-single]=${pids[5]})
declare -A ports=([nginx]=$ng [potluck-front]=$pf [potluck-pipe]=$pp [potluck-single]=$ps1)
contenders=(nginx potluck-front potluck-single potluck-pipe)
if [ -n "${FRONT_OLD:-}" ]; then
  # Another potluck-front binary (say the previous commit's) on the same
  # config, for a before/after in one run.
  po=$(port) poh=$(port)
  sed -e "s/127.0.0.1:$pfh/127.0.0.1:$poh/; s/127.0.0.1:$pf\"/127.0.0.1:$po\"/; /h2_server:/d; /^workers:/d" "$dir/front.yaml" >"$dir/front-old.yaml"
  "$FRONT_OLD" --config "$dir/front-old.yaml" --log-level warn >"$dir/front-old.log" 2>&1 & pids+=($!)
  cpid[potluck-old]=$! ports[potluck-old]=$po contenders+=(potluck-old)
  for _ in $(seq 50); do curl -sk -o /dev/null "https://127.0.0.1:$po/" && break; sleep 0.1; done
fi
res=$dir/results
TESTS=${TESTS:-hs h1 h2}
declare -A title=([hs]="handshakes/s" [h1]="h1 req/s" [h2]="h2 req/s")
printf "%-14s %-6s" contender round; for t in $TESTS; do printf " %22s" "${title[$t]} (µs CPU)"; done; echo
for r in $(seq "$ROUNDS"); do
  order=("${contenders[@]}")
  if (( r % 2 == 0 )); then order=(); for (( i=${#contenders[@]}-1; i>=0; i-- )); do order+=("${contenders[i]}"); done; fi
  echo "# round $r at $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for c in "${order[@]}"; do
    u="https://127.0.0.1:${ports[$c]}/"
    printf "%-14s %-6s" "$c" "$r"
    for t in $TESTS; do
      read -r rps us <<<"$(run "$c" "$t" "$u")"
      [ -n "$us" ] || exit 1 # run said why
      printf " %14s (%5s)" "$rps" "$us"
      echo "$c $t $rps $us" >>"$res"
    done
    echo
  done
done
echo
python3 - "$res" "${contenders[@]}" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda c, t, i: statistics.median(float(r[i]) for r in rows if r[0] == c and r[1] == t)
names = {t: n for t, n in (("hs", "handshakes"), ("h1", "h1"), ("h2", "h2")) if any(r[1] == t for r in rows)}
for c in sys.argv[2:]:
    print(f"median: {c:<15}" + "  ".join(f"{names[t]} {med(c, t, 2):.0f}/s ({med(c, t, 3):.0f} µs CPU)" for t in names))
for c in sys.argv[3:]:
    print(f"bench-tls: {c} vs nginx (medians): " + ", ".join(f"{names[t]} {med(c, t, 2) / med('nginx', t, 2):.2f}x" for t in names)
          + "; CPU per request " + ", ".join(f"{names[t]} {med(c, t, 3) / max(med('nginx', t, 3), 1):.2f}x" for t in names))
PY
