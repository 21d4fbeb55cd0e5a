#!/usr/bin/env bash
# make bench-tls: potluck-front (standalone, tls: listener) against NGINX
# (listen ssl http2) on the same two backends, on 127.0.0.1 only; also
# potluck-pipe, potluck-front with pipelined backend connections (lb's
# backend_pool.pipeline: 4, opt-in):
#   handshakes/s  wrk, a new TLS connection per request (Connection: close)
#   h1 req/s      wrk, HTTP/1.1 over keep-alive TLS connections
#   h2 req/s      h2load, HTTP/2, 10 streams per connection
# ROUNDS rounds (default 3) alternating the two, DURATION s each (default 5),
# CONNS connections (default 64). Every run is bounded in time.
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
listen: ["127.0.0.1:$pfh"]
admin: ""
tls:
  listen: ["127.0.0.1:$pf"]
  certificates: [{cert: "$dir/cert.pem", key: "$dir/key.pem"}]
routes:
  - default: true
    backends: [$b1, $b2]
CONF
"$BIN/potluck-front" --config "$dir/front.yaml" --log-level warn >"$dir/front.log" 2>&1 & pids+=($!)

pp=$(port) pph=$(port)
sed -e "s/127.0.0.1:$pfh/127.0.0.1:$pph/; s/127.0.0.1:$pf\"/127.0.0.1:$pp\"/; s/^routes:/backend_pool:\n  pipeline: 4\nroutes:/" "$dir/front.yaml" >"$dir/front-pipe.yaml"
"$BIN/potluck-front" --config "$dir/front-pipe.yaml" --log-level warn >"$dir/front-pipe.log" 2>&1 & pids+=($!)

for p in $ng $pf $pp; do
  for _ in $(seq 50); do curl -sk -o /dev/null "https://127.0.0.1:$p/" && break; sleep 0.1; done
  curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$p/" || { echo "bench-tls: nothing answers on 127.0.0.1:$p" >&2; exit 1; }
done

wrk_rps() { wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}'; }
h2_rps() { h2load -t2 -c"$CONNS" -m10 -D "$DURATION" "$1" 2>/dev/null | awk '/^finished in/ {gsub(/,/,""); print int($4)}'; }

declare -A sum
printf "%-14s %-6s %14s %12s %12s\n" contender round handshakes/s h1_req/s h2_req/s
for r in $(seq "$ROUNDS"); do
  for c in nginx potluck-front potluck-pipe; do
    p=$ng; [ $c = potluck-front ] && p=$pf; [ $c = potluck-pipe ] && p=$pp
    u="https://127.0.0.1:$p/"
    hs=$(wrk_rps -H "Connection: close" "$u")
    h1=$(wrk_rps "$u")
    h2=$(h2_rps "$u")
    # A run that printed no figure must not count as 0 req/s in the mean.
    [ -n "$hs" ] && [ -n "$h1" ] && [ -n "$h2" ] || { echo "bench-tls: $c round $r: wrk or h2load gave no figure" >&2; exit 1; }
    printf "%-14s %-6s %14s %12s %12s\n" $c $r "$hs" "$h1" "$h2"
    sum[$c.hs]=$(( ${sum[$c.hs]:-0} + hs )); sum[$c.h1]=$(( ${sum[$c.h1]:-0} + h1 )); sum[$c.h2]=$(( ${sum[$c.h2]:-0} + h2 ))
  done
done
ratio() { python3 -c "print(f'{$1/$2:.2f}x' if $2 else 'n/a')"; }
echo
for c in nginx potluck-front potluck-pipe; do
  printf "mean over %s rounds: %-14s %6s handshakes/s %7s h1 req/s %7s h2 req/s\n" "$ROUNDS" $c \
    $(( sum[$c.hs]/ROUNDS )) $(( sum[$c.h1]/ROUNDS )) $(( sum[$c.h2]/ROUNDS ))
done
for c in potluck-front potluck-pipe; do
  echo "bench-tls: $c vs nginx: handshakes $(ratio ${sum[$c.hs]} ${sum[nginx.hs]}), h1 $(ratio ${sum[$c.h1]} ${sum[nginx.h1]}), h2 $(ratio ${sum[$c.h2]} ${sum[nginx.h2]})"
done
